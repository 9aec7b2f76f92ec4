"""
Simulated "experts": six documented exposure preferences computed from an HDR scene.

The paper personalises to the five MIT FiveK retouchers; we have no such data, but our
HDR scenes allow exact answers. Each expert returns its ideal exposure value for a scene
as an offset in EV from the *native* exposure ``e_ref`` (the mid-grey expert's choice,
which the stage-1 model mimics like the paper's native camera), clipped to
``[-OFFSET_LIMIT_EV, OFFSET_LIMIT_EV]``. Everything is measured on the noise-free
luminance ``L = 0.2126 R + 0.7152 G + 0.0722 B`` of the radiance [e-/s], as the fraction
of the raw range it would fill, ``x(e) = g1 L e / (white - black)``, clipped at 1:

- ``mid_grey``: mean of ``min(x, 1)`` over the frame = 0.18 (the native camera; offset 0
  by definition);
- ``highlights``: highlight protection, the 99th percentile of ``x`` = 0.85;
- ``shadows``: shadow lifting, the 20th percentile of ``x`` = 0.04;
- ``people``: mean of ``min(x, 1)`` over ``person`` boxes = 0.25 (no person: mid_grey);
- ``road_vehicles``: mean of ``min(x, 1)`` over car / bus / bike boxes and the lower 40 %
  of the frame (the road) = 0.20;
- ``detector``: the shipped detector's preferred exposure: captures (with sensor noise,
  one fixed seed) at offsets ``-2..2`` EV in 0.5 EV steps, rendered beyond the sensor's
  limits where needed (:func:`unclamped_split`: like the analytic experts, it states what
  the scene wants, not what one sensor reaches), each scored by the oracle's
  per-image score (AP@0.5 of the image, then the soft count; :func:`~neural_ae.core.
  evaluation.oracle.image_score`); the best offset, refined by a parabola through the
  scalar score ``AP + 0.1 tanh(soft)`` of it and its neighbours (no ground-truth box:
  mid_grey).
"""
import math
from typing import Callable, Dict, Optional, Sequence

from neural_ae.core import sensor as S
from neural_ae.core.classes import CATEGORY_IDS
from neural_ae.core.errors import ConfigError
import numpy as np

__all__ = ['EXPERTS', 'expert_offsets', 'OFFSET_LIMIT_EV', 'reference_exposure']

EXPERTS = ('mid_grey', 'highlights', 'shadows', 'people', 'road_vehicles', 'detector')
"""Expert names, in table order."""
OFFSET_LIMIT_EV = 2.0
"""Largest expert offset from the native exposure [EV]."""
MID_GREY = 0.18
DETECTOR_OFFSETS = np.arange(-2.0, 2.01, 0.5)


