"""
exposure_correction_node: post-capture exposure correction of a camera's images (issue 14).

A separate lifecycle node, not a stage of the AE node: correction is an optional
consumer of the camera stream (it costs a network pass per frame and never changes
what the camera captures), and a separate node lets a user run it beside the AE node on
the same drive, with its own model, and compare both.

Subscribes ``input_topic`` (default ``camera/image_raw``, sensor-data QoS): raw frames
(``bayer_*16`` / ``bayer_*8`` / ``mono*``, :data:`neural_ae.ros.conversions.RAW_ENCODINGS`)
are rendered by the ISP stored in the model (the one its training pairs came from), then
corrected; ``rgb8`` / ``bgr8`` images are corrected as they are. Publishes
``image_corrected`` (``rgb8``, the input's header: stamp and frame_id), sensor-data QoS.

Threads: the image callback drops the message into a one-slot mailbox (latest frame
wins, replaced frames counted as dropped); a worker thread started on activate decodes,
renders and corrects. Lifecycle: configure loads ``model_path`` (a missing or bad file
fails the transition with an error log; the node stays unconfigured and alive),
activate starts the worker, deactivate stops it, cleanup frees everything; ``autostart``
configures and activates at start-up. Bad input never stops the node: unsupported
encodings, inconsistent sizes and images over ``max_image_mpx`` are skipped with a
throttled warning and counted (``bad_frames``); parameters are range-checked by their
descriptors, ``model_path`` by the on-set callback (a change is refused while active).
"""
import threading
import time
from typing import Optional

from neural_ae.core.checkpoints import resolve_model_path, sniff_checkpoint
from neural_ae.core.errors import NeuralAEError
from neural_ae.core.sensor import load_sensor
from neural_ae.nodes.auto_exposure_node import LatestFrameMailbox, loggable
from neural_ae.ros import params as P
from neural_ae.ros.conversions import (array_to_image, check_image_size, decode_raw,
                                       ImageConversionError, raw_frame_from_array)
from neural_ae.ros.qos import image_qos
import numpy as np
from rcl_interfaces.msg import SetParametersResult
import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from sensor_msgs.msg import Image

DEFAULT_MODEL = 'correction_encdec.pt'

SPECS = [
    P.ParamSpec('model_path', DEFAULT_MODEL, 'correction model file (neural-ae train with a '
                'config/train_correction_*.yaml); relative names are looked up in models/'),
    P.ParamSpec('input_topic', 'camera/image_raw', 'image topic to correct (raw or rgb8/bgr8)',
                read_only=True),
    P.ParamSpec('output_topic', 'image_corrected', 'corrected rgb8 image topic',
                read_only=True),
    P.ParamSpec('bit_depth', 12, 'bits of raw data in a 16-bit word', 8, 16, 1),
    P.ParamSpec('bit_shift', 0, 'raw data stored this many bits up in the word', 0, 8, 1),
    P.ParamSpec('max_image_mpx', 16.0, 'larger images are refused [megapixels]', 0.01, 200.0),
    P.ParamSpec('bad_input_warn_period_s', 5.0, 'throttle of bad-input warnings [s]', 0.0,
                3600.0),
    P.ParamSpec('sensor', 'imx249', 'sensor preset (black/white level of the ISP)',
                read_only=True),
    P.ParamSpec('autostart', True, 'configure and activate at start-up', read_only=True),
]


