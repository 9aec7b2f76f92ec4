"""
The drive protocol (beyond the paper): methods in closed loop over held-out sequences.

Held-out procedural sequences (:func:`neural_ae.core.scenes.iter_sequence`:
``tunnel_exit``, ``tunnel_in_out``, ``low_sun``, ``night_headlights``) and a controlled
``step10x`` sequence (one static held-out scene whose illumination steps x10 up and back
down, :func:`step_drive`) run in closed loop
(:func:`neural_ae.core.closed_loop.run_closed_loop`) through the one core step
(:class:`neural_ae.core.loop.FrameStep`): the method's detector runs on every frame as
captured (one backbone pass also feeds the controllers that need features), giving mAP
over all frames, and :func:`neural_ae.core.metrics.temporal.temporal_metrics` gives
convergence, overshoot, oscillation and flicker. Trained controllers run once per
smoothing (``'ema'``, Eq. 5 with ``mu = 0.9``, and ``'adaptive'``). The drive oracle
sweeps (:class:`~.oracle.DetectorOracle`) around each frame's ``e_base``.

Results are typed: :func:`run_drive` returns a :class:`DriveRun`,
:func:`run_drive_protocol` a :class:`DriveProtocolResult` of :class:`DriveResult`
objects; all three also read as mappings (``run['ap']``). :func:`run_drive_latencies`
runs the protocol once per actuation latency (one :class:`DriveProtocolResult` each, with
its ``latency_frames``); :func:`step_response` reads the exposure after the 10x step.
"""
from dataclasses import dataclass, field
import math
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, TYPE_CHECKING

from neural_ae.core import sensor as S
from neural_ae.core.controllers import ControllerOptions
from neural_ae.core.errors import EvaluationError
from neural_ae.core.evaluation.common import ItemAccess, Progress
from neural_ae.core.evaluation.config import DRIVE_SEED_OFFSET, SMOOTHINGS, TEST_SEED_START
from neural_ae.core.evaluation.methods import Method
from neural_ae.core.evaluation.oracle import DetectorOracle, image_score, OracleSpec
from neural_ae.core.metrics.detection import DetectionAccumulator
import numpy as np

if TYPE_CHECKING:
    from neural_ae.core.evaluation.assessor import FrameAssessor
    from neural_ae.core.evaluation.distributed import Shard

REPEAT_SEED_STEP = 7919
"""Noise seed of drive repeat ``r``: ``seed + REPEAT_SEED_STEP * r``."""

__all__ = ['Drive', 'DriveProtocolResult', 'DriveResult', 'DriveRun', 'Frame', 'make_drives',
           'run_drive', 'run_drive_latencies', 'run_drive_protocol', 'sequence_drive',
           'step_drive', 'step_response']


@dataclass
class Frame:
    """
    One frame of a drive: ``radiance`` (``(H, W)`` Bayer irradiance or ``(H, W, 3)``), GT.

    ``labelled`` False: the frame has no annotation and is left out of the AP.
    """

    radiance: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray
    meta: dict = field(default_factory=dict)
    labelled: bool = True


@dataclass
class Drive:
    """A named sequence of :class:`Frame` objects (held-out seed, scenario)."""

    name: str
    scenario: str
    seed: int
    frames: List[Frame]


