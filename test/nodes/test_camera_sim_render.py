"""
camera_sim_node renders off the executor (issue 15): the render thread and its bookkeeping.

The capture is replaced by one that blocks on an event, so the tests hold a frame in the
render thread for as long as they like and check what the executor does meanwhile; no
assertion depends on how fast anything runs.
"""
import json
import threading

from neural_ae.nodes import camera_sim_node as sim_module
from neural_ae.nodes.camera_sim_node import _Renderer, CameraSimNode
from neural_ae.ros.qos import command_qos, image_qos
from rcl_interfaces.srv import SetParameters
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image
from std_msgs.msg import String


def test_renderer_keeps_order_takes_one_waiting_job_and_survives_errors():
    release = threading.Event()
    done, errors = [], []

    def render(job):
        release.wait(10.0)
        if job == 'bad':
            raise ValueError('broken frame')
        done.append(job)

    r = _Renderer(render, errors.append)
    try:
        assert not r.busy and r.has_room()
        assert r.submit(1)
        assert r.busy
        assert r.submit(2)                 # one waits behind the one rendering
        assert not r.has_room() and not r.submit(3)
        release.set()
        assert r.wait_idle(10.0)
        assert done == [1, 2] and not r.busy
        assert r.submit('bad') and r.submit(4)
        assert r.wait_idle(10.0)
        assert done == [1, 2, 4]
        assert [str(e) for e in errors] == ['broken frame']
    finally:
        r.stop()


def test_parameter_sets_are_answered_while_a_frame_renders(ros_side, hold):
    side = ros_side
    rendering, release = hold(sim_module, 'capture')
    images, docs = [], []
    side.node.create_subscription(String, 'camera/exposure',
                                  lambda m: docs.append(json.loads(m.data)), command_qos(10))
    side.node.create_subscription(Image, 'camera/image_raw', images.append,
                                  image_qos(1))
    sim = CameraSimNode('render_sim', context=side.context, parameter_overrides=[
        Parameter('mode', value='realtime'), Parameter('rate_hz', value=50.0),
        Parameter('n_frames', value=3), Parameter('height', value=64),
        Parameter('width', value=96), Parameter('wait_for_subscribers', value=0),
        Parameter('latency_frames', value=0)])
    side.executor.add_node(sim)
    client = side.node.create_client(SetParameters, '/render_sim/set_parameters')
    try:
        assert side.spin_until(rendering.is_set, 20.0)
        # frame 1 is decided on the next tick and waits in the slot
        assert side.spin_until(lambda: sim.frames_published == 2, 10.0)
        assert client.wait_for_service(timeout_sec=10.0)
        request = SetParameters.Request(
            parameters=[Parameter('exposure_time', value=1234.0).to_parameter_msg()])
        result = side.call(client.call_async(request), 10.0)
        # answered by the executor although frame 0 is still inside the capture
        assert result is not None and result.results[0].successful
        assert rendering.is_set() and not release.is_set() and not images and not docs
        side.spin_for(0.2)
        assert sim.frames_published == 2    # the slot is full: frame 2 is not decided
        release.set()
        assert side.spin_until(lambda: sim.finished, 20.0)
        assert sim.frames_published == 3
        assert side.spin_until(lambda: len(images) >= 1 and len(docs) == 3, 5.0)
        # the command came after frame 1 was decided: latency 0 puts it on frame 2
        assert [d['exposure_time_us'] for d in docs] == [5000.0, 5000.0, 1234.0]
        assert [d['frame_index'] for d in docs] == [0, 1, 2]
        delays = sim.publish_delays_ms
        assert len(delays) == 3
        # frames 0 and 1 waited for the release, far beyond the 20 ms frame period
        assert sim.frames_late >= 2
        assert sim.frames_late == sum(d > 20.0 for d in delays)
    finally:
        release.set()
        side.node.destroy_client(client)
        side.release(sim)
