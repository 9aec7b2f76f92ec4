"""
auto_exposure_node: a lifecycle node that sets a camera's exposure from its own images.

Per frame: ``camera/image_raw`` (``bayer_*16`` holding 12-bit data; ``mono16``, ``rgb8``,
``bgr8`` and the other encodings of :data:`neural_ae.ros.conversions.RAW_ENCODINGS` too)
-> raw array -> the core step (:class:`neural_ae.core.loop.FrameStep`: optional detector,
ISP -> Faster R-CNN, whose ``layer2`` map from the same single backbone pass feeds the
controllers that need features -> controller from the registry,
:func:`neural_ae.core.controllers.build_controller`) -> one asynchronous
``<driver_node>/set_parameters`` request (:class:`neural_ae.ros.actuator.CameraActuator`).

Threads: the image callback only drops the message into a one-slot mailbox (latest frame
wins; replaced frames are counted as dropped); a worker thread started on activate does
the conversion, inference and commanding, so the executor stays free for parameter
services, lifecycle transitions and the diagnostics timer. The debug image is rendered and
published by a third thread from its own one-slot mailbox (latest decision wins), after
the command went out, so it never delays the next frame's decision.

Which setting produced a frame: if ``exposure_feedback_topic`` (default
``camera/exposure``, a JSON ``std_msgs/String`` with ``stamp_ns``, ``exposure_time_us``,
``gain_db`` as published by ``camera_sim_node``) delivered a message with the frame's
stamp, that setting is passed to the controller (waiting up to ``feedback_wait_s`` for it
once feedback has been seen); otherwise the controller infers it from its own commands
and ``latency_frames``. Diagnostics say which source was used.

Lifecycle: configure builds the controller (and loads the model files: a neural
controller's ``model_path``, the ``detector_path``; a missing or unreadable file fails
the transition with an error log, the node stays unconfigured and alive), creates the
driver client, subscriptions and publishers; activate starts the worker and switches the
driver's own auto exposure off (``disable_driver_auto_exposure``); deactivate stops the
worker and switches it back on (``restore_driver_auto_exposure``); cleanup frees
everything. ``autostart`` configures and activates at start-up (for ``ros2 run``).
``backend`` (torch, onnxruntime, tensorrt) runs the networks from the files ``neural-ae
export`` wrote (in ``deploy_dir``, default beside each model file): configure checks the
backend's package, that each file is there, exported from the model file as it is now
(checkpoint SHA-256) for this sensor's frame size, and runs the networks once on a black
frame; any failure fails the transition with its one-line reason.

Publishes (with the input header): detections (``detections``,
``vision_msgs/Detection2DArray``; without vision_msgs JSON on ``detections_json``, see
:mod:`neural_ae.ros.detections`) when a detector is loaded, ``debug_image`` (rgb8: raw
preview, boxes, setting), and ``/diagnostics`` every ``diagnostics_period_s`` (exposure
[us], gain [dB], EV = log2(K t / 1 s), controller, decision latency, clamping, fallback,
driver reachable, dropped and bad frames).

Bad input never stops the node, and no command is sent for it:

- images: unsupported encodings, inconsistent sizes or steps, empty images and images
  declaring more than ``max_image_mpx`` are skipped before decoding with a throttled
  warning, counted as ``bad_frames`` (odd sizes are cropped to even);
- raw layout: ``bit_depth`` bits stored ``bit_shift`` bits up in the 16-bit word
  (defaults: the sensor's bit depth, 0; ``bit_shift -1`` = detect it). The first frames
  (and later any frame above the white level) are checked: values above the white level,
  data stored in the top bits, an ``is_bigendian`` flag that does not fit the data
  (:func:`neural_ae.ros.conversions.inspect_raw16`). A finding is logged once and shown
  on ``/diagnostics`` (``raw_check``, level WARN); frames are still used (clipped);
- exposure feedback: messages over ``max_feedback_chars``, malformed or deeply nested
  JSON, wrong types, non-finite or out-of-range values, non-integer stamps are refused
  (:mod:`neural_ae.ros.feedback`), with a throttled warning, counted as ``bad_feedback``;
- an unreachable driver gives a throttled warning with the reason and
  ``driver reachable: false``; what is sent lies inside the configured exposure and gain
  bounds exactly, in the driver's units too (:class:`neural_ae.ros.actuator.CommandBounds`);
- parameters: out-of-range values are rejected by their descriptors, inconsistent
  combinations and model files that are missing or not a torch checkpoint by the
  on-set-parameters callback (with the reason). A model file that passes that check but
  cannot be built is reported when the worker tries it: the running controller stays,
  the controller parameters are set back to the running ones, and ``/diagnostics`` says
  WARN with the reason. ``/diagnostics`` always names the controller actually running
  (``controller``; ``controller_requested`` while a change is pending). A controller that
  needs backbone features gets its detector from its model file when ``detector_path`` is
  empty, at configure and at a runtime switch (loaded in the worker). Invalid values at
  start-up end :func:`main` with a one-line error and exit code 2.
"""
from collections import deque, OrderedDict
import math
from pathlib import Path
import sys
import threading
import time
from typing import Optional

import cv2
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from neural_ae.core.checkpoints import resolve_model_path, sniff_checkpoint
from neural_ae.core.controllers import (build_controller, controller_names, ExposureSetting,
                                        get_spec, specs)
from neural_ae.core.correction.perception import with_correction
from neural_ae.core.deploy import BACKENDS, DeployError, warm_up
from neural_ae.core.errors import ConfigError, ControllerError, ModelError, NeuralAEError
from neural_ae.core.loop import FrameStep
from neural_ae.core.models.perception import load_perception, Perception
from neural_ae.core.preview import render_raw
from neural_ae.core.sensor import load_sensor, SensorConfig
from neural_ae.ros import params as P
from neural_ae.ros.actuator import CameraActuator, CommandBounds, make_preset, PRESETS
from neural_ae.ros.conversions import (array_to_image, check_image_size, decode_raw,
                                       ImageConversionError, inspect_raw16,
                                       raw_frame_from_array, short_name, stamp_to_ns)
from neural_ae.ros.detections import DetectionPublisher
from neural_ae.ros.feedback import FeedbackError, FeedbackLimits, parse_exposure_feedback
from neural_ae.ros.qos import command_qos, diagnostics_qos, image_qos
from neural_ae.ros.stopping import spin_until_stopped, StopRequest
import numpy as np
from rcl_interfaces.msg import SetParametersResult
import rclpy
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import Image
from std_msgs.msg import String

