"""
Hindsight oracle: the best exposure of a dense sweep under a given score.

It is the ceiling for any controller under that score: it renders the frame that the
command will actually expose (the closed-loop simulator hands it that frame's scene with
:meth:`OracleController.set_scene`; or a fixed ``render(e_s) -> raw`` callable is given),
at every exposure of a log-spaced sweep over the reachable range (each through the same
bounds / priority / flicker split as a real command), scores each rendering and keeps
the best; a golden-section search between the best sweep point's neighbours refines it.
"""
import math
from typing import Callable, Dict, Optional

from neural_ae.core.controllers.base import Controller, ControllerOptions
from neural_ae.core.controllers.registry import ControllerSpec, register
from neural_ae.core.errors import ControllerError
from neural_ae.core.sensor import capture, mosaic, SensorConfig
import numpy as np


def well_exposed_score(sensor: SensorConfig, sigma: float = 0.2) -> Callable:
    """
    Mean well-exposedness of a raw frame (Mertens et al.), in [0, 1].

    Each pixel's black-subtracted level ``x`` in [0, 1] scores
    ``exp(-(x - 0.5)^2 / (2 sigma^2))``; the frame's score is the mean. Under- and
    over-exposed (clipped) pixels score near zero. Returns ``score(raw) -> float``.
    """
    black = float(sensor.black_level_dn)
    scale = 1.0 / max(sensor.white_level_dn - black, 1.0)
    k = -0.5 / sigma ** 2

    def score(raw: np.ndarray) -> float:
        x = (raw.astype(np.float32) - np.float32(black)) * np.float32(scale)
        x -= np.float32(0.5)
        return float(np.exp(np.float32(k) * x * x).mean())

    return score


class OracleController(Controller):
    """
    Best exposure of a dense sweep, with hindsight (needs the scene, not just the frame).

    ``score(raw) -> float`` (higher is better; default :func:`well_exposed_score`);
    ``render(e_s) -> raw`` renders the scene at an exposure value, or call
    :meth:`set_scene` with the radiance (``(H, W, 3)`` linear or ``(H, W)`` Bayer
    irradiance, e-/s) of the frame the next command will expose. Renders are noiseless by
    default (the expected image; ``noise=True`` uses fixed-seed noise, the same for every
    candidate). ``n_sweep`` points cover the reachable range log-uniformly;
    ``refine_iters`` golden-section steps follow.
    """

    name = 'oracle'
    follows_scene = False

    def __init__(self, options: Optional[ControllerOptions] = None,
                 sensor: Optional[SensorConfig] = None, score: Optional[Callable] = None,
                 render: Optional[Callable] = None, n_sweep: int = 49,
                 refine_iters: int = 12, noise: bool = False, seed: int = 0):
        super().__init__(options, sensor)
        if n_sweep < 3:
            raise ControllerError(f'oracle n_sweep must be >= 3, got {n_sweep}')
        self.score = score or well_exposed_score(self.sensor)
        self._render = render
        self._phi: Optional[np.ndarray] = None
        self.n_sweep = int(n_sweep)
        self.refine_iters = int(refine_iters)
        self.noise = bool(noise)
        self.seed = int(seed)

    def set_scene(self, radiance: np.ndarray) -> None:
        """Scene the next command will expose: ``(H, W, 3)`` radiance or ``(H, W)`` phi."""
        radiance = np.asarray(radiance)
        if radiance.ndim == 3:
            self._phi = mosaic(radiance.astype(np.float32, copy=False), self.sensor.bayer_pattern)
        elif radiance.ndim == 2:
            self._phi = radiance
        else:
            raise ControllerError(f'oracle scene must be (H, W, 3) or (H, W), got '
                                  f'{radiance.shape}')
        self._render = None

    def render(self, e_s: float) -> np.ndarray:
        """Raw frame of the current scene at exposure value ``e_s`` (through the split)."""
        t, g, _ = self.limits.split(e_s)
        if self._phi is not None:
            rng = np.random.default_rng(self.seed)
            return capture(self._phi, t, g, self.sensor, rng, noise=self.noise)
        if self._render is not None:
            return self._render(t * g)
        raise ControllerError('oracle has no scene: call set_scene(radiance) or pass render=')

    def _value(self, log_e: float, cache: dict) -> float:
        if log_e not in cache:
            s = float(self.score(self.render(math.exp(log_e))))
            cache[log_e] = s if math.isfinite(s) else -math.inf
        return cache[log_e]

    def propose(self, raw, used, features, info) -> float:
        """Sweep, then refine around the best sweep point; return its exposure value."""
        e_lo, e_hi = self.limits.e_bounds()
        cache: Dict[float, float] = {}
        grid = np.linspace(math.log(e_lo), math.log(e_hi), self.n_sweep)
        values = [self._value(float(x), cache) for x in grid]
        best = int(np.argmax(values))
        lo = float(grid[max(best - 1, 0)])
        hi = float(grid[min(best + 1, len(grid) - 1)])
        inv_phi = (math.sqrt(5.0) - 1.0) / 2.0
        a, b = lo + (1 - inv_phi) * (hi - lo), lo + inv_phi * (hi - lo)
        for _ in range(self.refine_iters):
            if self._value(a, cache) >= self._value(b, cache):
                hi, b = b, a
                a = lo + (1 - inv_phi) * (hi - lo)
            else:
                lo, a = a, b
                b = lo + inv_phi * (hi - lo)
        log_best = max(cache, key=cache.__getitem__)
        info.update(oracle_score=cache[log_best], oracle_evaluations=len(cache))
        return math.exp(log_best)


register(ControllerSpec('oracle', 'Oracle', OracleController, needs_next_scene=True,
                        description='best exposure of a dense sweep, with hindsight'))
