"""
The auto-exposure process of the latency bench: the instrumented node and its records.

The node's code is unchanged; :class:`BenchAutoExposureNode` (a subclass) records the
entry time of the image callback per stamp ("delivered"), counts the mailbox
(:class:`CountingMailbox`), knows which frame the worker processes, and wraps the
actuator's ``_submit`` / ``_send_locked`` to record when the request carrying a decision
has been handed to ``call_async`` ("sent"). Per processed frame the node's
:class:`~neural_ae.core.loop.FrameStep` is read through :class:`RecordingFrameStep`:
``StepResult.timings.perception_ms`` (the detector: ISP + network + postprocessing) and
the ``layer2`` shape; the ISP inside it is timed by wrapping ``Perception.isp``.
:class:`BareSubscriber` is the plain-subscriber reference. :func:`ae_child` runs either,
spun by a SingleThreadedExecutor as ``auto_exposure_node.main`` does.
"""
import math
from pathlib import Path
import time

from neural_ae.benchmarks._common import radiance
from neural_ae.benchmarks.ros_latency.protocol import AE_NODE
from neural_ae.core.controllers import ExposureSetting
from neural_ae.core.loop import FrameStep, StepResult
from neural_ae.core.sensor import capture
from neural_ae.nodes.auto_exposure_node import (AutoExposureNode, LatestFrameMailbox,
                                                shutdown_node)
from neural_ae.ros.conversions import stamp_to_ns
from neural_ae.ros.qos import image_qos
import numpy as np
from rclpy.executors import SingleThreadedExecutor
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.node import Node
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image


class CountingMailbox(LatestFrameMailbox):
    """
    ``LatestFrameMailbox`` that counts what goes in and out.

    ``occupancy`` is ``puts - taken - dropped - cleared``: the frames the mailbox holds
    according to its counters (a queue that grew would show it), recorded after every
    put and take; ``busy()`` (set by the owner) adds the frame in processing.
    """

    def __init__(self, busy=None):
        super().__init__()
        self.puts = 0
        self.taken = 0
        self.cleared = 0
        self.max_occupancy = 0
        self.max_in_node = 0
        self._busy = busy or (lambda: False)

    def occupancy(self) -> int:
        """Frames held now according to the counters."""
        with self._cond:
            return self.puts - self.taken - self.dropped - self.cleared

    def _record(self) -> None:
        occ = self.puts - self.taken - self.dropped - self.cleared
        self.max_occupancy = max(self.max_occupancy, occ)
        self.max_in_node = max(self.max_in_node, occ + int(bool(self._busy())))

    def put(self, item) -> None:
        """Leave ``item`` (see the base class) and count it."""
        with self._cond:
            super().put(item)
            self.puts += 1
            self._record()

    def take(self, timeout: float):
        """Take the waiting item (see the base class) and count it."""
        with self._cond:
            item = super().take(timeout)
            if item is not None:
                self.taken += 1
                self._record()
            return item

    def clear(self) -> None:
        """Drop what waits (see the base class), counted as cleared."""
        with self._cond:
            if self._item is not None:
                self.cleared += 1
            super().clear()

    def counters(self) -> dict:
        """Return a consistent snapshot of the counters."""
        with self._cond:
            return {'puts': self.puts, 'taken': self.taken, 'dropped': self.dropped,
                    'cleared': self.cleared, 'left': self.occupancy(),
                    'max_occupancy': self.max_occupancy, 'max_in_node': self.max_in_node}


class RecordingFrameStep(FrameStep):
    """
    The node's step, recorded: each :class:`~neural_ae.core.loop.StepResult` goes to a callback.

    A twin of ``step`` (same controller, perception and ``detect``) that hands every
    result to ``on_result`` before returning it.
    """

    def __init__(self, step: FrameStep, on_result):
        super().__init__(step.controller, step.perception, detect=step.detect)
        self._on_result = on_result

    def step(self, raw: np.ndarray, used=None) -> StepResult:
        """:meth:`FrameStep.step`, recorded."""
        result = super().step(raw, used)
        self._on_result(result)
        return result


