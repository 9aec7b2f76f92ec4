"""
The personalized exposure policy (Yang et al., TVCG 2018, Sec. 4): adaptive metering.

Input: the processed RGB frame (our fixed ISP on the raw frame, :func:`policy_input`),
float ``(B, 3, S, S)`` in [0, 1], ``S`` = 128 by default (the network is fully
convolutional, any size from 32 up works). Backbone: torchvision's SqueezeNet 1.1
``features`` up to and including ``fire7`` (``features[:11]``, stride 16, 384 channels,
trained from scratch: no weights are downloaded), dropout 0.5. Heads (1x1 convolutions,
initialised N(0, 0.01) as in the paper):

- exposure map ``EM = tanh(conv_e(f))`` ``(B, 1, h, w)`` in (-1, 1);
- importance map ``IM = sigmoid(conv_i(f))`` ``(B, 1, h, w)`` in (0, 1);
- ``dEV = scale_ev * mean(EM * IM)`` (Eq. 1) [EV], ``scale_ev`` = 4 EV by default, so the
  output covers (-4, 4) EV (labels are normalised by the same scale).

``metering='exposure_only'`` is the paper's Fig. 8 ablation: no importance branch,
``dEV = scale_ev * mean(EM)``. A user region ``roi`` (a weight map ``(B or 1, 1, h, w)``
in [0, 1], see :mod:`neural_ae.core.controllers.metering`) replaces the importance map
(``roi_mode='replace'``) or multiplies it (``'multiply'``); then the mean is the weighted
mean ``sum(EM * W) / sum(W)`` scaled by ``scale_ev`` (so a small ROI is not diluted).
"""
import math
from pathlib import Path
from typing import Optional, Union

import cv2
from neural_ae.core.checks import check_shape
from neural_ae.core.errors import ModelError
import numpy as np
import torch
from torch import nn

__all__ = ['FIRE7_INDEX', 'METERINGS', 'POLICY_FORMAT', 'PolicyNet', 'load_policy',
           'policy_checkpoint', 'policy_input', 'rgb_input', 'save_policy']

POLICY_FORMAT = 'neural_ae.personalized/1'
"""``format`` key of a personalized-policy model file."""
FIRE7_INDEX = 10
"""Index of ``fire7`` in torchvision's ``squeezenet1_1().features``."""
METERINGS = ('adaptive', 'exposure_only')
ROI_MODES = ('replace', 'multiply')


