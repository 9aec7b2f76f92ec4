"""
Temporal metrics of a closed-loop run: convergence, overshoot, oscillation, flicker.

All exposure quantities are in EV (``log2`` of the exposure value ``e_s = K t_exp`` in
force for each frame, i.e. the one that produced it, so actuation latency counts).

**Events** (illumination steps) are the frames where the light at the camera, the scenes'
``meta['illumination_scale']``, changes by more than ``threshold_ev`` (default 0.25 EV)
from one frame to the next; without that meta, where ``log2`` of the scene's mean
irradiance does. Flagged frames closer than ``min_gap`` (3) are merged into one event (a
ramp) that starts at its first frame. Explicit events can be passed instead.

**Segment** of an event: from the event's first frame to the frame before the next
event (or the end of the sequence). The first segment, from frame 0 to the first event,
is the *initial* segment (reported on its own; the summary uses it only without events).

**Settled exposure** of a segment: median of ``e_s`` over its *settled frames*, the last
``settle_frames`` frames of the segment (default 10, at most half the segment).

Per event:

- ``frames_to_converge``: frames from the event until ``e_s`` enters, and then stays
  within, ``converge_ev`` (default 1/3 EV) of the settled exposure; ``None`` if it never
  does before the segment ends (the segment is too short to tell).
- ``overshoot_ev``: how far ``e_s`` goes beyond the settled value in the direction of
  motion (from the exposure in force at the event towards the settled one), max over the
  segment, 0 when it never passes it or did not need to move (less than ``converge_ev``).
- ``oscillations``: number of sign changes of the EV error ``log2(e_s / settled)`` over
  the segment, counting only frames where ``|error| > osc_threshold_ev`` (default 0.1 EV).
- ``flicker_ev``: steady-state flicker, the standard deviation of ``log2 e_s`` over the
  settled frames.
- ``settled_offset_ev``: ``log2(settled / e_base)``, how far the settled exposure is from
  the one that puts the scene's mean raw signal at half the white level (the scene's
  mid-grey exposure, taken at the segment's last frame); positive = brighter.

Whole run:

- ``saturated_time``: fraction of frames with more than ``saturated_pixels`` (default 5 %)
  of their pixels at the white level;
- ``mean_saturated_fraction``: mean over frames of the fraction of saturated pixels.
- ``at_min_share`` / ``at_max_share``: fraction of frames whose exposure value was at the
  smallest / largest ``K t`` the controller's bounds reach (within ``bound_tol_ev``,
  default 0.02 EV; ``None`` when the run does not know its bounds); ``at_bound_share``
  their sum, and ``at_bound`` True when it exceeds ``bound_share`` (default
  :data:`AT_BOUND_SHARE`, 20 %): the camera was pinned at a bound, so the scene lies
  outside what the sensor can expose (often a wrong radiance scale) and convergence
  figures read as success without meaning it. :func:`bound_warning` words the warning
  the tools print.
"""
import math
from typing import List, Optional

from neural_ae.core.closed_loop import ClosedLoopResult
import numpy as np

AT_BOUND_SHARE = 0.2
"""Share of frames at an exposure bound above which a run is flagged ``at_bound``."""
BOUND_TOL_EV = 0.02
"""How close to a bound [EV] a frame's exposure value counts as at the bound."""


def _merge(flags: list, min_gap: int) -> list:
    events: List[List[int]] = []
    for f in sorted({int(x) for x in flags}):
        if events and f - events[-1][1] <= min_gap:
            events[-1][1] = f
        else:
            events.append([f, f])
    return [tuple(e) for e in events]


