"""
camera_sim_node: a simulated LDR raw camera replaying HDR frames, commanded like a driver.

Frames come from an HDR rosbag2 (``bag``: 32FC3 radiance on ``bag_topic``, COCO labels in
``<bag>/labels.json`` keyed by ``frame_index`` or by stamp, ``t_ns`` / ``stamp_ns``, matched
to the nearest frame within half a frame period) or, without a bag, from the procedural
scene generator
(``scenario``: a sequence of :data:`neural_ae.core.scenes.SEQUENCE_SCENARIOS`, or ``step``:
one static scene whose illumination is multiplied by ``step_factor`` from frame
``step_frame`` on). Each frame is rendered with the sensor model
(:func:`neural_ae.core.sensor.capture_rgb`, 12-bit raw) at the exposure in force. A bag's
radiance is first multiplied by ``radiance_scale`` (:mod:`neural_ae.core.calibration`:
``auto`` uses a bag that declares e-/s as is and scales any other so its median
``e_base`` lands at the geometric middle of the sensor's exposure range; a number is the
factor); the chosen factor is logged and published with every frame.

Topics (relative names; remap as needed):

- ``camera/image_raw`` (``sensor_msgs/Image``, ``bayer_rggb16`` holding 12-bit values;
  sensor-data QoS, depth 1);
- ``camera/camera_info`` (``sensor_msgs/CameraInfo``, same header as the image);
- ``camera/exposure`` (``std_msgs/String``, reliable, published *before* the image): a
  JSON document per frame, ``{"stamp_ns", "frame_index", "exposure_time_us", "gain_db",
  "e_s", "command_from_frame", "latency_frames", "illumination_scale", "radiance_scale",
  "gt"}``: the
  setting that produced the frame (auto-exposure nodes use it to pair frames with
  settings), the frame after which that command arrived (-1: initial setting), the scene's
  illumination and the ground-truth boxes ``[x1, y1, x2, y2, label]``.

Commanding: like a machine-vision driver, the parameters ``exposure_time`` [us] and
``gain`` [dB] are the command. A change that arrives after frame ``n`` was published
takes effect at frame ``n + 1 + latency_frames`` (frames in between keep the setting in
force). Out-of-range values are rejected by the parameter descriptors.

Modes: ``realtime`` publishes at the recording's own rate (the bag's timestamps; 30 Hz
for synthetic frames) or, with ``rate_hz`` > 0, at that rate from a timer; stamps are the
wall clock. ``lockstep`` publishes the next frame only once a command (a set of
``exposure_time``/``gain``) has arrived after the previous frame, or after
``lockstep_timeout_s``: deterministic for evaluation; stamps are ``start + t_k - t_0``
(synthetic: ``t_k = k / rate``), continuing monotonically when ``loop`` restarts the
sequence. Rendering noise is drawn from
``numpy.random.default_rng(seed)``, so a lockstep run with a deterministic controller is
repeatable.

Threads: the executor only decides *when* a frame is due and which setting is in force
(the timer); the frame producer thread reads the frames and samples them with the colour
filter array ahead of time (:func:`bayer_sampled`); the noise draw
(:func:`~neural_ae.core.sensor.capture`) and publishing run on the node's own render
thread (:class:`_Renderer`), so parameter sets (the commands) are answered while a frame
renders. A frame decided while the previous one still renders
waits in a slot of one and goes out right after it; a due frame that finds that slot full
as well is published in the next free slot. In ``realtime`` mode a frame whose image
leaves more than one frame period after it was due counts as late
(:attr:`CameraSimNode.frames_late`, a throttled warning); its stamp is still the time it
was due (a camera stamps the start of the exposure, not the end of the readout).
"""
import collections
import json
import logging
import math
import queue
import threading
from typing import Optional

