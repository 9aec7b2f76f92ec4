"""
ROS 2 latency of the auto-exposure node (issue 6) and replay speed against real time.

**Latency** (:func:`measure_latency`): frame-in to SetParameters-sent latency of
:class:`~neural_ae.nodes.auto_exposure_node.AutoExposureNode` under a timer-driven stream
(60 Hz) of ``bayer_rggb16`` frames holding 12-bit data (1936x1216 in the suite).

- Processes: three on one host, as in a deployment. A camera process (one rclpy node
  ``bench_camera``, MultiThreadedExecutor with two threads, the 60 Hz publishing timer in
  its own callback group so the parameter services never wait for it) publishes
  ``camera/image_raw`` (sensor-data QoS, depth 1; two pre-rendered frames, a dark and a
  bright one, alternate) and declares ``exposure_time`` [us] / ``gain`` [dB] like a
  generic driver, so the node's ``generic`` driver preset commands it. The AE process
  runs the node spun by a SingleThreadedExecutor as ``auto_exposure_node.main`` does,
  plus the node's own worker thread. This process only orchestrates (files in a
  temporary folder) and computes the figures; it starts no rclpy context. Loopback
  discovery (``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST``), a private ``ROS_DOMAIN_ID``
  (150 + pid % 50) and a per-run namespace. Both children are ``python -m
  neural_ae.benchmarks.ros_latency CONFIG.json``.
- Transport: ``large_shm`` (default) gives both processes a Fast DDS profile whose
  shared-memory segment holds 16 frames. With the rmw defaults (512 KiB segment),
  best-effort 4.7 MB images are mostly lost between processes even to a bare subscriber
  (see ros2/rmw_fastrtps#739); the suite measures that too (``bare_delivery_rmw_default``).
- Clock: wall clock (``time.time_ns``, the same in every process). The camera stamps
  each header right before ``publish()``: "frame in" is the moment the driver hands the
  frame to rclpy, so serialization and transport are inside the figure.
- Instrumentation (in the AE process; the node's code is unchanged, a subclass wraps
  it): entry time of the image callback per stamp ("delivered"); the mailbox is a
  counting subclass of ``LatestFrameMailbox``; the worker's ``_process`` is wrapped to
  know which frame a decision belongs to; the actuator's ``_submit`` / ``_send_locked``
  are wrapped to record when the request carrying that decision has been handed to
  ``call_async`` ("sent"). A decision replaced while an earlier request is in flight
  (the actuator coalesces) is never sent and has no latency (``decisions_not_sent``).
  The camera records when its on-set-parameters callback sees ``exposure_time``; one
  client's requests arrive in send order, so the k-th received is the k-th sent
  (checked by the exposure value: ``driver_order_mismatches``).
- Figures: ``frame_to_sent_ms`` (median, p99) = publish + transport + wait in the mailbox
  + conversion + detector + controller + actuator, over the frames whose decision was
  sent; ``frame_to_driver_ms`` adds the service transport and the camera's executor;
  ``breakdown_median_ms`` splits the first into delivery, mailbox wait and processing;
  ``worker_ms_per_frame`` is the whole ``_process`` (also the debug image, published
  after the command), which sets the node's throughput. Before activation the AE
  process runs the detector and a twin controller once on a frame of the stream's size,
  so torch's first-call costs are not in the stream. Node parameters are the defaults
  (debug image on) except ``driver_node`` and ``exposure_feedback_topic`` (off); the
  ``*_no_debug_image`` cases switch the debug image off. With a detector, ``detector``
  times ``Perception.run`` and the ISP inside it per processed frame and gives the
  ``layer2`` shape (the detector rescales its input; the ISP runs at full size).
- Queue (``stream``): frames published, delivered to the node's callback (the rest were
  lost before the node: best effort, depth 1), taken by the worker, processed, dropped
  by the latest-frame-wins mailbox; the largest number of frames the mailbox held
  (``puts - takes - dropped - cleared``, counted after every put and take, so a growing
  queue would show) and in the node (waiting + in processing); ``accounted``: delivered
  == taken + dropped + cleared + left and taken == processed + bad + errors. ``trend``:
  median latency of the first and last quarter of the sent decisions and a least-squares
  slope [ms per s of run].
- References measured in the same run: ``bare_delivery`` (a plain subscriber instead of
  the node: publish -> subscription callback of the same frames, its own stream), the
  Average AE, and each case's own ``delivery_ms`` (same stream, to the node); ``ratios``
  divide each case's median frame-to-sent latency by the three.

**Replay** (:func:`measure_replay`): frames/s of
:func:`neural_ae.commands.replay.replay_frames` (closed loop: sensor simulation,
controller, detector when given) over synthetic radiance frames, divided by the 30 fps of
a recording: > 1 is faster than real time.

Speed figures are reported as measured and as ratios against references measured in the
same run; nothing here asserts a time. The machine may be shared: read the ratios.
"""
import json
import math
import os
from pathlib import Path
import subprocess
import sys
import tempfile
import threading
import time
from typing import Optional