__all__ = ['AutoExposureNode', 'LatestFrameMailbox', 'NODE_CONTROLLERS',
           'ae_parameter_specs', 'main', 'shutdown_node']

NODE_CONTROLLERS = controller_names(live=True)
"""Controllers the node can run: the registry's live ones (the oracle needs the scene)."""
LATENCY_WINDOW = 100
"""Decision latencies kept for the diagnostics' percentiles [frames]."""
RAW_CHECK_FRAMES = 30
"""Frames fully checked for raw-layout misreads after configure or a bit_* change."""
RAW_PARAMS = frozenset({'bit_depth', 'bit_shift'})
"""Parameters that change how raw frames are read."""


def personalization_specs() -> list:
    """Metering and personalization parameters (issue 12, :mod:`neural_ae.ros.personalization`)."""
    from neural_ae.core.controllers.metering import METERING_MODES

    return [
        P.ParamSpec('metering_mode', 'global', 'Metering of average and personalized: global, '
                    'centre_weighted, spot, matrix, roi, detections.', choices=METERING_MODES),
        P.ParamSpec('metering_roi', '', 'Metering region "x,y,w,h" normalised to [0, 1] '
                    '(mode roi; spot centre); empty = none. The metering_roi topic overrides.'),
        P.ParamSpec('metering_classes', ['person'], 'Detector classes metered by mode '
                    'detections (needs detector_path).'),
        P.ParamSpec('metering_zones', '', 'Matrix metering weights, rows ";" of "," numbers '
                    '(top row first); empty = lower centre favoured.'),
        P.ParamSpec('metering_roi_topic', 'metering_roi', 'sensor_msgs/RegionOfInterest '
                    'topic (pixels) that sets the metering region at run time.',
                    read_only=True),
        P.ParamSpec('feedback_topic', 'exposure_user_feedback', 'JSON std_msgs/String '
                    '{"stamp_ns", "label": under|well|over} on a decided frame '
                    '(controller personalized).', read_only=True),
        P.ParamSpec('feedback_source', 'topic', 'topic: labels from feedback_topic; judge: '
                    'also label frames with the exposure assessor (judge_model_path).',
                    read_only=True, choices=('topic', 'judge')),
        P.ParamSpec('judge_model_path', '', 'Exposure assessor model for feedback_source '
                    'judge.', read_only=True),
        P.ParamSpec('personalized_model_path', 'out/personalized/online.pt', 'Where the '
                    'personalized weights are saved (service ~/save_personalized, shutdown); '
                    'never the base model.', read_only=True),
        P.ParamSpec('personalization_ring', 64, 'Recent decided frames kept for feedback '
                    '[frames].', 1, 10000, read_only=True),
        P.ParamSpec('personalization_rate_hz', 2.0, 'At most this many policy-gradient '
                    'updates per second [1/s].', 0.01, 100.0, read_only=True),
        P.ParamSpec('personalization_lr', 0.001, 'Adam learning rate of the online updates '
                    '[1/step].', 1e-6, 1.0, read_only=True),
        P.ParamSpec('feedback_max_per_s', 5.0, 'More feedback messages per second are '
                    'dropped as a flood [1/s].', 0.1, 1000.0, read_only=True),
    ]


def controller_params() -> frozenset:
    """Return the parameters whose change rebuilds the controller (registry node_kwargs too)."""
    names = {'controller', 'model_path'}
    for spec in specs(live=True):
        names.update(spec.node_kwargs)
    return frozenset(names)


