"""
Closed-loop simulation: HDR frames -> simulated capture -> controller -> next setting.

For each frame ``n`` of a sequence the camera captures the scene at the setting in force
(:func:`neural_ae.core.sensor.capture` on the Bayer-sampled radiance), the controller sees
that raw frame together with the setting that produced it, and its command takes effect
at frame ``n + 1 + L`` (``L`` = actuation latency in frames; the frames in between keep
the setting in force). Everything is deterministic for a given ``seed`` (sensor noise is
drawn from ``numpy.random.default_rng(seed)``; the controllers are deterministic).

Frames are :class:`~neural_ae.core.scenes.Scene`-like objects (``.radiance`` ``(H, W, 3)``
in e-/s, optional ``.meta`` dict) or bare arrays (``(H, W, 3)`` radiance or ``(H, W)``
Bayer irradiance). The scenes' ``meta['illumination_scale']`` (light at the camera)
and ``meta['event']`` (a label such as ``'inside'`` or ``'exiting'``) are recorded per
frame when present; :mod:`neural_ae.core.metrics.temporal` finds illumination steps in
them (or in the radiance when there is no meta).
"""
from collections import deque
from dataclasses import dataclass, field
import itertools
import math
from typing import Any, Callable, cast, Dict, Iterable, List, Optional, Protocol, Union

from neural_ae.core.controllers.base import Controller, ExposureSetting
from neural_ae.core.errors import ControllerError
from neural_ae.core.loop import FrameStep
from neural_ae.core.sensor import capture, e_base_s, mosaic, SensorConfig
import numpy as np


@dataclass
class ClosedLoopResult:
    """
    Per-frame record of one closed-loop run (arrays of length ``n_frames``).

    - ``exposure_time_us``, ``gain_db``, ``e_s``: the setting in force for frame ``n``
      (the one that produced it);
    - ``command_e_s``, ``target_e_s``: the command issued after frame ``n`` and the
      controller's target;
    - ``clamped``, ``converged``, ``fallback``: the decision's flags;
    - ``mean_raw_dn``: mean raw value of the frame [DN]; ``saturated_fraction``: fraction
      of its pixels at the white level;
    - ``scene_mean``: mean Bayer irradiance of the scene [e-/s]; ``e_base_s``: the exposure
      value that would put the scene's mean raw signal at half the white level [s];
    - ``illumination_scale`` (NaN where unknown) and ``event_labels`` (``''`` where
      unknown) from the scenes' meta;
    - ``controller_ms``: wall time of ``controller.step`` per frame [ms];
    - ``raws``: the raw frames when run with ``keep_raw=True``;
    - ``e_lo_s``, ``e_hi_s``: the smallest and largest exposure value ``K t`` [s] the
      controller's bounds reach (NaN where unknown), for the time spent at a bound
      (:func:`neural_ae.core.metrics.temporal.bound_shares`).
    """

    controller: str
    latency_frames: int
    seed: int
    white_level_dn: int
    black_level_dn: float
    exposure_time_us: np.ndarray
    gain_db: np.ndarray
    e_s: np.ndarray
    command_e_s: np.ndarray
    target_e_s: np.ndarray
    clamped: np.ndarray
    converged: np.ndarray
    fallback: np.ndarray
    mean_raw_dn: np.ndarray
    saturated_fraction: np.ndarray
    scene_mean: np.ndarray
    e_base_s: np.ndarray
    illumination_scale: np.ndarray
    controller_ms: np.ndarray
    event_labels: list = field(default_factory=list)
    raws: Optional[list] = None
    e_lo_s: float = math.nan
    e_hi_s: float = math.nan

    @property
    def n_frames(self) -> int:
        """Return the number of frames."""
        return len(self.e_s)

    def timing(self) -> dict:
        """Return the controller time per frame [ms]: median, p90, max."""
        ms = self.controller_ms
        if ms.size == 0:
            return {'median_ms': math.nan, 'p90_ms': math.nan, 'max_ms': math.nan}
        return {'median_ms': float(np.median(ms)), 'p90_ms': float(np.percentile(ms, 90)),
                'max_ms': float(ms.max())}

    def to_dict(self, with_frames: bool = True) -> dict:
        """JSON-friendly dict (lists); raw frames are never included."""
        out = {'controller': self.controller, 'latency_frames': self.latency_frames,
               'seed': self.seed, 'n_frames': self.n_frames, 'timing': self.timing(),
               'event_labels': list(self.event_labels),
               'e_range_s': [None if not math.isfinite(v) else v
                             for v in (self.e_lo_s, self.e_hi_s)]}
        if with_frames:
            for name in ('exposure_time_us', 'gain_db', 'e_s', 'command_e_s', 'target_e_s',
                         'clamped', 'converged', 'fallback', 'mean_raw_dn',
                         'saturated_fraction', 'scene_mean', 'e_base_s',
                         'illumination_scale', 'controller_ms'):
                arr = getattr(self, name)
                out[name] = [None if isinstance(v, float) and not math.isfinite(v) else v
                             for v in arr.tolist()]
        return out


