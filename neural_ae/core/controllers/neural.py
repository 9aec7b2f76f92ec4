"""
Neural exposure controllers: Histogram NN, Semantic NN and Hybrid NN (paper Sec. 4).

Per frame: multi-scale histogram of the raw frame (Sec. 4.1) and/or the detector
backbone's 128-channel features (Sec. 4.2, passed to :meth:`Controller.step` as
``features``) -> :class:`~neural_ae.core.models.exposure_nets.ExposureNet` -> ``u`` in
``[1 / M_exp, M_exp]`` (Eq. 4) -> target ``e_used * u`` -> the shared base applies
smoothing (Eq. 5, ``mu = 0.9`` by default), limits and the split (Eq. 6). A non-finite
``u`` (a broken or diverged model) triggers the base's Average AE fallback; a finite
``u`` outside ``[1 / M_exp, M_exp]`` (only possible with a foreign model) is clipped and
reported in ``info['u_clipped']``.
"""
import logging
import math
from pathlib import Path
from typing import Any, Dict, Optional, Union

from neural_ae.core.checks import check_shape
from neural_ae.core.controllers.base import Controller, ControllerOptions
from neural_ae.core.controllers.registry import ControllerSpec, register
from neural_ae.core.errors import ControllerError, HistogramError, ModelError
from neural_ae.core.sensor import SensorConfig
import numpy as np
import torch
from torch import nn

LOG = logging.getLogger(__name__)

MAX_M_EXP = 1000.0
"""Largest ``m_exp`` a model file may declare (the controller options' bound too)."""
MAX_FEATURE_DIM = 4096
"""Largest ``feature_dim`` a model file may declare (the shipped models use 64)."""


def load_exposure_model(model: Union[None, str, Path, nn.Module], mode: str,
                        m_exp: float = 10.0, seed: Optional[int] = 0) -> nn.Module:
    """
    Return an exposure network in eval mode.

    ``model`` is an ``nn.Module`` (used as is), ``None`` (a fresh, untrained
    ``ExposureNet(mode, m_exp)`` initialised from ``seed`` without touching the global
    torch RNG) or a checkpoint path. A checkpoint is read with ``weights_only=True``
    (no arbitrary pickles) and may be a plain state dict or a dict holding one under
    ``'state_dict'`` or ``'model'`` (optionally with ``'mode'`` / ``'m_exp'`` /
    ``'feature_dim'``, at the top level, or ``'ae'`` / ``'m_exp'`` / ``'ae_feature_dim'``
    under ``'config'``). Nothing is taken on trust: ``mode`` must be one of the registry's
    train modes with a network (and the one asked for), ``m_exp`` a finite number in
    ``(1, 1000]``, ``feature_dim`` an integer in ``[1, 4096]``, ``config`` a mapping
    (required in a ``neural-ae train`` checkpoint), the state dict exactly the network's
    keys and shapes with finite weights; each problem is a one-line :class:`ModelError`
    naming the file and the key.
    """
    if isinstance(model, nn.Module):
        return model.eval()
    from neural_ae.core.models.exposure_nets import ExposureNet

    if model is None:
        with torch.random.fork_rng(devices=[]):
            if seed is not None:
                torch.manual_seed(seed)
            net = ExposureNet(mode=mode, m_exp=m_exp)
        return net.eval()
    from neural_ae.core.checkpoints import (is_training_checkpoint, load_state, meta_choice,
                                            meta_float, meta_int, meta_mapping,
                                            read_checkpoint)

    path = Path(model)
    where = f'exposure model checkpoint {path}'
    ckpt = read_checkpoint(path, 'exposure model checkpoint')
    training = is_training_checkpoint(ckpt)
    if training and 'config' not in ckpt:
        raise ModelError(f'{where}: a neural-ae train checkpoint without its "config": '
                         f'damaged or not written by neural-ae train')
    config: Dict[str, Any] = (meta_mapping(ckpt['config'], 'config', where)
                              if 'config' in ckpt else {})
    modes = tuple(s.train_mode for s in NEURAL_SPECS.values() if s.train_mode)
    if training and 'state_dict' not in ckpt:
        ae = config.get('ae', ckpt.get('ae'))
        if ae not in modes:
            raise ModelError(f'{where} holds no exposure network: it was trained with '
                             f'ae={_short(ae)} (a network needs ae one of {"|".join(modes)})')
    ck_mode = meta_choice(ckpt.get('mode', config.get('ae', mode)), 'mode', where, modes)
    ck_m_exp = meta_float(ckpt.get('m_exp', config.get('m_exp', m_exp)), 'm_exp', where,
                          1.0, MAX_M_EXP)
    # training checkpoints (neural-ae train) also record the branch width
    feature_dim = meta_int(ckpt.get('feature_dim', config.get('ae_feature_dim', 64)),
                           'feature_dim', where, 1, MAX_FEATURE_DIM)
    if ck_mode != mode:
        raise ModelError(f'checkpoint {path} is a {ck_mode!r} model, controller needs {mode!r}')
    if 'state_dict' in ckpt:
        state = ckpt['state_dict']
    elif training and isinstance(ckpt.get('model'), dict):
        state = {k[3:]: v for k, v in ckpt['model'].items()
                 if isinstance(k, str) and k.startswith('ae.')}
    else:
        state = ckpt.get('model', ckpt)
    net = ExposureNet(mode=mode, m_exp=ck_m_exp, feature_dim=feature_dim)
    load_state(net, state, where, f'ExposureNet({mode!r})')
    return net.eval()


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + '...'