def ae_parameter_specs(sensor: SensorConfig) -> list:
    """Every parameter of :class:`AutoExposureNode` for ``sensor``."""
    presets = tuple(sorted(PRESETS))
    return [
        P.ParamSpec('sensor', 'imx249', 'Sensor preset name (config/sensors/<name>.yaml) or '
                    'YAML path: black/white level, Bayer pattern, exposure and gain limits.',
                    read_only=True),
        P.ParamSpec('controller', 'average', 'Exposure controller (a live controller of the '
                    'registry).', choices=controller_names(live=True)),
        P.ParamSpec('model_path', '', 'Model file of a trained controller (*_nn); relative '
                    "names also look in the package's models/; empty = the controller's "
                    'shipped model (registry default_model).'),
        P.ParamSpec('detector_path', '', 'Detector checkpoint (needed by semantic_nn and '
                    'hybrid_nn, optional otherwise); empty = no detector.', read_only=True),
        P.ParamSpec('device', 'cpu', 'Torch device for the networks.', read_only=True,
                    choices=('cpu', 'cuda')),
        P.ParamSpec('backend', 'torch', 'Inference backend of the networks: torch, '
                    'onnxruntime or tensorrt (the files neural-ae export wrote; a missing or '
                    'stale one fails configure).', read_only=True, choices=BACKENDS),
        P.ParamSpec('deploy_dir', '', 'Folder of the exported ONNX / TensorRT files; empty = '
                    'beside each model file.', read_only=True),
        P.ParamSpec('correction_model', '', 'Correction model (issue 14) whose corrected '
                    'image the detector sees instead of the ISP image; empty = off; a bad '
                    'file fails configure.', read_only=True),
        P.ParamSpec('average_level', 0.5, 'Average AE: target mean raw level as a fraction '
                    'of the range above black [-].', 0.05, 0.95),
        *personalization_specs(),
        *P.controller_option_specs(sensor),
        P.ParamSpec('driver_preset', 'generic', 'Camera driver naming and units: generic '
                    '(exposure_time us, gain dB), v4l2_camera, camera_ros.', read_only=True,
                    choices=presets),
        P.ParamSpec('driver_node', '', 'Driver node whose parameters are set (its '
                    "<name>/set_parameters service); empty = the preset's.", read_only=True),
        P.ParamSpec('exposure_param', '', 'Driver parameter for exposure time; empty = the '
                    "preset's.", read_only=True),
        P.ParamSpec('exposure_unit_us', 0.0, 'Microseconds per driver exposure unit; '
                    "0 = the preset's [us].", 0.0, 1e6, read_only=True),
        P.ParamSpec('gain_param', '', "Driver parameter for gain; empty = the preset's, "
                    'none = do not command gain.', read_only=True),
        P.ParamSpec('gain_unit', '', 'Unit of the driver gain: db or linear; empty = the '
                    "preset's.", read_only=True, choices=('', 'db', 'linear')),
        P.ParamSpec('gain_scale', 0.0, 'Driver gain value per dB (db) or per 1x (linear); '
                    "0 = the preset's [-].", 0.0, 1e6, read_only=True),
        P.ParamSpec('auto_exposure_param', '', "Driver's own auto-exposure switch; "
                    "empty = the preset's, none = no switch.", read_only=True),
        P.ParamSpec('disable_driver_auto_exposure', True, "Switch the driver's auto exposure "
                    'off on activate.', read_only=True),
        P.ParamSpec('restore_driver_auto_exposure', True, 'Switch it back on on deactivate.',
                    read_only=True),
        P.ParamSpec('driver_timeout_s', 1.0, 'A SetParameters request without answer after '
                    'this long marks the driver unreachable [s].', 0.05, 30.0),
        P.ParamSpec('exposure_feedback_topic', 'camera/exposure', 'JSON topic telling which '
                    'setting produced each frame (camera_sim_node); empty = infer it from '
                    'latency_frames.', read_only=True),
        P.ParamSpec('feedback_wait_s', 0.05, "Wait this long for a frame's feedback once "
                    'feedback has been seen [s].', 0.0, 1.0),
        P.ParamSpec('publish_debug_image', True, 'Publish the annotated debug_image.'),
        P.ParamSpec('debug_image_max_width', 640, 'Debug image width limit [px].', 16, 8192),
        P.ParamSpec('debug_image_period_s', 0.0, 'At most one debug image per this period; '
                    '0 = every processed frame [s].', 0.0, 60.0),
        P.ParamSpec('detection_score_threshold', 0.3, 'Publish detections at least this '
                    'confident [-].', 0.0, 1.0),
        P.ParamSpec('diagnostics_period_s', 1.0, 'Period of /diagnostics [s].', 0.05, 60.0),
        P.ParamSpec('bad_input_warn_period_s', 5.0, 'At most one bad-input warning per '
                    'this period and topic; also the period of the unreachable-driver '
                    'warning [s].', 0.1, 3600.0),
        P.ParamSpec('bit_depth', int(sensor.bit_depth), 'Significant bits of 16-bit raw '
                    "images (bayer_*16, mono16); values are rescaled to the sensor's "
                    f"{sensor.bit_depth} bits. Default: the sensor's [bit].", 8, 16),
        P.ParamSpec('bit_shift', 0, 'Raw values are stored shifted left by this many bits '
                    '(4: 12-bit data in the top bits of a 16-bit word); -1 = auto: 0 unless '
                    'the first frames show data in the top bits. bit_depth + bit_shift <= '
                    '16 [bit].', -1, 8),
        P.ParamSpec('max_image_mpx', 64.0, 'Images declaring more pixels are refused '
                    'before decoding [Mpx].', 0.001, 1000.0),
        P.ParamSpec('max_feedback_chars', 65536, 'Exposure feedback messages longer than '
                    'this are refused before parsing [characters].', 256, 16777216),
        P.ParamSpec('autostart', False, 'Configure and activate at start-up (main() only).',
                    read_only=True),
    ]


# --------------------------------------------------------------------------- helpers


class LatestFrameMailbox:
    """A one-slot mailbox: :meth:`put` replaces what waits, :meth:`take` empties it."""

    def __init__(self):
        self._cond = threading.Condition()
        self._item = None
        self.dropped = 0

    def put(self, item) -> None:
        """Leave ``item``; a frame still waiting is dropped (counted)."""
        with self._cond:
            if self._item is not None:
                self.dropped += 1
            self._item = item
            self._cond.notify()

    def take(self, timeout: float):
        """Return the waiting item (or None after ``timeout`` seconds)."""
        with self._cond:
            if self._item is None:
                self._cond.wait(timeout)
            item, self._item = self._item, None
            return item

    def clear(self) -> None:
        """Drop what waits without counting it."""
        with self._cond:
            self._item = None


def _model_path(values: dict) -> Path:
    """Return the model file the parameters name (``model_path`` or the registry default)."""
    return resolve_model_path(values['model_path'],
                              get_spec(values['controller']).default_model)


def command_bounds(values: dict, sensor: SensorConfig) -> CommandBounds:
    """Return the exposure and gain bounds the parameters configure, in their own units."""
    t_lo = values['min_exposure_us'] or float(sensor.min_exposure_us)
    t_hi = values['max_exposure_us'] or float(sensor.max_exposure_us)
    g_hi = values['max_gain_db'] if values['max_gain_db'] >= 0 else float(sensor.max_gain_db)
    return CommandBounds(float(t_lo), float(t_hi), float(values['min_gain_db']), float(g_hi))


def value_problem(specs, values: dict, sensor: SensorConfig) -> Optional[str]:
    """Return why ``values`` are not a valid parameter set (type, range, choice, combination)."""
    for spec in specs:
        reason = P.check_value(spec, values[spec.name])
        if reason:
            return f'{spec.name}: {reason}'
    if values['bit_depth'] + max(values['bit_shift'], 0) > 16:
        return (f'bit_depth {values["bit_depth"]} + bit_shift {values["bit_shift"]} exceeds '
                'the 16 bits of the word')
    return P.check_options(values, sensor)


def _one_line(err: BaseException) -> str:
    return ' '.join(str(err).split()) or type(err).__name__


def loggable(text: str, limit: int = 300) -> str:
    """``text`` cut to ``limit`` characters, control characters and lone surrogates escaped."""
    text = str(text)[:limit]
    if text.isprintable():
        return text
    return ''.join(c if c.isprintable() else c.encode('unicode_escape', 'backslashreplace')
                   .decode('ascii') for c in text)


# --------------------------------------------------------------------------- node