from neural_ae.core.sensor import capture, load_sensor
from neural_ae.nodes.auto_exposure_node import (AutoExposureNode, LatestFrameMailbox,
                                                shutdown_node)
from neural_ae.ros.conversions import array_to_image, ns_to_stamp, stamp_to_ns
from neural_ae.ros.qos import image_qos
import numpy as np
from rcl_interfaces.msg import SetParametersResult
import rclpy
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.executors import MultiThreadedExecutor, SingleThreadedExecutor
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.node import Node
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image

ROOT = Path(__file__).resolve().parents[2]
RECORDING_FPS = 30.0
DRIVER = 'bench_camera'
AE_NODE = 'auto_exposure'
_RUNS = {'n': 0}


# --------------------------------------------------------------------------- statistics


def _stats(values) -> dict:
    """Median, p99, mean and count of ``values`` [ms] (NaN when empty)."""
    v = np.asarray(list(values), dtype=np.float64)
    if v.size == 0:
        return {'n': 0, 'median_ms': math.nan, 'p99_ms': math.nan, 'mean_ms': math.nan}
    return {'n': int(v.size), 'median_ms': round(float(np.median(v)), 3),
            'p99_ms': round(float(np.percentile(v, 99)), 3),
            'mean_ms': round(float(v.mean()), 3)}


def _ratio(a: float, b: float) -> float:
    return round(a / b, 3) if math.isfinite(a) and math.isfinite(b) and b > 0 else math.nan


