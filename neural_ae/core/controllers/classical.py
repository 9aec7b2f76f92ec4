"""
Classical baselines: fixed exposure, Average AE and Gradient AE (Shim et al. 2018).

Average AE (paper Sec. 6.1): ``e_next = e_used * 0.5 M_white / I_mean`` (black level
subtracted, see :func:`~neural_ae.core.controllers.base.average_ae_factor`).

Gradient AE (Shim et al., IEEE TCSVT 2018; spec "Baselines"): on the first-green-pixel
image ``I`` in [0, 1] (black level removed, downsampled), for each gamma of a set
``gammas`` (default 11 values log-spaced in [1/1.9, 1.9]) take ``I ** gamma``, its Sobel
gradient magnitude ``m`` normalised to [0, 1] (divided by 4, the Sobel response of a unit
step, and clipped) and the gradient information::

    M(gamma) = sum_{m_i >= delta} log(lambda (m_i - delta) + 1) / log(lambda (1 - delta) + 1)

Fit a 5th-order polynomial of ``M`` over ``gamma``, take its maximiser ``g*`` on the
gamma interval, and update::

    R = d tan((2 - g*) atan(1 / d) - atan(1 / d)) + 1
    e_next = (1 + alpha K_p (R - 1)) e_used,   alpha = 1/2 if g* >= 1 else 1

with ``lambda = 1000``, ``delta = 0.06``, ``K_p = 0.5``, ``d = 0.1``. ``g* < 1`` means
brightening the image adds gradient information, so exposure goes up. When no pixel
has a gradient above ``delta`` (a flat, black or fully saturated frame), ``M`` carries no
information and the frame mean decides the direction: ``g* = max(gammas)`` above half
the range, ``min(gammas)`` below (our guard; Shim et al. do not discuss the case).
"""
from dataclasses import replace
import math
from typing import Optional, Sequence, Union

import cv2
from neural_ae.core.controllers.base import (average_ae_factor, Controller, ControllerOptions,
                                             Decision, ExposureSetting)
from neural_ae.core.controllers.metering import (make_metering, MeteredMixin,
                                                 METERING_NODE_KWARGS)
from neural_ae.core.controllers.registry import ControllerSpec, register
from neural_ae.core.errors import ControllerError
from neural_ae.core.sensor import first_green_offset, SensorConfig
import numpy as np

Gammas = Union[Sequence[float], np.ndarray]
"""A set of gamma values: a sequence or a 1-D array."""


class FixedController(Controller):
    """
    Fixed exposure: always commands the same setting.

    The held setting is the one :meth:`reset` returns: ``setting`` if given (the camera
    is told it at reset, so no command ever steps), else the one in force at reset;
    either goes through the bounds as any initial setting does (clamped;
    ``options.fixed_exposure_us`` / ``fixed_gain_db`` and flicker avoidance re-split it).
    """

    name = 'fixed'
    follows_scene = False

    def __init__(self, options: Optional[ControllerOptions] = None,
                 sensor: Optional[SensorConfig] = None,
                 setting: Optional[ExposureSetting] = None):
        super().__init__(options, sensor)
        self._setting = None if setting is None else self._check_setting(setting, 'setting')
        self._held: Optional[ExposureSetting] = None

    def reset(self, initial: Optional[ExposureSetting] = None) -> ExposureSetting:
        """Forget all state; hold ``setting`` if one was given, else ``initial``."""
        return super().reset(self._setting if self._setting is not None else initial)

    def _reset_state(self) -> None:
        self._held = self._last_setting()

    def _held_setting(self) -> ExposureSetting:
        return self._held if self._held is not None else self._last_setting()

    def propose(self, raw, used, features, info) -> float:
        """Return the held exposure value."""
        return self._held_setting().e_s

    def step(self, raw, used=None, features=None) -> Decision:
        """Command the held setting itself (its own time/gain split, inside the bounds)."""
        decision = super().step(raw, used, features)
        setting = self._held_setting()
        self._last = setting
        self._commands[-1] = setting
        decision = replace(decision, setting=setting)
        self.last_decision = decision
        return decision