class ExposureCorrectionNode(LifecycleNode):
    """The exposure-correction lifecycle node; see the module docstring."""

    def __init__(self, node_name: str = 'exposure_correction', **kwargs):
        super().__init__(node_name, **kwargs)
        self.values = P.declare(self, SPECS)
        self._lock = threading.Lock()
        self._mailbox = LatestFrameMailbox()
        self._stop = threading.Event()
        self._worker: Optional[threading.Thread] = None
        self._corrector = None
        self._sub = None
        self._pub = None
        self.stats = {'frames': 0, 'bad_frames': 0, 'last_ms': float('nan')}
        self.add_on_set_parameters_callback(self._validate)

    # ------------------------------------------------------------------ parameters

    def _validate(self, params) -> SetParametersResult:
        specs = P.spec_map(SPECS)
        for p in params:
            spec = specs.get(p.name)
            if spec is None:
                continue
            reason = P.check_value(spec, p.value)
            if reason is None and p.name == 'model_path':
                if self.lifecycle_state() == 'active':
                    reason = 'deactivate and clean up the node to change the model'
                else:
                    reason = sniff_checkpoint(resolve_model_path(p.value), 'correction model')
            if reason:
                return SetParametersResult(successful=False, reason=f'{p.name}: {reason}'[:300])
        for p in params:
            if p.name in specs:
                self.values[p.name] = p.value
        return SetParametersResult(successful=True)

    # ------------------------------------------------------------------ lifecycle

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        from neural_ae.core.correction.model import load_corrector

        try:
            sensor = load_sensor(self.values['sensor'])
            self._corrector = load_corrector(resolve_model_path(self.values['model_path']),
                                             sensor)
        except (NeuralAEError, OSError) as err:
            self.get_logger().error(f'configure: {loggable(err)}')
            return TransitionCallbackReturn.FAILURE
        self._pub = self.create_lifecycle_publisher(Image, self.values['output_topic'],
                                                    image_qos(1))
        self._sub = self.create_subscription(Image, self.values['input_topic'], self._on_image,
                                             image_qos(1))
        self.get_logger().info(f'correction model {self._corrector.source} '
                               f'({self._corrector.arch})')
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop.clear()
        self._mailbox.clear()
        self._worker = threading.Thread(target=self._work, name='exposure_correction_worker',
                                        daemon=True)
        self._worker.start()
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_worker()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_worker()
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def _stop_worker(self) -> None:
        self._stop.set()
        if self._worker is not None:
            self._worker.join(timeout=5.0)
            self._worker = None

    def _release(self) -> None:
        if self._sub is not None:
            self.destroy_subscription(self._sub)
            self._sub = None
        if self._pub is not None:
            self.destroy_lifecycle_publisher(self._pub)
            self._pub = None
        self._corrector = None

    def lifecycle_state(self) -> str:
        """Return the current lifecycle state's label."""
        return self._state_machine.current_state[1]

    # ------------------------------------------------------------------ frames

    def _on_image(self, msg: Image) -> None:
        if self._worker is None:
            return
        self._mailbox.put(msg)

    def _bad(self, reason: str) -> None:
        with self._lock:
            self.stats['bad_frames'] += 1
        self.get_logger().warning(f'bad image skipped: {loggable(reason)}',
                                  throttle_duration_sec=self.values['bad_input_warn_period_s'])

    def _work(self) -> None:
        while not self._stop.is_set():
            msg = self._mailbox.take(0.1)
            if msg is None:
                continue
            try:
                out = self.correct_message(msg)
            except (ImageConversionError, NeuralAEError, ValueError) as err:
                self._bad(str(err))
                continue
            pub = self._pub
            if pub is not None:
                pub.publish(out)

    def correct_message(self, msg: Image) -> Image:
        """Decode, render (raw) and correct one image; return the ``rgb8`` message."""
        import torch

        corrector = self._corrector
        if corrector is None:
            raise NeuralAEError('no correction model loaded')
        t0 = time.perf_counter()
        check_image_size(msg, int(self.values['max_image_mpx'] * 1e6))
        arr, _ = decode_raw(msg)
        if msg.encoding in ('rgb8', 'bgr8', 'rgba8', 'bgra8'):
            rgb8 = arr[..., :3]
            if msg.encoding.startswith('bgr'):
                rgb8 = rgb8[..., ::-1]
            out8 = corrector.correct_uint8(np.ascontiguousarray(rgb8))
        else:
            raw, pattern = raw_frame_from_array(arr, msg.encoding, self.values['bit_depth'],
                                                self.values['bit_shift'])
            if raw.shape[0] < 2 or raw.shape[1] < 2:
                raise ImageConversionError(f'image {raw.shape} too small')
            h, w = raw.shape[0] // 2 * 2, raw.shape[1] // 2 * 2
            rgb = corrector.correct(corrector.render(raw[:h, :w]))
            out8 = (rgb.clamp(0, 1) * 255.0 + 0.5).to(torch.uint8).permute(1, 2, 0).numpy()
        out = array_to_image(np.ascontiguousarray(out8), 'rgb8', msg.header)
        with self._lock:
            self.stats['frames'] += 1
            self.stats['last_ms'] = (time.perf_counter() - t0) * 1e3
        return out


def main(args=None) -> int:
    """Run the node (``ros2 run neural_ae exposure_correction_node``)."""
    import sys

    rclpy.init(args=args)
    node = None
    try:
        node = ExposureCorrectionNode()
        if node.get_parameter('autostart').value:
            if node.trigger_configure() == TransitionCallbackReturn.SUCCESS:
                node.trigger_activate()
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except NeuralAEError as err:
        print(f'exposure_correction_node: error: {err}', file=sys.stderr)
        return 2
    finally:
        if node is not None:
            if node.lifecycle_state() == 'active':
                node.trigger_deactivate()
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
