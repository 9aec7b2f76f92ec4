"""
The personalized exposure controller (Yang et al., TVCG 2018): ``EV_{i+1} = EV_i + dEV(I_i)``.

Per frame: the processed RGB frame (:func:`~neural_ae.core.personalized.policy.
policy_input`: binned Bayer -> fixed ISP -> ``size x size`` uint8) -> the policy network
(SqueezeNet 1.1 to fire7 + adaptive metering, :class:`~neural_ae.core.personalized.
policy.PolicyNet`) -> ``dEV`` [EV] -> wish ``e_used * 2 ** dEV``; the shared base then
applies every :class:`ControllerOptions` bound, the step limit, EV compensation and the
split into exposure time and gain (exposure priority by default: low gain first). The
paper's law has no smoothing, so ``smoothing`` defaults to ``'none'`` (options may set
one).

Metering (:mod:`~neural_ae.core.controllers.metering`): with a mode other than
``global`` the metering weights replace the importance map (``roi_mode='replace'``) or
multiply it (``'multiply'``); ``detections`` uses the boxes of the same frame
(:meth:`observe_detections`). The last input, action and stamp stay available
(``last_input``, ``last_dev``) for online personalization
(:class:`~neural_ae.core.personalized.online.OnlinePersonalizer`), which swaps weights
under ``self.lock``.
"""
import math
from pathlib import Path
import threading
from typing import Optional, Union

from neural_ae.core.controllers.base import Controller, ControllerOptions
from neural_ae.core.controllers.metering import make_metering, MeteredMixin, \
    METERING_NODE_KWARGS
from neural_ae.core.controllers.registry import ControllerSpec, register
from neural_ae.core.errors import ControllerError, ModelError
from neural_ae.core.sensor import SensorConfig
import numpy as np
import torch
from torch import nn

__all__ = ['PersonalizedController', 'register_personalized', 'SPEC']

ROI_MODES = ('replace', 'multiply')


class PersonalizedController(MeteredMixin, Controller):
    """
    Policy-network controller (see the module docstring).

    ``model``: a :class:`PolicyNet`, a model file (:func:`~neural_ae.core.personalized.
    policy.load_policy`) or ``None`` (untrained, seeded). ``size``: input side [px]
    (default: the model file's, else 128).
    """

    name = 'personalized'
    default_smoothing = 'none'

    def __init__(self, options: Optional[ControllerOptions] = None,
                 sensor: Optional[SensorConfig] = None,
                 model: Union[None, str, Path, nn.Module] = None, device: str = 'cpu',
                 size: Optional[int] = None, metering=None, roi_mode: str = 'replace',
                 seed: Optional[int] = 0, **metering_params):
        super().__init__(options, sensor)
        from neural_ae.core.personalized.policy import load_policy

        if roi_mode not in ROI_MODES:
            raise ControllerError(f'roi_mode must be one of {ROI_MODES}, got {roi_mode!r}')
        self.device = torch.device(device)
        self.model = load_policy(model, seed).to(self.device)
        meta_size = None
        if isinstance(model, (str, Path)):
            meta_size = _model_size(model)
        self.size = int(size or meta_size or 128)
        if not 32 <= self.size <= 512:
            raise ControllerError(f'personalized input size must be in [32, 512], got {size}')
        self.metering = make_metering(metering, **metering_params)
        self.roi_mode = roi_mode
        self.lock = threading.Lock()
        self.last_input: Optional[np.ndarray] = None
        self.last_dev = math.nan
        self.last_maps: Optional[tuple] = None

    def _reset_state(self) -> None:
        self.last_input = None
        self.last_dev = math.nan

    def policy_maps(self, rgb: np.ndarray) -> tuple:
        """``(dEV, EM (h, w), weights (h, w))`` for one policy input ``(S, S, 3)`` uint8."""
        from neural_ae.core.personalized.policy import rgb_input

        x = rgb_input(rgb).to(self.device)
        roi = None
        if self.metering.mode != 'global':
            grid = max(8, self.size // 4)
            w, used = self.metering_weights(grid, grid, self._frame_shape)
            if w is not None:
                roi = torch.from_numpy(w)
        with self.lock, torch.no_grad():
            self.model.eval()
            dev, em, im = self.model.maps(x, roi, self.roi_mode)
        return float(dev[0]), em[0, 0].cpu().numpy(), im[0, 0].cpu().numpy()

    _frame_shape: tuple = (1, 1)

    def propose(self, raw, used, features, info) -> float:
        """``e_used * 2 ** dEV``; NaN when the network's output is not finite."""
        from neural_ae.core.personalized.policy import policy_input

        raw_f = raw
        if not np.issubdtype(raw.dtype, np.integer):
            white = float(self.sensor.white_level_dn)
            raw_f = np.clip(np.nan_to_num(raw, nan=0.0, posinf=white, neginf=0.0), 0.0, white)
        self._frame_shape = raw.shape
        try:
            rgb = policy_input(raw_f, self.sensor, self.size)
            dev, em, im = self.policy_maps(rgb)
        except ModelError as err:
            raise ControllerError(f'{self.name}: policy rejected its input: {err}') from err
        self.last_input = rgb
        self.last_dev = dev
        self.last_maps = (em, im)
        info.update(dev_ev=dev, u=2.0 ** dev if math.isfinite(dev) else math.nan,
                    metering=self.metering.mode)
        if not math.isfinite(dev):
            return math.nan
        return used.e_s * 2.0 ** dev


def _model_size(path) -> Optional[int]:
    from neural_ae.core.checkpoints import read_checkpoint

    try:
        ck = read_checkpoint(path, 'personalized policy')
    except ModelError:
        return None
    ck = ck.get('policy', ck)
    size = (ck.get('meta') or {}).get('size') if isinstance(ck, dict) else None
    return size if isinstance(size, int) and not isinstance(size, bool) else None


def personalized_controller(options: Optional[ControllerOptions] = None,
                            **kw) -> PersonalizedController:
    """Build the :class:`PersonalizedController`."""
    return PersonalizedController(options, **kw)


SPEC = ControllerSpec(
    'personalized', 'Personalized (RL)', personalized_controller, trained=True,
    default_model='personalized_demo.pt', detector_from='hybrid',
    node_kwargs=dict(METERING_NODE_KWARGS),
    description='SqueezeNet policy + adaptive metering, personalised by policy gradient '
                '(Yang et al. 2018)')
"""Registry entry: the shipped ``models/personalized_demo.pt`` (stage 1 + the detector
expert); the evaluation scores its frames with the Hybrid NN's detector (the detector
expert's), ``detector_from='hybrid'``."""

register(SPEC)


def register_personalized() -> ControllerSpec:
    """Return the registry entry (registered on import; kept for callers and tests)."""
    return register(SPEC)
