"""Driver presets: unit conversions per preset, and the SetParameters client against a node."""
import math
import time

from hypothesis import given, settings, strategies as st
from neural_ae.core.controllers import ExposureSetting
from neural_ae.core.errors import ConfigError
from neural_ae.ros import actuator as A
import pytest
from rcl_interfaces.msg import FloatingPointRange, ParameterDescriptor, ParameterType
import rclpy
from rclpy.executors import SingleThreadedExecutor

FAST = settings(max_examples=60, deadline=None)
exposures = st.floats(20.0, 1e6)
gains_db = st.floats(0.0, 24.0)


def test_db_linear():
    assert A.db_to_linear(20.0) == pytest.approx(10.0)
    assert A.linear_to_db(2.0) == pytest.approx(6.0206, abs=1e-4)
    assert A.linear_to_db(A.db_to_linear(7.3)) == pytest.approx(7.3)
    with pytest.raises(A.ActuatorError):
        A.linear_to_db(0.0)


@FAST
@given(us=exposures, db=gains_db)
def test_generic_round_trip_is_exact(us, db):
    p = A.PRESETS['generic']
    assert A.exposure_from_driver(A.exposure_to_driver(us, p), p) == pytest.approx(us)
    assert A.gain_from_driver(A.gain_to_driver(db, p), p) == pytest.approx(db, abs=1e-12)
    assert isinstance(A.exposure_to_driver(us, p), float)


@FAST
@given(us=exposures, db=gains_db)
def test_v4l2_round_trip_within_one_unit(us, db):
    p = A.PRESETS['v4l2_camera']
    value = A.exposure_to_driver(us, p)
    assert isinstance(value, int) and value >= 1
    assert value == max(1, round(us / 100.0))
    assert abs(A.exposure_from_driver(value, p) - us) <= 50.0 + 1e-9 or value == 1
    fine = A.make_preset('v4l2_camera', gain_scale=100.0)  # 100 driver units per 1x
    g = A.gain_to_driver(db, fine)
    assert isinstance(g, int)
    back = A.gain_from_driver(g, fine)  # within half a driver unit, in linear terms
    assert abs(A.db_to_linear(back) * 100 - A.db_to_linear(db) * 100) <= 0.5 + 1e-9


@FAST
@given(us=exposures, db=gains_db)
def test_camera_ros_round_trip(us, db):
    p = A.PRESETS['camera_ros']
    value = A.exposure_to_driver(us, p)
    assert isinstance(value, int) and abs(value - us) <= 0.5
    gain = A.gain_to_driver(db, p)
    assert isinstance(gain, float) and gain == pytest.approx(10 ** (db / 20))
    assert A.gain_from_driver(gain, p) == pytest.approx(db, abs=1e-9)


def test_quantized_setting_and_parameter_messages():
    s = ExposureSetting(1234.0, 6.0)
    q = A.quantized_setting(s, A.PRESETS['v4l2_camera'])
    assert q.exposure_time_us == 1200.0
    msgs = A.driver_parameters(s, A.PRESETS['camera_ros'])
    assert [(m.name, m.value.type) for m in msgs] == [
        ('ExposureTime', ParameterType.PARAMETER_INTEGER),
        ('AnalogueGain', ParameterType.PARAMETER_DOUBLE)]
    assert msgs[0].value.integer_value == 1234
    assert msgs[1].value.double_value == pytest.approx(1.99526, rel=1e-4)
    msgs = A.driver_parameters(s, A.PRESETS['generic'])
    pairs = [(m.name, m.value.double_value) for m in msgs]
    assert pairs == [('exposure_time', 1234.0), ('gain', 6.0)]
    no_gain = A.make_preset('generic', gain_param='')
    assert [m.name for m in A.driver_parameters(s, no_gain)] == ['exposure_time']


def test_bad_values_and_presets():
    p = A.PRESETS['generic']
    for bad in (0.0, -5.0, math.nan, math.inf):
        with pytest.raises(A.ActuatorError):
            A.exposure_to_driver(bad, p)
    with pytest.raises(A.ActuatorError):
        A.gain_from_driver(True, p)
    with pytest.raises(ConfigError):
        A.make_preset('nikon')
    with pytest.raises(ConfigError):
        A.make_preset('generic', gain_unit='percent')
    with pytest.raises(ConfigError):
        A.DriverPreset('x', 'n', 'e', auto_param='ae')
    assert A.make_preset('v4l2_camera', exposure_param='exposure_absolute').exposure_param == \
        'exposure_absolute'