def features_tensor(features, device='cpu') -> torch.Tensor:
    """Backbone features ``(128, h, w)`` or ``(1, 128, h, w)`` (numpy or torch) -> tensor."""
    if isinstance(features, np.ndarray):
        features = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32))
    if not torch.is_tensor(features):
        raise ControllerError(f'features must be a tensor or array (1, 128, h, w), got '
                              f'{type(features).__name__}')
    if features.dim() == 3:
        features = features.unsqueeze(0)
    check_shape(features, (1, 'C', 'h', 'w'), name='features (a (C, h, w) map is batch 1)',
                error=ControllerError)
    return features.to(device=device, dtype=torch.float32)


class NeuralController(Controller):
    """
    Histogram NN / Semantic NN / Hybrid NN controller around an exposure network.

    ``name`` is one of ``'histogram_nn'``, ``'semantic_nn'``, ``'hybrid_nn'``. ``model``:
    see :func:`load_exposure_model`; any module with ``forward(hist, features) -> u (B,)``
    works (e.g. a test double). The semantic and hybrid controllers need ``features`` at
    every :meth:`step` (the detector's ``layer2`` output of the same frame). ``backend``
    ``'onnxruntime'`` / ``'tensorrt'`` runs the network from its exported file (in
    ``deploy_dir``, default beside the model file; ``checkpoint``: the file a module
    ``model`` was loaded from), checked here:
    :func:`neural_ae.core.deploy.exposure_backend`.
    """

    default_smoothing = 'stable'

    def __init__(self, name: str = 'hybrid_nn', options: Optional[ControllerOptions] = None,
                 sensor: Optional[SensorConfig] = None,
                 model: Union[None, str, Path, nn.Module] = None, device: str = 'cpu',
                 seed: Optional[int] = 0, backend: str = 'torch', deploy_dir=None,
                 checkpoint: Union[None, str, Path] = None):
        if name not in NEURAL_SPECS:
            raise ControllerError(f'neural controller must be one of {tuple(NEURAL_SPECS)}, '
                                  f'got {name!r}')
        super().__init__(options, sensor)
        self.name = name
        mode = NEURAL_SPECS[name].train_mode  # the ExposureNet mode it was trained as
        assert mode is not None, f'{name} is registered without a train_mode'
        self.mode = mode
        self.device = torch.device(device)
        self.model = load_exposure_model(model, self.mode, self.options.m_exp, seed)
        self.model.to(self.device)
        self.m_exp = float(getattr(self.model, 'm_exp', self.options.m_exp))
        self.backend = backend
        self._infer = self.model
        if backend != 'torch':
            from neural_ae.core.deploy import exposure_backend

            source = checkpoint if checkpoint is not None else (
                model if isinstance(model, (str, Path)) else None)
            self._infer = exposure_backend(source, backend, device, deploy_dir)

    def histogram(self, raw: np.ndarray) -> np.ndarray:
        """Multi-scale histogram ``(256, 59)`` of ``raw`` (float input rounded, clipped)."""
        from neural_ae.core.histograms import multiscale_histogram

        if not np.issubdtype(raw.dtype, np.integer):
            raw = np.clip(np.rint(np.nan_to_num(raw, nan=0.0, posinf=0.0, neginf=0.0)),
                          0, self.sensor.white_level_dn).astype(np.uint16)
        try:
            return multiscale_histogram(raw, bit_depth=self.sensor.bit_depth,
                                        pattern=self.sensor.bayer_pattern)
        except HistogramError as err:
            raise ControllerError(f'{self.name}: cannot histogram raw frame {raw.shape} '
                                  f'{raw.dtype}: {err}') from err

    def predict_u(self, raw: np.ndarray, features=None) -> float:
        """Return the network's exposure change ``u`` for this frame (may be non-finite)."""
        hist = None
        if self.mode in ('histogram', 'hybrid'):
            hist = torch.from_numpy(self.histogram(raw))[None].to(self.device)
        feats = None
        if self.needs_features:
            if features is None:
                raise ControllerError(f'{self.name} needs backbone features (1, 128, H/8, W/8) '
                                      f'at every step; got None')
            feats = features_tensor(features, self.device)
        try:
            with torch.no_grad():
                out = self._infer(hist, feats)
        except ModelError as err:
            raise ControllerError(f'{self.name}: exposure network rejected its input: '
                                  f'{err}') from err
        out = torch.as_tensor(out).detach().reshape(-1)
        if out.numel() < 1:
            return math.nan
        return float(out[0].to(torch.float64).cpu())

    def propose(self, raw, used, features, info) -> float:
        """``e_used * clip(u, 1 / M_exp, M_exp)``; NaN when ``u`` is not finite and > 0."""
        u = self.predict_u(raw, features)
        info['u'] = u
        if not (math.isfinite(u) and u > 0):
            return math.nan
        u_c = min(max(u, 1.0 / self.m_exp), self.m_exp)
        info['u_clipped'] = u_c != u
        return used.e_s * u_c