def _trend(t_s, lat_ms) -> dict:
    """First- vs last-quarter median latency and the slope [ms per s] over the run."""
    t = np.asarray(t_s, dtype=np.float64)
    lat = np.asarray(lat_ms, dtype=np.float64)
    n = lat.size
    if n == 0:
        return {'n': 0, 'first_quarter_median_ms': math.nan,
                'last_quarter_median_ms': math.nan, 'last_over_first': math.nan,
                'slope_ms_per_s': math.nan}
    q = max(1, n // 4)
    first, last = float(np.median(lat[:q])), float(np.median(lat[-q:]))
    slope = math.nan
    if n >= 3 and np.ptp(t) > 0:
        slope = float(np.polyfit(t - t[0], lat, 1)[0])
    return {'n': int(n), 'quarter_size': int(q),
            'first_quarter_median_ms': round(first, 3),
            'last_quarter_median_ms': round(last, 3),
            'last_over_first': _ratio(last, first),
            'slope_ms_per_s': round(slope, 3) if math.isfinite(slope) else math.nan}


# --------------------------------------------------------------------------- frames


def _radiance(height: int, width: int, seed: int = 0) -> np.ndarray:
    """Bayer-plane irradiance [e-/s]: a smooth pattern times log-normal blocks."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    blocks = rng.lognormal(0.0, 0.8, (8, 8))
    blocks = blocks.repeat(-(-height // 8), 0)[:height].repeat(-(-width // 8), 1)[:, :width]
    return 2e5 * (1.2 + np.sin(xx / 97.0) * np.cos(yy / 61.0)) * blocks


def _bench_frames(height: int, width: int) -> list:
    """Two ``bayer_rggb16`` images (12-bit), a dark and a bright one, to alternate."""
    sensor = load_sensor('imx249')
    phi = _radiance(height, width)
    rng = np.random.default_rng(0)
    return [array_to_image(capture(phi, t_s, 1.0, sensor, rng), 'bayer_rggb16')
            for t_s in (0.002, 0.02)]


# --------------------------------------------------------------------------- child process


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

    def instrument(self) -> None:
        """Wrap the actuator (which frame each sent request comes from) and the detector."""
        perception = self._perception
        if perception is not None:
            isp, run = perception.isp, perception.run

            def isp_timed(x):
                t0 = time.perf_counter()
                y = isp(x)
                self.bench_isp_ms.append((time.perf_counter() - t0) * 1e3)
                return y

            def run_timed(raw):
                t0 = time.perf_counter()
                result = run(raw)
                self.bench_perception_ms.append((time.perf_counter() - t0) * 1e3)
                self.bench_layer2_shape = list(result[3].shape)
                return result

            perception.isp, perception.run = isp_timed, run_timed
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


def _warm_up(node: BenchAutoExposureNode, height: int, width: int) -> float:
    """Run the detector and a twin controller once on a frame of the stream's size [ms]."""
    from neural_ae.core.controllers import ExposureSetting

    raw = capture(_radiance(height, width), 0.01, 1.0, node.sensor,
                  np.random.default_rng(1))
    t0 = time.perf_counter()
    features = None
    if node._perception is not None:
        features = node._perception.run(raw)[3]
    twin = node._build_controller(node.values)
    twin.step(raw, ExposureSetting(10000.0, 0.0), features=features)
    return (time.perf_counter() - t0) * 1e3


def _ae_child(cfg: dict, context) -> dict:
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
            doc['warmup_ms'] = _warm_up(node, cfg['height'], cfg['width'])
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


def _camera_child(cfg: dict, context) -> dict:
    """Publish on the start file's word for ``seconds``; serve parameters until finished."""
    camera = _Camera(context, cfg['namespace'], _bench_frames(cfg['height'], cfg['width']),
                     cfg['rate_hz'])
    executor = MultiThreadedExecutor(num_threads=2, context=context)
    executor.add_node(camera.node)
    spinner = threading.Thread(target=executor.spin, name='camera_spin', daemon=True)
    spinner.start()
    try:
        Path(cfg['ready_file']).write_text('ready')
        if not _wait(lambda: Path(cfg['start_file']).exists()
                     and camera.pub.get_subscription_count() >= 1, cfg['startup_timeout_s']):
            raise RuntimeError('no start signal or no subscriber on camera/image_raw')
        time.sleep(0.5)  # let the best-effort reader match before the first frame
        t0 = time.monotonic()
        camera.start()
        time.sleep(cfg['seconds'])
        camera.stop()
        stream_s = time.monotonic() - t0
        Path(cfg['published_file']).write_text('published')
        _wait(Path(cfg['finish_file']).exists, cfg['drain_timeout_s'] + 60.0)
        time.sleep(0.1)
        return {'published': camera.published, 'requests': camera.requests,
                'stream_s': stream_s}
    finally:
        executor.shutdown()
        spinner.join(timeout=5.0)
        camera.node.destroy_node()


def _child_main(config_path: str) -> int:
    """Entry of the child processes: the camera or the AE node; records to a JSON file."""
    cfg = json.loads(Path(config_path).read_text())
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=int(cfg['domain']))
    doc = {}
    try:
        doc = (_camera_child if cfg['role'] == 'camera' else _ae_child)(cfg, context)
    except Exception as err:  # noqa: BLE001 - reported to the parent through the result
        doc['error'] = f'{type(err).__name__}: {err}'
    finally:
        tmp = cfg['result_file'] + '.tmp'
        Path(tmp).write_text(json.dumps(doc))
        os.replace(tmp, cfg['result_file'])
        rclpy.try_shutdown(context=context)
    return 0 if 'error' not in doc else 1


# --------------------------------------------------------------------------- camera side


