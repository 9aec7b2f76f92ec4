"""exposure_correction_node (issue 14): a corrected image arrives with the input's header."""
from neural_ae.core.correction.model import CORRECTION_FORMAT
from neural_ae.core.correction.networks import CorrectionUNet
from neural_ae.core.isp import ISP, ISPConfig
from neural_ae.core.sensor import capture, load_sensor
from neural_ae.nodes.exposure_correction_node import ExposureCorrectionNode
from neural_ae.ros.conversions import array_to_image
from neural_ae.ros.qos import image_qos
import numpy as np
import pytest
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image
import torch

SENSOR = load_sensor('imx249')


@pytest.fixture(scope='module')
def model_file(tmp_path_factory):
    torch.manual_seed(0)
    net = CorrectionUNet((4, 8, 8))
    path = tmp_path_factory.mktemp('correction') / 'tiny.pt'
    torch.save({'format': CORRECTION_FORMAT, 'arch': 'encdec',
                'net': {'widths': [4, 8, 8], 'leak': 0.3, 'noise': False,
                        'global_context': True, 'residual': False},
                'model': net.state_dict(),
                'isp': ISP(ISPConfig.from_sensor(SENSOR)).state_dict(), 'config': {}}, path)
    return path


def _node(ros_side, name, model, **params):
    over = [Parameter('model_path', value=str(model)),
            Parameter('input_topic', value=f'{name}/image_raw'),
            Parameter('output_topic', value=f'{name}/image_corrected')]
    over += [Parameter(k, value=v) for k, v in params.items()]
    return ExposureCorrectionNode(name, context=ros_side.context, parameter_overrides=over)


def test_corrected_image_arrives_with_the_input_header(ros_side, model_file):
    node = _node(ros_side, 'corr_header', model_file)
    got = []
    sub = ros_side.node.create_subscription(Image, 'corr_header/image_corrected',
                                            got.append, image_qos(1))
    pub = ros_side.node.create_publisher(Image, 'corr_header/image_raw', image_qos(1))
    ros_side.executor.add_node(node)
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        raw = capture(np.full((48, 64), 3e5), 0.004, 1.0, SENSOR, np.random.default_rng(0))
        msg = array_to_image(raw, 'bayer_rggb16')
        msg.header.frame_id = 'cam_front'
        msg.header.stamp.sec, msg.header.stamp.nanosec = 12, 345
        assert ros_side.spin_until(lambda: pub.get_subscription_count() > 0, 10.0)
        for _ in range(50):
            pub.publish(msg)
            if ros_side.spin_until(lambda: bool(got), 0.5):
                break
        assert got, 'no corrected image arrived'
        out = got[-1]
        assert out.encoding == 'rgb8' and (out.height, out.width) == (48, 64)
        assert out.header.frame_id == 'cam_front'
        assert (out.header.stamp.sec, out.header.stamp.nanosec) == (12, 345)
        # an rgb8 input is corrected too; a bad image is counted, the node keeps going
        got.clear()
        bad = array_to_image(np.zeros((4, 4), np.float32), '32FC1')
        pub.publish(bad)
        ros_side.spin_until(lambda: node.stats['bad_frames'] > 0, 5.0)
        assert node.stats['bad_frames'] == 1
        rgb = array_to_image(np.full((32, 40, 3), 30, np.uint8), 'rgb8', msg.header)
        for _ in range(50):
            pub.publish(rgb)
            if ros_side.spin_until(lambda: bool(got), 0.5):
                break
        assert got and (got[-1].height, got[-1].width) == (32, 40)
        assert got[-1].header.frame_id == 'cam_front'
    finally:
        ros_side.node.destroy_subscription(sub)
        ros_side.node.destroy_publisher(pub)
        ros_side.release(node)


def test_a_missing_or_broken_model_fails_configure_and_the_node_stays_alive(
        ros_side, model_file, tmp_path):
    (tmp_path / 'broken.pt').write_bytes(b'not a checkpoint')
    for name, path in (('corr_missing', tmp_path / 'none.pt'),
                       ('corr_broken', tmp_path / 'broken.pt')):
        node = _node(ros_side, name, path)
        try:
            assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
            assert node.lifecycle_state() == 'unconfigured'
            # a runtime change to a file that is not a checkpoint is refused with the reason
            res = node.set_parameters([Parameter('model_path', value=str(tmp_path / 'x.pt'))])
            assert not res[0].successful and 'not found' in res[0].reason
            assert node.set_parameters([Parameter('model_path',
                                                  value=str(model_file))])[0].successful
            assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        finally:
            node.trigger_cleanup()
            node.destroy_node()