class AutoExposureNode(LifecycleNode):
    """The auto-exposure lifecycle node; see the module docstring."""

    def __init__(self, node_name: str = 'auto_exposure', **kwargs):
        super().__init__(node_name, **kwargs)
        self.sensor = load_sensor(P.declare_sensor(self))
        self.specs = ae_parameter_specs(self.sensor)
        self._option_names = {s.name for s in P.controller_option_specs(self.sensor)}
        self.values = P.declare(self, self.specs)
        reason = value_problem(self.specs, self.values, self.sensor)
        if reason:
            self.destroy_node()
            raise ConfigError(f'invalid parameter: {reason}')
        self._lock = threading.RLock()
        self._mailbox = LatestFrameMailbox()
        self._stop = threading.Event()
        self._worker: Optional[threading.Thread] = None
        self._debug_box = LatestFrameMailbox()
        self._debug_worker: Optional[threading.Thread] = None
        self._feedback = OrderedDict()
        self._feedback_cond = threading.Condition()
        self._feedback_seen = False
        self._controller = None
        self._perception: Optional[Perception] = None
        self._actuator: Optional[CameraActuator] = None
        self._dirty = False
        self._initial: Optional[ExposureSetting] = None
        self._subs = []
        self._det_pub: Optional[DetectionPublisher] = None
        self._debug_pub = None
        self._configured = False
        self._active = False
        self.frames_processed = 0
        self.bad_frames = 0
        self.bad_feedback = 0
        self.errors = 0
        self._last_bad = ''
        self._last_bad_ns = 0
        self._last_bad_feedback = ''
        self._last_bad_feedback_ns = 0
        self._last_error = ''
        self._perception_source = ''
        self._running_values: dict = {}
        self._controller_error = ''
        self._reverting: Optional[int] = None
        self._raw_checked = 0
        self._raw_finding = None
        self._raw_warned = set()
        self._auto_shift: Optional[int] = None
        self._feedback_limits = FeedbackLimits.for_sensor(self.sensor,
                                                          self.values['max_feedback_chars'])
        self._last = {}
        self._latencies_ms: deque = deque(maxlen=LATENCY_WINDOW)
        self._step: Optional[FrameStep] = None
        self._personal = None   # PersonalizationSession (issue 12)
        self._last_debug = -math.inf
        self._said_pattern = False
        self.add_on_set_parameters_callback(self._validate)
        self.add_post_set_parameters_callback(self._apply)
        self._diag_pub = self.create_publisher(DiagnosticArray, '/diagnostics',
                                               diagnostics_qos())
        self._diag_timer = self.create_timer(self.values['diagnostics_period_s'],
                                             self._on_diag_timer)

    # ------------------------------------------------------------------ lifecycle

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Build the controller, load models, create clients and topics."""
        values = P.read(self, self.specs)
        try:
            controller = self._build_controller(values)
            perception, source = with_correction(*self._load_perception(values),
                                                 values['correction_model'], self.sensor,
                                                 values['device'])
            preset = self._preset(values)
            step = FrameStep(controller, perception)
            warm_up(step, (self.sensor.height, self.sensor.width), values['backend'])
            bounds = command_bounds(values, self.sensor)
        except (NeuralAEError, FileNotFoundError, OSError) as err:
            self._last_error = f'configure failed: {err}'
            self.get_logger().error(self._last_error)
            return TransitionCallbackReturn.FAILURE
        except Exception as err:  # noqa: BLE001 - rclpy would swallow it without a word
            self._last_error = f'configure failed: {type(err).__name__}: {err}'
            self.get_logger().error(self._last_error)
            return TransitionCallbackReturn.FAILURE
        with self._lock:
            self._controller, self._perception = controller, perception
            self._perception_source = source
            self._step = step
            self._dirty = False
            self.values = values
            self._running_values = dict(values)
            self._controller_error = ''
        self._reset_raw_check()
        self._actuator = CameraActuator(self, preset, values['driver_node'] or None,
                                        values['driver_timeout_s'], bounds=bounds)
        self._subs.append(self.create_subscription(Image, 'camera/image_raw', self._on_image,
                                                   image_qos(1)))
        if values['exposure_feedback_topic']:
            self._subs.append(self.create_subscription(
                String, values['exposure_feedback_topic'], self._on_feedback, command_qos(50)))
        if perception is not None:
            self._det_pub = DetectionPublisher(self.create_lifecycle_publisher, 'detections',
                                               command_qos(10), self.get_logger(),
                                               score_threshold=values['detection_score_threshold'])
        self._debug_pub = self.create_lifecycle_publisher(Image, 'debug_image', image_qos(1))
        from neural_ae.ros.personalization import PersonalizationSession
        self._personal = PersonalizationSession(self, values)
        self._configured = True
        self._last_error = ''
        self.get_logger().info(
            f'configured: controller {values["controller"]}, detector '
            f'{source or "none"}, driver {self._actuator.driver_node} '
            f'({preset.name}: {preset.exposure_param}, {preset.gain_param or "no gain"})')
        return super().on_configure(state)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Start the worker; switch the driver's own auto exposure off."""
        self._stop.clear()
        self._mailbox.clear()
        self._active = True
        self._worker = threading.Thread(target=self._work, name='auto_exposure_worker',
                                        daemon=True)
        self._worker.start()
        self._debug_box.clear()
        self._debug_worker = threading.Thread(target=self._debug_work,
                                              name='auto_exposure_debug', daemon=True)
        self._debug_worker.start()
        if self.values['disable_driver_auto_exposure']:
            self._actuator.set_auto_exposure(False)
        if self._initial is None:
            self._actuator.read_current(self._on_driver_setting)
        self.get_logger().info('active')
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Stop the worker; give exposure back to the driver if configured."""
        self._stop_worker()
        if self.values['restore_driver_auto_exposure'] and self._actuator is not None:
            self._actuator.set_auto_exposure(True)
        self.get_logger().info('inactive')
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Free models, clients, subscriptions and publishers."""
        self._release()
        return super().on_cleanup(state)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Stop and free everything."""
        self._stop_worker()
        self._release()
        return super().on_shutdown(state)

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Recover to unconfigured after an error in a transition."""
        self._stop_worker()
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def _stop_worker(self) -> None:
        self._active = False
        self._stop.set()
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.join(timeout=10.0)
        debug, self._debug_worker = self._debug_worker, None
        if debug is not None:
            debug.join(timeout=10.0)

    def _release(self) -> None:
        if self._personal is not None:
            self._personal.close()
            self._personal = None
        for sub in self._subs:
            self.destroy_subscription(sub)
        self._subs = []
        if self._det_pub is not None:
            self.destroy_lifecycle_publisher(self._det_pub.publisher)
            self._det_pub = None
        if self._debug_pub is not None:
            self.destroy_lifecycle_publisher(self._debug_pub)
            self._debug_pub = None
        if self._actuator is not None:
            self._actuator.destroy()
            self._actuator = None
        with self._lock:
            self._controller = None
            self._perception = None
            self._perception_source = ''
            self._step = None
            self._running_values = {}
            self._controller_error = ''
        self._initial = None
        self._configured = False

    def _preset(self, v: dict):
        none = {'none': ''}
        return make_preset(
            v['driver_preset'],
            exposure_param=v['exposure_param'] or None,
            exposure_unit_us=v['exposure_unit_us'] or None,
            gain_param=none.get(v['gain_param'], v['gain_param']) if v['gain_param'] else None,
            gain_unit=v['gain_unit'] or None, gain_scale=v['gain_scale'] or None,
            auto_param=(none.get(v['auto_exposure_param'], v['auto_exposure_param'])
                        if v['auto_exposure_param'] else None))

    def _model_path_for_personalization(self) -> str:
        """Return the running controller's model file (never overwritten by personalization)."""
        with self._lock:
            return str(_model_path(self._running_values or self.values))

    def _build_controller(self, values: dict):
        """Build a fresh controller for ``values`` (model files loaded and checked here)."""
        name = values['controller']
        spec = get_spec(name)
        kw = {key: values[param] for param, key in spec.node_kwargs.items()}
        try:
            return build_controller(name, P.options_from_values(values), self.sensor,
                                    model=values['model_path'], device=values['device'],
                                    backend=values['backend'],
                                    deploy_dir=values['deploy_dir'] or None, **kw)
        except ModelError as err:
            if not spec.trained:
                raise
            raise ModelError(f'{err} (set model_path, or train one with neural-ae train)') \
                from err

    def _load_perception(self, values: dict) -> tuple:
        """
        ``(perception, source)``: the detector of ``detector_path``, else of the model file.

        The model file is read only for a controller that needs backbone features;
        ``source`` says where the detector came from (``''`` = none).
        """
        if values['detector_path']:
            return (load_perception(values['detector_path'], self.sensor, values['device'],
                                    **self._backend_kw(values)),
                    f'detector_path {values["detector_path"]}')
        if not get_spec(values['controller']).needs_features:
            return None, ''
        return self._perception_from_model(values), self._model_source(values)

    def _backend_kw(self, values: dict) -> dict:
        """``load_perception`` keywords of the ``backend`` / ``deploy_dir`` parameters."""
        return {'backend': values['backend'], 'deploy_dir': values['deploy_dir'] or None,
                'frame_size': (self.sensor.height, self.sensor.width)}

    @staticmethod
    def _model_source(values: dict) -> str:
        return f'model file {_model_path(values)}'

    def _perception_from_model(self, values: dict) -> Perception:
        path = _model_path(values)
        try:  # a training checkpoint carries the detector whose features it was trained on
            return load_perception(path, self.sensor, values['device'],
                                   **self._backend_kw(values))
        except DeployError:
            raise
        except ModelError as err:
            raise ModelError(f'controller {values["controller"]} needs backbone features: set '
                             f'detector_path (the model file holds no usable detector: {err})'
                             ) from err

    def _on_driver_setting(self, setting: Optional[ExposureSetting]) -> None:
        if setting is not None and setting.is_valid():
            self._initial = setting
            self.get_logger().info(f'driver reports {setting.exposure_time_us:g} us, '
                                   f'{setting.gain_db:g} dB')

    # ------------------------------------------------------------------ parameters

    def _validate(self, params) -> SetParametersResult:
        """
        Accept or refuse a parameter change (on the executor: cheap checks only).

        Ranges, choices and option combinations; for a configured node whose controller
        changes, a trained controller's model file must exist and look like a torch
        checkpoint (its detector, when the controller needs features and no detector is
        loaded, comes from that file in the worker).
        """
        try:
            return self._validate_checked(params)
        except Exception as err:  # noqa: BLE001 - a parameter service must answer
            return SetParametersResult(successful=False, reason=f'cannot check: {err}'[:300])

    def _validate_checked(self, params) -> SetParametersResult:
        values, reason = P.merged_values(self, self.specs, params)
        if reason is None:
            reason = value_problem(self.specs, values, self.sensor)
        names = {p.name for p in params}
        if reason is None and self._configured and names & controller_params():
            spec = get_spec(values['controller'])
            problem = (sniff_checkpoint(_model_path(values), f'model file for {spec.name}')
                       if spec.trained else None)
            if problem:
                reason = problem
            elif spec.needs_features and not spec.trained and self._perception is None:
                reason = f'{values["controller"]} needs a detector (detector_path)'
        if reason:
            return SetParametersResult(successful=False, reason=reason)
        return SetParametersResult(successful=True)

    def _apply(self, params) -> None:
        names = {p.name for p in params}
        with self._lock:
            self.values = P.read(self, self.specs)
            reverting = self._reverting == threading.get_ident()
            if names & (controller_params() | self._option_names) and not reverting:
                self._dirty = True
            if self._det_pub is not None:
                self._det_pub.score_threshold = self.values['detection_score_threshold']
            if self._actuator is not None:
                self._actuator.timeout_s = self.values['driver_timeout_s']
            self._feedback_limits = FeedbackLimits.for_sensor(
                self.sensor, self.values['max_feedback_chars'])
        if names & RAW_PARAMS:
            self._reset_raw_check()

    # ------------------------------------------------------------------ input

    def _on_image(self, msg: Image) -> None:
        """Leave the frame for the worker (everything is checked there)."""
        if self._active:
            self._mailbox.put((msg, time.monotonic()))

    def _on_feedback(self, msg: String) -> None:
        """Remember which setting produced a frame; any message that is not trusted is refused."""
        try:
            feedback = parse_exposure_feedback(msg.data, self._feedback_limits)
        except FeedbackError as err:
            self._bad_feedback(str(err))
            return
        except Exception as err:  # noqa: BLE001 - a subscription callback survives any message
            self._bad_feedback(f'{type(err).__name__}: {err}')
            return
        with self._feedback_cond:
            self._feedback[feedback.stamp_ns] = feedback.setting
            self._feedback.move_to_end(feedback.stamp_ns)
            while len(self._feedback) > 256:
                self._feedback.popitem(last=False)
            self._feedback_seen = True
            self._feedback_cond.notify_all()

    def _used_setting(self, stamp_ns: int) -> Optional[ExposureSetting]:
        deadline = time.monotonic() + self.values['feedback_wait_s']
        with self._feedback_cond:
            while True:
                setting = self._feedback.get(stamp_ns)
                left = deadline - time.monotonic()
                if setting is not None or not self._feedback_seen or left <= 0:
                    return setting
                self._feedback_cond.wait(left)

    def _bad_input(self, text: str) -> None:
        """Count a refused image (its own throttled warning)."""
        text = loggable(text)
        with self._lock:
            self.bad_frames += 1
            self._last_bad = text
            self._last_bad_ns = time.monotonic_ns()
        self.get_logger().warning(f'skipping image: {text}',
                                  throttle_duration_sec=self.values['bad_input_warn_period_s'])

    def _bad_feedback(self, text: str) -> None:
        """Count a refused feedback message (its own throttled warning)."""
        text = loggable(text)
        with self._lock:
            self.bad_feedback += 1
            self._last_bad_feedback = text
            self._last_bad_feedback_ns = time.monotonic_ns()
        self.get_logger().warning(
            f'skipping exposure feedback on {self.values["exposure_feedback_topic"]}: {text}',
            throttle_duration_sec=self.values['bad_input_warn_period_s'])

    # ------------------------------------------------------------------ worker

    def _work(self) -> None:
        """Worker thread: convert, decide and command the latest frame."""
        self._serve(self._mailbox, lambda *item: self._process(*item), self._frame_failed)

    def _debug_work(self) -> None:
        """Debug thread: render and publish the latest decision's debug image."""
        self._serve(self._debug_box, lambda *item: self._publish_debug(*item),
                    self._debug_failed)

    def _serve(self, box: LatestFrameMailbox, handle, failed) -> None:
        """Call ``handle(*item)`` per item of ``box`` until stopped; ``failed(err)`` on errors."""
        while not self._stop.is_set():
            item = box.take(timeout=0.1)
            if item is None:
                continue
            try:
                handle(*item)
            except Exception as err:  # noqa: BLE001 - one bad item must not stop the thread
                failed(err)

    def _frame_failed(self, err: Exception) -> None:
        self.errors += 1
        self._last_error = loggable(f'{type(err).__name__}: {err}')
        self.get_logger().error(f'frame failed: {self._last_error}', throttle_duration_sec=5.0)

    def _debug_failed(self, err: Exception) -> None:
        self.get_logger().error(f'debug image failed: {type(err).__name__}: '
                                f'{loggable(str(err))}', throttle_duration_sec=5.0)

    def _decode(self, msg: Image) -> tuple:
        """``(raw, pattern)`` of an image, its layout checked; ImageConversionError if bad."""
        values = self.values
        check_image_size(msg, int(values['max_image_mpx'] * 1e6))
        arr, _ = decode_raw(msg)
        depth, shift = int(values['bit_depth']), 0
        if arr.dtype == np.uint16:
            auto = values['bit_shift'] < 0
            shift = (self._auto_shift or 0) if auto else int(values['bit_shift'])
            self._check_raw(arr, bool(msg.is_bigendian), depth, shift, auto)
            if auto:
                shift = self._auto_shift or 0
        return raw_frame_from_array(arr, msg.encoding, depth, shift, int(self.sensor.bit_depth))

    def _reset_raw_check(self) -> None:
        with self._lock:
            self._raw_checked = 0
            self._raw_finding = None
            self._raw_warned = set()
            self._auto_shift = None

    def _check_raw(self, arr, bigendian: bool, depth: int, shift: int, auto: bool) -> None:
        """Check the first frames (and any frame above the white level) for misreads."""
        if self._raw_checked >= RAW_CHECK_FRAMES and \
                (int(arr.max()) >> shift) <= (1 << depth) - 1:
            return
        self._raw_checked += 1
        check = inspect_raw16(arr, depth, shift, bigendian)
        if not check.finding:
            return
        fits = check.finding in ('shifted', 'low_bits')
        if auto and check.suggested_shift is not None and fits:
            with self._lock:
                self._auto_shift = check.suggested_shift
            self.get_logger().info(f'bit_shift auto: {check.suggested_shift} ({check.message})')
            return
        with self._lock:
            self._raw_finding = check
            first = check.finding not in self._raw_warned
            self._raw_warned.add(check.finding)
        if first:
            self.get_logger().warning(f'raw frames look misread: {check.message}')

    def _process(self, msg: Image, received: float) -> None:
        t_start = time.perf_counter()
        try:
            raw, pattern = self._decode(msg)
        except ImageConversionError as err:
            self._bad_input(str(err))
            return
        h, w = raw.shape
        raw = raw[:h - h % 2, :w - w % 2]
        if raw.shape[0] < 2 or raw.shape[1] < 2:
            self._bad_input(f'image {h}x{w} ({short_name(msg.encoding)}) is too small')
            return
        if pattern not in (None, self.sensor.bayer_pattern) and not self._said_pattern:
            self._said_pattern = True
            self.get_logger().warning(f'image pattern {pattern} differs from sensor '
                                      f'{self.sensor.name} ({self.sensor.bayer_pattern})')
        self._rebuild_if_dirty()
        with self._lock:
            step = self._step
        if step is None:
            return
        controller = step.controller
        stamp_ns = stamp_to_ns(msg.header.stamp)
        used = self._used_setting(stamp_ns)
        if controller.last_command is None:
            controller.reset(used or self._initial)
        try:
            result = step.step(raw, used)
        except ControllerError as err:
            self._bad_input(f'controller rejected the frame: {err}')
            return
        decision = result.decision
        if not decision.setting.is_valid():  # never sent; the controllers do not do this
            self._bad_input(f'controller produced an invalid setting {decision.setting}')
            return
        sent = self._actuator.command(decision.setting) if self._actuator else False
        if self._personal is not None:
            self._personal.after_step(stamp_ns, controller)
        latency_ms = (time.perf_counter() - t_start) * 1e3
        n_dets = 0
        seen = result.perception
        if seen is not None and self._det_pub is not None:
            n_dets = len(self._det_pub.publish(msg.header, seen.boxes, seen.labels, seen.scores))
        if self._debug_due():
            self._debug_box.put((msg.header, raw, pattern, decision, seen))
        with self._lock:
            self.frames_processed += 1
            self._latencies_ms.append(latency_ms)
            self._last = {
                'setting': decision.setting, 'target_e_s': decision.target_e_s,
                'clamped': decision.clamped, 'converged': decision.converged,
                'fallback': decision.fallback, 'latency_ms': latency_ms,
                'perception_ms': result.timings.perception_ms,
                'controller_ms': result.timings.controller_ms,
                'queue_ms': (t_start - received) * 1e3 if received <= t_start else 0.0,
                'used_source': ('feedback' if used is not None else
                                f'inferred (latency {controller.options.latency_frames})'),
                'used': used, 'sent': sent, 'detections': n_dets,
                'reason': decision.info.get('fallback_reason', '')}

    def _debug_due(self) -> bool:
        """Whether a debug image goes out for this frame (``debug_image_period_s``)."""
        if not self.values['publish_debug_image'] or self._debug_pub is None:
            return False
        now = time.monotonic()
        if now - self._last_debug < self.values['debug_image_period_s']:
            return False
        self._last_debug = now
        return True

    def _rebuild_if_dirty(self) -> None:
        """
        Build the controller the parameters now ask for, outside the lock, then swap it in.

        Loading a model (``torch.load``) can take long; ``_apply`` and ``diagnostics()``
        keep answering meanwhile. A controller that needs backbone features while no
        detector of its own is loaded gets the one of its model file (also loaded here). A
        failed build keeps the old controller, sets the controller parameters back to the
        running ones and leaves the reason for ``/diagnostics`` (WARN).
        """
        with self._lock:
            if not self._dirty:
                return
            self._dirty = False
            values = dict(self.values)
            perception, source = self._perception, self._perception_source
        try:
            new = self._build_controller(values)
            if get_spec(values['controller']).needs_features and not values['detector_path'] \
                    and source != self._model_source(values):
                perception, source = with_correction(
                    self._perception_from_model(values), self._model_source(values),
                    values['correction_model'], self.sensor, values['device'])
            step = FrameStep(new, perception)
            warm_up(step, (self.sensor.height, self.sensor.width), values['backend'])
            bounds = command_bounds(values, self.sensor)
        except Exception as err:  # noqa: BLE001 - a model file is outside input: any failure
            self._rebuild_failed(values, err)
            return
        with self._lock:
            old = self._controller
            if old is not None and old.last_command is not None:
                new.reset(old.last_command)
            self._controller, self._step = new, step
            self._perception, self._perception_source = perception, source
            self._running_values = values
            self._controller_error = ''
            if self._actuator is not None:
                self._actuator.bounds = bounds
        if perception is not None and self._det_pub is None:
            self._det_pub = DetectionPublisher(
                self.create_lifecycle_publisher, 'detections', command_qos(10),
                self.get_logger(), score_threshold=values['detection_score_threshold'])
            if self._active:
                self._det_pub.publisher.on_activate(None)
        self.get_logger().info(f'controller {new.name} with {new.options}'
                               + (f', detector from {source}' if source else ''))

    def _rebuild_failed(self, values: dict, err: Exception) -> None:
        """Keep the running controller, set its parameters back, say why (log, diagnostics)."""
        with self._lock:
            running = dict(self._running_values)
            name = self._controller.name if self._controller is not None else 'none'
            self._controller_error = (f'running {name}: {values["controller"]} not applied '
                                      f'({_one_line(err)[:300]})')
            self._last_error = f'controller not changed: {_one_line(err)}'
            names = sorted((controller_params() | self._option_names) & set(running))
            changed = [n for n in names if running[n] != self.values.get(n)]
            pending = self._dirty  # changed again meanwhile: the next rebuild decides
        self.get_logger().error(f'{self._controller_error}; parameters '
                                f'{", ".join(changed) or "unchanged"} set back')
        if pending or not changed:
            return
        self._reverting = threading.get_ident()
        try:
            results = self.set_parameters([Parameter(n, value=running[n]) for n in changed])
        finally:
            self._reverting = None
        refused = [r.reason for r in results if not r.successful]
        if refused:
            self.get_logger().error(f'cannot set the parameters back: {"; ".join(refused)}')

    def _publish_debug(self, header, raw, pattern, decision, seen) -> None:
        pub = self._debug_pub
        if pub is None:
            return
        rgb = render_raw(raw, self.sensor.black_level_dn, self.sensor.white_level_dn,
                         pattern or self.sensor.bayer_pattern,
                         max_width=self.values['debug_image_max_width'])
        scale = rgb.shape[1] / raw.shape[1]
        rgb = np.ascontiguousarray(rgb)
        if seen is not None:
            for box, score in zip(seen.boxes, seen.scores):
                if score < self.values['detection_score_threshold']:
                    continue
                x1, y1, x2, y2 = (int(round(float(v) * scale)) for v in box)
                cv2.rectangle(rgb, (x1, y1), (x2, y2), (255, 200, 0), 1)
        s = decision.setting
        text = (f'{self.values["controller"]} {s.exposure_time_us:.0f}us '
                f'{s.gain_db:.1f}dB EV{math.log2(s.e_s):+.2f}')
        cv2.putText(rgb, text, (2, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (255, 255, 255), 1,
                    cv2.LINE_AA)
        pub.publish(array_to_image(rgb, 'rgb8', header))

    # ------------------------------------------------------------------ diagnostics

    def _on_diag_timer(self) -> None:
        """Poll the actuator, warn (throttled) about an unreachable driver, publish."""
        try:
            actuator = self._actuator
            if actuator is not None:
                actuator.poll()
                reason = actuator.unreachable_reason()
                if reason and self._active:
                    self.get_logger().warning(
                        f'driver {actuator.driver_node} unreachable: {reason}',
                        throttle_duration_sec=self.values['bad_input_warn_period_s'])
            self._diag_pub.publish(self.diagnostics())
        except Exception as err:  # noqa: BLE001 - the timer must keep running
            self.errors += 1
            self._last_error = f'diagnostics failed: {type(err).__name__}: {err}'
            self.get_logger().error(self._last_error, throttle_duration_sec=5.0)

    def lifecycle_state(self) -> str:
        """Return the current lifecycle state's label (``'unconfigured'``, ``'active'``...)."""
        return self._state_machine.current_state[1]

    def diagnostics(self) -> DiagnosticArray:
        """Build the node's ``DiagnosticArray`` now."""
        with self._lock:
            last = dict(self._last)
            lat = list(self._latencies_ms)
            running = self._controller.name if self._controller is not None else 'none'
            requested = self.values['controller']
            controller_error = self._controller_error
            raw_finding = self._raw_finding
            raw_checked = self._raw_checked
            auto_shift = self._auto_shift
            source = self._perception_source
            pending = self._dirty
        actuator = self._actuator
        act = actuator.status() if actuator is not None else None
        state = self.lifecycle_state()
        shift = self.values['bit_shift']
        values = {'state': state,
                  'controller': running if self._configured else requested,
                  'frames_processed': self.frames_processed,
                  'frames_dropped': self._mailbox.dropped, 'bad_frames': self.bad_frames,
                  'bad_feedback': self.bad_feedback,
                  'errors': self.errors, 'last_bad_input': self._last_bad,
                  'last_bad_feedback': self._last_bad_feedback,
                  'detector': source or 'none',
                  'bit_depth': self.values['bit_depth'],
                  'bit_shift': (shift if shift >= 0 else
                                f'auto ({auto_shift if auto_shift is not None else 0})'),
                  'raw_check': (raw_finding.message if raw_finding is not None
                                else f'ok ({raw_checked} frames checked)')}
        if self._configured and (pending or requested != running):
            values['controller_requested'] = requested
        if controller_error:
            values['controller_error'] = controller_error
        if self._det_pub is not None:
            values['detections_topic'] = self._det_pub.topic
        setting = last.get('setting')
        if setting is not None:
            values.update({
                'exposure_time_us': f'{setting.exposure_time_us:.1f}',
                'gain_db': f'{setting.gain_db:.2f}',
                'ev': f'{math.log2(setting.e_s):.3f}',
                'target_ev': f'{math.log2(last["target_e_s"]):.3f}',
                'clamped': last['clamped'], 'converged': last['converged'],
                'fallback': last['fallback'], 'used_setting_source': last['used_source'],
                'decision_latency_ms': f'{last["latency_ms"]:.2f}',
                'decision_latency_p90_ms': f'{np.percentile(lat, 90):.2f}',
                'queue_latency_ms': f'{last["queue_ms"]:.2f}',
                'detections': last['detections']})
        level, message = DiagnosticStatus.OK, state
        if act is not None:
            values.update({
                'driver_reachable': act['reachable'], 'driver_node': act['driver_node'],
                'driver_preset': act['preset'], 'commands_sent': act['sent'],
                'commands_succeeded': act['succeeded'], 'commands_rejected': act['rejected'],
                'command_timeouts': act['timeouts'], 'driver_last_error': act['last_error'],
                'driver_unreachable_reason': act['unreachable_reason'],
                'driver_round_trip_ms': (f'{act["round_trip_ms"]:.2f}'
                                         if math.isfinite(act['round_trip_ms']) else 'n/a')})
        else:
            values['driver_reachable'] = False
        if self._personal is not None:
            values.update(self._personal.stats())
        now_ns = time.monotonic_ns()
        recent_bad = now_ns - self._last_bad_ns < 5e9 and self._last_bad_ns
        recent_feedback = (now_ns - self._last_bad_feedback_ns < 5e9
                           and self._last_bad_feedback_ns)
        if self._last_error and not self._configured:
            level, message = DiagnosticStatus.ERROR, self._last_error
        elif state == 'active':
            if act is not None and not act['reachable']:
                level, message = DiagnosticStatus.WARN, (
                    f'driver {act["driver_node"]} unreachable: {act["unreachable_reason"]}')
            elif controller_error:
                level, message = DiagnosticStatus.WARN, controller_error
            elif raw_finding is not None:
                level, message = DiagnosticStatus.WARN, f'raw format: {raw_finding.message}'
            elif last.get('fallback'):
                level, message = DiagnosticStatus.WARN, f'fallback: {last["reason"]}'
            elif recent_bad:
                level, message = DiagnosticStatus.WARN, f'bad input: {self._last_bad}'
            elif recent_feedback:
                level, message = DiagnosticStatus.WARN, (
                    f'bad exposure feedback: {self._last_bad_feedback}')
            else:
                message = 'ok'
        elif controller_error:
            level, message = DiagnosticStatus.WARN, controller_error
        status = DiagnosticStatus(
            level=level, name=f'{self.get_name()}: auto exposure', message=message[:200],
            hardware_id=act['driver_node'] if act else '',
            values=[KeyValue(key=k, value=_kv(v)) for k, v in values.items()])
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        return array


def _kv(value) -> str:
    if isinstance(value, bool):
        return 'true' if value else 'false'
    return str(value)


def main(args=None) -> int:
    """
    Run the node; with ``autostart`` configure and activate it.

    SIGINT and SIGTERM deactivate the node before exit, so the driver's own auto exposure
    is restored (when configured). Invalid parameters (out of range, wrong type, an
    unknown choice or combination) end it with one line on stderr and exit code 2.
    """
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    # SIGINT / SIGTERM only request the stop; the spin loop returns between callbacks, so
    # no KeyboardInterrupt lands inside rclpy (a lifecycle transition in progress, a
    # take_message) and the node is torn down from a quiet state.
    stop = StopRequest().install()
    node = None
    try:
        node = AutoExposureNode()
        if node.get_parameter('autostart').value and not stop.is_set():
            if node.trigger_configure() == TransitionCallbackReturn.SUCCESS \
                    and not stop.is_set():
                node.trigger_activate()
        spin_until_stopped(node, stop)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except (NeuralAEError, ParameterException) as err:
        print(f'auto_exposure_node: error: {_one_line(err)}', file=sys.stderr)
        return 2
    finally:
        # A second Ctrl-C (or SIGTERM) must not cut the deactivation short: it restores
        # the driver's own auto exposure.
        stop.ignore_further()
        if node is not None:
            shutdown_node(node)
        rclpy.try_shutdown()
    return 0


def shutdown_node(node: AutoExposureNode, executor=None, settle_s: float = 0.3) -> None:
    """Deactivate (restoring the driver's auto exposure), let requests go out, destroy."""
    try:
        if node.lifecycle_state() == 'active':
            node.trigger_deactivate()
            end = time.monotonic() + settle_s
            while time.monotonic() < end and node.context.ok():
                if executor is not None:
                    executor.spin_once(timeout_sec=0.05)
                else:
                    rclpy.spin_once(node, timeout_sec=0.05)
        if node.lifecycle_state() in ('inactive', 'active'):
            node.trigger_cleanup()
    except Exception as err:  # noqa: BLE001 - best effort at exit
        node.get_logger().warning(f'shutdown: {err}')
    node.destroy_node()


if __name__ == '__main__':
    raise SystemExit(main())
