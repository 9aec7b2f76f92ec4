"""
Closed-loop replay of HDR frames through the simulated camera, written as it goes.

:func:`replay_frames` runs one controller (with its perception, through
:class:`neural_ae.core.loop.FrameStep`) over any iterable of ``(t_ns, radiance)``
frames, e.g. a bag's radiance topic; the ``replay`` command, the demo and the replay
benchmark all use it. An optional writer (an open
:class:`~neural_ae.core.bags.HDRBagWriter`) receives, as each frame is made, its raw
frame on :data:`RAW_TOPIC` and one JSON record each on :data:`SETTINGS_TOPIC` and
:data:`DETECTIONS_TOPIC`. Nothing per frame is kept beyond the floats of the
:class:`~neural_ae.core.closed_loop.ClosedLoopResult` and the stamps (an int64 buffer),
so memory stays flat over an hour-long bag; detections go to the writer only. With
``labels`` (a :class:`~neural_ae.core.bags.labels.LabelIndex`, matched by frame index or
nearest stamp) and a detector, the AP@0.5 over the labelled frames is computed (the
accumulator keeps the detections of labelled frames only).
"""
from array import array
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Optional

from neural_ae.core.errors import BagFormatError
from neural_ae.core.jsonsafe import json_safe
from neural_ae.core.loop import FrameStep, StepResult
import numpy as np

__all__ = ['DETECTIONS_TOPIC', 'RAW_TOPIC', 'ReplayRun', 'replay_frames', 'SETTINGS_TOPIC']

RAW_TOPIC = '/camera/image_raw'
"""Raw frames of the output bag (``bayer_*16``)."""
SETTINGS_TOPIC = '/replay/settings'
"""Per-frame JSON: setting in force, command, target, flags, raw statistics."""
DETECTIONS_TOPIC = '/replay/detections'
"""Per-frame JSON: detector boxes (``{"detector": null, "detections": []}`` without one)."""


@dataclass
class ReplayRun:
    """
    Outcome of :func:`replay_frames`.

    ``result``: the :class:`~neural_ae.core.closed_loop.ClosedLoopResult`; ``metrics``:
    :func:`~neural_ae.core.metrics.temporal.temporal_metrics` of it (empty for no
    frames); ``t_ns``: the frames' stamps (a list, built at the end from a compact int64
    buffer); ``detection_frames``: frames the
    detector ran on (their boxes went to the writer, none are kept here); ``error``: the
    bag error that ended the run early, or ``None``; ``ap``: with labels and a detector,
    :meth:`~neural_ae.core.metrics.detection.DetectionAccumulator.compute` over the
    labelled frames plus ``labelled_frames`` (frames matched to a label image) and
    ``label_images``, else ``None``.
    """

    result: object
    metrics: dict
    t_ns: List[int]
    detection_frames: int = 0
    error: Optional[str] = None
    ap: Optional[dict] = None

    def __getitem__(self, key: str):
        """Dict-style access (``run['result']``), as earlier callers used it."""
        return getattr(self, key)


def _temporal_metrics(result):
    from neural_ae.core.metrics.temporal import temporal_metrics

    return temporal_metrics(result)


class _RecordingStep(FrameStep):
    """A :class:`FrameStep` that remembers the setting in force for the frame it decides on."""

    used = None

    def step(self, raw: np.ndarray, used=None) -> StepResult:
        """Decide as :meth:`FrameStep.step`; keep ``used`` for the per-frame record."""
        self.used = used
        return super().step(raw, used)


def replay_frames(frames: Iterable, controller, *, sensor=None, writer=None, perception=None,
                  latency_frames: Optional[int] = None, seed: int = 0, noise: bool = True,
                  max_frames: Optional[int] = None, progress=None, labels=None,
                  label_tolerance_ns: int = 0) -> ReplayRun:
    """
    Run ``controller`` in closed loop over ``(t_ns, radiance)`` frames; write as it goes.

    ``controller``: a controller or a :class:`FrameStep`. ``perception`` (``run(raw) ->
    PerceptionResult``, optional) detects on every raw frame and feeds ``layer2`` to the
    controllers that need it (refused up front when one needs it and none is given). A
    :class:`BagFormatError` raised by ``frames`` ends the run early; it is returned in
    :attr:`ReplayRun.error`, not raised. ``progress`` is called once per frame.
    ``labels``: a :class:`~neural_ae.core.bags.labels.LabelIndex` of the frames (by
    position in ``frames`` or nearest stamp within ``label_tolerance_ns``) for
    :attr:`ReplayRun.ap`.
    """
    from neural_ae.core.closed_loop import run_closed_loop
    from neural_ae.core.metrics.detection import DetectionAccumulator

    if isinstance(controller, FrameStep):
        step = _RecordingStep(controller.controller, controller.perception,
                              detect=controller.detect)
    else:
        step = _RecordingStep(controller, perception)
    sensor = sensor or step.controller.sensor
    stamps = array('q')
    state: Dict[str, Any] = {'error': None, 'detected': 0, 'labelled': 0}
    acc = DetectionAccumulator() if labels is not None else None
    encoding = f'bayer_{sensor.bayer_pattern.lower()}16'
    white = sensor.white_level_dn
    name = step.controller.name

    def source():
        try:
            for t_ns, radiance in frames:
                stamps.append(int(t_ns))
                yield radiance
        except BagFormatError as err:
            state['error'] = str(err)

    def on_step(k, raw, result):
        dets = None if result.perception is None else result.perception.records()
        if dets is not None:
            state['detected'] += 1
            found = None if acc is None else labels.lookup(k, stamps[k], label_tolerance_ns)
            if found is not None:
                arrays = result.perception.arrays()
                acc.add(found.boxes, found.labels, arrays['boxes'], arrays['scores'],
                        arrays['labels'], width=raw.shape[1], height=raw.shape[0])
                state['labelled'] += 1
        if writer is not None:
            _write_frame(writer, k, stamps[k], raw, encoding, white, step.used, result, dets,
                         name)
        if progress is not None:
            progress()

    result = run_closed_loop(source(), step, sensor=sensor, latency_frames=latency_frames,
                             seed=seed, noise=noise, on_step=on_step, max_frames=max_frames)
    metrics = _temporal_metrics(result) if result.n_frames else {}
    ap = None
    if acc is not None and state['detected']:
        ap = dict(acc.compute(), labelled_frames=state['labelled'], label_images=len(labels))
    return ReplayRun(result, metrics, stamps[:result.n_frames].tolist(), state['detected'],
                     state['error'], ap)


def _write_frame(writer, k: int, t_ns: int, raw: np.ndarray, encoding: str, white: int,
                 used, result: StepResult, dets, controller: str) -> None:
    """Write frame ``k``'s raw image, settings record and detections record."""
    writer.write_raw(RAW_TOPIC, t_ns, raw, encoding)
    decision = result.decision
    writer.write_json(SETTINGS_TOPIC, t_ns, json_safe({
        'frame_index': k, 'exposure_time_us': used.exposure_time_us, 'gain_db': used.gain_db,
        'e_s': used.e_s, 'command_e_s': decision.setting.e_s,
        'target_e_s': decision.target_e_s, 'clamped': bool(decision.clamped),
        'converged': bool(decision.converged), 'fallback': bool(decision.fallback),
        'mean_raw_dn': float(raw.mean()),
        'saturated_fraction': float(np.count_nonzero(raw >= white)) / raw.size,
        'controller': controller}))
    writer.write_json(DETECTIONS_TOPIC, t_ns, {
        'frame_index': k, 'detector': None if dets is None else 'detector',
        'detections': dets or []})