class _Camera:
    """The camera: image publisher on a timer and a generic driver's parameters."""

    def __init__(self, context, namespace: str, frames: list, rate_hz: float):
        self.node = rclpy.create_node(DRIVER, namespace=namespace, context=context)
        self.node.declare_parameter('exposure_time', 5000.0)
        self.node.declare_parameter('gain', 0.0)
        self.node.add_on_set_parameters_callback(self._on_set)
        self.pub = self.node.create_publisher(Image, 'camera/image_raw', image_qos(1))
        self.frames = frames
        self.period_s = 1.0 / float(rate_hz)
        self.published = []  # (stamp_ns, publish() returned ns)
        self.requests = []  # (received ns, exposure_time)
        self.timer = None
        self._k = 0

    def _on_set(self, params) -> SetParametersResult:
        t = time.time_ns()
        values = {p.name: p.value for p in params}
        if 'exposure_time' in values:  # rclpy sets a request's parameters one by one
            self.requests.append((t, float(values['exposure_time'])))
        return SetParametersResult(successful=True)

    def _tick(self) -> None:
        msg = self.frames[self._k % len(self.frames)]
        self._k += 1
        t = time.time_ns()
        msg.header.stamp = ns_to_stamp(t)
        self.pub.publish(msg)
        self.published.append((t, time.time_ns()))

    def start(self) -> None:
        """Start publishing."""
        self.timer = self.node.create_timer(self.period_s, self._tick,
                                            callback_group=MutuallyExclusiveCallbackGroup())

    def stop(self) -> None:
        """Stop publishing."""
        if self.timer is not None:
            self.timer.cancel()


# --------------------------------------------------------------------------- orchestration

FASTDDS_LARGE_SHM = """<?xml version="1.0" encoding="UTF-8" ?>
<dds xmlns="http://www.eprosima.com">
  <profiles>
    <transport_descriptors>
      <transport_descriptor>
        <transport_id>ros_latency_shm</transport_id>
        <type>SHM</type>
        <segment_size>{segment_size}</segment_size>
      </transport_descriptor>
      <transport_descriptor>
        <transport_id>ros_latency_udp</transport_id>
        <type>UDPv4</type>
        <interfaceWhiteList><address>127.0.0.1</address></interfaceWhiteList>
      </transport_descriptor>
    </transport_descriptors>
    <participant profile_name="ros_latency" is_default_profile="true">
      <rtps>
        <userTransports>
          <transport_id>ros_latency_shm</transport_id>
          <transport_id>ros_latency_udp</transport_id>
        </userTransports>
        <useBuiltinTransports>false</useBuiltinTransports>
      </rtps>
    </participant>
  </profiles>
</dds>
"""
"""Fast DDS profile for ``transport='large_shm'``: a shared-memory segment holding frames."""

TRANSPORTS = ('large_shm', 'rmw_default')


def _private_domain() -> int:
    return 150 + os.getpid() % 50


def _wait(predicate, timeout: float, procs=()) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        if any(p.poll() is not None for p in procs):
            return bool(predicate())
        time.sleep(0.02)
    return bool(predicate())


def _tail(path: Path, n: int = 2000) -> str:
    try:
        return path.read_text()[-n:]
    except OSError:
        return ''


