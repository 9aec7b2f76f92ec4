"""
A trained correction model: network + the ISP it was trained behind, from one file.

File format (``format: neural_ae.correction/1``, read only through
:func:`neural_ae.core.checkpoints.read_checkpoint`): ``arch`` (``encdec`` | ``pix2pix``),
``net`` (the :class:`~neural_ae.core.correction.networks.CorrectionUNet` keyword
arguments), ``model`` (its state dict), ``isp`` (the ISP state dict the training pairs were
rendered with), ``config`` (the training config as a dict), and in training checkpoints
also ``optimizer``, ``disc``, ``disc_optimizer``, ``step``, ``rng``.

:class:`Corrector` corrects any size: it pads (reflect) to a multiple of the network's
stride and crops back.
"""
from pathlib import Path
from typing import Optional

from neural_ae.core.checkpoints import meta_choice, meta_float, read_checkpoint
from neural_ae.core.correction.networks import CorrectionUNet
from neural_ae.core.errors import ModelError
from neural_ae.core.sensor import SensorConfig
import numpy as np
import torch
import torch.nn.functional as F

__all__ = ['CORRECTION_FORMAT', 'Corrector', 'is_correction_checkpoint', 'load_corrector',
           'net_kwargs']

CORRECTION_FORMAT = 'neural_ae.correction/1'
ARCHS = ('encdec', 'pix2pix')


def net_kwargs(cfg) -> dict:
    """Return the :class:`CorrectionUNet` arguments of a correction config (dict or dataclass)."""
    def get(key: str):
        return cfg[key] if isinstance(cfg, dict) else getattr(cfg, key)

    arch = get('arch')
    return {'widths': [int(w) for w in get('widths')], 'leak': float(get('leak')),
            'noise': arch == 'pix2pix', 'global_context': bool(get('global_context')),
            'residual': bool(get('residual'))}


def is_correction_checkpoint(ckpt) -> bool:
    """Tell whether ``ckpt`` is a dict written by the correction trainer."""
    return isinstance(ckpt, dict) and ckpt.get('format') == CORRECTION_FORMAT


class Corrector:
    """
    ``correct(rgb)``: a trained network behind its ISP.

    ``net``: the network (eval mode), ``isp``: the ISP its training pairs came from,
    ``arch``, ``source`` (file), ``meta`` (the file's ``config``).
    """

    def __init__(self, net: CorrectionUNet, isp, arch: str, source: str = '',
                 meta: Optional[dict] = None, device: str = 'cpu'):
        self.device = torch.device(device)
        self.net = net.to(self.device).eval()
        self.isp = isp.to(self.device).eval()
        self.arch = arch
        self.source = source
        self.meta = dict(meta or {})

    def correct(self, rgb: torch.Tensor) -> torch.Tensor:
        """Correct ``(B, 3, H, W)`` or ``(3, H, W)`` RGB in [0, 1]; same shape out (no grad)."""
        single = rgb.dim() == 3
        x = rgb[None] if single else rgb
        if x.dim() != 4 or x.shape[1] != 3:
            raise ModelError(f'image to correct: expected (B, 3, H, W) or (3, H, W), got '
                             f'{tuple(rgb.shape)}')
        h, w = x.shape[-2:]
        m = self.net.multiple
        ph, pw = (-h) % m, (-w) % m
        x = x.to(self.device, torch.float32)
        if ph or pw:
            mode = 'reflect' if ph < h and pw < w else 'replicate'
            x = F.pad(x, (0, pw, 0, ph), mode=mode)
        with torch.no_grad():
            y = self.net(x)[..., :h, :w]
        return y[0] if single else y

    def correct_uint8(self, rgb8: np.ndarray) -> np.ndarray:
        """Correct an ``(H, W, 3)`` uint8 RGB image; returns ``(H, W, 3)`` uint8."""
        if not (isinstance(rgb8, np.ndarray) and rgb8.ndim == 3 and rgb8.shape[2] == 3):
            raise ModelError(f'image to correct: expected an (H, W, 3) array, got '
                             f'{getattr(rgb8, "shape", type(rgb8).__name__)}')
        x = torch.from_numpy(np.ascontiguousarray(rgb8)).permute(2, 0, 1).float() / 255.0
        y = self.correct(x)
        return (y.clamp(0, 1) * 255.0 + 0.5).byte().permute(1, 2, 0).cpu().numpy()

    def render(self, raw: np.ndarray) -> torch.Tensor:
        """Render a raw frame ``(H, W)`` [DN] -> ``(3, H, W)`` RGB (the input domain)."""
        from neural_ae.core.correction.data import render_raw

        return render_raw(self.isp.cpu(), raw)


def load_corrector(path, sensor: SensorConfig, device: str = 'cpu') -> Corrector:
    """Load a correction model (slim or training checkpoint); one-line ModelError if bad."""
    from neural_ae.core.checkpoints import load_state
    from neural_ae.core.correction.data import isp_from_state

    path = Path(path)
    ckpt = read_checkpoint(path, 'correction model')
    where = f'correction model {path}'
    if not is_correction_checkpoint(ckpt):
        raise ModelError(f'{where}: not a correction model (format '
                         f'{ckpt.get("format")!r}, expected {CORRECTION_FORMAT!r})')
    arch = meta_choice(ckpt.get('arch'), 'arch', where, ARCHS)
    spec = ckpt.get('net')
    if not isinstance(spec, dict):
        raise ModelError(f'{where}: missing net description')
    try:
        widths = [int(w) for w in spec['widths']]
        if not 2 <= len(widths) <= 8 or not all(1 <= w <= 1024 for w in widths):
            raise ValueError(f'widths {widths}')
        net = CorrectionUNet(widths, meta_float(spec['leak'], 'net.leak', where, 0.0, 1.0),
                             bool(spec['noise']), bool(spec['global_context']),
                             bool(spec.get('residual', False)))
    except (KeyError, TypeError, ValueError) as err:
        raise ModelError(f'{where}: bad net description: {err}') from err
    load_state(net, ckpt.get('model'), where, 'the correction network')
    if not isinstance(ckpt.get('isp'), dict):
        raise ModelError(f'{where}: missing the ISP state')
    isp = isp_from_state(ckpt['isp'], sensor)
    return Corrector(net, isp, arch, str(path), ckpt.get('config') or {}, device)
