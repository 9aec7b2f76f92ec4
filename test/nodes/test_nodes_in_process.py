"""
Nodes inside the test process: the detector path, the driver's own AE switch, bag replay.

The detector test uses untrained networks (no trained model ships yet): it checks the
wiring (one backbone pass per frame feeds the detector, whose detections go out as JSON
since vision_msgs is absent, and the semantic branch), not accuracy.
"""
import json

from neural_ae.core.models.detector import build_detector
from neural_ae.core.models.exposure_nets import ExposureNet
from neural_ae.core.models.perception import load_perception
from neural_ae.core.sensor import capture, load_sensor
from neural_ae.nodes.auto_exposure_node import AutoExposureNode
from neural_ae.ros.conversions import array_to_image
from neural_ae.ros.qos import command_qos, image_qos
import numpy as np
import pytest
import rclpy
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image
from std_msgs.msg import String
import torch

SENSOR = load_sensor('imx249')


@pytest.fixture(scope='module')
def checkpoints(tmp_path_factory):
    d = tmp_path_factory.mktemp('models')
    torch.manual_seed(0)
    torch.save({'detector': build_detector().state_dict()}, d / 'detector.pt')
    net = ExposureNet('semantic')
    torch.save({'state_dict': net.state_dict(), 'mode': 'semantic', 'm_exp': 10.0},
               d / 'semantic_nn.pt')
    (d / 'broken.pt').write_bytes(b'not a checkpoint')
    return d


def test_load_perception_errors(checkpoints):
    from neural_ae.core.errors import ModelError

    with pytest.raises(ModelError, match='not found'):
        load_perception(checkpoints / 'missing.pt', SENSOR)
    with pytest.raises(ModelError, match='cannot read'):
        load_perception(checkpoints / 'broken.pt', SENSOR)
    with pytest.raises(ModelError, match='does not match'):
        load_perception(checkpoints / 'semantic_nn.pt', SENSOR)


def test_semantic_controller_and_detections_share_one_backbone_pass(ros_side, checkpoints):
    side = ros_side
    node = AutoExposureNode('ae_perception', context=side.context, parameter_overrides=[
        Parameter('controller', value='semantic_nn'),
        Parameter('model_path', value=str(checkpoints / 'semantic_nn.pt')),
        Parameter('detector_path', value=str(checkpoints / 'detector.pt')),
        Parameter('driver_node', value='perception_camera'),
        Parameter('exposure_feedback_topic', value=''),
        Parameter('detection_score_threshold', value=0.0)])
    cam = rclpy.create_node('perception_camera', context=side.context)
    cam.declare_parameter('exposure_time', 5000.0)
    cam.declare_parameter('gain', 0.0)
    sets = []
    cam.add_post_set_parameters_callback(lambda ps: sets.append([p.name for p in ps]))
    side.executor.add_node(node)
    side.executor.add_node(cam)
    got, debug = [], []
    side.node.create_subscription(String, 'detections_json', got.append, command_qos())
    side.node.create_subscription(Image, 'debug_image', debug.append, image_qos(1))
    pub = side.node.create_publisher(Image, 'camera/image_raw', image_qos(1))
    calls = []
    perception = None
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        perception = node._perception
        original = perception.detector.backbone.forward_with_tap

        def counted(x):
            calls.append(tuple(x.shape))
            return original(x)

        perception.detector.backbone.forward_with_tap = counted
        assert side.spin_until(lambda: node._actuator.reachable, 10.0)
        raw = capture(np.full((64, 96), 3e5), 0.004, 1.0, SENSOR, np.random.default_rng(0))
        msg = array_to_image(raw, 'bayer_rggb16')
        msg.header.frame_id = 'camera'
        pub.publish(msg)
        assert side.spin_until(lambda: got and sets and debug, 60.0), (got, sets, debug)
        doc = json.loads(got[0].data)
        assert doc['frame_id'] == 'camera' and isinstance(doc['detections'], list)
        assert calls == [calls[0]]  # exactly one backbone pass for that frame
        assert debug[0].encoding == 'rgb8' and debug[0].header.frame_id == 'camera'
        assert ['exposure_time', 'gain'] in sets or ['exposure_time'] in sets
        values = {kv.key: kv.value for kv in node.diagnostics().status[0].values}
        assert values['controller'] == 'semantic_nn' and values['errors'] == '0'
        assert values['detections_topic'] == 'detections_json'
    finally:
        side.release(node, cam)