def frame_phi(frame, sensor: SensorConfig) -> tuple:
    """``(phi (H, W) e-/s, meta dict)`` of a Scene-like object or radiance array."""
    meta = getattr(frame, 'meta', None) or {}
    radiance = getattr(frame, 'radiance', frame)
    if not isinstance(radiance, np.ndarray):
        raise ControllerError(f'closed loop: a frame must be a Scene or an array, got '
                              f'{type(frame).__name__}')
    if radiance.ndim == 3 and radiance.shape[2] == 3:
        return mosaic(radiance, sensor.bayer_pattern), meta
    if radiance.ndim == 2:
        return radiance, meta
    raise ControllerError(f'closed loop: radiance must be (H, W, 3) or (H, W), got '
                          f'{radiance.shape}')


class _SceneFed(Protocol):
    """A controller with ``needs_next_scene``: it is handed the scene it will expose."""

    def set_scene(self, radiance: np.ndarray) -> None: ...


def _meta_scale(meta: dict) -> float:
    v: Any = meta.get('illumination_scale') if isinstance(meta, dict) else None
    try:
        v = float(v)
    except (TypeError, ValueError):
        return math.nan
    return v if math.isfinite(v) and v > 0 else math.nan


def _meta_label(meta: dict) -> str:
    v = meta.get('event') if isinstance(meta, dict) else None
    return '' if v is None else str(v)


