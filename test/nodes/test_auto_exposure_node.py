"""
auto_exposure_node in its own process: lifecycle, bad input, unreachable driver, parameters.

One node process serves the whole module (starting one costs seconds on two cores); the
tests run in file order and each leaves the node in the state the next one expects:
unconfigured with a missing model -> active with Average AE and no driver -> driver
present, bad input -> parameters -> inactive -> unconfigured.
"""
from types import SimpleNamespace

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from neural_ae.core.sensor import capture, load_sensor
from neural_ae.ros.conversions import array_to_image
from neural_ae.ros.qos import image_qos
import numpy as np
import pytest
from rcl_interfaces.msg import ParameterDescriptor
import rclpy
from rclpy.parameter import Parameter
from rclpy.parameter_client import AsyncParameterClient
from sensor_msgs.msg import Image

SENSOR = load_sensor('imx249')
NODE = 'auto_exposure'


def _raw(height=64, width=96, level=2e6, seed=0):
    return capture(np.full((height, width), level), 0.002, 1.0, SENSOR,
                   np.random.default_rng(seed))


def _values(diag) -> dict:
    return {kv.key: kv.value for kv in diag.status[0].values}


@pytest.fixture(scope='module')
def rig(ros_side, node_processes):
    """Start the node (unconfigured, neural controller without its model file)."""
    proc = node_processes('neural_ae.nodes.auto_exposure_node', NODE, {
        'controller': 'hybrid_nn', 'model_path': '/nonexistent/hybrid.pt',
        'driver_node': 'fake_camera', 'exposure_feedback_topic': '',
        'diagnostics_period_s': 0.2, 'bad_input_warn_period_s': 0.5, 'latency_frames': 0,
        'driver_timeout_s': 2.0})
    side = ros_side
    diags = []
    side.node.create_subscription(DiagnosticArray, '/diagnostics', diags.append, 20)
    rig = SimpleNamespace(
        proc=proc, side=side, diags=diags,
        change=side.node.create_client(ChangeState, f'/{NODE}/change_state'),
        get_state=side.node.create_client(GetState, f'/{NODE}/get_state'),
        params=AsyncParameterClient(side.node, NODE),
        image_pub=side.node.create_publisher(Image, 'camera/image_raw', image_qos(1)),
        driver=None, driver_sets=[])
    assert rig.change.wait_for_service(timeout_sec=30.0), proc.output()[-3000:]
    assert rig.params.wait_for_services(timeout_sec=10.0)
    return rig


def _transition(rig, transition_id) -> bool:
    res = rig.side.call(rig.change.call_async(
        ChangeState.Request(transition=Transition(id=transition_id))), timeout=20.0)
    assert res is not None, rig.proc.output()[-3000:]
    return res.success


def _state(rig) -> str:
    res = rig.side.call(rig.get_state.call_async(GetState.Request()), timeout=10.0)
    assert res is not None
    return res.current_state.label


def _set(rig, name, value):
    res = rig.side.call(rig.params.set_parameters([Parameter(name, value=value)]), timeout=10.0)
    assert res is not None, rig.proc.output()[-3000:]
    return res.results[0]


def _latest(rig, predicate, timeout=10.0):
    """Wait for a diagnostics message of the node satisfying ``predicate(values, status)``."""
    def match():
        for d in reversed(rig.diags[-5:]):
            mine = d.status and d.status[0].name.startswith(NODE)
            if mine and predicate(_values(d), d.status[0]):
                return d
        return None
    assert rig.side.spin_until(lambda: match() is not None, timeout), (
        [(_values(d), d.status[0].message) for d in rig.diags[-2:]], rig.proc.output()[-3000:])
    return match()


def _publish_bad(rig, msg, n_bad: int):
    """Publish a bad frame and wait until the node reports ``n_bad`` bad frames."""
    rig.image_pub.publish(msg)
    return _latest(rig, lambda v, st: int(v['bad_frames']) >= n_bad)


def _publish_good(rig, msg, n_processed: int):
    """Publish a frame and wait until the node reports ``n_processed`` processed frames."""
    rig.image_pub.publish(msg)
    return _latest(rig, lambda v, st: int(v['frames_processed']) >= n_processed)


def test_missing_model_fails_configure_and_node_stays_alive(rig):
    assert _state(rig) == 'unconfigured'
    assert not _transition(rig, Transition.TRANSITION_CONFIGURE)
    assert _state(rig) == 'unconfigured'
    assert rig.proc.alive()
    diag = _latest(rig, lambda v, st: v['state'] == 'unconfigured' and 'model' in st.message)
    assert diag.status[0].level == DiagnosticStatus.ERROR
    assert 'model file' in diag.status[0].message
    assert '/nonexistent/hybrid.pt' in rig.proc.output()


def test_configure_and_activate_with_a_classical_controller(rig):
    assert _set(rig, 'controller', 'average').successful
    assert _transition(rig, Transition.TRANSITION_CONFIGURE)
    assert _transition(rig, Transition.TRANSITION_ACTIVATE)
    assert _state(rig) == 'active'