def measure_latency(height: int = 1216, width: int = 1936, controller: str = 'average',
                    seconds: float = 5.0, rate_hz: float = 60.0, model_path: str = '',
                    detector_path: str = '', transport: str = 'large_shm',
                    node_parameters: Optional[dict] = None, domain: Optional[int] = None,
                    startup_timeout_s: float = 120.0, drain_timeout_s: float = 60.0) -> dict:
    """
    Stream ``seconds`` of ``height`` x ``width`` frames at ``rate_hz`` to the AE node.

    ``controller='none'``: a bare subscriber instead of the node (delivery reference).
    ``transport``: ``'large_shm'`` (Fast DDS shared memory with a segment of 16 frames,
    :data:`FASTDDS_LARGE_SHM`) or ``'rmw_default'`` (the rmw's own settings). Returns the
    figures of the module docstring; raises RuntimeError when a child process fails.
    ``node_parameters`` override further parameters of the node (e.g.
    ``{'publish_debug_image': False}``).
    """
    if transport not in TRANSPORTS:
        raise ValueError(f'transport must be one of {TRANSPORTS}, got {transport!r}')
    _RUNS['n'] += 1
    namespace = f'/ros_latency_{os.getpid()}_{_RUNS["n"]}'
    domain = _private_domain() if domain is None else int(domain)
    tmp = tempfile.TemporaryDirectory(prefix='ros_latency_')
    d = Path(tmp.name)
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain), ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST',
               PYTHONUNBUFFERED='1')
    env['PYTHONPATH'] = str(ROOT) + os.pathsep + env.get('PYTHONPATH', '')
    for key in ('FASTDDS_DEFAULT_PROFILES_FILE', 'FASTRTPS_DEFAULT_PROFILES_FILE',
                'FASTDDS_BUILTIN_TRANSPORTS'):
        env.pop(key, None)
    segment = 0
    if transport == 'large_shm':
        segment = max(16 * height * width * 2 + (1 << 20), 1 << 22)
        (d / 'fastdds.xml').write_text(FASTDDS_LARGE_SHM.format(segment_size=segment))
        env['FASTDDS_DEFAULT_PROFILES_FILE'] = str(d / 'fastdds.xml')
    common = {'domain': domain, 'namespace': namespace, 'height': height, 'width': width,
              'rate_hz': rate_hz, 'seconds': seconds, 'drain_timeout_s': drain_timeout_s,
              'startup_timeout_s': startup_timeout_s, 'start_file': str(d / 'start'),
              'published_file': str(d / 'published'), 'stop_file': str(d / 'stop'),
              'finish_file': str(d / 'finish')}
    cfgs = {
        'camera': dict(common, role='camera', ready_file=str(d / 'camera.ready'),
                       result_file=str(d / 'camera.json')),
        'ae': dict(common, role='ae', controller=controller, ready_file=str(d / 'ae.ready'),
                   result_file=str(d / 'ae.json'),
                   parameters={'controller': controller, 'model_path': model_path,
                               'detector_path': detector_path, 'driver_node': DRIVER,
                               'exposure_feedback_topic': '', **(node_parameters or {})})}
    procs, logs = {}, []
    try:
        for role, cfg in cfgs.items():  # the camera first: the node looks for its driver
            (d / f'{role}.config.json').write_text(json.dumps(cfg))
            log = (d / f'{role}.log').open('w')
            logs.append(log)
            procs[role] = subprocess.Popen(
                [sys.executable, '-m', 'neural_ae.benchmarks.ros_latency',
                 str(d / f'{role}.config.json')], stdout=log, stderr=subprocess.STDOUT,
                env=env, cwd=str(ROOT))

        def fail(what: str):
            tails = '; '.join(f'{r}: {_tail(d / f"{r}.log")}' for r in procs)
            results = '; '.join(f'{r}: {_tail(Path(c["result_file"]))}'
                                for r, c in cfgs.items())
            return RuntimeError(f'{controller}: {what}; results {results}; logs {tails}')

        ready = [Path(c['ready_file']) for c in cfgs.values()]
        if not _wait(lambda: all(p.exists() for p in ready), startup_timeout_s,
                     procs.values()):
            raise fail('the children did not get ready')
        Path(common['start_file']).write_text('start')
        if not _wait(Path(common['published_file']).exists,
                     startup_timeout_s + seconds + 30.0, procs.values()):
            raise fail('the camera did not publish')
        time.sleep(0.3)
        Path(common['stop_file']).write_text('stop')
        ae_result = Path(cfgs['ae']['result_file'])
        if not _wait(ae_result.exists, drain_timeout_s + 30.0, [procs['ae']]):
            raise fail('no result from the node process')
        Path(common['finish_file']).write_text('finish')
        cam_result = Path(cfgs['camera']['result_file'])
        if not _wait(cam_result.exists, 30.0, [procs['camera']]):
            raise fail('no result from the camera process')
        child, cam = json.loads(ae_result.read_text()), json.loads(cam_result.read_text())
        if 'error' in child or 'error' in cam:
            raise fail('a child failed')
        for proc in procs.values():
            try:
                proc.wait(timeout=30.0)
            except subprocess.TimeoutExpired:
                proc.kill()
        out = _summarize(controller, height, width, rate_hz, cam, child)
        out['node_parameters'] = dict(node_parameters or {})
        out['transport'] = (f'Fast DDS SHM, segment {segment / 2 ** 20:.0f} MiB'
                            if segment else 'rmw defaults')
        return out
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10.0)
        for log in logs:
            log.close()
        tmp.cleanup()


