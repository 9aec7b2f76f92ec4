"""exposure_monitor_node: over-exposed stream -> WARN within N frames, good stays OK (issue 13)."""
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from neural_ae.core.assessment.labels import ExampleSpec, render_example, TEST_SEED_START
from neural_ae.core.checkpoints import resolve_model_path
from neural_ae.nodes.exposure_monitor_node import ExposureMonitorNode
from neural_ae.ros.conversions import array_to_image
from neural_ae.ros.qos import diagnostics_qos, image_qos
import numpy as np
import pytest
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image

HOLD = 3


def _frame(shift_ev: float) -> np.ndarray:
    ex = render_example(ExampleSpec(TEST_SEED_START, shift_ev, 0.0, 7), 128, 192)
    return (ex.rgb * 255 + 0.5).astype(np.uint8)


def _node(side, topic, model=None):
    model = model or str(resolve_model_path(None, 'assessor_demo.pt'))
    node = ExposureMonitorNode(context=side.context, parameter_overrides=[
        Parameter('image_topic', value=topic), Parameter('model', value=model),
        Parameter('rate_hz', value=50.0), Parameter('hold_frames', value=HOLD),
        Parameter('width', value=192)])
    return node


def _stream(side, topic, frame, n):
    """Publish ``n`` copies of ``frame``, one per assessment; return the diagnostics."""
    got = []
    sub = side.node.create_subscription(
        DiagnosticArray, '/diagnostics',
        lambda m: got.extend(s for s in m.status if s.name.endswith(topic)), diagnostics_qos())
    res = []
    side.node.create_subscription(Image, '/exposure_monitor/residual', res.append, image_qos())
    pub = side.node.create_publisher(Image, topic, image_qos())
    side.spin_for(0.5)
    for i in range(n):
        pub.publish(array_to_image(frame, 'rgb8'))
        assert side.spin_until(lambda: len(got) > i, 20.0), f'no diagnostics for frame {i}'
    side.node.destroy_subscription(sub)
    side.node.destroy_publisher(pub)
    return got, res


@pytest.mark.parametrize('shift,expect_bad', [(4.0, True), (0.0, False)])
def test_monitor_levels(ros_side, shift, expect_bad):
    topic = f'/monitor_test_{"over" if expect_bad else "good"}'
    node = _node(ros_side, topic)
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    node.trigger_activate()
    ros_side.executor.add_node(node)
    try:
        n = 2 * HOLD + 2
        got, res = _stream(ros_side, topic, _frame(shift), n)
    finally:
        ros_side.release(node)
    levels = [s.level for s in got[:n]]
    first_bad = next((i for i, lv in enumerate(levels) if lv != DiagnosticStatus.OK), None)
    if expect_bad:
        # over-exposed: WARN (or ERROR) exactly once HOLD frames agree, not before
        assert first_bad == HOLD - 1, levels
        assert all(lv != DiagnosticStatus.OK for lv in levels[HOLD - 1:])
        values = {kv.key: kv.value for kv in got[-1].values}
        assert float(values['over_share']) > float(values['under_share'])
        assert 'over-exposed' in got[-1].message
    else:
        assert first_bad is None, levels
    assert res and res[0].encoding == '32FC1' and res[0].width == 192


def test_bad_model_fails_configure(ros_side, tmp_path):
    bad = tmp_path / 'bad.pt'
    bad.write_text('not a model')
    node = _node(ros_side, '/monitor_test_bad', str(bad))
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
    finally:
        node.destroy_node()


def test_bad_input_keeps_running(ros_side):
    topic = '/monitor_test_mono'
    node = _node(ros_side, topic)
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    node.trigger_activate()
    ros_side.executor.add_node(node)
    got = []
    sub = ros_side.node.create_subscription(
        DiagnosticArray, '/diagnostics',
        lambda m: got.extend(s for s in m.status if s.name.endswith(topic)), diagnostics_qos())
    pub = ros_side.node.create_publisher(Image, topic, image_qos())
    try:
        ros_side.spin_for(0.5)
        pub.publish(array_to_image(np.zeros((8, 8), np.float32), '32FC1'))
        assert ros_side.spin_until(lambda: got, 20.0)
        assert got[0].level == DiagnosticStatus.WARN and 'bad input' in got[0].message
        pub.publish(array_to_image(_frame(0.0), 'rgb8'))
        assert ros_side.spin_until(lambda: len(got) > 1, 20.0)
        assert got[1].level == DiagnosticStatus.OK
    finally:
        ros_side.node.destroy_subscription(sub)
        ros_side.node.destroy_publisher(pub)
        ros_side.release(node)