def test_driver_auto_exposure_is_switched_off_on_activate_and_restored(ros_side):
    side = ros_side
    cam = rclpy.create_node('libcamera', context=side.context)
    cam.declare_parameter('ExposureTime', 10000)
    cam.declare_parameter('AnalogueGain', 2.0)
    cam.declare_parameter('AeEnable', True)
    node = AutoExposureNode('ae_switch', context=side.context, parameter_overrides=[
        Parameter('driver_preset', value='camera_ros'),
        Parameter('driver_node', value='libcamera'),
        Parameter('exposure_feedback_topic', value='')])
    side.executor.add_node(cam)
    side.executor.add_node(node)
    pub = side.node.create_publisher(Image, 'camera/image_raw', image_qos(1))
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert side.spin_until(lambda: node._actuator.reachable, 10.0)
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        assert side.spin_until(lambda: cam.get_parameter('AeEnable').value is False, 10.0)
        # The driver's current setting is read as the starting point: 10 ms, 2x = 6 dB.
        assert side.spin_until(lambda: node._initial is not None, 5.0)
        assert node._initial.gain_db == pytest.approx(6.0206, abs=1e-3)
        raw = capture(np.full((64, 96), 1e5), 0.01, 2.0, SENSOR, np.random.default_rng(1))
        pub.publish(array_to_image(raw, 'bayer_rggb16'))
        assert side.spin_until(lambda: cam.get_parameter('ExposureTime').value != 10000, 10.0)
        assert isinstance(cam.get_parameter('ExposureTime').value, int)
        assert node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
        assert side.spin_until(lambda: cam.get_parameter('AeEnable').value is True, 10.0)
    finally:
        side.release(node, cam)


def test_camera_sim_replays_a_bag_with_its_labels(ros_side, tmp_path):
    from neural_ae.core.bags import HDRBagWriter
    from neural_ae.core.scenes import generate_scene
    from neural_ae.nodes.camera_sim_node import CameraSimNode

    radiance = generate_scene(4, 'day', 64, 96).radiance[:63, :95]  # odd: cropped to even
    with HDRBagWriter(tmp_path / 'bag') as writer:
        for k in range(3):
            writer.write_radiance(1_000_000_000 + k * 50_000_000, radiance)
        writer.write_labels({'images': [{'id': 1, 'frame_index': 1}], 'annotations': [
            {'id': 1, 'image_id': 1, 'category_id': 4, 'bbox': [2, 3, 5, 9]}]})
    side = ros_side
    docs, images = [], []
    side.node.create_subscription(String, 'camera/exposure',
                                  lambda m: docs.append(json.loads(m.data)), command_qos(10))
    side.node.create_subscription(Image, 'camera/image_raw', images.append, image_qos(1))
    sim = CameraSimNode('bag_sim', context=side.context, parameter_overrides=[
        Parameter('bag', value=str(tmp_path / 'bag')), Parameter('mode', value='lockstep'),
        Parameter('lockstep_timeout_s', value=0.05), Parameter('exposure_time', value=800.0)])
    side.executor.add_node(sim)
    looping = CameraSimNode('loop_sim', context=side.context, parameter_overrides=[
        Parameter('bag', value=str(tmp_path / 'bag')), Parameter('mode', value='lockstep'),
        Parameter('lockstep_timeout_s', value=0.02), Parameter('loop', value=True),
        Parameter('wait_for_subscribers', value=0)])
    loop_stamps = []
    looping.exposure_pub.publish = lambda m: loop_stamps.append(json.loads(m.data)['stamp_ns'])
    side.executor.add_node(looping)
    try:
        assert side.spin_until(lambda: len(loop_stamps) >= 7, 20.0)
        steps = np.diff(loop_stamps[:7])
        assert list(steps) == [50_000_000] * 2 + [33_333_333] + [50_000_000] * 2 + [33_333_333]
        assert side.spin_until(lambda: sim.finished and len(docs) == 3, 20.0), docs
        assert [d['gt'] for d in docs] == [[], [[2.0, 3.0, 7.0, 12.0, 4]], []]
        offsets = [d['stamp_ns'] - docs[0]['stamp_ns'] for d in docs]
        assert offsets == [0, 50_000_000, 100_000_000]
        assert all(d['exposure_time_us'] == 800.0 for d in docs)
        assert side.spin_until(lambda: images, 2.0)
        assert (images[-1].height, images[-1].width) == (62, 94)
        assert images[-1].encoding == 'bayer_rggb16'
    finally:
        side.release(sim, looping)