def _summarize(controller: str, height: int, width: int, rate_hz: float, cam: dict,
               child: dict) -> dict:
    """Turn the camera's and the child's records into the figures."""
    published = [(int(a), int(b)) for a, b in cam['published']]
    received = {int(s): int(t) for s, t in child['received']}
    delivery = [(received[s] - s) / 1e6 for s, _ in published if s in received]
    publish_call = [(r - s) / 1e6 for s, r in published]
    span_s = (published[-1][0] - published[0][0]) / 1e9 if len(published) > 1 else math.nan
    out = {'controller': controller, 'resolution': [height, width],
           'encoding': 'bayer_rggb16 (12-bit)', 'rate_hz_requested': rate_hz,
           'stream_s': round(cam['stream_s'], 3),
           'torch_threads_node_process': child['torch_threads'],
           'delivery_ms': _stats(delivery), 'publish_call_ms': _stats(publish_call)}
    stream = {'frames_published': len(published),
              'rate_hz_achieved': (round((len(published) - 1) / span_s, 2)
                                   if span_s > 0 else math.nan),
              'frames_delivered': len(child['received'])}
    stream['frames_lost_before_node'] = stream['frames_published'] - stream['frames_delivered']
    if controller == 'none':
        out['stream'] = stream
        return out
    mb, nd = child['mailbox'], child['node']
    processed = {int(p[0]): p for p in child['processed']}
    sends = [s for s in child['sends'] if s[2] == 'setting' and s[0] is not None]
    to_sent, deliv, wait, proc_ms, t_sent = [], [], [], [], []
    for stamp, t, _, _ in sends:
        stamp, t = int(stamp), int(t)
        to_sent.append((t - stamp) / 1e6)
        t_sent.append(t / 1e9)
        if stamp in received and stamp in processed:
            deliv.append((received[stamp] - stamp) / 1e6)
            wait.append((processed[stamp][1] - received[stamp]) / 1e6)
            proc_ms.append((t - processed[stamp][1]) / 1e6)
    all_sends = child['sends']
    requests = cam['requests']
    to_driver, mismatches = [], 0
    for (stamp, _, kind, value), (t_recv, got) in zip(all_sends, requests):
        if not (math.isclose(value, got, rel_tol=1e-9) or kind != 'setting'):
            mismatches += 1
        if kind == 'setting' and stamp is not None:
            to_driver.append((t_recv - int(stamp)) / 1e6)
    worker_ms = [(p[2] - p[1]) / 1e6 for p in child['processed']]
    stream.update({
        'frames_taken_by_worker': mb['taken'], 'frames_processed': nd['frames_processed'],
        'frames_dropped_by_mailbox': mb['dropped'], 'frames_left_in_mailbox': mb['left'],
        'frames_cleared': mb['cleared'], 'bad_frames': nd['bad_frames'],
        'errors': nd['errors'], 'max_mailbox_occupancy': mb['max_occupancy'],
        'max_frames_in_node': mb['max_in_node'], 'drained': child['drained'],
        'accounted': (mb['puts'] == stream['frames_delivered']
                      and mb['puts'] == mb['taken'] + mb['dropped'] + mb['cleared']
                      + mb['left']
                      and mb['taken'] == nd['frames_processed'] + nd['bad_frames']
                      + nd['errors'])})
    out.update({
        'warmup_ms': round(child['warmup_ms'], 1) if math.isfinite(child['warmup_ms'])
        else math.nan,
        'frame_to_sent_ms': _stats(to_sent), 'frame_to_driver_ms': _stats(to_driver),
        'breakdown_median_ms': {
            'delivery': _stats(deliv)['median_ms'], 'mailbox_wait': _stats(wait)['median_ms'],
            'processing_to_sent': _stats(proc_ms)['median_ms']},
        'worker_ms_per_frame': _stats(worker_ms),
        'decisions_sent': len(sends), 'decisions_not_sent': child['decisions_not_sent'],
        'driver_requests_received': len(requests), 'driver_order_mismatches': mismatches,
        'actuator': {k: child['actuator'][k] for k in ('sent', 'succeeded', 'rejected',
                                                       'timeouts', 'coalesced',
                                                       'unavailable')},
        'trend': _trend(t_sent, to_sent), 'stream': stream})
    if child['perception_ms']:
        out['detector'] = {'perception_run_ms': _stats(child['perception_ms']),
                           'isp_ms': _stats(child['isp_ms']),
                           'layer2_shape': child['layer2_shape']}
    if nd['last_error']:
        out['last_error'] = nd['last_error']
    return out


# --------------------------------------------------------------------------- replay


