"""
``exposure_monitor_node``: live pixel-level exposure assessment (P-IEANet, issue 13).

A separate lifecycle node, not a component of the AE node: it watches any camera topic
(also one whose exposure another AE controls, or a camera with its own AE), can run at
its own rate and on its own CPU core, and its failure never stops exposure control. The
logic lives in :mod:`neural_ae.core.assessment` (judge, monitor); this node is the shell.

- Subscribes ``image`` (sensor-data QoS): processed ``rgb8`` / ``bgr8`` or raw Bayer
  (``bayer_*8/16``, rendered with :func:`neural_ae.core.preview.render_raw`).
  Latest frame wins: the callback only stores the message; a worker thread assesses the
  newest one at most ``rate_hz`` times a second, off the spin thread.
- Publishes ``~/residual`` (``32FC1``, the residual at the working size, negative =
  over-exposed), ``~/residual_heatmap`` (``rgb8``, :func:`~neural_ae.core.assessment.
  heatmap_rgb`), and ``/diagnostics`` (one status ``exposure_monitor: <image topic>``
  per assessed frame: level from :class:`~neural_ae.core.assessment.monitor.
  ExposureMonitor`, values score, label, mean residual, over/under shares, frames).
- Lifecycle: ``configure`` loads the model (a bad file fails the transition with one
  line), ``activate`` subscribes and starts the worker, ``deactivate`` stops both.
- Bad input (wrong encoding, odd layout, too large) is skipped with a throttled warning
  and reported on ``/diagnostics``; the node keeps running.
"""
import sys
import threading
import time
from typing import Optional

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from neural_ae.core.assessment.judge import ExposureJudge, heatmap_rgb
from neural_ae.core.assessment.monitor import ExposureMonitor
from neural_ae.core.errors import NeuralAEError
from neural_ae.core.preview import render_raw
from neural_ae.ros import params as P
from neural_ae.ros.conversions import (array_to_image, check_image_size, image_to_array,
                                       short_name)
from neural_ae.ros.qos import diagnostics_qos, image_qos
import numpy as np
from rcl_interfaces.msg import SetParametersResult
import rclpy
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from sensor_msgs.msg import Image

_LEVEL = {'OK': DiagnosticStatus.OK, 'WARN': DiagnosticStatus.WARN,
          'ERROR': DiagnosticStatus.ERROR}


def param_specs() -> list:
    """Every parameter of the node, with its descriptor."""
    return [
        P.ParamSpec('image_topic', 'image', 'Camera image topic (rgb8, bgr8 or raw Bayer).',
                    read_only=True),
        P.ParamSpec('model', '', 'Assessor model file; empty = models/assessor_demo.pt.',
                    read_only=True),
        P.ParamSpec('rate_hz', 5.0, 'Most assessments per second [Hz].', 0.1, 100.0),
        P.ParamSpec('width', 192, 'Working width of the assessor [px] (aspect kept).', 16,
                    2048, read_only=True),
        P.ParamSpec('warn_share', 0.3, 'Over- or under-exposed area share of a bad frame [-].',
                    0.01, 1.0),
        P.ParamSpec('error_share', 0.6, 'Area share of a severe frame (ERROR) [-].', 0.01,
                    1.0),
        P.ParamSpec('hold_frames', 5, 'Consecutive frames before the level changes [frames].',
                    1, 1000),
        P.ParamSpec('black_level_dn', 64.0, 'Black level of raw Bayer input [DN].', 0.0,
                    65535.0),
        P.ParamSpec('white_level_dn', 4095.0, 'White level of raw Bayer input [DN].', 1.0,
                    65535.0),
        P.ParamSpec('max_pixels', 16_000_000, 'Larger frames are refused [px].', 1,
                    100_000_000),
        P.ParamSpec('publish_heatmap', True, 'Publish ~/residual_heatmap (rgb8).'),
    ]