def run_closed_loop(frames: Iterable, controller: Union[Controller, FrameStep],
                    sensor: Optional[SensorConfig] = None,
                    initial: Optional[ExposureSetting] = None,
                    latency_frames: Optional[int] = None, seed: int = 0,
                    noise: bool = True, keep_raw: bool = False,
                    perception=None, on_step: Optional[Callable] = None,
                    max_frames: Optional[int] = None) -> ClosedLoopResult:
    """
    Run ``controller`` in closed loop over ``frames``; see the module docstring.

    ``controller``: a :class:`Controller`, or a :class:`~neural_ae.core.loop.FrameStep`
    (the controller with its perception); ``perception`` builds the step when a bare
    controller is given (the detector runs on every frame; semantic/hybrid controllers
    get its ``layer2`` map). ``initial``: setting in force at frame 0 (default: the first
    frame's ``e_base``, i.e. well exposed at the start). ``latency_frames``: default
    ``controller.options``. ``on_step(k, raw, result)`` is called after every frame with
    its :class:`~neural_ae.core.loop.StepResult` (detections, timings). ``noise=False``
    captures the expected image. Controllers with ``needs_next_scene`` (the oracle) are
    handed the scene their command will expose.
    """
    step = controller if isinstance(controller, FrameStep) else FrameStep(controller, perception)
    controller = step.controller
    sensor = sensor or controller.sensor
    latency = controller.options.latency_frames if latency_frames is None else latency_frames
    if isinstance(latency, bool) or not isinstance(latency, (int, np.integer)) or latency < 0:
        raise ControllerError(f'latency_frames must be an integer >= 0, got {latency!r}')
    rng = np.random.default_rng(seed)
    wants_scene = controller.needs_next_scene
    source = iter(frames) if max_frames is None else itertools.islice(frames, max_frames)
    ahead: deque = deque()

    def fill(k):
        while len(ahead) < k:
            try:
                ahead.append(next(source))
            except StopIteration:
                return

    rec: Dict[str, list] = {k: [] for k in (
        't', 'g', 'e', 'cmd', 'target', 'clamped', 'converged', 'fallback', 'mean', 'sat',
        'scene', 'ebase', 'scale', 'ms')}
    labels: List[str] = []
    raws: Optional[list] = [] if keep_raw else None
    pending: Dict[int, ExposureSetting] = {}
    in_force = None
    white = sensor.white_level_dn
    n = 0
    while True:
        fill(latency + 2 if wants_scene else 1)
        if not ahead:
            break
        frame = ahead.popleft()
        phi, meta = frame_phi(frame, sensor)
        scene_mean = float(np.mean(phi))
        if in_force is None:
            if initial is None:
                try:
                    e0 = e_base_s(phi, sensor)
                except Exception as err:  # noqa: BLE001 - SensorError for a black scene
                    raise ControllerError(f'closed loop: cannot derive the initial exposure '
                                          f'from frame 0: {err}') from err
                t0_, g0_, _ = controller.limits.split(e0)
                initial = ExposureSetting.from_linear(t0_, g0_)
            in_force = controller.reset(initial)
        if n in pending:
            in_force = pending.pop(n)
        raw = capture(phi, in_force.t_exp_s, in_force.gain, sensor, rng, noise=noise)
        if wants_scene:
            k = min(latency, len(ahead) - 1)
            nxt = ahead[k] if k >= 0 else frame
            cast(_SceneFed, controller).set_scene(frame_phi(nxt, sensor)[0])
        result = step.step(raw, in_force)
        if on_step is not None:
            on_step(n, raw, result)
        decision = result.decision
        ms = result.timings.controller_ms
        pending[n + 1 + latency] = decision.setting
        rec['t'].append(in_force.exposure_time_us)
        rec['g'].append(in_force.gain_db)
        rec['e'].append(in_force.e_s)
        rec['cmd'].append(decision.setting.e_s)
        rec['target'].append(decision.target_e_s)
        rec['clamped'].append(decision.clamped)
        rec['converged'].append(decision.converged)
        rec['fallback'].append(decision.fallback)
        rec['mean'].append(float(raw.mean()))
        rec['sat'].append(float(np.count_nonzero(raw >= white)) / raw.size)
        rec['scene'].append(scene_mean)
        rec['ebase'].append(0.5 * white / (sensor.g1_dn_per_e * scene_mean)
                            if scene_mean > 0 else math.nan)
        rec['scale'].append(_meta_scale(meta))
        rec['ms'].append(ms)
        labels.append(_meta_label(meta))
        if raws is not None:  # keep_raw
            raws.append(raw)
        n += 1

    def arr(key, dtype=np.float64):
        return np.asarray(rec[key], dtype=dtype)

    try:
        e_lo, e_hi = (float(v) for v in controller.limits.e_bounds())
    except AttributeError:  # a controller without resolved limits
        e_lo = e_hi = math.nan

    return ClosedLoopResult(
        controller=controller.name, latency_frames=int(latency), seed=int(seed),
        white_level_dn=white, black_level_dn=float(sensor.black_level_dn),
        exposure_time_us=arr('t'), gain_db=arr('g'), e_s=arr('e'), command_e_s=arr('cmd'),
        target_e_s=arr('target'), clamped=arr('clamped', bool),
        converged=arr('converged', bool), fallback=arr('fallback', bool),
        mean_raw_dn=arr('mean'), saturated_fraction=arr('sat'), scene_mean=arr('scene'),
        e_base_s=arr('ebase'), illumination_scale=arr('scale'), controller_ms=arr('ms'),
        event_labels=labels, raws=raws, e_lo_s=e_lo, e_hi_s=e_hi)