def test_controller_rebuild_runs_outside_the_lock_and_keeps_the_old_one_on_failure(ros_side):
    """A slow model load must not block parameters and diagnostics; a bad one changes nothing."""
    import threading

    node = AutoExposureNode('ae_rebuild', context=ros_side.context, parameter_overrides=[
        Parameter('driver_node', value='no_camera'),
        Parameter('exposure_feedback_topic', value='')])
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        old = node._controller
        started, release = threading.Event(), threading.Event()
        build = node._build_controller

        def slow_build(values):
            started.set()
            assert release.wait(10.0)
            return build(values)

        node._build_controller = slow_build
        node.set_parameters([Parameter('average_level', value=0.3)])
        worker = threading.Thread(target=node._rebuild_if_dirty)
        worker.start()
        assert started.wait(10.0)
        assert node._lock.acquire(timeout=2.0), 'the rebuild holds the node lock'
        node._lock.release()
        assert node.diagnostics().status  # answers while the model loads
        release.set()
        worker.join(10.0)
        assert node._controller is not old and node._controller.level == 0.3
        assert node._step.controller is node._controller
        # a failing build keeps the running controller and says why
        current = node._controller

        def failing(values):
            from neural_ae.core.errors import ModelError
            raise ModelError('corrupt model file')

        node._build_controller = failing
        node._dirty = True
        node._rebuild_if_dirty()
        assert node._controller is current and 'corrupt model file' in node._last_error
    finally:
        node.destroy_node()


def test_debug_image_has_its_own_period(ros_side):
    node = AutoExposureNode('ae_debug_period', context=ros_side.context, parameter_overrides=[
        Parameter('driver_node', value='no_camera'),
        Parameter('exposure_feedback_topic', value=''),
        Parameter('debug_image_period_s', value=30.0)])
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node._debug_due() and not node._debug_due()  # first now, then not for 30 s
        node.set_parameters([Parameter('debug_image_period_s', value=0.0)])
        assert node._debug_due() and node._debug_due()
        node.set_parameters([Parameter('publish_debug_image', value=False)])
        assert not node._debug_due()
        assert node._latencies_ms.maxlen == 100
    finally:
        node.destroy_node()


def test_the_debug_image_is_rendered_off_the_decision_thread(ros_side, hold):
    """A debug image stuck in rendering holds up no decision; it goes out afterwards."""
    from neural_ae.nodes import auto_exposure_node as ae_module

    rendering, release = hold(ae_module, 'render_raw')
    side = ros_side
    debug = []
    side.node.create_subscription(Image, 'debug_image', debug.append, image_qos(1))
    node = AutoExposureNode('ae_debug_thread', context=side.context, parameter_overrides=[
        Parameter('driver_node', value='no_camera'),
        Parameter('exposure_feedback_topic', value='')])
    side.executor.add_node(node)
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        node._on_image(_frame_msg(seed=0))
        assert side.spin_until(lambda: rendering.is_set() and node.frames_processed == 1, 30.0)
        for k in (1, 2):   # decided while the first debug image is still rendering
            node._on_image(_frame_msg(seed=k))
            assert side.spin_until(lambda: node.frames_processed == 1 + k, 30.0)
        assert not release.is_set() and not debug
        release.set()
        assert side.spin_until(lambda: len(debug) >= 1, 10.0)
        assert debug[0].encoding == 'rgb8'
    finally:
        release.set()
        side.release(node)


def _diag(node) -> tuple:
    status = node.diagnostics().status[0]
    return status, {kv.key: kv.value for kv in status.values}


def _frame_msg(level=3e5, seed=0):
    raw = capture(np.full((64, 96), level), 0.004, 1.0, SENSOR, np.random.default_rng(seed))
    return array_to_image(raw, 'bayer_rggb16')


