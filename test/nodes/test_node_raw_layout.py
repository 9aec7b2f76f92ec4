"""
auto_exposure_node and misread raw frames: bit_depth / bit_shift, the first-frame check.

12-bit data in the top bits of the word, a wrong big-endian flag and a deeper stream are
detected, warned about once and shown on /diagnostics; ``bit_shift`` reads shifted data
right, ``bit_shift -1`` detects the shift, ``bit_depth`` rescales to the sensor's bits.
"""
from diagnostic_msgs.msg import DiagnosticStatus
from neural_ae.core.sensor import capture, load_sensor
from neural_ae.nodes.auto_exposure_node import AutoExposureNode
from neural_ae.ros.conversions import array_to_image
import numpy as np
import pytest
import rclpy
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.parameter import Parameter

SENSOR = load_sensor('imx249')


@pytest.fixture(scope='module')
def node(ros_side):
    side = ros_side
    cam = rclpy.create_node('raw_layout_camera', context=side.context)
    cam.declare_parameter('exposure_time', 5000.0)
    cam.declare_parameter('gain', 0.0)
    n = AutoExposureNode('ae_raw_layout', context=side.context, parameter_overrides=[
        Parameter('driver_node', value='raw_layout_camera'),
        Parameter('exposure_feedback_topic', value=''),
        Parameter('publish_debug_image', value=False)])
    side.executor.add_node(cam)
    side.executor.add_node(n)
    assert n.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert side.spin_until(lambda: n._actuator.reachable, 10.0)
    yield n
    side.executor.remove_node(n)
    side.executor.remove_node(cam)
    n.trigger_cleanup()
    n.destroy_node()
    cam.destroy_node()


def _raw(seed=0, level=1e7):
    raw = capture(np.full((32, 48), level), 0.002, 1.0, SENSOR, np.random.default_rng(seed))
    assert raw.max() > 1000 and raw.max() < 4095  # above 255: a shift is visible
    return raw


def _diag(node):
    status = node.diagnostics().status[0]
    return status, {kv.key: kv.value for kv in status.values}


def _set(node, **values):
    results = node.set_parameters([Parameter(k, value=v) for k, v in values.items()])
    assert all(r.successful for r in results), [r.reason for r in results]


def _activate(node):
    assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS


def test_12bit_data_in_the_top_bits_are_detected_once_and_read_with_bit_shift(node, capfd):
    raw = _raw()
    shifted = array_to_image(raw << 4, 'bayer_rggb16')
    plain, _ = node._decode(array_to_image(raw, 'bayer_rggb16'))
    assert np.array_equal(plain, raw) and node._raw_finding is None
    capfd.readouterr()
    _activate(node)
    try:
        for _ in range(3):
            node._decode(shifted)
        status, values = _diag(node)
        assert status.level == DiagnosticStatus.WARN
        assert status.message.startswith('raw format:') and 'bit_shift 4' in status.message
        assert 'bit_shift 4' in values['raw_check'] and values['bit_shift'] == '0'
        log = ''.join(capfd.readouterr())
        assert log.count('raw frames look misread') == 1, log  # warned once, not per frame
        clipped, _ = node._decode(shifted)
        assert clipped.max() == 4095  # still used (clipped), as configured

        _set(node, bit_shift=4)
        assert np.array_equal(node._decode(shifted)[0], raw)
        status, values = _diag(node)
        assert values['raw_check'].startswith('ok') and values['bit_shift'] == '4'
        assert 'raw format' not in status.message

        _set(node, bit_shift=-1)  # auto: the first frames show the shift
        assert np.array_equal(node._decode(shifted)[0], raw)
        _, values = _diag(node)
        assert values['bit_shift'] == 'auto (4)' and values['raw_check'].startswith('ok')
        _set(node, bit_shift=-1)
        assert np.array_equal(node._decode(array_to_image(raw, 'bayer_rggb16'))[0], raw)
        assert _diag(node)[1]['bit_shift'] == 'auto (0)'
    finally:
        node.trigger_deactivate()
        _set(node, bit_shift=0)


def test_a_big_endian_flag_on_little_endian_data_is_reported(node):
    msg = array_to_image(_raw(1), 'bayer_rggb16')
    msg.is_bigendian = 1
    _activate(node)
    try:
        node._decode(msg)
        status, values = _diag(node)
        assert 'is_bigendian is set' in values['raw_check']
        assert 'little-endian' in status.message and status.level == DiagnosticStatus.WARN
    finally:
        node.trigger_deactivate()
        _set(node, bit_shift=0)


def test_values_above_the_white_level_and_a_10bit_stream(node):
    deep = (_raw(2).astype(np.uint32) * 4 + 1).astype(np.uint16)  # 14-bit values
    node._decode(array_to_image(deep, 'mono16'))
    assert 'exceed the 12-bit white level 4095' in _diag(node)[1]['raw_check']
    _set(node, bit_depth=14)
    assert np.array_equal(node._decode(array_to_image(deep, 'mono16'))[0], deep >> 2)
    assert _diag(node)[1]['raw_check'].startswith('ok')
    ten = _raw(3) >> 2
    _set(node, bit_depth=10)
    assert np.array_equal(node._decode(array_to_image(ten, 'mono16'))[0], ten << 2)
    # a late frame above the white level is still caught after the first frames
    for _ in range(35):
        node._decode(array_to_image(ten, 'mono16'))
    assert _diag(node)[1]['raw_check'].startswith('ok')
    node._decode(array_to_image(ten << 3, 'mono16'))
    assert 'exceed the 10-bit white level 1023' in _diag(node)[1]['raw_check']
    bad = node.set_parameters([Parameter('bit_shift', value=8)])[0]
    assert not bad.successful and 'exceeds the 16 bits' in bad.reason
    _set(node, bit_depth=12)
