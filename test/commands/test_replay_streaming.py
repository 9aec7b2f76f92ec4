"""
Replay streams what it records and keeps no per-frame detections (issue 10, item 5).

The detections of frame k reach the output bag before frame k + 1 is read from the input;
the :class:`~neural_ae.core.replay.ReplayRun` holds no per-frame records; and the Python
heap (tracemalloc, not timing; rosbags' bounded 1 MiB chunk buffer left out) grows by
less than 3 KB per frame with the shipped detector running on every frame (keeping its
detections costs about 20 KB per frame).
"""
import dataclasses
import tracemalloc

from neural_ae.core.bags import HDRBagWriter, open_hdr_bag
from neural_ae.core.controllers import build_controller
from neural_ae.core.models.perception import load_perception
from neural_ae.core.paths import models_dir
from neural_ae.core.replay import DETECTIONS_TOPIC, RAW_TOPIC, replay_frames, ReplayRun
from neural_ae.core.scenes import generate_scene
from neural_ae.core.sensor import load_sensor
import numpy as np
import pytest

SENSOR = load_sensor('imx249')
H, W = 64, 96


@pytest.fixture(scope='module')
def perception():
    return load_perception(models_dir() / 'hybrid_demo.pt', SENSOR, 'cpu')


class _ObservedWriter(HDRBagWriter):
    """The real writer, noting how many input frames were read when each record lands."""

    def __init__(self, path, pulled):
        super().__init__(path, topic=RAW_TOPIC)
        self.pulled = pulled
        self.seen = []

    def write_json(self, topic, t_ns, obj):
        if topic == DETECTIONS_TOPIC:
            self.seen.append((obj['frame_index'], self.pulled[0], len(obj['detections'])))
        super().write_json(topic, t_ns, obj)


def _frames(n, pulled):
    base = generate_scene(3, 'day', H, W).radiance
    for k in range(n):
        pulled[0] += 1
        yield k * 33_333_333, base * np.float32(1.0 + 0.5 * np.sin(k / 7))


def test_detections_are_written_as_each_frame_is_made(tmp_path, perception):
    pulled = [0]
    ctrl = build_controller('hybrid_nn', None, SENSOR)
    with _ObservedWriter(tmp_path / 'out', pulled) as writer:
        run = replay_frames(_frames(12, pulled), ctrl, sensor=SENSOR, writer=writer,
                            perception=perception)
    assert run.result.n_frames == 12 and run.detection_frames == 12
    # frame k's detections were written while frame k was the last one read
    assert [(k, p) for k, p, _ in writer.seen] == [(k, k + 1) for k in range(12)]
    assert sum(n for _, _, n in writer.seen) > 0          # the detector found something
    counts = open_hdr_bag(tmp_path / 'out', topic=RAW_TOPIC).message_counts()
    assert counts[DETECTIONS_TOPIC] == counts[RAW_TOPIC] == 12
    # the run keeps no per-frame records: only the result, metrics, stamps, counters
    names = {f.name for f in dataclasses.fields(ReplayRun)}
    assert names == {'result', 'metrics', 't_ns', 'detection_frames', 'error', 'ap'}
    assert run.ap is None and run.result.raws is None


def test_python_heap_stays_flat_with_a_detector(tmp_path, perception):
    pulled = [0]
    marks = {}

    def progress():
        k = pulled[0]
        if k == 10:      # trace from here; compare frames 30 and 130 (transients in both)
            tracemalloc.start()
        elif k in (30, 130):
            marks[k] = tracemalloc.take_snapshot()
        if k == 130:
            tracemalloc.stop()

    ctrl = build_controller('histogram_nn', None, SENSOR)
    try:
        with HDRBagWriter(tmp_path / 'out', topic=RAW_TOPIC) as writer:
            run = replay_frames(_frames(130, pulled), ctrl, sensor=SENSOR, writer=writer,
                                perception=perception, progress=progress)
    finally:
        if tracemalloc.is_tracing():
            tracemalloc.stop()
    assert run.detection_frames == 130
    # rosbags buffers up to one MCAP chunk (1 MiB) before writing it: bounded, left out
    keep = [tracemalloc.Filter(False, '*/rosbags/*')]
    grown = sum(st.size_diff for st in marks[130].filter_traces(keep).compare_to(
        marks[30].filter_traces(keep), 'filename'))
    per_frame = grown / 100
    print(f'python heap growth {per_frame:.0f} bytes per frame')
    assert per_frame < 3000, f'{per_frame:.0f} bytes per frame'