def luminance(radiance: np.ndarray) -> np.ndarray:
    """Rec. 709 luminance ``(H, W)`` of linear RGB radiance ``(H, W, 3)`` [e-/s]."""
    rad = np.nan_to_num(np.asarray(radiance, np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    return np.maximum(rad @ np.array([0.2126, 0.7152, 0.0722]), 0.0)


def _per_e(lum: np.ndarray, sensor) -> np.ndarray:
    """Raw-range fraction per second of exposure, ``g1 L / (white - black)``."""
    return lum * sensor.g1_dn_per_e / max(sensor.white_level_dn - sensor.black_level_dn, 1.0)


def _solve_mean(rate: np.ndarray, target: float) -> float:
    """Exposure ``e`` [s] with ``mean(min(rate e, 1)) = target`` (bisection in log e)."""
    rate = rate[np.isfinite(rate)]
    if rate.size == 0 or rate.max() <= 0:
        return math.nan
    if np.mean(rate > 0) <= target:         # too few lit pixels to reach the target
        return float(1.0 / np.percentile(rate[rate > 0], 1)) if np.any(rate > 0) else math.nan
    lo, hi = math.log(1e-12), math.log(1e6)
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if np.mean(np.minimum(rate * math.exp(mid), 1.0)) < target:
            lo = mid
        else:
            hi = mid
    return math.exp(0.5 * (lo + hi))


def reference_exposure(radiance: np.ndarray, sensor) -> float:
    """Return the native (mid-grey) exposure value ``e_ref`` [s] of a scene."""
    return _solve_mean(_per_e(luminance(radiance), sensor), MID_GREY)


def _box_mask(shape, boxes, labels, classes: Sequence[str]) -> np.ndarray:
    ids = {CATEGORY_IDS[c] for c in classes}
    mask = np.zeros(shape, bool)
    for (x1, y1, x2, y2), lab in zip(np.asarray(boxes).reshape(-1, 4),
                                     np.asarray(labels).reshape(-1)):
        if int(lab) in ids:
            mask[max(int(y1), 0):max(int(math.ceil(y2)), 0),
                 max(int(x1), 0):max(int(math.ceil(x2)), 0)] = True
    return mask


def _offset(e: float, e_ref: float) -> float:
    if not (math.isfinite(e) and e > 0):
        return 0.0
    return float(np.clip(math.log2(e / e_ref), -OFFSET_LIMIT_EV, OFFSET_LIMIT_EV))


def unclamped_split(e_s: float, sensor) -> tuple:
    """
    ``(t_exp_s, gain)`` of exposure ``e_s`` [s] as Eq. 6 splits it, *without* the limits.

    Time up to ``min(T_MAX_S, max exposure)`` (at least the shortest exposure), the rest
    as gain, which may exceed the sensor's maximum (or be below 1): the simulation renders
    what the scene would look like there. An expert's preference is a property of the
    scene, not of one sensor's range: a sweep clamped to the range made every dark scene's
    "preferred" exposure the longest one reachable, and the policy learned that a dark
    frame at the sensor's limit needs no correction.
    """
    t_hi = min(S.T_MAX_S, sensor.max_exposure_s)
    t_exp = min(max(float(e_s), sensor.min_exposure_s), t_hi)
    return t_exp, float(e_s) / t_exp


def detector_offset(scene, sensor, e_ref: float, perception, seed: int = 0) -> tuple:
    """Return the detector expert's offset [EV] and its sweep scores (see the module docstring)."""
    from neural_ae.core.evaluation.oracle import image_score

    if len(scene.labels) == 0:
        return 0.0, []
    phi = S.mosaic(scene.radiance, sensor.bayer_pattern)
    h, w = phi.shape
    scores = []
    for off in DETECTOR_OFFSETS:
        t_exp_s, gain = unclamped_split(e_ref * 2.0 ** off, sensor)
        raw = S.capture(phi, t_exp_s, gain, sensor, np.random.default_rng([seed, 11]))
        dets, _ = perception.detect(raw)
        scores.append(image_score(scene.boxes, scene.labels, dets, w, h))
    n_gt = max(len(scene.labels), 1)
    scalar = np.array([ap + 0.1 * soft / n_gt for ap, soft in scores])
    # the centre of the plateau of near-best offsets (AP is flat over wide ranges)
    near = np.nonzero(scalar >= scalar.max() - 0.02)[0]
    best = int(near[len(near) // 2])
    off = float(DETECTOR_OFFSETS[best])
    if len(near) == 1 and 0 < best < len(scalar) - 1:
        a, b, c = scalar[best - 1], scalar[best], scalar[best + 1]
        den = a - 2 * b + c
        if den < 0:
            off += 0.5 * float(np.clip(0.5 * (a - c) / den, -0.5, 0.5))
    return off, scalar.tolist()


def expert_offsets(scene, sensor, perception=None, experts: Sequence[str] = EXPERTS,
                   seed: int = 0) -> Dict[str, float]:
    """
    Offsets [EV] from the native exposure of every expert in ``experts`` for ``scene``.

    ``perception`` (a :class:`~neural_ae.core.models.perception.Perception`) is needed for
    the ``detector`` expert only.
    """
    unknown = [e for e in experts if e not in EXPERTS]
    if unknown:
        raise ConfigError(f'unknown expert(s) {unknown}; expected some of {EXPERTS}')
    lum = luminance(scene.radiance)
    rate = _per_e(lum, sensor)
    e_ref = _solve_mean(rate, MID_GREY)
    h, w = lum.shape
    out: Dict[str, float] = {}
    rules: Dict[str, Callable[[], float]] = {
        'mid_grey': lambda: e_ref,
        'highlights': lambda: 0.85 / max(float(np.percentile(rate, 99)), 1e-30),
        'shadows': lambda: 0.04 / max(float(np.percentile(rate, 20)), 1e-30),
    }
    for name in experts:
        if name in rules:
            out[name] = _offset(rules[name](), e_ref)
        elif name == 'people':
            mask = _box_mask((h, w), scene.boxes, scene.labels, ('person',))
            out[name] = _offset(_solve_mean(rate[mask], 0.25), e_ref) if mask.sum() >= 16 \
                else 0.0
        elif name == 'road_vehicles':
            mask = _box_mask((h, w), scene.boxes, scene.labels,
                             ('car_van', 'bus_truck', 'bike'))
            mask[int(0.6 * h):] = True
            out[name] = _offset(_solve_mean(rate[mask], 0.20), e_ref)
        elif name == 'detector':
            if perception is None:
                raise ConfigError('the detector expert needs a perception model')
            out[name] = detector_offset(scene, sensor, e_ref, perception, seed)[0]
    out['e_ref_s'] = e_ref
    return out


def label_of(ideal_ev, delta: float = 0.1):
    """``'under'`` (ideal > delta), ``'well'`` (|ideal| <= delta), ``'over'`` per value."""
    ideal = np.asarray(ideal_ev, np.float64)
    return np.where(ideal > delta, 'under', np.where(ideal < -delta, 'over', 'well'))


def optional_perception(path: Optional[str], sensor):
    """Load the detector for the detector expert (``None`` for an empty path)."""
    if not path:
        return None
    from neural_ae.core.models.perception import load_perception

    return load_perception(path, sensor)