def find_events(result: ClosedLoopResult, threshold_ev: float = 0.25,
                min_gap: int = 3) -> list:
    """
    Illumination events as ``(first_frame, last_frame)`` pairs (see the module docstring).

    Frame 0 is never an event.
    """
    scale = result.illumination_scale
    if scale.size > 1 and np.all(np.isfinite(scale)):
        d = np.abs(np.diff(np.log2(scale)))
        return _merge(list(np.nonzero(d > threshold_ev)[0] + 1), min_gap)
    mean = np.maximum(result.scene_mean, 1e-30)
    d = np.abs(np.diff(np.log2(mean)))
    return _merge(list(np.nonzero(d > threshold_ev)[0] + 1), min_gap)


def settled_exposure(e_s: np.ndarray, start: int, stop: int, settle_frames: int = 10) -> float:
    """Median of ``e_s[start:stop]`` over its last ``settle_frames`` frames (<= half)."""
    k = _settle_count(stop - start, settle_frames)
    return float(np.median(e_s[stop - k:stop]))


def _settle_count(n: int, settle_frames: int) -> int:
    return max(1, min(settle_frames, n // 2 if n >= 2 else 1))


def segment_metrics(result: ClosedLoopResult, start: int, stop: int,
                    converge_ev: float = 1.0 / 3.0, settle_frames: int = 10,
                    osc_threshold_ev: float = 0.1) -> dict:
    """Metrics of the segment ``[start, stop)`` that begins with an event at ``start``."""
    e = result.e_s
    settled = settled_exposure(e, start, stop, settle_frames)
    err = np.log2(e[start:stop] / settled)
    outside = np.nonzero(np.abs(err) > converge_ev)[0]
    if outside.size == 0:
        conv: Optional[int] = 0
    elif outside[-1] + 1 < len(err):
        conv = int(outside[-1] + 1)
    else:
        conv = None
    move = math.log2(settled / e[start])
    if abs(move) < converge_ev:
        overshoot = 0.0
    else:
        overshoot = float(max(0.0, np.max(np.sign(move) * err)))
    signs = np.sign(err[np.abs(err) > osc_threshold_ev])
    oscillations = int(np.count_nonzero(signs[1:] != signs[:-1])) if signs.size > 1 else 0
    steady = np.log2(e[stop - _settle_count(stop - start, settle_frames):stop])
    flicker = float(np.std(steady)) if steady.size > 1 else 0.0
    e_base = result.e_base_s[stop - 1]
    offset = math.log2(settled / e_base) if math.isfinite(e_base) and e_base > 0 else math.nan
    return {'start': int(start), 'stop': int(stop), 'settled_e_s': settled,
            'step_ev': float(move), 'frames_to_converge': conv, 'overshoot_ev': overshoot,
            'oscillations': oscillations, 'flicker_ev': flicker, 'settled_offset_ev': offset}


def bound_shares(result: ClosedLoopResult, tol_ev: float = BOUND_TOL_EV) -> tuple:
    """
    ``(at_min, at_max, at_either)``: fractions of frames at the bounds' ``K t`` extremes.

    A frame counts when its exposure value ``e_s`` is within ``tol_ev`` of
    ``result.e_lo_s`` (or ``e_hi_s``); ``at_either`` counts each frame once (a range
    narrower than the tolerance has both). ``(None, None, None)`` when the bounds are
    unknown or there are no frames.
    """
    lo, hi, e = result.e_lo_s, result.e_hi_s, result.e_s
    if not (e.size and math.isfinite(lo) and math.isfinite(hi) and 0 < lo <= hi):
        return None, None, None
    tol = 2.0 ** tol_ev
    low, high = e <= lo * tol, e >= hi / tol
    return float(np.mean(low)), float(np.mean(high)), float(np.mean(low | high))


def bound_warning(summary: dict, what: str = 'run') -> Optional[str]:
    """
    Return the warning for a run flagged ``at_bound`` (see the module docstring), or None.

    ``summary``: :func:`temporal_metrics` ``['summary']``; ``what`` names the run.
    """
    if not summary.get('at_bound'):
        return None
    lo, hi = summary.get('at_min_share') or 0.0, summary.get('at_max_share') or 0.0
    share = summary.get('at_bound_share') or 0.0
    side = 'maximum (too dark)' if hi >= lo else 'minimum (too bright)'
    return (f'{what}: the camera sat at its {side} exposure for {100 * share:.0f} % of '
            f'the frames (> {100 * summary.get("at_bound_threshold", AT_BOUND_SHARE):.0f} '
            '%): the scene is outside the exposure range (a wrong radiance_scale?); '
            'convergence figures of such a run are not meaningful')


def temporal_metrics(result: ClosedLoopResult, converge_ev: float = 1.0 / 3.0,
                     settle_frames: int = 10, osc_threshold_ev: float = 0.1,
                     saturated_pixels: float = 0.05, events: Optional[list] = None,
                     threshold_ev: float = 0.25, bound_share: float = AT_BOUND_SHARE,
                     bound_tol_ev: float = BOUND_TOL_EV) -> dict:
    """
    All metrics of a run: ``{'events': [...], 'initial': {...}, 'summary': {...}}``.

    ``events``: ``(first, last)`` frame pairs (default :func:`find_events`). The summary
    holds, over the events: ``frames_to_converge`` (worst event; ``None`` if one never
    converged), ``overshoot_ev`` (max), ``oscillations`` (sum), ``flicker_ev`` (mean) and
    ``settled_offset_ev`` (mean of absolute values) -- the last two over the initial
    segment when there is no event; over the run: ``saturated_time``,
    ``mean_saturated_fraction``, ``fallback_frames``, ``controller_ms_median`` / ``_p90``,
    ``at_min_share`` / ``at_max_share`` / ``at_bound_share`` and the flag ``at_bound``
    (share above ``bound_share``, see :func:`bound_shares`).
    """
    n = result.n_frames
    if events is None:
        events = find_events(result, threshold_ev)
    starts = [s for s, _ in events if 0 < s < n]
    bounds = [0] + starts + [n]
    segments = []
    for a, b in zip(bounds[:-1], bounds[1:]):
        if b > a:
            segments.append(segment_metrics(result, a, b, converge_ev, settle_frames,
                                            osc_threshold_ev))
    initial = segments[0] if segments and (not starts or starts[0] > 0) else None
    per_event = segments[1:] if initial is not None else segments
    conv = [s['frames_to_converge'] for s in per_event]
    sat = result.saturated_fraction
    timing = result.timing()
    steady = per_event or segments
    summary = {
        'n_events': len(per_event),
        'frames_to_converge': (None if any(c is None for c in conv)
                               else (max(conv) if conv else 0)),
        'overshoot_ev': max((s['overshoot_ev'] for s in per_event), default=0.0),
        'oscillations': int(sum(s['oscillations'] for s in per_event)),
        'flicker_ev': float(np.mean([s['flicker_ev'] for s in steady])) if steady else 0.0,
        'settled_offset_ev': (float(np.nanmean([abs(s['settled_offset_ev']) for s in steady]))
                              if steady else math.nan),
        'saturated_time': float(np.mean(sat > saturated_pixels)) if n else 0.0,
        'mean_saturated_fraction': float(np.mean(sat)) if n else 0.0,
        'fallback_frames': int(np.count_nonzero(result.fallback)),
        'controller_ms_median': timing['median_ms'],
        'controller_ms_p90': timing['p90_ms'],
    }
    at_min, at_max, share = bound_shares(result, bound_tol_ev)
    summary.update({'at_min_share': at_min, 'at_max_share': at_max, 'at_bound_share': share,
                    'at_bound': bool(share is not None and share > bound_share),
                    'at_bound_threshold': bound_share})
    return {'events': per_event, 'initial': initial, 'summary': summary,
            'definitions': {'converge_ev': converge_ev, 'settle_frames': settle_frames,
                            'osc_threshold_ev': osc_threshold_ev,
                            'saturated_pixels': saturated_pixels,
                            'bound_share': bound_share, 'bound_tol_ev': bound_tol_ev}}