def _neural_factory(name: str):
    def build(options: Optional[ControllerOptions] = None, **kw) -> NeuralController:
        return NeuralController(name, options, **kw)

    build.__name__ = build.__qualname__ = f'{name}_controller'
    build.__doc__ = f'Build the {name} :class:`NeuralController`.'
    return build


BACKENDS = ('torch', 'onnxruntime', 'tensorrt')
"""Backends of the networks (:data:`neural_ae.core.deploy.BACKENDS`, not imported here:
the deploy package imports this module)."""

NEURAL_SPECS = {
    'histogram_nn': register(ControllerSpec(
        'histogram_nn', 'Histogram NN', _neural_factory('histogram_nn'), trained=True,
        train_mode='histogram', default_model='histogram_demo.pt',
        description='multi-scale histogram branch (paper Sec. 4.1)', backends=BACKENDS)),
    'semantic_nn': register(ControllerSpec(
        'semantic_nn', 'Semantic NN', _neural_factory('semantic_nn'), needs_features=True,
        trained=True, train_mode='semantic', default_model='semantic_demo.pt',
        description='detector-feature branch (paper Sec. 4.2)', backends=BACKENDS)),
    'hybrid_nn': register(ControllerSpec(
        'hybrid_nn', 'Hybrid NN', _neural_factory('hybrid_nn'), needs_features=True,
        trained=True, train_mode='hybrid', default_model='hybrid_demo.pt',
        description='histogram + semantic branches (paper Sec. 4.3)', backends=BACKENDS)),
}
"""Registry entries of the three networks (name -> :class:`ControllerSpec`)."""