from neural_ae.core.bags import open_hdr_bag
from neural_ae.core.bags.labels import label_index, stamp_tolerance_ns
from neural_ae.core.calibration import calibrate_bag, parse_radiance_scale
from neural_ae.core.controllers import ExposureSetting
from neural_ae.core.errors import BagFormatError, ConfigError, NeuralAEError
from neural_ae.core.scenes import generate_scene, iter_sequence, SEQUENCE_SCENARIOS
from neural_ae.core.sensor import capture, load_sensor, mosaic, SensorConfig
from neural_ae.ros import params as P
from neural_ae.ros.conversions import array_to_image, camera_info_for, ns_to_stamp
from neural_ae.ros.qos import command_qos, image_qos
from neural_ae.ros.stopping import spin_until_stopped, StopRequest
import numpy as np
from rcl_interfaces.msg import SetParametersResult
import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header, String

__all__ = ['CameraSimNode', 'SIM_SCENARIOS', 'main', 'sim_parameter_specs']

SIM_SCENARIOS = tuple(SEQUENCE_SCENARIOS) + ('step',)
DEFAULT_RATE_HZ = 30.0
MODES = ('realtime', 'lockstep')
_POLL_S = 0.004
_MATCH_SETTLE_NS = 250_000_000
"""Hold the first frame this long after the subscribers are matched [ns]."""
LOG = logging.getLogger(__name__)


def sim_parameter_specs(sensor: SensorConfig) -> list:
    """Every parameter of :class:`CameraSimNode` for ``sensor``."""
    return [
        P.ParamSpec('sensor', 'imx249', 'Sensor preset name (config/sensors/<name>.yaml) or '
                    'YAML path; sets resolution limits, noise and exposure ranges.',
                    read_only=True),
        P.ParamSpec('bag', '', 'HDR rosbag2 to replay (directory or .mcap/.db3); empty = '
                    'synthetic scenes.', read_only=True),
        P.ParamSpec('bag_topic', '/hdr/image', 'Radiance topic in the bag (32FC3).',
                    read_only=True),
        P.ParamSpec('radiance_scale', 'auto', 'Factor from the bag radiance to e-/s of the '
                    'sensor model: "auto" = 1 for a bag that declares e-/s, else chosen so '
                    'the median e_base lands at the geometric middle of the exposure range; '
                    'or a number as text, e.g. "2.5e4" [-].', read_only=True),
        P.ParamSpec('scenario', 'tunnel_exit', 'Synthetic sequence when no bag is given.',
                    read_only=True, choices=SIM_SCENARIOS),
        P.ParamSpec('n_frames', 300, 'Frames of the synthetic sequence [frames].', 1, 1000000,
                    read_only=True),
        P.ParamSpec('seed', 0, 'Seed of the synthetic scenes and of the sensor noise.',
                    0, 2 ** 31 - 1, read_only=True),
        P.ParamSpec('height', 192, 'Synthetic frame height [px] (odd sizes are cropped to '
                    'even).', 64, 4096, read_only=True),
        P.ParamSpec('width', 320, 'Synthetic frame width [px] (odd sizes are cropped to '
                    'even).', 64, 4096, read_only=True),
        P.ParamSpec('step_factor', 16.0, 'Scenario step: illumination factor applied from '
                    'step_frame on [-].', 1e-4, 1e4, read_only=True),
        P.ParamSpec('step_frame', -1, 'Scenario step: first frame of the new illumination '
                    '[frames]; -1 = n_frames / 2.', -1, 1000000, read_only=True),
        P.ParamSpec('exposure_time', 5000.0, 'Exposure time command [us], within the '
                    f'sensor limits [{sensor.min_exposure_us:g}, {sensor.max_exposure_us:g}].',
                    float(sensor.min_exposure_us), float(sensor.max_exposure_us)),
        P.ParamSpec('gain', 0.0, f'Analog gain command [dB], 0 .. {sensor.max_gain_db:g}.',
                    0.0, float(sensor.max_gain_db)),
        P.ParamSpec('latency_frames', 1, 'Actuation latency [frames]: a command arriving '
                    'after frame n takes effect at frame n + 1 + latency_frames.', 0, 30),
        P.ParamSpec('mode', 'realtime', "realtime: publish at the recording's rate (or "
                    'rate_hz); lockstep: next frame after the controller answered (or '
                    'lockstep_timeout_s).', read_only=True, choices=MODES),
        P.ParamSpec('rate_hz', 0.0, "Frame rate [Hz]: 0 = the bag's own timing (30 Hz for "
                    'synthetic frames); > 0 = this rate (realtime) and stamp spacing of '
                    'synthetic frames.', 0.0, 1000.0, read_only=True),
        P.ParamSpec('lockstep_timeout_s', 1.0, 'Lockstep: publish the next frame anyway '
                    'after this long without an answer [s].', 0.01, 60.0),
        P.ParamSpec('wait_for_subscribers', 1, 'Hold the first frame until camera/image_raw '
                    'has this many subscribers, then 0.25 s more for them to match (0 = do '
                    'not wait) [-].', 0, 100, read_only=True),
        P.ParamSpec('loop', False, 'Start again at the end of the sequence.', read_only=True),
        P.ParamSpec('noise', True, 'Simulate shot, read and quantization noise.',
                    read_only=True),
        P.ParamSpec('frame_id', 'camera', 'frame_id of the published headers.',
                    read_only=True),
        P.ParamSpec('focal_px', 0.0, 'Focal length in camera_info [px]; 0 = uncalibrated.',
                    0.0, 100000.0, read_only=True),
    ]


