"""
AE node, controller personalized: topic feedback changes the policy, a file appears.

Also: bad feedback (garbage, unknown stamp, flood) is a throttled warning and counted,
the node keeps deciding; the metering_roi topic sets the controller's region; the save
service writes atomically and refuses the base model file.
"""
import json
import time

from neural_ae.core.controllers.personalized import register_personalized
from neural_ae.core.personalized.policy import load_policy, PolicyNet, save_policy
from neural_ae.core.sensor import capture, load_sensor
from neural_ae.nodes.auto_exposure_node import AutoExposureNode
from neural_ae.ros.conversions import array_to_image
from neural_ae.ros.qos import command_qos, image_qos
import numpy as np
import pytest
import rclpy
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image, RegionOfInterest
from std_msgs.msg import String
from std_srvs.srv import Trigger
import torch

SENSOR = load_sensor('imx249')


def test_the_controller_is_registered_on_import():
    assert register_personalized().name == 'personalized'


def _node(side, tmp_path, name, base):
    return AutoExposureNode(name, context=side.context, parameter_overrides=[
        Parameter('controller', value='personalized'),
        Parameter('model_path', value=str(base)),
        Parameter('exposure_feedback_topic', value=''),
        Parameter('feedback_topic', value=f'{name}/feedback'),
        Parameter('metering_roi_topic', value=f'{name}/roi'),
        Parameter('personalized_model_path', value=str(tmp_path / f'{name}_online.pt')),
        Parameter('personalization_rate_hz', value=50.0),
        Parameter('personalization_lr', value=0.05),
        Parameter('feedback_max_per_s', value=1000.0),
        Parameter('publish_debug_image', value=False),
        Parameter('driver_timeout_s', value=0.05)])


def test_feedback_on_the_topic_changes_the_policy_and_a_file_is_saved(ros_side, tmp_path):
    side = ros_side
    torch.manual_seed(0)
    base = save_policy(tmp_path / 'base.pt', PolicyNet().eval(), {'size': 64})
    node = _node(side, tmp_path, 'ae_personal', base)
    side.executor.add_node(node)
    pub = side.node.create_publisher(Image, 'camera/image_raw', image_qos(1))
    fb = side.node.create_publisher(String, 'ae_personal/feedback', command_qos(50))
    roi = side.node.create_publisher(RegionOfInterest, 'ae_personal/roi', command_qos(10))
    save = side.node.create_client(Trigger, 'ae_personal/save_personalized')
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        rng = np.random.default_rng(0)
        stamps = []
        for k in range(6):
            raw = capture(np.full((64, 96), 2e5), 0.002, 1.0, SENSOR, rng)
            msg = array_to_image(raw, 'bayer_rggb16')
            msg.header.stamp.sec, msg.header.stamp.nanosec = 100 + k, 0
            pub.publish(msg)
            assert side.spin_until(lambda: node.frames_processed > k, 20.0)
            stamps.append((100 + k) * 1_000_000_000)
        online = node._personal.online
        assert online is not None and len(online.ring) == 6
        before = {k: v.clone() for k, v in node._controller.model.state_dict().items()}
        # garbage, unknown stamp: warned and counted, nothing learned
        fb.publish(String(data='not json'))
        fb.publish(String(data=json.dumps({'stamp_ns': 5, 'label': 'under'})))
        fb.publish(String(data=json.dumps({'stamp_ns': stamps[0], 'label': 'bright'})))
        assert side.spin_until(lambda: node._personal.bad_feedback >= 3, 10.0)
        # "under" on every frame: the policy must learn to expose up
        for s in stamps:
            fb.publish(String(data=json.dumps({'stamp_ns': s, 'label': 'under'})))
        assert side.spin_until(lambda: online.updates >= 1, 30.0)
        after = node._controller.model.state_dict()
        assert any(not torch.equal(before[k], after[k]) for k in before
                   if k.startswith('exposure_head'))
        assert all(torch.equal(before[k], after[k]) for k in before if k.startswith('backbone'))
        # the node keeps deciding after bad feedback
        n = node.frames_processed
        pub.publish(array_to_image(capture(np.full((64, 96), 2e5), 0.002, 1.0, SENSOR, rng),
                                   'bayer_rggb16'))
        assert side.spin_until(lambda: node.frames_processed > n, 20.0)
        # ROI topic: the controller meters the region from now on
        roi.publish(RegionOfInterest(x_offset=0, y_offset=32, width=96, height=32))
        assert side.spin_until(lambda: node._controller.metering.mode == 'roi', 10.0)
        assert node._controller.metering.roi == pytest.approx((0.0, 0.5, 1.0, 0.5))
        # save service: an atomic file with the learned heads
        assert save.wait_for_service(timeout_sec=10.0)
        res = side.call(save.call_async(Trigger.Request()), 20.0)
        assert res is not None and res.success, res
        saved = load_policy(tmp_path / 'ae_personal_online.pt')
        assert torch.equal(saved.state_dict()['exposure_head.weight'],
                           after['exposure_head.weight'])
        assert not list(tmp_path.glob('.*.tmp'))
        diag = {kv.key: kv.value for kv in node.diagnostics().status[0].values}
        assert int(diag['bad_user_feedback']) >= 3 and int(diag['updates']) >= 1
    finally:
        side.release(node)
    assert load_policy(base).state_dict()['exposure_head.weight'].equal(
        before['exposure_head.weight'])                     # the base model is untouched


def test_saving_onto_the_base_model_is_refused(ros_side, tmp_path):
    side = ros_side
    base = save_policy(tmp_path / 'base.pt', PolicyNet().eval(), {'size': 64})
    node = AutoExposureNode('ae_personal_base', context=side.context, parameter_overrides=[
        Parameter('controller', value='personalized'),
        Parameter('model_path', value=str(base)),
        Parameter('exposure_feedback_topic', value=''),
        Parameter('personalized_model_path', value=str(base)),
        Parameter('publish_debug_image', value=False)])
    side.executor.add_node(node)
    pub = side.node.create_publisher(Image, 'camera/image_raw', image_qos(1))
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        raw = capture(np.full((64, 96), 2e5), 0.002, 1.0, SENSOR, np.random.default_rng(1))
        pub.publish(array_to_image(raw, 'bayer_rggb16'))
        assert side.spin_until(lambda: node.frames_processed > 0, 20.0)
        with pytest.raises(Exception, match='refusing to overwrite the base model'):
            node._personal.save()
        assert time.monotonic() > 0
    finally:
        side.release(node)
    assert rclpy.ok(context=side.context)
