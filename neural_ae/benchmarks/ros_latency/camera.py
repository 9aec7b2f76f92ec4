"""
The camera / driver stand-in process of the latency bench.

One rclpy node (:data:`~.protocol.DRIVER`) publishes ``camera/image_raw`` on a timer
(sensor-data QoS, depth 1; two pre-rendered ``bayer_rggb16`` frames, a dark and a bright
one, alternate; each header stamped right before ``publish()``) and declares
``exposure_time`` [us] / ``gain`` [dB] like a generic driver, recording when its
on-set-parameters callback sees ``exposure_time``. A MultiThreadedExecutor with two
threads spins it, the timer in its own callback group so the parameter services never
wait for it.
"""
from pathlib import Path
import threading
import time

from neural_ae.benchmarks._common import radiance
from neural_ae.benchmarks.ros_latency.protocol import DRIVER, wait
from neural_ae.core.sensor import capture, load_sensor
from neural_ae.ros.conversions import array_to_image, ns_to_stamp
from neural_ae.ros.qos import image_qos
import numpy as np
from rcl_interfaces.msg import SetParametersResult
import rclpy
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.executors import MultiThreadedExecutor
from sensor_msgs.msg import Image


def bench_frames(height: int, width: int) -> list:
    """Two ``bayer_rggb16`` images (12-bit), a dark and a bright one, to alternate."""
    sensor = load_sensor('imx249')
    phi = radiance(height, width)
    rng = np.random.default_rng(0)
    return [array_to_image(capture(phi, t_s, 1.0, sensor, rng), 'bayer_rggb16')
            for t_s in (0.002, 0.02)]


class BenchCamera:
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


def camera_child(cfg: dict, context) -> dict:
    """Publish on the start file's word for ``seconds``; serve parameters until finished."""
    camera = BenchCamera(context, cfg['namespace'], bench_frames(cfg['height'], cfg['width']),
                         cfg['rate_hz'])
    executor = MultiThreadedExecutor(num_threads=2, context=context)
    executor.add_node(camera.node)
    spinner = threading.Thread(target=executor.spin, name='camera_spin', daemon=True)
    spinner.start()
    try:
        Path(cfg['ready_file']).write_text('ready')
        if not wait(lambda: Path(cfg['start_file']).exists()
                    and camera.pub.get_subscription_count() >= 1, cfg['startup_timeout_s']):
            raise RuntimeError('no start signal or no subscriber on camera/image_raw')
        time.sleep(0.5)  # let the best-effort reader match before the first frame
        t0 = time.monotonic()
        camera.start()
        time.sleep(cfg['seconds'])
        camera.stop()
        stream_s = time.monotonic() - t0
        Path(cfg['published_file']).write_text('published')
        wait(Path(cfg['finish_file']).exists, cfg['drain_timeout_s'] + 60.0)
        time.sleep(0.1)
        return {'published': camera.published, 'requests': camera.requests,
                'stream_s': stream_s}
    finally:
        executor.shutdown()
        spinner.join(timeout=5.0)
        camera.node.destroy_node()