# --------------------------------------------------------------------------- frame sources


def _even(radiance: np.ndarray) -> np.ndarray:
    h, w = radiance.shape[:2]
    return radiance[:h - h % 2, :w - w % 2]


def synthetic_frames(scenario: str, n_frames: int, seed: int, height: int, width: int,
                     rate_hz: float = 30.0, step_factor: float = 16.0, step_frame: int = -1):
    """Yield ``(offset_ns, radiance, boxes_labels, meta)`` of a synthetic sequence."""
    period_ns = int(round(1e9 / (rate_hz or DEFAULT_RATE_HZ)))
    if scenario == 'step':
        base = generate_scene(seed, 'day', height, width)
        first = n_frames // 2 if step_frame < 0 else step_frame
        gt = _gt(base.boxes, base.labels)
        # two read-only radiance arrays shared by every frame (no copy per frame)
        levels = {1.0: base.radiance, step_factor: base.radiance * np.float32(step_factor)}
        for arr in levels.values():
            arr.flags.writeable = False
        for k in range(n_frames):
            factor = step_factor if k >= first else 1.0
            meta = {'illumination_scale': float(base.meta.get('illumination_scale', 1.0))
                    * factor, 'event': k == first}
            yield k * period_ns, levels[factor], gt, meta
        return
    for k, scene in enumerate(iter_sequence(seed, n_frames, scenario, height, width)):
        meta = {'illumination_scale': scene.meta.get('illumination_scale'),
                'event': scene.meta.get('event')}
        yield k * period_ns, scene.radiance, _gt(scene.boxes, scene.labels), meta


def _gt(boxes, labels) -> list:
    return [[round(float(v), 1) for v in b] + [int(lab)]
            for b, lab in zip(np.asarray(boxes).reshape(-1, 4), np.asarray(labels).reshape(-1))]


