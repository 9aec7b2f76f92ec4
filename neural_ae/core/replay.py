"""
Closed-loop replay of HDR frames through the simulated camera, written as it goes.

:func:`replay_frames` runs one controller (with its perception, through
:class:`neural_ae.core.loop.FrameStep`) over any iterable of ``(t_ns, radiance)``
frames, e.g. a bag's radiance topic; the ``replay`` command, the demo and the replay
benchmark all use it. An optional writer (an open
:class:`~neural_ae.core.bags.HDRBagWriter`) receives the raw frames during the run and
one JSON record per frame on :data:`SETTINGS_TOPIC` and :data:`DETECTIONS_TOPIC` after it.
"""
from dataclasses import dataclass, field
from typing import Iterable, List, Optional

from neural_ae.core.errors import BagFormatError
from neural_ae.core.jsonsafe import json_safe
from neural_ae.core.loop import FrameStep

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
    frames); ``t_ns``: the frames' stamps; ``detections``: per frame a list of
    :func:`~neural_ae.core.models.perception.detection_records` or ``None`` (no
    detector); ``error``: the bag error that ended the run early, or ``None``.
    """

    result: object
    metrics: dict
    t_ns: List[int]
    detections: list = field(default_factory=list)
    error: Optional[str] = None

    def __getitem__(self, key: str):
        """Dict-style access (``run['result']``), as earlier callers used it."""
        return getattr(self, key)


def _temporal_metrics(result):
    from neural_ae.core.metrics.temporal import temporal_metrics

    return temporal_metrics(result)


def replay_frames(frames: Iterable, controller, *, sensor=None, writer=None, perception=None,
                  latency_frames: Optional[int] = None, seed: int = 0, noise: bool = True,
                  max_frames: Optional[int] = None, progress=None) -> ReplayRun:
    """
    Run ``controller`` in closed loop over ``(t_ns, radiance)`` frames; write as it goes.

    ``controller``: a controller or a :class:`FrameStep`. ``perception`` (``run(raw) ->
    PerceptionResult``, optional) detects on every raw frame and feeds ``layer2`` to the
    controllers that need it (refused up front when one needs it and none is given). A
    :class:`BagFormatError` raised by ``frames`` ends the run early; it is returned in
    :attr:`ReplayRun.error`, not raised. ``progress`` is called once per frame.
    """
    from neural_ae.core.closed_loop import run_closed_loop

    step = controller if isinstance(controller, FrameStep) else FrameStep(controller, perception)
    sensor = sensor or step.controller.sensor
    stamps: List[int] = []
    detections: list = []
    state = {'error': None}
    encoding = f'bayer_{sensor.bayer_pattern.lower()}16'

    def source():
        try:
            for t_ns, radiance in frames:
                stamps.append(int(t_ns))
                yield radiance
        except BagFormatError as err:
            state['error'] = str(err)

    def on_step(k, raw, result):
        if writer is not None:
            writer.write_raw(RAW_TOPIC, stamps[k], raw, encoding)
        detections.append(None if result.perception is None else result.perception.records())
        if progress is not None:
            progress()

    result = run_closed_loop(source(), step, sensor=sensor, latency_frames=latency_frames,
                             seed=seed, noise=noise, on_step=on_step, max_frames=max_frames)
    metrics = _temporal_metrics(result) if result.n_frames else {}
    if writer is not None:
        _write_records(writer, result, stamps, detections)
    return ReplayRun(result, metrics, stamps[:result.n_frames], detections, state['error'])


def _write_records(writer, result, stamps: list, detections: list) -> None:
    for k in range(result.n_frames):
        writer.write_json(SETTINGS_TOPIC, stamps[k], json_safe({
            'frame_index': k, 'exposure_time_us': result.exposure_time_us[k],
            'gain_db': result.gain_db[k], 'e_s': result.e_s[k],
            'command_e_s': result.command_e_s[k], 'target_e_s': result.target_e_s[k],
            'clamped': result.clamped[k], 'converged': result.converged[k],
            'fallback': result.fallback[k], 'mean_raw_dn': result.mean_raw_dn[k],
            'saturated_fraction': result.saturated_fraction[k],
            'controller': result.controller}))
        dets = detections[k] if k < len(detections) else None
        writer.write_json(DETECTIONS_TOPIC, stamps[k], {
            'frame_index': k, 'detector': None if dets is None else 'detector',
            'detections': dets or []})