def test_unreachable_driver_is_reported_and_frames_still_processed(rig):
    diag = _publish_good(rig, array_to_image(_raw(), 'bayer_rggb16'), 1)
    values = _values(diag)
    assert values['state'] == 'active'
    assert values['driver_reachable'] == 'false'
    reason = values['driver_unreachable_reason']
    assert 'service /fake_camera/set_parameters not available' in reason, values
    assert diag.status[0].level == DiagnosticStatus.WARN
    assert diag.status[0].message == f'driver fake_camera unreachable: {reason}'
    # the log says it too, throttled (bad_input_warn_period_s), with the reason
    line = f'driver fake_camera unreachable: {reason}'
    assert rig.side.spin_until(lambda: line in rig.proc.output(), 10.0), \
        rig.proc.output()[-2000:]
    assert rig.proc.alive()


def test_bad_input_is_skipped_and_a_valid_frame_is_answered(rig):
    side = rig.side
    rig.driver = rclpy.create_node('fake_camera', context=side.context)  # a generic driver
    side.executor.add_node(rig.driver)
    for name, value in (('exposure_time', 5000.0), ('gain', 0.0)):
        rig.driver.declare_parameter(name, value, ParameterDescriptor(description=name))
    rig.driver.add_post_set_parameters_callback(lambda ps: rig.driver_sets.append(
        {p.name: p.value for p in ps}))
    _latest(rig, lambda v, st: v['driver_reachable'] == 'true', timeout=20.0)

    good = array_to_image(_raw(), 'bayer_rggb16')
    wrong_encoding = array_to_image(_raw(), 'bayer_rggb16')
    wrong_encoding.encoding = 'yuv422'
    short = array_to_image(_raw(), 'bayer_rggb16')
    short.data = bytes(short.data)[:-10]
    empty = Image(encoding='bayer_rggb16', height=0, width=0, step=0)
    huge_step = array_to_image(_raw(), 'mono16')
    huge_step.step = 1
    start = _values(_latest(rig, lambda v, st: v['driver_reachable'] == 'true'))
    n_sets, n_bad = len(rig.driver_sets), int(start['bad_frames'])
    reasons = []
    for k, bad in enumerate((wrong_encoding, short, empty, huge_step)):
        values = _values(_publish_bad(rig, bad, n_bad + k + 1))
        reasons.append(values['last_bad_input'])
        # no command for a bad frame: nothing sent, nothing processed, the driver untouched
        assert values['commands_sent'] == start['commands_sent'], values
        assert values['frames_processed'] == start['frames_processed'], values
    assert rig.proc.alive()
    assert 'yuv422' in reasons[0] and 'data length' in reasons[1], reasons
    assert 'empty image' in reasons[2] and 'step 1 <' in reasons[3], reasons
    assert 'yuv422' in rig.proc.output()
    assert len(rig.driver_sets) == n_sets, rig.driver_sets

    done = int(start['frames_processed'])
    _publish_good(rig, array_to_image(_raw(63, 95), 'bayer_rggb16'), done + 1)  # odd: cropped
    _publish_good(rig, array_to_image(np.full((48, 64, 3), 200, np.uint8), 'rgb8'), done + 2)
    _publish_good(rig, good, done + 3)
    assert side.spin_until(lambda: len(rig.driver_sets) >= n_sets + 3, 10.0), (
        rig.driver_sets, rig.proc.output()[-2000:])
    assert any('exposure_time' in s for s in rig.driver_sets)
    diag = _latest(rig, lambda v, st: v['driver_reachable'] == 'true'
                   and int(v['frames_processed']) >= done + 3)
    assert int(_values(diag)['errors']) == 0

    # A bright frame asks for less exposure (time x gain) than a dark one.
    def exposure_value():
        p = rig.driver.get_parameter
        return p('exposure_time').value * 10 ** (p('gain').value / 20)

    before = exposure_value()
    rig.image_pub.publish(array_to_image(_raw(level=4e7), 'bayer_rggb16'))
    assert side.spin_until(lambda: exposure_value() < before / 1.5, 10.0), \
        (before, exposure_value())


def test_bad_parameters_are_rejected_with_a_reason(rig):
    for name, value, needle in (
            ('ev_compensation', 10.0, 'ev_compensation out of range Min: -6.0, Max: 6.0'),
            ('controller', 'oracle', "controller: 'oracle' is not one of"),
            ('min_exposure_us', 20000.0, 'min_exposure_us 20000.0 > max_exposure_us'),
            ('fixed_gain_db', -0.5, 'fixed_gain_db'),
            ('controller', 'hybrid_nn', 'model file for hybrid_nn not found: '
             '/nonexistent/hybrid.pt'),
            ('bit_shift', 6, 'bit_depth 12 + bit_shift 6 exceeds the 16 bits'),
            ('sensor', 'imx490', 'read-only parameter: sensor')):
        result = _set(rig, name, value)
        assert not result.successful, (name, value)
        assert needle in result.reason, (name, result.reason)
    assert _set(rig, 'ev_compensation', 1.0).successful
    assert _set(rig, 'controller', 'gradient').successful
    # the running controller is reported until the worker has switched
    rig.image_pub.publish(array_to_image(_raw(), 'bayer_rggb16'))
    diag = _latest(rig, lambda v, st: v['controller'] == 'gradient')
    assert 'controller_requested' not in _values(diag)
    assert rig.proc.alive()


def test_deactivate_and_cleanup(rig):
    assert _transition(rig, Transition.TRANSITION_DEACTIVATE)
    assert _state(rig) == 'inactive'
    assert _transition(rig, Transition.TRANSITION_CLEANUP)
    assert _state(rig) == 'unconfigured'
    assert rig.proc.alive()
    rig.side.executor.remove_node(rig.driver)
    rig.driver.destroy_node()