class AverageController(MeteredMixin, Controller):
    """
    Average AE: scale exposure so the mean raw level sits at ``level`` of the range.

    ``metering`` (or the node's flat ``metering_*`` keywords, see
    :func:`~neural_ae.core.controllers.metering.make_metering`) chooses the mean: global
    (default), centre-weighted, spot, matrix, a user ROI or detections.
    """

    name = 'average'

    def __init__(self, options: Optional[ControllerOptions] = None,
                 sensor: Optional[SensorConfig] = None, level: float = 0.5,
                 metering=None, **metering_params):
        super().__init__(options, sensor)
        if not (math.isfinite(level) and 0 < level < 1):
            raise ControllerError(f'Average AE level must be in (0, 1), got {level}')
        self.level = float(level)
        self.metering = make_metering(metering, **metering_params)

    def propose(self, raw, used, features, info) -> float:
        """``used_e * level * (M_white - black) / (I_mean - black)``, I metered."""
        if self.metering.mode == 'global':
            factor, mean = average_ae_factor(raw, self.sensor, self.level)
        else:
            mean, info['metering'] = self.metered_mean(raw)
            black = self.sensor.black_level_dn
            factor = (self.level * (self.sensor.white_level_dn - black)
                      / max(mean - black, 0.5)) if math.isfinite(mean) else 1.0
        info.update(raw_mean_dn=mean, u=factor)
        return used.e_s * factor


def green_image(raw: np.ndarray, sensor: SensorConfig, max_width: int = 256) -> np.ndarray:
    """
    First green pixel of every Bayer cell, black-subtracted, in [0, 1], float32.

    Downsampled with area averaging so its width is at most ``max_width``.
    Float frames with NaN / inf pixels: those pixels take the mean of the finite ones
    (no false edges, no bias); with none finite the image is black.
    """
    dy, dx = first_green_offset(sensor.bayer_pattern)
    g = raw[dy::2, dx::2]
    if g.size == 0:
        g = raw
    if not np.issubdtype(g.dtype, np.integer):
        g = np.asarray(g, dtype=np.float64)
        finite = np.isfinite(g)
        if not finite.all():
            with np.errstate(over='ignore'):
                fill = float(np.mean(g[finite])) if finite.any() else 0.0
            g = np.where(finite, g, fill)
        g = np.clip(g, -3e38, 3e38)
    g = g.astype(np.float32)
    h, w = g.shape
    if w > max_width:
        new_w = max_width
        new_h = max(1, int(round(h * max_width / w)))
        g = cv2.resize(g, (new_w, new_h), interpolation=cv2.INTER_AREA)
    black = np.float32(sensor.black_level_dn)
    scale = np.float32(1.0 / max(sensor.white_level_dn - sensor.black_level_dn, 1.0))
    g = (g - black) * scale
    np.nan_to_num(g, copy=False, nan=0.0, posinf=1.0, neginf=0.0)
    return np.clip(g, 0.0, 1.0, out=g)


def gradient_information(img: np.ndarray, gammas: Gammas, lam: float = 1000.0,
                         delta: float = 0.06) -> np.ndarray:
    """
    Shim's gradient information ``M(gamma)`` of ``img`` (values in [0, 1]) per gamma.

    Normalised per pixel so a pixel with ``m = 1`` contributes 1; returns float64
    ``(len(gammas),)``, summed over pixels.
    """
    norm = math.log(lam * (1.0 - delta) + 1.0)
    out = np.empty(len(gammas))
    for k, gamma in enumerate(gammas):
        im = np.power(img, np.float32(gamma))
        gx = cv2.Sobel(im, cv2.CV_32F, 1, 0, ksize=3)
        gy = cv2.Sobel(im, cv2.CV_32F, 0, 1, ksize=3)
        m = cv2.magnitude(gx, gy)
        m *= np.float32(0.25)
        np.minimum(m, 1.0, out=m)
        sel = m[m >= delta]
        out[k] = float(np.log1p(lam * (sel - delta)).sum() / norm) if sel.size else 0.0
    return out