def measure_replay(height: int, width: int, controller: str = 'average', n_frames: int = 20,
                   model: Optional[str] = None, perception=None,
                   recording_fps: float = RECORDING_FPS) -> dict:
    """
    Frames/s of ``replay_frames`` over ``n_frames`` synthetic frames, and / ``recording_fps``.

    The illumination steps up 8x halfway so the loop has something to do. ``perception``
    (a loaded detector) runs on every frame, as ``neural-ae replay --detector`` does. One
    untimed frame with a throwaway controller first, so torch's first-call costs are out.
    """
    from neural_ae.commands.replay import build_controller, replay_frames

    sensor = load_sensor('imx249')
    phi = _radiance(height, width, seed=2)
    bright = phi * 8.0
    step_ns = int(1e9 / recording_fps)
    replay_frames([(0, phi)], build_controller(controller, None, sensor, model), sensor=sensor,
                  perception=perception)
    ctrl = build_controller(controller, None, sensor, model)
    frames = ((k * step_ns, phi if k < n_frames // 2 else bright) for k in range(n_frames))
    t0 = time.perf_counter()
    out = replay_frames(frames, ctrl, sensor=sensor, perception=perception)
    wall = time.perf_counter() - t0
    n = out['result'].n_frames
    fps = n / wall if wall > 0 else math.nan
    return {'controller': controller, 'resolution': [height, width], 'frames': n,
            'detector': perception is not None, 'wall_s': round(wall, 3),
            'frames_per_s': round(fps, 3), 'recording_fps': recording_fps,
            'realtime_ratio': _ratio(fps, recording_fps),
            'controller_step_median_ms': _stats(out['result'].controller_ms)['median_ms']}


# --------------------------------------------------------------------------- suite


def _histogram_model(folder: Path) -> tuple:
    """Shipped ``histogram_nn.pt`` or an untrained ExposureNet('histogram') saved to ``folder``."""
    import torch
    from neural_ae.core.models.exposure_nets import ExposureNet
    from neural_ae.core.paths import models_dir

    try:
        shipped = models_dir() / 'histogram_nn.pt'
    except FileNotFoundError:
        shipped = ROOT / 'models' / 'histogram_nn.pt'
    if shipped.is_file():
        return str(shipped), 'shipped checkpoint'
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = ExposureNet('histogram')
    path = folder / 'histogram_nn.pt'
    torch.save({'state_dict': net.state_dict(), 'mode': 'histogram', 'm_exp': 10.0}, path)
    return str(path), ('untrained ExposureNet(histogram) (no histogram_nn checkpoint ships; '
                       'latency does not depend on the weights)')


def _hybrid_model() -> Path:
    from neural_ae.core.paths import models_dir

    try:
        return models_dir() / 'hybrid_demo.pt'
    except FileNotFoundError:
        return ROOT / 'models' / 'hybrid_demo.pt'


def run(quick: bool = False) -> dict:
    """Latency, queue and replay figures; see the module docstring."""
    return _run(quick)


def latency_cases(quick: bool, histogram_model: str, hybrid_model: str,
                  controllers=('average', 'histogram_nn', 'hybrid_nn')) -> dict:
    """``name -> measure_latency keyword arguments`` of the suite."""
    def secs(quick_s, full_s):
        return quick_s if quick else full_s

    cases = {'bare_delivery': {'controller': 'none', 'seconds': secs(2.0, 5.0)},
             'bare_delivery_rmw_default': {'controller': 'none', 'seconds': secs(2.0, 5.0),
                                           'transport': 'rmw_default'}}
    if 'average' in controllers:
        cases['average'] = {'controller': 'average', 'seconds': secs(4.0, 20.0)}
        cases['average_no_debug_image'] = {'controller': 'average',
                                           'seconds': secs(4.0, 20.0),
                                           'node_parameters': {'publish_debug_image': False}}
    if 'histogram_nn' in controllers:
        cases['histogram_nn'] = {'controller': 'histogram_nn', 'seconds': secs(4.0, 20.0),
                                 'model_path': histogram_model}
        cases['histogram_nn_no_debug_image'] = {
            'controller': 'histogram_nn', 'seconds': secs(3.0, 20.0),
            'model_path': histogram_model, 'node_parameters': {'publish_debug_image': False}}
    if 'hybrid_nn' in controllers:
        cases['hybrid_nn'] = {'controller': 'hybrid_nn', 'seconds': secs(6.0, 30.0),
                              'model_path': hybrid_model, 'detector_path': hybrid_model}
    return cases


def _run(quick: bool, height: int = 1216, width: int = 1936, small: tuple = (192, 320),
         controllers=('average', 'histogram_nn', 'hybrid_nn'), replay: bool = True) -> dict:
    hybrid = _hybrid_model()
    out = {'resolution': [height, width], 'encoding': 'bayer_rggb16 (12-bit data)',
           'input_rate_hz': 60.0, 'domain_id': _private_domain(),
           'processes': 'camera (publisher + driver parameters), AE node, orchestrator: '
                        'three processes on one host; wall-clock stamps',
           'latency': {}, 'notes': {}}
    with tempfile.TemporaryDirectory(prefix='ros_latency_models_') as tmp:
        hist_path, out['notes']['histogram_nn'] = _histogram_model(Path(tmp))
        out['notes']['hybrid_nn'] = (f'{hybrid.name}: its ISP + detector (layer2 from the '
                                     'same backbone pass) and hybrid AE net, CPU')
        cases = latency_cases(quick, hist_path, str(hybrid), controllers)
        for name, kw in cases.items():
            try:
                out['latency'][name] = measure_latency(height, width, **kw)
            except Exception as err:  # noqa: BLE001 - report a failed case, run the rest
                out['latency'][name] = {'error': f'{type(err).__name__}: {err}'[:3000]}
    out['ratios'] = latency_ratios(out['latency'])
    out['queue'] = queue_summary(out['latency'])
    if replay:
        import torch
        out['replay_torch_threads'] = torch.get_num_threads()
        out['replay'] = _replay_cases(quick, (height, width), small, hybrid)
    return out


def latency_ratios(latency: dict) -> dict:
    """
    Median frame-to-sent latency over three references measured in the same run.

    The Average AE's frame-to-sent latency, the bare subscriber's delivery delay (a
    separate stream) and the case's own delivery delay (same stream, to the node).
    """
    bare = latency.get('bare_delivery', {}).get('delivery_ms', {}).get('median_ms', math.nan)
    avg = latency.get('average', {}).get('frame_to_sent_ms', {}).get('median_ms', math.nan)
    out = {'reference_bare_delivery_median_ms': bare,
           'reference_average_frame_to_sent_median_ms': avg}
    for name, res in latency.items():
        if 'frame_to_sent_ms' not in res:
            continue
        med = res['frame_to_sent_ms']['median_ms']
        own = res['delivery_ms']['median_ms']
        out[name] = {'frame_to_sent_median_ms': med, 'over_average': _ratio(med, avg),
                     'over_bare_delivery': _ratio(med, bare),
                     'over_own_delivery': _ratio(med, own)}
    return out


def queue_summary(latency: dict) -> dict:
    """Per case: published, delivered, processed, dropped, max occupancy, latency trend."""
    out = {}
    for name, res in latency.items():
        st = res.get('stream')
        if not st:
            continue
        row = {k: st[k] for k in ('frames_published', 'frames_delivered',
                                  'frames_lost_before_node') if k in st}
        for k in ('frames_processed', 'frames_dropped_by_mailbox', 'max_mailbox_occupancy',
                  'max_frames_in_node', 'accounted'):
            if k in st:
                row[k] = st[k]
        if 'trend' in res:
            row.update({k: res['trend'][k] for k in ('first_quarter_median_ms',
                                                     'last_quarter_median_ms',
                                                     'last_over_first', 'slope_ms_per_s')})
        out[name] = row
    return out


def _replay_cases(quick: bool, full: tuple, small: tuple, hybrid: Path) -> dict:
    from neural_ae.core.models.perception import load_perception

    n = {'average': (10, 40) if quick else (30, 150), 'hybrid_nn': (2, 6) if quick else (5, 30)}
    out = {}
    perception = None
    for name in ('average', 'hybrid_nn'):
        for size, frames in zip((full, small), n[name]):
            key = f'{name}_{size[0]}x{size[1]}'
            try:
                kw = {}
                if name == 'hybrid_nn':
                    if perception is None:
                        perception = load_perception(hybrid, load_sensor('imx249'))
                    kw = {'model': str(hybrid), 'perception': perception}
                out[key] = measure_replay(size[0], size[1], name, frames, **kw)
            except Exception as err:  # noqa: BLE001 - report a failed case, run the rest
                out[key] = {'error': f'{type(err).__name__}: {err}'}
    return out


if __name__ == '__main__':
    raise SystemExit(_child_main(sys.argv[1]))