class BenchAutoExposureNode(AutoExposureNode):
    """The AE node with timing records; see the module docstring."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.busy = False
        self.bench_current = None
        self.bench_received = []
        self.bench_processed = []
        self.bench_sends = []
        self.bench_payloads = {}
        self.bench_perception_ms = []
        self.bench_isp_ms = []
        self.bench_layer2_shape = []
        self._mailbox = CountingMailbox(lambda: self.busy)

    def _on_image(self, msg) -> None:
        self.bench_received.append((stamp_to_ns(msg.header.stamp), time.time_ns()))
        super()._on_image(msg)

    def _process(self, msg, received) -> None:
        stamp = stamp_to_ns(msg.header.stamp)
        self.busy = True
        self.bench_current = stamp
        t_start = time.time_ns()
        before = self.frames_processed
        try:
            super()._process(msg, received)
        finally:
            self.bench_processed.append((stamp, t_start, time.time_ns(),
                                         self.frames_processed > before))
            self.bench_current = None
            self.busy = False

    def _record_step(self, result: StepResult) -> None:
        if result.perception is not None:
            self.bench_perception_ms.append(result.timings.perception_ms)
            self.bench_layer2_shape = list(result.perception.layer2.shape)

    def instrument(self) -> None:
        """Record the node's steps, time the ISP, wrap the actuator (frame of each send)."""
        with self._lock:
            if self._step is not None:
                self._step = RecordingFrameStep(self._step, self._record_step)
        perception = self._perception
        if perception is not None:
            isp = perception.isp

            def isp_timed(x):
                t0 = time.perf_counter()
                y = isp(x)
                self.bench_isp_ms.append((time.perf_counter() - t0) * 1e3)
                return y

            perception.isp = isp_timed
        act = self._actuator
        submit, send = act._submit, act._send_locked

        def submit_recorded(kind, params, payload, queue_if_unavailable=False):
            if kind == 'setting':
                self.bench_payloads[id(payload)] = (payload, self.bench_current)
            return submit(kind, params, payload, queue_if_unavailable)

        def send_recorded(kind, params, payload):
            entry = self.bench_payloads.pop(id(payload), (None, None))
            send(kind, params, payload)
            value = params[0].value.double_value if params else math.nan
            self.bench_sends.append((entry[1], time.time_ns(), kind, value))

        act._submit = submit_recorded
        act._send_locked = send_recorded


class BareSubscriber(Node):
    """A plain subscriber of ``camera/image_raw``: the bare delivery reference."""

    def __init__(self, **kwargs):
        super().__init__('bare_subscriber', **kwargs)
        self.bench_received = []
        self.create_subscription(Image, 'camera/image_raw', self._on_image, image_qos(1))

    def _on_image(self, msg) -> None:
        self.bench_received.append((stamp_to_ns(msg.header.stamp), time.time_ns()))


def warm_up(node: BenchAutoExposureNode, height: int, width: int) -> float:
    """Step a twin of the node's controller (and its detector) once at the stream's size [ms]."""
    raw = capture(radiance(height, width), 0.01, 1.0, node.sensor, np.random.default_rng(1))
    t0 = time.perf_counter()
    twin = node._build_controller(node.values)
    FrameStep(twin, node._perception).step(raw, ExposureSetting(10000.0, 0.0))
    return (time.perf_counter() - t0) * 1e3


def ae_child(cfg: dict, context) -> dict:
    """Run the AE node (or the bare subscriber) until the stop file appears; return records."""
    import torch

    executor = SingleThreadedExecutor(context=context)
    doc = {'torch_threads': torch.get_num_threads(), 'warmup_ms': math.nan}
    node = None
    try:
        if cfg['controller'] == 'none':
            node = BareSubscriber(namespace=cfg['namespace'], context=context)
            executor.add_node(node)
        else:
            overrides = [Parameter(k, value=v) for k, v in cfg['parameters'].items()]
            node = BenchAutoExposureNode(AE_NODE, namespace=cfg['namespace'],
                                         context=context, parameter_overrides=overrides)
            executor.add_node(node)
            if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
                raise RuntimeError(f'configure failed: {node._last_error}')
            if not node._actuator._set_client.wait_for_service(timeout_sec=60.0):
                raise RuntimeError(f'driver {node._actuator.service_name} not found')
            doc['warmup_ms'] = warm_up(node, cfg['height'], cfg['width'])
            node.instrument()
            node.trigger_activate()
        Path(cfg['ready_file']).write_text('ready')
        stop_file = Path(cfg['stop_file'])
        while not stop_file.exists():
            executor.spin_once(timeout_sec=0.02)
        drained = True
        if isinstance(node, BenchAutoExposureNode):
            end = time.monotonic() + float(cfg['drain_timeout_s'])
            while node._mailbox.occupancy() or node.busy:
                if time.monotonic() > end:
                    drained = False
                    break
                executor.spin_once(timeout_sec=0.02)
            end = time.monotonic() + 0.5  # answers of the last requests, queued sends
            while time.monotonic() < end:
                executor.spin_once(timeout_sec=0.02)
            doc.update(
                processed=node.bench_processed, sends=node.bench_sends,
                mailbox=node._mailbox.counters(),
                node={'frames_processed': node.frames_processed,
                      'bad_frames': node.bad_frames, 'errors': node.errors,
                      'last_error': node._last_error},
                actuator=node._actuator.status(),
                perception_ms=node.bench_perception_ms, isp_ms=node.bench_isp_ms,
                layer2_shape=node.bench_layer2_shape,
                decisions_not_sent=sum(1 for _, s in node.bench_payloads.values()
                                       if s is not None))
        doc.update(received=node.bench_received, drained=drained)
    finally:
        if isinstance(node, BenchAutoExposureNode):
            shutdown_node(node, executor)
        elif node is not None:
            node.destroy_node()
        executor.shutdown()
    return doc