def step_drive(seed: int, n_frames: int = 60, factor: float = 10.0, height: int = 192,
               width: int = 320, sensor=None) -> Drive:
    """
    Build a static held-out scene whose illumination steps by ``factor`` up and back down.

    Frames ``[0, n/3)`` at the scene's light, ``[n/3, 2n/3)`` at ``factor`` times it,
    the rest back at 1x; ``meta['illumination_scale']`` carries the steps, so
    :func:`~neural_ae.core.metrics.temporal.find_events` finds two events of
    ``log2(factor)`` EV each.
    """
    from neural_ae.core.scenes import generate_scene

    sensor = sensor or S.load_sensor('imx249')
    scene = generate_scene(seed, 'day', height, width)
    phi = S.mosaic(scene.radiance, sensor.bayer_pattern)
    base = float(scene.meta.get('illumination_scale', 1.0))
    third = max(1, n_frames // 3)
    frames = []
    for k in range(n_frames):
        s = factor if third <= k < 2 * third else 1.0
        event = 'step_up' if k == third else 'step_down' if k == 2 * third else 'steady'
        frames.append(Frame(phi * np.float32(s), scene.boxes, scene.labels,
                            {'illumination_scale': base * s, 'event': event,
                             'frame_index': k}))
    return Drive('step10x' if factor == 10 else f'step{factor:g}x', 'day (static)', seed,
                 frames)


def sequence_drive(seed: int, scenario: str, n_frames: int, height: int = 192,
                   width: int = 320, sensor=None) -> Drive:
    """Build a drive from a procedural sequence (:func:`~neural_ae.core.scenes.iter_sequence`)."""
    from neural_ae.core.scenes import iter_sequence

    sensor = sensor or S.load_sensor('imx249')
    frames = [Frame(S.mosaic(sc.radiance, sensor.bayer_pattern), sc.boxes, sc.labels, sc.meta)
              for sc in iter_sequence(seed, n_frames, scenario, height, width)]
    return Drive(scenario, scenario, seed, frames)


def make_drives(scenarios: Sequence, seed_start: int = TEST_SEED_START + DRIVE_SEED_OFFSET,
                height: int = 192, width: int = 320, sensor=None) -> List[Drive]:
    """
    Drives for ``(scenario, n_frames)`` pairs; drive ``j`` uses seed ``seed_start + j``.

    ``'step10x'`` is :func:`step_drive`; the other names are sequence scenarios. A name
    used twice gets a suffix (``step10x_2``), so figures and tables stay apart.
    """
    drives: List[Drive] = []
    seen: Dict[str, int] = {}
    for j, (scenario, n) in enumerate(scenarios):
        seed = seed_start + j
        if scenario.startswith('step'):
            try:
                factor = float(scenario[4:].rstrip('x'))
            except ValueError as err:
                raise EvaluationError(f'drive {scenario!r}: expected step<factor>x, e.g. '
                                      f'step10x') from err
            drives.append(step_drive(seed, int(n), factor, height, width, sensor))
        else:
            try:
                drives.append(sequence_drive(seed, scenario, int(n), height, width, sensor))
            except Exception as err:  # noqa: BLE001 - SceneError for a bad name
                raise EvaluationError(f'drive {scenario!r}: {err}') from err
        name = drives[-1].name
        seen[name] = seen.get(name, 0) + 1
        if seen[name] > 1:
            drives[-1].name = f'{name}_{seen[name]}'
    return drives


@dataclass
class DriveRun(ItemAccess):
    """
    One closed-loop run of one method over one drive (:func:`run_drive`).

    ``key``: the method key (``'hybrid_nn+adaptive'``, ``'average'``, ``'oracle'``);
    ``ap``: :meth:`~neural_ae.core.metrics.detection.DetectionAccumulator.compute` over
    the labelled frames; ``metrics``: :func:`~neural_ae.core.metrics.temporal.
    temporal_metrics`; ``result``: the :class:`~neural_ae.core.closed_loop.
    ClosedLoopResult`; ``detections``: ``{'boxes', 'scores', 'labels'}`` per frame;
    ``raws``: the raw frames (``keep_raw``) or None; ``assessed``: with an assessor,
    ``(score [0-10], per-image AP)`` per frame (AP NaN for a frame without ground truth
    or unlabelled), else None.
    """

    key: str
    ap: dict
    metrics: dict
    result: Any
    detections: List[dict]
    raws: Optional[list] = None
    map50_repeats: Optional[list] = None
    assessed: Optional[List[tuple]] = None


@dataclass
class DriveResult(ItemAccess):
    """Every run over one drive: the drive's ``name``, ``scenario``, ``seed``, ``n_frames``."""

    name: str
    scenario: str
    seed: int
    n_frames: int
    runs: Dict[str, DriveRun] = field(default_factory=dict)


@dataclass
class DriveProtocolResult(ItemAccess):
    """What :func:`run_drive_protocol` returns: one :class:`DriveResult` per drive."""

    drives: List[DriveResult]
    seconds: float
    latency_frames: int
    smoothings: List[str]
    smoothing_options: dict


def run_drive(drive: Drive, method: Optional[Method], sensor=None,
              smoothing: Optional[str] = None, options: Optional[dict] = None, seed: int = 0,
              oracle: Optional[OracleSpec] = None, keep_raw: bool = False,
              progress: Optional[Callable] = None,
              assessor: Optional['FrameAssessor'] = None) -> DriveRun:
    """
    One closed-loop run of ``method`` (or of the oracle when ``method`` is None).

    The controller and the method's perception run as one
    :class:`~neural_ae.core.loop.FrameStep` (the detector on every frame); its
    detections feed the AP over the labelled frames. ``progress()`` is called once per
    frame. ``assessor``: every frame as captured is also scored (``DriveRun.assessed``).
    Returns a :class:`DriveRun`.
    """
    from neural_ae.core.closed_loop import run_closed_loop
    from neural_ae.core.loop import FrameStep
    from neural_ae.core.metrics.temporal import temporal_metrics

    sensor = sensor or S.load_sensor('imx249')
    frames = drive.frames
    opts = dict(options or {})
    if method is None:
        if oracle is None:
            raise EvaluationError('run_drive: give a method or an oracle')
        truth = {id(fr.radiance): (fr.boxes, fr.labels) for fr in frames}
        ctrl = DetectorOracle(oracle.perception, truth, oracle.factors(), sensor,
                              ControllerOptions(**opts))
        perception, key = oracle.perception, 'oracle'
    else:
        ctrl = method.controller(sensor, smoothing=smoothing, **opts)
        perception = method.perception
        key = method.name + (f'+{smoothing}' if smoothing and method.spec.trained else '')
    if any(fr.radiance.ndim != 2 for fr in frames):
        raise EvaluationError(f'drive {drive.name}: frames must hold Bayer irradiance (H, W)')
    acc = DetectionAccumulator()
    detections = []
    assessed: Optional[List[tuple]] = [] if assessor is not None else None

    def collect(k: int, raw: np.ndarray, step) -> None:
        dets = step.perception.arrays()
        detections.append(dets)
        fr = frames[k]
        if fr.labelled:
            acc.add(fr.boxes, fr.labels, dets['boxes'], dets['scores'], dets['labels'],
                    width=raw.shape[1], height=raw.shape[0])
        if assessed is not None and assessor is not None:
            ap = math.nan
            if fr.labelled and len(np.asarray(fr.labels).reshape(-1)):
                ap = image_score(fr.boxes, fr.labels, dets, raw.shape[1], raw.shape[0])[0]
            assessed.append((assessor.score(raw), ap))
        if progress is not None:
            progress()

    result = run_closed_loop(frames, FrameStep(ctrl, perception), sensor=sensor, seed=seed,
                             keep_raw=keep_raw, on_step=collect)
    return DriveRun(key, acc.compute(), temporal_metrics(result), result, detections,
                    result.raws, assessed=assessed)


def run_drive_protocol(drives: Sequence[Drive], methods: Sequence[Method], sensor=None,
                       smoothings: Sequence[str] = SMOOTHINGS,
                       smoothing_options: Optional[dict] = None,
                       oracle: Optional[OracleSpec] = None, latency_frames: int = 0,
                       seed: int = 0, keep_raw_for: Sequence[str] = ('tunnel_exit',),
                       progress: bool = False, repeats: int = 1,
                       shard: Optional['Shard'] = None,
                       assessor: Optional['FrameAssessor'] = None) -> DriveProtocolResult:
    """
    Run every method in closed loop (trained ones once per smoothing) over every drive.

    ``shard`` (:class:`~neural_ae.core.evaluation.distributed.Shard`): this process runs
    every ``world``-th (drive, method) job and the ranks exchange their runs; every rank
    returns what a single process returns.

    ``repeats`` > 1 reruns every job with new sensor noise (seed ``seed + REPEAT_SEED_STEP
    * r``) and records each repeat's mAP in ``DriveRun.map50_repeats`` (its run-to-run
    spread); the temporal metrics and detections are those of the first run, and so are
    the assessor's scores (``assessor``, :attr:`DriveRun.assessed`).

    ``smoothing_options``: extra :class:`ControllerOptions` per smoothing name (e.g.
    ``{'adaptive': {'mu': 0.9, 'adaptive_scale_ev': 1.0}}``). Raw frames are kept for the
    drives named in ``keep_raw_for`` (the frame-grid figure). Returns a
    :class:`DriveProtocolResult` (runs by key, see :func:`run_drive`).
    """
    sensor = sensor or S.load_sensor('imx249')
    smoothing_options = smoothing_options or {}
    jobs: List[Tuple[Optional[Method], Optional[str]]] = []
    for method in methods:
        if method.spec.trained:
            for smoothing in smoothings:
                jobs.append((method, smoothing))
        else:
            jobs.append((method, None))
    if oracle is not None:
        jobs.append((None, None))
    if not (isinstance(repeats, int) and repeats >= 1):
        raise EvaluationError(f'drive protocol: repeats must be an integer >= 1, got '
                              f'{repeats!r}')
    tasks = [(di, ji) for di in range(len(drives)) for ji in range(len(jobs))]
    mine = [tasks[t] for t in (shard.indices(len(tasks)) if shard is not None
                               else range(len(tasks)))]
    total = sum(len(drives[di].frames) for di, _ in mine) * repeats
    bar = Progress(progress, total, 'drive protocol')
    t0 = time.perf_counter()
    done: Dict[int, DriveRun] = {}
    for di, ji in mine:
        d = drives[di]
        m, sm = jobs[ji]
        opts = {'latency_frames': latency_frames}
        if sm is not None:
            opts.update(smoothing_options.get(sm, {}))
        run = run_drive(d, m, sensor, sm, opts, seed=seed, oracle=oracle,
                        keep_raw=d.name in keep_raw_for, progress=bar.update,
                        assessor=assessor)
        run.map50_repeats = [run.ap['map50']]
        for r in range(1, repeats):
            again = run_drive(d, m, sensor, sm, opts, seed=seed + REPEAT_SEED_STEP * r,
                              oracle=oracle, progress=bar.update)
            run.map50_repeats.append(again.ap['map50'])
        done[di * len(jobs) + ji] = run
    bar.close()
    if shard is not None:
        done = shard.merge(done)
    out = []
    for di, d in enumerate(drives):
        runs = {}
        for ji in range(len(jobs)):
            run = done[di * len(jobs) + ji]
            runs[run.key] = run
        out.append(DriveResult(d.name, d.scenario, d.seed, len(d.frames), runs))
    return DriveProtocolResult(out, time.perf_counter() - t0, latency_frames,
                               list(smoothings), smoothing_options)


def run_drive_latencies(drives: Sequence[Drive], methods: Sequence[Method], sensor=None,
                        smoothings: Sequence[str] = SMOOTHINGS,
                        smoothing_options: Optional[dict] = None,
                        oracle: Optional[OracleSpec] = None,
                        latencies: Sequence[int] = (0,), seed: int = 0,
                        keep_raw_for: Sequence[str] = ('tunnel_exit',),
                        progress: bool = False, repeats: int = 1,
                        shard: Optional['Shard'] = None,
                        assessor: Optional['FrameAssessor'] = None
                        ) -> List[DriveProtocolResult]:
    """
    Run :func:`run_drive_protocol` once per actuation latency (in the order given).

    ``latencies``: ints in ``[0, 30]`` frames, no repeats (an int means one latency). Raw
    frames are kept for ``keep_raw_for`` at the first latency only (the frame grid).
    Returns one :class:`DriveProtocolResult` per latency; its ``latency_frames`` says which.
    """
    from neural_ae.core.evaluation.config import check_latencies

    lats = check_latencies(latencies, 'run_drive_latencies')
    out = []
    for j, lat in enumerate(lats):
        out.append(run_drive_protocol(drives, methods, sensor, smoothings, smoothing_options,
                                      oracle, lat, seed=seed,
                                      keep_raw_for=keep_raw_for if j == 0 else (),
                                      progress=progress, repeats=repeats, shard=shard,
                                      assessor=assessor))
    return out


def step_response(run: DriveRun, factor: float = 10.0) -> Optional[np.ndarray]:
    """
    Exposure in force after the first upward step of a step drive, in EV vs before it.

    Element ``j`` is ``log2(e[a + j] / e[a - 1])`` for frames ``a .. `` up to the next
    illumination event (``a``: the first frame at ``factor`` times the light, found from
    the run's ``illumination_scale``); a full correction ends at ``-log2(factor)``. None
    when the run has no upward step.
    """
    r = run.result
    scale = np.asarray(r.illumination_scale, np.float64)
    e = np.asarray(r.e_s, np.float64)
    if scale.size < 2 or not np.all(np.isfinite(scale)) or np.any(scale <= 0):
        return None
    d = np.diff(np.log2(scale))
    ups = np.nonzero(d > 0.5 * np.log2(factor))[0]
    if not ups.size:
        return None
    a = int(ups[0]) + 1
    later = np.nonzero(np.abs(d[a:]) > 0.25)[0]
    stop = a + int(later[0]) + 1 if later.size else len(e)
    before = e[a - 1]
    if not (np.isfinite(before) and before > 0):
        return None
    return np.log2(np.maximum(e[a:stop], 1e-30) / before)