class PolicyNet(nn.Module):
    """
    SqueezeNet-1.1-to-fire7 + adaptive metering; ``forward(x) -> dEV (B,)`` [EV].

    :meth:`maps` returns ``(dEV, EM, IM)``; :meth:`features` / :meth:`head` split the
    backbone from the heads (stage 2 and the node's online updates train the heads on
    cached features).
    """

    def __init__(self, metering: str = 'adaptive', scale_ev: float = 4.0,
                 dropout: float = 0.5):
        super().__init__()
        from torchvision.models import squeezenet1_1

        if metering not in METERINGS:
            raise ModelError(f'metering must be one of {METERINGS}, got {metering!r}')
        if not (isinstance(scale_ev, (int, float)) and 0 < scale_ev <= 16):
            raise ModelError(f'scale_ev must be in (0, 16] EV, got {scale_ev!r}')
        self.metering = metering
        self.scale_ev = float(scale_ev)
        self.backbone = squeezenet1_1(weights=None).features[:FIRE7_INDEX + 1]
        self.dropout = nn.Dropout(dropout)
        channels = 384
        self.exposure_head = nn.Conv2d(channels, 1, 1)
        self.importance_head = nn.Conv2d(channels, 1, 1) if metering == 'adaptive' else None
        for head in (self.exposure_head, self.importance_head):
            if head is not None and head.bias is not None:
                nn.init.normal_(head.weight, 0.0, 0.01)
                nn.init.zeros_(head.bias)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Backbone map ``(B, 384, h, w)`` of images ``(B, 3, S, S)`` in [0, 1]."""
        check_shape(x, ('B', 3, 'H', 'W'), name='policy input', error=ModelError)
        if x.shape[-1] < 32 or x.shape[-2] < 32:
            raise ModelError(f'policy input must be at least 32 x 32, got {tuple(x.shape)}')
        return self.backbone(x)

    def head(self, feat: torch.Tensor, roi: Optional[torch.Tensor] = None,
             roi_mode: str = 'replace') -> tuple:
        """``(dEV (B,), EM (B,1,h,w), IM (B,1,h,w))`` from backbone features."""
        feat = self.dropout(feat)
        em = torch.tanh(self.exposure_head(feat))
        if self.importance_head is not None:
            im = torch.sigmoid(self.importance_head(feat))
        else:
            im = torch.ones_like(em)
        if roi is None:
            dev = self.scale_ev * (em * im).mean(dim=(1, 2, 3))
            return dev, em, im
        if roi_mode not in ROI_MODES:
            raise ModelError(f'roi_mode must be one of {ROI_MODES}, got {roi_mode!r}')
        w = roi_map(roi, em.shape[-2:], em)
        weight = w if roi_mode == 'replace' else w * im
        total = weight.sum(dim=(1, 2, 3)).clamp_min(1e-6)
        dev = self.scale_ev * (em * weight).sum(dim=(1, 2, 3)) / total
        return dev, em, weight

    def maps(self, x: torch.Tensor, roi: Optional[torch.Tensor] = None,
             roi_mode: str = 'replace') -> tuple:
        """``(dEV, EM, IM)`` for images ``x`` (see the module docstring)."""
        return self.head(self.features(x), roi, roi_mode)

    def forward(self, x: torch.Tensor, roi: Optional[torch.Tensor] = None,
                roi_mode: str = 'replace') -> torch.Tensor:
        return self.maps(x, roi, roi_mode)[0]

    def head_parameters(self) -> list:
        """Parameters of the metering heads (what stage 2 trains by default)."""
        return [p for h in (self.exposure_head, self.importance_head) if h is not None
                for p in h.parameters()]


def roi_map(roi, size, like: torch.Tensor) -> torch.Tensor:
    """Resize a weight map ``(H, W)``/``(1|B, 1, H, W)`` (numpy or torch) resized to ``size``."""
    w = torch.as_tensor(roi, dtype=like.dtype, device=like.device)
    if w.dim() == 2:
        w = w[None, None]
    check_shape(w, ('B', 1, 'H', 'W'), name='roi weight map', error=ModelError)
    if tuple(w.shape[-2:]) != tuple(size):
        w = nn.functional.adaptive_avg_pool2d(w, tuple(size))
    return w.clamp(0.0, 1.0)


# --------------------------------------------------------------------------- input


_ISP_CACHE: dict = {}


def _isp_for(sensor):
    from neural_ae.core.isp import ISP, ISPConfig

    key = (sensor.black_level_dn, sensor.bit_depth, sensor.bayer_pattern)
    if key not in _ISP_CACHE:
        _ISP_CACHE[key] = ISP(ISPConfig.from_sensor(sensor)).eval()
    return _ISP_CACHE[key]


def policy_input(raw: np.ndarray, sensor, size: int = 128) -> np.ndarray:
    """
    Return the processed frame the policy sees: ``uint8 (size, size, 3)`` RGB.

    The raw frame ``(H, W)`` [DN] is binned in the Bayer domain to at most
    ``2 size x 2 size`` (:func:`neural_ae.core.preview.resize_bayer`), processed by the
    default, fixed ISP of the sensor (black level, demosaic, gamma 2.2), area-resized to
    ``size x size`` (aspect not kept: the paper's square input) and quantised to 8 bits,
    as a phone's preview frame would be.
    """
    from neural_ae.core.preview import resize_bayer

    check_shape(raw, ('H', 'W'), name='raw frame', error=ModelError, kind='array')
    h, w = raw.shape
    bh, bw = min(h, 2 * size) // 2 * 2, min(w, 2 * size) // 2 * 2
    if (bh, bw) != (h, w):
        raw = resize_bayer(raw, bh, bw)
    x = torch.from_numpy(np.ascontiguousarray(raw, dtype=np.float32))[None, None]
    with torch.no_grad():
        rgb = _isp_for(sensor)(x)[0].permute(1, 2, 0).numpy()
    rgb = cv2.resize(np.ascontiguousarray(rgb), (size, size), interpolation=cv2.INTER_AREA)
    return np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)


def rgb_input(rgb_uint8: np.ndarray) -> torch.Tensor:
    """``uint8 (H, W, 3)`` or ``(N, H, W, 3)`` -> float ``(N, 3, H, W)`` in [0, 1]."""
    arr = np.asarray(rgb_uint8)
    if arr.ndim == 3:
        arr = arr[None]
    check_shape(arr, ('N', 'H', 'W', 3), name='RGB frame(s)', error=ModelError, kind='array')
    return torch.from_numpy(np.ascontiguousarray(arr)).permute(0, 3, 1, 2).float() / 255.0


# --------------------------------------------------------------------------- files


def policy_checkpoint(net: PolicyNet, meta: Optional[dict] = None) -> dict:
    """Return the model-file dict of ``net`` (weights-only loadable)."""
    return {'format': POLICY_FORMAT, 'state_dict': net.state_dict(),
            'metering': net.metering, 'scale_ev': net.scale_ev,
            'meta': dict(meta or {})}


def save_policy(path, net: PolicyNet, meta: Optional[dict] = None) -> Path:
    """Write the model file atomically (temporary name, then rename)."""
    import os

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f'.{path.name}.{os.getpid()}.tmp')
    torch.save(policy_checkpoint(net, meta), tmp)
    os.replace(tmp, path)
    return path


def load_policy(model: Union[None, str, Path, nn.Module], seed: Optional[int] = 0,
                metering: str = 'adaptive') -> PolicyNet:
    """
    Return a policy in eval mode: a module as is, ``None`` = untrained (seeded), or a file.

    A file is a model file of :func:`save_policy` or a stage-1/2 training checkpoint
    (``policy`` entry); metadata and weights are checked (one-line :class:`ModelError`).
    """
    if isinstance(model, nn.Module):
        return model.eval()   # type: ignore[return-value]
    if model is None:
        with torch.random.fork_rng(devices=[]):
            if seed is not None:
                torch.manual_seed(seed)
            return PolicyNet(metering).eval()
    from neural_ae.core.checkpoints import load_state, meta_choice, meta_float, read_checkpoint

    path = Path(model)
    where = f'personalized policy {path}'
    ckpt = read_checkpoint(path, 'personalized policy')
    if isinstance(ckpt.get('policy'), dict):
        ckpt = ckpt['policy']
    if ckpt.get('format') != POLICY_FORMAT:
        raise ModelError(f'{where} is not a personalized policy (format '
                         f'{str(ckpt.get("format"))[:40]!r}, expected {POLICY_FORMAT!r})')
    mode = meta_choice(ckpt.get('metering'), 'metering', where, METERINGS)
    scale = meta_float(ckpt.get('scale_ev'), 'scale_ev', where, 0.0, 16.0)
    net = PolicyNet(mode, scale)
    load_state(net, ckpt.get('state_dict'), where, 'PolicyNet')
    return net.eval()


def ev_to_factor(dev: float) -> float:
    """Exposure factor ``2 ** dEV`` (NaN for a non-finite ``dEV``)."""
    return 2.0 ** dev if math.isfinite(dev) else math.nan