def shim_gamma_star(gammas: Gammas, info: np.ndarray, mean_level: float,
                    order: int = 5, grid: int = 241) -> float:
    """
    Maximiser ``g*`` of the degree-``order`` polynomial fit of ``info`` over ``gammas``.

    Searched on a dense grid over ``[min(gammas), max(gammas)]``; falls back to the
    frame mean (see the module docstring) when ``info`` is all zero.
    """
    grid_g = np.asarray(gammas, dtype=np.float64)
    info = np.asarray(info, dtype=np.float64)
    lo, hi = float(grid_g.min()), float(grid_g.max())
    if not np.all(np.isfinite(info)) or info.max() <= 0:
        return hi if mean_level > 0.5 else lo
    deg = min(order, len(grid_g) - 1)
    scale = info.max()
    poly = np.polynomial.Polynomial.fit(grid_g, info / scale, deg)
    xs = np.linspace(lo, hi, grid)
    return float(xs[int(np.argmax(poly(xs)))])


def shim_update_factor(gamma_star: float, kp: float = 0.5, d: float = 0.1) -> float:
    """Shim et al. 2018 exposure update ``1 + alpha K_p (R - 1)``."""
    a = math.atan(1.0 / d)
    r = d * math.tan((2.0 - gamma_star) * a - a) + 1.0
    alpha = 0.5 if gamma_star >= 1.0 else 1.0
    return 1.0 + alpha * kp * (r - 1.0)


class GradientController(Controller):
    """Gradient AE after Shim et al. 2018 (parameters as in the paper's Sec. 6.1)."""

    name = 'gradient'

    def __init__(self, options: Optional[ControllerOptions] = None,
                 sensor: Optional[SensorConfig] = None, gammas: Optional[Gammas] = None,
                 lam: float = 1000.0, delta: float = 0.06, kp: float = 0.5, d: float = 0.1,
                 max_width: int = 256):
        super().__init__(options, sensor)
        self.gammas = np.asarray(np.geomspace(1 / 1.9, 1.9, 11) if gammas is None else gammas,
                                 dtype=np.float64)
        if self.gammas.size < 2 or not np.all(np.isfinite(self.gammas)) or \
                np.any(self.gammas <= 0):
            raise ControllerError(f'gammas must be >= 2 finite positive values, got {gammas}')
        for name, v in (('lam', lam), ('kp', kp), ('d', d)):
            if not (math.isfinite(v) and v > 0):
                raise ControllerError(f'Gradient AE {name} must be > 0, got {v}')
        if not (math.isfinite(delta) and 0 <= delta < 1):
            raise ControllerError(f'Gradient AE delta must be in [0, 1), got {delta}')
        if max_width < 8:
            raise ControllerError(f'Gradient AE max_width must be >= 8, got {max_width}')
        self.lam, self.delta, self.kp, self.d = float(lam), float(delta), float(kp), float(d)
        self.max_width = int(max_width)

    def propose(self, raw, used, features, info) -> float:
        """``used_e * (1 + alpha K_p (R(g*) - 1))``."""
        img = green_image(raw, self.sensor, self.max_width)
        m = gradient_information(img, self.gammas, self.lam, self.delta)
        mean_level = float(img.mean())
        g_star = shim_gamma_star(self.gammas, m, mean_level)
        factor = shim_update_factor(g_star, self.kp, self.d)
        info.update(gamma_star=g_star, u=factor, green_mean=mean_level,
                    gradient_info_max=float(m.max()))
        return used.e_s * factor


register(ControllerSpec('fixed', 'Fixed', FixedController, train_mode='fixed',
                        description='hold one setting'))
register(ControllerSpec('average', 'Average AE', AverageController, train_mode='average',
                        node_kwargs={'average_level': 'level', **METERING_NODE_KWARGS},
                        description='mean raw level to a target (paper Sec. 6.1)'))
register(ControllerSpec('gradient', 'Gradient AE', GradientController, train_mode='gradient',
                        description='gradient information after Shim et al. 2018'))