class ExposureMonitorNode(LifecycleNode):
    """The monitor (module docstring)."""

    def __init__(self, **kwargs):
        super().__init__('exposure_monitor', **kwargs)
        self.specs = P.spec_map(param_specs())
        self.values = P.declare(self, list(self.specs.values()))
        self.add_on_set_parameters_callback(self._validate)
        self.judge: Optional[ExposureJudge] = None
        self.monitor: Optional[ExposureMonitor] = None
        self._latest: Optional[Image] = None
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._worker: Optional[threading.Thread] = None
        self._sub = None
        self._res_pub = self._heat_pub = self._diag_pub = None
        self.frames = 0
        self.last_error = ''

    # ------------------------------------------------------------ parameters
    def _validate(self, params) -> SetParametersResult:
        new = dict(self.values)
        for p in params:
            spec = self.specs.get(p.name)
            if spec is None:
                continue
            reason = P.check_value(spec, p.value)
            if reason:
                return SetParametersResult(successful=False, reason=f'{p.name}: {reason}')
            new[p.name] = p.value
        if new['warn_share'] > new['error_share']:
            return SetParametersResult(successful=False,
                                       reason='warn_share must be <= error_share')
        self.values = new
        if self.monitor is not None:
            self.monitor.warn_share = new['warn_share']
            self.monitor.error_share = new['error_share']
            self.monitor.hold = new['hold_frames']
        return SetParametersResult(successful=True)

    # ------------------------------------------------------------- lifecycle
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self.judge = ExposureJudge(self.values['model'] or None, width=self.values['width'])
            self.monitor = ExposureMonitor(self.values['warn_share'],
                                           self.values['error_share'],
                                           self.values['hold_frames'])
        except NeuralAEError as err:
            self.get_logger().error(f'exposure monitor: {str(err).splitlines()[0]}')
            return TransitionCallbackReturn.FAILURE
        self._res_pub = self.create_publisher(Image, '~/residual', image_qos())
        self._heat_pub = self.create_publisher(Image, '~/residual_heatmap', image_qos())
        self._diag_pub = self.create_publisher(DiagnosticArray, '/diagnostics',
                                               diagnostics_qos())
        self.get_logger().info(f'assessor {self.judge.meta.get("path")} at width '
                               f'{self.judge.width} px')
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop.clear()
        self._sub = self.create_subscription(Image, self.values['image_topic'], self._on_image,
                                             image_qos())
        self._worker = threading.Thread(target=self._run, name='exposure_monitor',
                                        daemon=True)
        self._worker.start()
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._halt()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._halt()
        for pub in (self._res_pub, self._heat_pub, self._diag_pub):
            if pub is not None:
                self.destroy_publisher(pub)
        self._res_pub = self._heat_pub = self._diag_pub = None
        self.judge = self.monitor = None
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._halt()
        return TransitionCallbackReturn.SUCCESS

    def _halt(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._worker is not None:
            self._worker.join(timeout=5.0)
            self._worker = None
        if self._sub is not None:
            self.destroy_subscription(self._sub)
            self._sub = None

    def lifecycle_state(self) -> str:
        """Return the current lifecycle state's label (``'unconfigured'``, ``'active'``...)."""
        return self._state_machine.current_state[1]

    # ----------------------------------------------------------------- frames
    def _on_image(self, msg: Image) -> None:
        with self._lock:
            self._latest = msg            # latest frame wins
        self._wake.set()

    def _rgb(self, msg: Image) -> np.ndarray:
        check_image_size(msg, self.values['max_pixels'])
        arr = image_to_array(msg)
        enc = msg.encoding.lower()
        if enc == 'rgb8':
            return arr
        if enc == 'bgr8':
            return np.ascontiguousarray(arr[..., ::-1])
        if enc.startswith('bayer_'):
            pattern = enc.split('_')[1][:4].upper()
            return render_raw(arr, self.values['black_level_dn'], self.values['white_level_dn'],
                              pattern)
        raise NeuralAEError(f'unsupported encoding {short_name(msg.encoding)!r} (expected rgb8, '
                            f'bgr8 or bayer_*)')

    def _run(self) -> None:
        next_t = 0.0
        while not self._stop.is_set():
            self._wake.wait(timeout=0.5)
            self._wake.clear()
            if self._stop.is_set():
                break
            wait = next_t - time.monotonic()
            if wait > 0 and self._stop.wait(wait):
                break
            with self._lock:
                msg, self._latest = self._latest, None
            if msg is None:
                continue
            next_t = time.monotonic() + 1.0 / self.values['rate_hz']
            try:
                self._assess(msg)
            except Exception as err:  # noqa: BLE001 - bad input must not stop the node
                self.last_error = f'{type(err).__name__}: {str(err).splitlines()[0]}'
                self.get_logger().warning(f'exposure monitor: frame skipped: '
                                          f'{self.last_error}', throttle_duration_sec=5.0)
                self._publish_diag(DiagnosticStatus.WARN, f'bad input: {self.last_error}', {})

    def _assess(self, msg: Image) -> None:
        judge, monitor = self.judge, self.monitor
        if judge is None or monitor is None:
            return
        a = judge.assess(self._rgb(msg))
        state = monitor.update(a.over_share, a.under_share)
        self.frames += 1
        if self._res_pub is not None:
            self._res_pub.publish(array_to_image(a.residual.astype(np.float32), '32FC1',
                                                 msg.header))
        if self._heat_pub is not None and self.values['publish_heatmap']:
            self._heat_pub.publish(array_to_image(heatmap_rgb(a.residual), 'rgb8', msg.header))
        self._publish_diag(_LEVEL[state.level], state.message, {
            'score': f'{a.score:.3f}', 'label': a.label,
            'mean_residual': f'{a.mean_residual:+.4f}', 'over_share': f'{a.over_share:.4f}',
            'under_share': f'{a.under_share:.4f}', 'frame_class': state.frame_class,
            'frames': str(self.frames)})

    def _publish_diag(self, level, message: str, values: dict) -> None:
        if self._diag_pub is None:
            return
        st = DiagnosticStatus(level=level, name=f'exposure_monitor: {self.values["image_topic"]}',
                              message=message, hardware_id='camera')
        st.values = [KeyValue(key=k, value=v) for k, v in values.items()]
        arr = DiagnosticArray()
        arr.header.stamp = self.get_clock().now().to_msg()
        arr.status = [st]
        self._diag_pub.publish(arr)


def main(args=None) -> int:
    """Run the node, configured and activated."""
    rclpy.init(args=args)
    node = None
    try:
        node = ExposureMonitorNode()
        if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
            return 2
        node.trigger_activate()
        rclpy.spin(node)
    except KeyboardInterrupt:
        pass
    except NeuralAEError as err:
        print(f'exposure_monitor_node: error: {str(err).splitlines()[0]}', file=sys.stderr)
        return 2
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