def bag_frames(path: str, topic: str, radiance_scale='auto', sensor=None,
               calibration=None, on_calibration=None, warn=None):
    """
    Yield ``(offset_ns, radiance, gt, meta)`` from an HDR bag (labels if present).

    The radiance is multiplied by the factor of ``calibration`` (a
    :class:`~neural_ae.core.calibration.RadianceCalibration`), else of
    :func:`~neural_ae.core.calibration.calibrate_bag` for ``radiance_scale`` and
    ``sensor`` (default imx249), passed to ``on_calibration`` before the first frame.
    Labels are looked up by frame index, else by the nearest stamp within half the bag's
    frame period (:meth:`~neural_ae.core.bags.labels.LabelIndex.lookup`); malformed labels
    are reported through ``warn(text)`` (default: the module logger) and left out.
    ``meta`` holds ``bag_t_ns`` and ``radiance_scale``.
    """
    bag = open_hdr_bag(path, topic=topic)
    if calibration is None:
        calibration = calibrate_bag(bag, sensor or load_sensor('imx249'), radiance_scale,
                                    topic)
    if on_calibration is not None:
        on_calibration(calibration)
    index = None
    try:
        coco = bag.labels()
        index = label_index(coco, str(bag.path)) if coco is not None else None
    except BagFormatError as err:
        (warn or LOG.warning)(f'camera_sim: {err}; replaying without labels')
    tol = 0
    if index is not None and index.stamps_ns:
        tol = stamp_tolerance_ns(bag.timestamps(topic))
    t0 = None
    for k, (t_ns, radiance) in enumerate(bag.iter_radiance(topic)):
        t0 = t_ns if t0 is None else t0
        found = None if index is None else index.lookup(k, int(t_ns), tol)
        gt = [] if found is None else [
            [round(float(v), 2) for v in box] + [int(lab)]
            for box, lab in zip(found.boxes.reshape(-1, 4), found.labels.reshape(-1))]
        yield (t_ns - t0, calibration.apply(radiance), gt,
               {'bag_t_ns': int(t_ns), 'radiance_scale': calibration.scale})


class _Prefetcher:
    """Bounded background producer of frames (at most ``depth`` waiting)."""

    _END = object()

    def __init__(self, make_iter, depth: int = 3, loop: bool = False):
        self._make_iter = make_iter
        self._queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._loop = loop
        self.error: Optional[str] = None
        self._thread = threading.Thread(target=self._run, name='camera_sim_prefetch',
                                        daemon=True)
        self._thread.start()

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self):
        try:
            while not self._stop.is_set():
                produced = 0
                for item in self._make_iter():
                    produced += 1
                    if not self._put(item):
                        return
                if not self._loop or produced == 0:
                    break
        except (NeuralAEError, OSError, ValueError) as err:
            self.error = str(err)
        self._put(self._END)

    def get(self):
        """Next frame, None at the end; raises queue.Empty while none is ready."""
        item = self._queue.get_nowait()
        return None if item is self._END else item

    def stop(self):
        """Stop the producer thread."""
        self._stop.set()
        self._thread.join(timeout=2.0)