@pytest.fixture
def ros():
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    ae = rclpy.create_node('actuator_test_ae', context=ctx)
    cam = rclpy.create_node('actuator_test_camera', context=ctx)
    cam.declare_parameter('ExposureTime', 1000, ParameterDescriptor(
        type=ParameterType.PARAMETER_INTEGER))
    cam.declare_parameter('AnalogueGain', 1.0, ParameterDescriptor(
        floating_point_range=[FloatingPointRange(from_value=1.0, to_value=16.0)]))
    cam.declare_parameter('AeEnable', True)
    ex = SingleThreadedExecutor(context=ctx)
    ex.add_node(ae)
    ex.add_node(cam)

    def spin_until(pred, timeout=5.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end and not pred():
            ex.spin_once(timeout_sec=0.02)
        return pred()

    yield ae, cam, spin_until
    ex.shutdown()
    ae.destroy_node()
    cam.destroy_node()
    rclpy.try_shutdown(context=ctx)


def test_actuator_commands_a_camera_ros_node_and_switches_its_auto_exposure(ros):
    ae, cam, spin_until = ros
    act = A.CameraActuator(ae, A.PRESETS['camera_ros'], 'actuator_test_camera', timeout_s=2.0)
    assert spin_until(lambda: act.reachable)
    assert act.set_auto_exposure(False)
    assert act.command(ExposureSetting(2500.4, 6.0))  # queued behind the auto request
    assert spin_until(lambda: act.succeeded == 2)
    assert cam.get_parameter('AeEnable').value is False
    assert cam.get_parameter('ExposureTime').value == 2500
    assert cam.get_parameter('AnalogueGain').value == pytest.approx(1.99526, rel=1e-4)
    assert act.last_applied.exposure_time_us == 2500.0
    read = []
    assert act.read_current(read.append)
    assert spin_until(lambda: read)
    assert read[0].exposure_time_us == 2500.0 and read[0].gain_db == pytest.approx(6.0)
    # Out of the driver's range: rejected, reported, no exception.
    assert act.command(ExposureSetting(2000.0, 30.0))
    assert spin_until(lambda: act.rejected == 1)
    assert 'AnalogueGain' in act.last_error or 'range' in act.last_error
    assert act.status()['reachable']
    act.destroy()


def test_actuator_reports_an_unreachable_driver(ros):
    ae, _, spin_until = ros
    act = A.CameraActuator(ae, A.PRESETS['generic'], 'no_such_camera', timeout_s=0.2)
    spin_until(lambda: False, timeout=0.3)
    assert not act.reachable
    assert not act.command(ExposureSetting(1000.0, 0.0))
    status = act.status()
    assert status['unavailable'] == 1 and not status['reachable']
    assert 'not available' in status['last_error']
    act.poll()
    act.destroy()


def test_a_hair_below_the_minimum_is_sent_as_the_minimum_exactly():
    """``from_linear`` of 25 us lands on 24.999999999999996 us: the bound must win."""
    setting = ExposureSetting.from_linear(25 * 1e-6, A.db_to_linear(0.2))  # as Limits do
    assert setting.exposure_time_us < 25.0 and setting.gain_db < 0.2  # the float hair
    bounds = A.CommandBounds(25.0, 15000.0, 0.2, 24.0)
    exposure, gain, applied = A.bounded_driver_values(setting, A.PRESETS['generic'], bounds)
    assert (exposure, gain) == (25.0, 0.2)
    assert (applied.exposure_time_us, applied.gain_db) == (25.0, 0.2)
    msgs = A.driver_parameters(setting, A.PRESETS['generic'], bounds)
    assert [m.value.double_value for m in msgs] == [25.0, 0.2]
    high = ExposureSetting(15000.000000000002, 24.000000000000004)
    assert A.bounded_driver_values(high, A.PRESETS['generic'], bounds)[:2] == (15000.0, 24.0)
    assert A.bounded_driver_values(setting, A.PRESETS['generic'])[0] < 25.0  # no bounds


def test_integer_drivers_round_inwards():
    v4l2 = A.PRESETS['v4l2_camera']  # 100 us units, linear integer gain
    bounds = A.CommandBounds(140.0, 1060.0, 0.0, 6.0)
    assert A.bounded_driver_values(ExposureSetting(140.0, 0.0), v4l2, bounds)[0] == 2
    assert A.bounded_driver_values(ExposureSetting(1060.0, 0.0), v4l2, bounds)[0] == 10
    assert A.exposure_to_driver(140.0, v4l2) == 1  # plain rounding would leave the bounds
    # 6 dB is K 1.995; round() gives 2 = 6.02 dB > 6 dB: the integer inside is 1
    _, gain, applied = A.bounded_driver_values(ExposureSetting(500.0, 6.0), v4l2, bounds)
    assert gain == 1 and applied.gain_db == 0.0 and applied.exposure_time_us == 500.0
    # no integer inside [150, 180] us: the nearer end, and the setting says so
    tight = A.CommandBounds(150.0, 180.0, 0.0, 6.0)
    exposure, _, applied = A.bounded_driver_values(ExposureSetting(170.0, 0.0), v4l2, tight)
    assert exposure == 2 and applied.exposure_time_us == 200.0
    with pytest.raises(ConfigError):
        A.CommandBounds(0.0, 10.0)
    with pytest.raises(ConfigError):
        A.CommandBounds(10.0, 5.0)
    with pytest.raises(ConfigError):
        A.CommandBounds(10.0, math.inf)


@FAST
@given(us=st.floats(1e-3, 1e7), db=st.floats(-30.0, 60.0), lo=st.floats(20.0, 5000.0),
       span=st.floats(1.0, 200.0), g_lo=st.floats(0.0, 12.0), g_span=st.floats(0.0, 12.0),
       preset=st.sampled_from(sorted(A.PRESETS)), unit=st.sampled_from([1.0, 3.0, 100.0]))
def test_what_is_sent_is_inside_the_bounds_in_both_units(us, db, lo, span, g_lo, g_span,
                                                         preset, unit):
    p = A.make_preset(preset, exposure_unit_us=unit, gain_scale=1.0)
    bounds = A.CommandBounds(lo, lo * span + 2 * unit, g_lo, g_lo + g_span + 6.1)
    exposure, gain, applied = A.bounded_driver_values(ExposureSetting(us, db), p, bounds)
    assert bounds.min_exposure_us / unit <= exposure <= bounds.max_exposure_us / unit
    assert bounds.min_exposure_us <= applied.exposure_time_us <= bounds.max_exposure_us
    assert bounds.min_gain_db <= applied.gain_db <= bounds.max_gain_db
    if gain is not None:
        lo_g = A.gain_to_driver_float(bounds.min_gain_db, p)
        hi_g = A.gain_to_driver_float(bounds.max_gain_db, p)
        assert lo_g <= gain <= hi_g


def test_actuator_applies_its_bounds_and_says_why_the_driver_is_unreachable(ros):
    ae, cam, spin_until = ros
    bounds = A.CommandBounds(25.0, 15000.0, 0.2, 24.0)
    act = A.CameraActuator(ae, A.PRESETS['camera_ros'], 'actuator_test_camera', timeout_s=2.0,
                           bounds=bounds)
    assert spin_until(lambda: act.reachable) and act.unreachable_reason() == ''
    assert act.command(ExposureSetting(24.999999999999996, 0.19999999999999973))
    assert spin_until(lambda: act.succeeded == 1)
    assert cam.get_parameter('ExposureTime').value == 25
    assert cam.get_parameter('AnalogueGain').value >= A.db_to_linear(0.2)
    assert act.last_applied.exposure_time_us == 25.0 and act.last_applied.gain_db >= 0.2
    act.destroy()
    lost = A.CameraActuator(ae, A.PRESETS['generic'], 'no_such_camera', timeout_s=0.2)
    reason = lost.unreachable_reason()
    assert 'no_such_camera/set_parameters not available' in reason
    assert lost.status()['unreachable_reason'] == reason and not lost.status()['reachable']
    lost.destroy()