def test_a_model_file_that_cannot_be_built_keeps_the_running_controller_and_says_so(
        ros_side, tmp_path):
    from diagnostic_msgs.msg import DiagnosticStatus

    garbage = tmp_path / 'garbage.pt'
    garbage.write_bytes(b'not a checkpoint at all')
    (tmp_path / 'empty.pt').write_bytes(b'')
    wrong = tmp_path / 'wrong.pt'
    torch.save({'foo': 1}, wrong)  # a real torch file, but no exposure network in it
    side = ros_side
    cam = rclpy.create_node('bad_model_camera', context=side.context)
    cam.declare_parameter('exposure_time', 5000.0)
    cam.declare_parameter('gain', 0.0)
    node = AutoExposureNode('ae_bad_model', context=side.context, parameter_overrides=[
        Parameter('driver_node', value='bad_model_camera'),
        Parameter('exposure_feedback_topic', value='')])
    side.executor.add_node(cam)
    side.executor.add_node(node)
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        assert side.spin_until(lambda: node._actuator.reachable, 10.0)
        for path, needle in ((garbage, 'not a torch file'), (tmp_path / 'empty.pt',
                                                             'the file is empty'),
                             (tmp_path / 'missing.pt', 'not found'), (tmp_path, 'not found')):
            result = node.set_parameters_atomically([
                Parameter('controller', value='histogram_nn'),
                Parameter('model_path', value=str(path))])
            assert not result.successful and needle in result.reason, result.reason
            assert str(path) in result.reason
        assert node.get_parameter('controller').value == 'average'

        result = node.set_parameters_atomically([Parameter('controller', value='histogram_nn'),
                                                 Parameter('model_path', value=str(wrong))])
        assert result.successful, result.reason  # the cheap check passed: the worker decides
        status, values = _diag(node)
        assert values['controller'] == 'average' and values['controller_requested'] == \
            'histogram_nn'  # pending: the running one is reported
        done = node.frames_processed
        node._on_image(_frame_msg())
        assert side.spin_until(lambda: node.frames_processed == done + 1, 30.0)
        status, values = _diag(node)
        assert values['controller'] == 'average' and node._controller.name == 'average'
        assert status.level == DiagnosticStatus.WARN
        assert 'histogram_nn not applied' in status.message and 'running average' in \
            status.message and str(wrong) in status.message, status.message
        assert 'does not match' in values['controller_error']
        assert 'controller_requested' not in values  # the parameters were set back
        assert node.get_parameter('controller').value == 'average'
        assert node.get_parameter('model_path').value == ''
        assert not node._dirty  # setting them back is not a new change

        assert node.set_parameters([Parameter('controller', value='gradient')])[0].successful
        node._on_image(_frame_msg(seed=1))
        assert side.spin_until(lambda: node.frames_processed == done + 2, 30.0)
        status, values = _diag(node)
        assert values['controller'] == 'gradient' and 'controller_error' not in values
        assert 'not applied' not in status.message
    finally:
        side.release(node, cam)


def test_runtime_switch_to_hybrid_nn_loads_the_detector_from_the_shipped_model(
        ros_side, capfd):
    side = ros_side
    cam = rclpy.create_node('hybrid_camera', context=side.context)
    cam.declare_parameter('exposure_time', 5000.0)
    cam.declare_parameter('gain', 0.0)
    sets = []
    cam.add_post_set_parameters_callback(lambda ps: sets.append([p.name for p in ps]))
    node = AutoExposureNode('ae_hybrid_switch', context=side.context, parameter_overrides=[
        Parameter('driver_node', value='hybrid_camera'),
        Parameter('exposure_feedback_topic', value=''),
        Parameter('detection_score_threshold', value=0.0)])
    side.executor.add_node(cam)
    side.executor.add_node(node)
    got = []
    sub = side.node.create_subscription(String, 'detections_json', got.append, command_qos())
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        assert side.spin_until(lambda: node._actuator.reachable, 10.0)
        _, values = _diag(node)
        assert values['controller'] == 'average' and values['detector'] == 'none'
        assert node._det_pub is None
        # the shipped default model of hybrid_nn carries its detector: accepted
        result = node.set_parameters([Parameter('controller', value='hybrid_nn')])[0]
        assert result.successful, result.reason
        n_sets = len(sets)
        node._on_image(_frame_msg())
        assert side.spin_until(lambda: node._controller.name == 'hybrid_nn', 120.0), \
            node._controller_error
        assert side.spin_until(lambda: got and len(sets) > n_sets, 60.0), (got, sets)
        status, values = _diag(node)
        assert values['controller'] == 'hybrid_nn' and 'controller_requested' not in values
        assert values['detector'].startswith('model file ')
        assert values['detector'].endswith('hybrid_demo.pt')
        assert 'controller_error' not in values and values['errors'] == '0'
        assert node._step.needs_features and node._step.perception is node._perception
        assert node._det_pub.publisher.is_activated
        doc = json.loads(got[-1].data)
        assert isinstance(doc['detections'], list)
        # the start-up line names where the detector comes from
        assert node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_cleanup() == TransitionCallbackReturn.SUCCESS
        capfd.readouterr()
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        log = ''.join(capfd.readouterr())
        assert 'configured: controller hybrid_nn, detector model file ' in log, log
        assert 'hybrid_demo.pt' in log and 'detector none' not in log
    finally:
        side.node.destroy_subscription(sub)
        side.release(node, cam)


def test_an_unexpected_error_in_configure_is_reported_not_swallowed(ros_side):
    node = AutoExposureNode('ae_configure_bug', context=ros_side.context, parameter_overrides=[
        Parameter('driver_node', value='no_camera'),
        Parameter('exposure_feedback_topic', value='')])
    try:
        def broken(values):
            raise RuntimeError('a bug in a controller factory')

        node._build_controller = broken
        assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
        assert node.lifecycle_state() == 'unconfigured'
        assert 'RuntimeError: a bug in a controller factory' in node._last_error
    finally:
        node.destroy_node()