class _Renderer:
    """
    The render thread: runs ``render(job)`` for one job after the other, in order.

    :meth:`submit` never blocks: it takes a job while at most one waits behind the one
    rendering and returns False otherwise. ``render`` errors are passed to ``on_error``
    (the node logs them, throttled) and the thread goes on.
    """

    def __init__(self, render, on_error):
        self._render = render
        self._on_error = on_error
        self._jobs = queue.Queue()  # at most two: bounded by _pending
        self._idle = threading.Event()
        self._idle.set()
        self._lock = threading.Lock()
        self._pending = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name='camera_sim_render',
                                        daemon=True)
        self._thread.start()

    def submit(self, job) -> bool:
        """Queue ``job``; False when one is rendering and another already waits."""
        with self._lock:
            if self._pending >= 2:
                return False
            self._pending += 1
            self._idle.clear()
        self._jobs.put_nowait(job)
        return True

    def has_room(self) -> bool:
        """Return True when :meth:`submit` would take a job."""
        with self._lock:
            return self._pending < 2

    @property
    def busy(self) -> bool:
        """Return True while a job renders or waits."""
        return not self._idle.is_set()

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait until every submitted job is done (True) or ``timeout_s`` passed."""
        return self._idle.wait(timeout_s)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                job = self._jobs.get(timeout=0.1)
            except queue.Empty:
                continue
            try:
                self._render(job)
            except Exception as err:  # noqa: BLE001 - one bad frame must not stop the camera
                self._on_error(err)
            finally:
                with self._lock:
                    self._pending -= 1
                    if self._pending == 0:
                        self._idle.set()

    def stop(self) -> None:
        """Stop the thread after the job in progress (waiting jobs are dropped)."""
        self._stop.set()
        self._thread.join(timeout=5.0)


# --------------------------------------------------------------------------- node


class CameraSimNode(Node):
    """The replay simulator; see the module docstring for topics and parameters."""

    def __init__(self, node_name: str = 'camera_sim', **kwargs):
        super().__init__(node_name, **kwargs)
        self.sensor = load_sensor(P.declare_sensor(self))
        self.specs = sim_parameter_specs(self.sensor)
        self.values = P.declare(self, self.specs)
        self._scale_option = parse_radiance_scale(self.values['radiance_scale'],
                                                  'parameter radiance_scale')
        self._calibration = None
        self.encoding = f'bayer_{self.sensor.bayer_pattern.lower()}16'
        self._lock = threading.Lock()
        self._rng = np.random.default_rng(self.values['seed'])
        self._published = 0
        self._commands = 0
        self._schedule = {}
        self._in_force = ExposureSetting(self.values['exposure_time'], self.values['gain'])
        self._in_force_from = -1
        self._answered = False
        self._wait_start = None
        self._start_ns = None
        self._finished = False
        self._said_waiting = False
        self._matched_ns = None
        self.image_pub = self.create_publisher(Image, 'camera/image_raw', image_qos(1))
        self.info_pub = self.create_publisher(CameraInfo, 'camera/camera_info', image_qos(1))
        self.exposure_pub = self.create_publisher(String, 'camera/exposure', command_qos(10))
        self.add_on_set_parameters_callback(self._validate)
        self.add_post_set_parameters_callback(self._apply)
        self._source = _Prefetcher(self._make_iter, depth=3, loop=self.values['loop'])
        self._renderer = _Renderer(self._render, self._render_failed)
        self._late = 0
        self._delays_ms = collections.deque(maxlen=100_000)
        self._next = None
        self._next_due_ns = None
        self._loop_base_ns = 0
        self._last_offset_ns = None
        self._wall_start_ns = None
        self._nominal_ns = int(1e9 / (self.values['rate_hz'] or DEFAULT_RATE_HZ))
        paced = self.values['mode'] == 'realtime' and self.values['rate_hz'] > 0
        period = 1.0 / self.values['rate_hz'] if paced else _POLL_S
        self._timer = self.create_timer(period, self._tick)
        src = self.values['bag'] or f'synthetic {self.values["scenario"]}'
        self.get_logger().info(
            f'camera_sim: {src}, sensor {self.sensor.name}, mode {self.values["mode"]}, '
            f'latency {self.values["latency_frames"]} frame(s), start exposure '
            f'{self._in_force.exposure_time_us:g} us / {self._in_force.gain_db:g} dB')

    # -- state for tests and the vehicle entry point

    @property
    def finished(self) -> bool:
        """Return True once the sequence ended and its last frame is out (never with ``loop``)."""
        return self._finished and not self._renderer.busy

    @property
    def frames_published(self) -> int:
        """Return the number of frames published so far."""
        return self._published

    @property
    def frames_late(self) -> int:
        """Frames whose image left more than one frame period after they were due (realtime)."""
        return self._late

    @property
    def publish_delays_ms(self) -> list:
        """Due -> image published [ms] of every frame so far (the last 100,000)."""
        return list(self._delays_ms)

    @property
    def commands_received(self) -> int:
        """Count frames answered with an exposure/gain change (several per frame: once)."""
        return self._commands

    # -- frames

    def _make_iter(self):
        v = self.values
        if v['bag']:
            frames = bag_frames(v['bag'], v['bag_topic'], self._scale_option, self.sensor,
                                self._calibration, self._on_calibration,
                                self.get_logger().warning)
        else:
            frames = synthetic_frames(v['scenario'], v['n_frames'], v['seed'], v['height'],
                                      v['width'], v['rate_hz'], v['step_factor'],
                                      v['step_frame'])
        return bayer_sampled(frames, self.sensor.bayer_pattern)

    def _on_calibration(self, calibration) -> None:
        if self._calibration is None:
            self.get_logger().info(f'camera_sim: {self.values["bag"]}: '
                                   f'{calibration.describe()}')
        self._calibration = calibration

    @property
    def radiance_scale(self) -> Optional[float]:
        """Return the factor applied to the bag's radiance (None before it is chosen)."""
        return None if self._calibration is None else self._calibration.scale

    def _tick(self) -> None:
        if self._finished:
            return
        if self._published == 0 and self.values['wait_for_subscribers'] > 0:
            if self.image_pub.get_subscription_count() < self.values['wait_for_subscribers']:
                self._matched_ns = None
                if not self._said_waiting:
                    self.get_logger().info(f'waiting for {self.values["wait_for_subscribers"]} '
                                           'subscriber(s) on camera/image_raw')
                    self._said_waiting = True
                return
            # DDS matching is not symmetric: the publisher may see a reader before that
            # reader sees the writer, and a best-effort first frame would be lost.
            now = self.get_clock().now().nanoseconds
            if self._matched_ns is None:
                self._matched_ns = now
            if now - self._matched_ns < _MATCH_SETTLE_NS:
                return
        if self.values['mode'] == 'lockstep' and self._renderer.busy:
            return  # the previous image is not out yet: nothing to answer
        if self.values['mode'] == 'lockstep' and self._published > 0:
            with self._lock:
                answered = self._answered
            waited = (self.get_clock().now().nanoseconds - self._wait_start) * 1e-9
            if not answered and waited < self.values['lockstep_timeout_s']:
                return
        if self._next is None:
            try:
                item = self._source.get()
            except queue.Empty:
                return
            if item is None:
                self._finished = True
                if self._source.error:
                    self.get_logger().error(
                        f'camera_sim: cannot read frames: {self._source.error}')
                else:
                    self.get_logger().info(f'camera_sim: sequence finished after '
                                           f'{self._published} frames')
                return
            offset = int(item[0])
            if self._last_offset_ns is not None and offset < self._last_offset_ns:
                self._loop_base_ns += self._last_offset_ns + self._nominal_ns  # looped
            self._last_offset_ns = offset
            self._next = (self._loop_base_ns + offset,) + tuple(item[1:])
        now_ns = self.get_clock().now().nanoseconds
        if self.values['mode'] == 'realtime' and self.values['rate_hz'] == 0:
            if self._wall_start_ns is None:
                self._wall_start_ns = now_ns - self._next[0]
            if now_ns - self._wall_start_ns < self._next[0]:
                return  # the recording's own timing
            if self._next_due_ns is None:
                self._next_due_ns = self._wall_start_ns + self._next[0]
        if self._next_due_ns is None:
            self._next_due_ns = now_ns
        item, self._next = self._next, None
        due_ns, self._next_due_ns = self._next_due_ns, None
        if not self._publish_frame(*item, due_ns=due_ns):
            self._next, self._next_due_ns = item, due_ns  # the render slot is full: retry

    def _publish_frame(self, offset_ns: int, phi: np.ndarray, gt: list, meta: dict,
                       due_ns: Optional[int] = None) -> bool:
        """
        Decide frame ``k``'s setting and stamp here, hand the rendering to the render thread.

        Returns False (nothing decided) when a frame renders and another already waits.
        """
        if not self._renderer.has_room():
            return False
        now_ns = self.get_clock().now().nanoseconds
        if self._start_ns is None:
            self._start_ns = now_ns
        due_ns = now_ns if due_ns is None else int(due_ns)
        stamp_ns = self._start_ns + int(offset_ns) if self.values['mode'] == 'lockstep' \
            else due_ns
        with self._lock:
            k = self._published
            if k in self._schedule:
                self._in_force, self._in_force_from = self._schedule.pop(k)
            for late in [f for f in self._schedule if f < k]:
                del self._schedule[late]
            setting = self._in_force
            command_from = self._in_force_from
            # Count the frame as published before it leaves, so that an answer racing
            # the publication (multi-threaded executor) is scheduled after this frame.
            self._answered = False
            self._published = k + 1
            self._wait_start = now_ns
        self._renderer.submit((k, stamp_ns, due_ns, setting, command_from, phi, gt, meta))
        return True

    def _render(self, job) -> None:
        """Render thread: capture frame ``k`` at its setting and publish it."""
        k, stamp_ns, due_ns, setting, command_from, phi, gt, meta = job
        raw = capture(phi, setting.t_exp_s, setting.gain, self.sensor, self._rng,
                      noise=self.values['noise'])
        header = Header(stamp=ns_to_stamp(stamp_ns), frame_id=self.values['frame_id'])
        doc = {'stamp_ns': int(stamp_ns), 'frame_index': k,
               'exposure_time_us': setting.exposure_time_us, 'gain_db': setting.gain_db,
               'e_s': setting.e_s, 'command_from_frame': command_from,
               'latency_frames': self.values['latency_frames'],
               'illumination_scale': _finite_or_none(meta.get('illumination_scale')),
               'radiance_scale': _finite_or_none(meta.get('radiance_scale', 1.0)),
               'event': bool(meta.get('event')) if not isinstance(meta.get('event'), str)
               else meta.get('event'), 'gt': gt}
        self.exposure_pub.publish(String(data=json.dumps(doc)))
        focal = self.values['focal_px'] or None
        info = camera_info_for(raw.shape[1], raw.shape[0], self.values['frame_id'], focal)
        info.header = header
        self.image_pub.publish(array_to_image(raw, self.encoding, header))
        self.info_pub.publish(info)
        done_ns = self.get_clock().now().nanoseconds
        with self._lock:
            self._wait_start = done_ns  # lockstep: the timeout runs from the publication
        delay_ms = (done_ns - due_ns) * 1e-6
        self._delays_ms.append(delay_ms)
        if self.values['mode'] == 'realtime' and delay_ms > self._nominal_ns * 1e-6:
            self._late += 1
            self.get_logger().warning(
                f'camera_sim: frame {k} left {delay_ms:.1f} ms after it was due (frame period '
                f'{self._nominal_ns * 1e-6:.1f} ms; {self._late} late so far)',
                throttle_duration_sec=5.0)

    def _render_failed(self, err: Exception) -> None:
        self.get_logger().error(f'camera_sim: cannot render a frame: {type(err).__name__}: '
                                f'{err}', throttle_duration_sec=5.0)

    # -- parameters

    def _validate(self, params) -> SetParametersResult:
        _, reason = P.merged_values(self, self.specs, params)
        if reason:
            return SetParametersResult(successful=False, reason=reason)
        return SetParametersResult(successful=True)

    def _apply(self, params) -> None:
        names = {p.name for p in params}
        self.values = P.read(self, self.specs)
        if names & {'exposure_time', 'gain'}:
            setting = ExposureSetting(self.values['exposure_time'], self.values['gain'])
            with self._lock:
                after = self._published - 1
                effective = self._published + self.values['latency_frames']
                self._schedule[effective] = (setting, after)
                if not self._answered:
                    self._commands += 1
                self._answered = True

    def destroy_node(self):
        """Stop the frame producer and the render thread, then destroy the node."""
        self._source.stop()
        self._renderer.stop()
        return super().destroy_node()


def bayer_sampled(frames, pattern: str):
    """
    ``(offset, radiance (H, W, 3), gt, meta)`` -> ``(offset, phi (H', W'), gt, meta)``.

    The colour-filter sampling (:func:`~neural_ae.core.sensor.mosaic`) of the even-cropped
    radiance runs here, in the frame producer thread, so the render thread only draws the
    noise (:func:`~neural_ae.core.sensor.capture`; the same result as ``capture_rgb``).
    A static scene that yields the same array again is sampled once.
    """
    last, phi = None, None
    for offset, radiance, gt, meta in frames:
        if radiance is not last:
            last, phi = radiance, mosaic(_even(radiance), pattern)
        yield offset, phi, gt, meta


def _finite_or_none(v):
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def main(args=None) -> int:
    """Run ``camera_sim_node`` until interrupted; clean up in any case."""
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    stop = StopRequest().install()  # a signal ends the spin between callbacks
    node = None
    try:
        node = CameraSimNode()
        spin_until_stopped(node, stop)
    except ExternalShutdownException:
        pass
    except (ConfigError, NeuralAEError) as err:
        print(f'camera_sim_node: error: {err}')
        return 2
    finally:
        stop.ignore_further()
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
