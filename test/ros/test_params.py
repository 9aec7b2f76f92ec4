"""Parameter specs: descriptors, validation, YAML overrides and the ControllerOptions mapping."""
from dataclasses import fields

from neural_ae.core.controllers import ControllerOptions
from neural_ae.core.errors import ConfigError
from neural_ae.core.sensor import load_sensor
from neural_ae.nodes.auto_exposure_node import ae_parameter_specs
from neural_ae.nodes.camera_sim_node import sim_parameter_specs
from neural_ae.ros import params as P
from neural_ae.ros.qos import command_qos, diagnostics_qos, image_qos
import pytest
from rcl_interfaces.msg import ParameterType
import rclpy
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, ReliabilityPolicy

SENSOR = load_sensor('imx249')


@pytest.fixture
def node():
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    n = rclpy.create_node('params_test', context=ctx, start_parameter_services=False)
    yield n
    n.destroy_node()
    rclpy.try_shutdown(context=ctx)


def test_spec_types_and_descriptors():
    spec = P.ParamSpec('x', 1.5, 'a number [m]', 0.0, 2.0)
    d = spec.descriptor()
    assert spec.kind == 'float' and d.type == ParameterType.PARAMETER_DOUBLE
    assert d.description == 'a number [m]'
    assert (d.floating_point_range[0].from_value, d.floating_point_range[0].to_value) == (0, 2)
    ispec = P.ParamSpec('n', 3, 'count [frames]', 0, 10, read_only=True)
    assert ispec.descriptor().integer_range[0].to_value == 10
    assert ispec.descriptor().read_only
    sspec = P.ParamSpec('mode', 'a', 'choice', choices=('a', 'b'))
    assert 'a, b' in sspec.descriptor().additional_constraints
    with pytest.raises(ConfigError):
        P.ParamSpec('y', 5.0, 'default outside', 0.0, 1.0)
    with pytest.raises(ConfigError):
        P.ParamSpec('z', 1.0, 'number without range')


@pytest.mark.parametrize('value, ok', [(0.5, True), (2, True), (2.5, False), (True, False),
                                       ('1', False), (float('nan'), False)])
def test_check_value_float(value, ok):
    spec = P.ParamSpec('x', 1.0, 'x', 0.0, 2.0)
    assert (P.check_value(spec, value) is None) == ok


def test_check_value_strings_and_ints():
    assert P.check_value(P.ParamSpec('m', 'a', 'm', choices=('a', 'b')), 'c')
    assert P.check_value(P.ParamSpec('n', 1, 'n', 0, 3), 1.0)
    assert P.check_value(P.ParamSpec('n', 1, 'n', 0, 3), 3) is None
    assert P.check_value(P.ParamSpec('b', True, 'b'), 1)


def test_every_controller_option_has_a_parameter_and_defaults_round_trip():
    specs = P.controller_option_specs(SENSOR)
    assert {s.name for s in specs} == {f.name for f in fields(ControllerOptions)}
    defaults = {s.name: s.default for s in specs}
    assert P.options_from_values(defaults) == ControllerOptions()
    assert P.values_from_options(ControllerOptions()) == defaults
    for spec in specs:
        assert spec.description.strip()
        assert spec.kind in ('float', 'int', 'str')


def test_sentinels_and_cross_checks():
    values = {s.name: s.default for s in P.controller_option_specs(SENSOR)}
    opts = P.options_from_values(dict(values, fixed_gain_db=6.0, max_step_ev=0.5,
                                      smoothing='ema', max_exposure_us=0.0))
    assert opts.fixed_gain_db == 6.0 and opts.max_step_ev == 0.5 and opts.smoothing == 'ema'
    assert opts.max_exposure_us is None
    assert P.check_options(dict(values, min_exposure_us=20000.0), SENSOR)
    assert 'fixed_gain_db' in P.check_options(dict(values, fixed_gain_db=-0.5), SENSOR)
    assert P.check_options(dict(values, min_exposure_us=100.0), SENSOR) is None


def test_overrides_from_yaml_values():
    specs = [P.ParamSpec('rate', 30.0, 'rate [Hz]', 1.0, 100.0),
             P.ParamSpec('name', 'a', 'name')]
    params = P.overrides_from_dict(specs, {'rate': 10, 'name': 'b'})
    assert [(p.name, p.value, p.type_) for p in params] == [
        ('rate', 10.0, Parameter.Type.DOUBLE), ('name', 'b', Parameter.Type.STRING)]
    with pytest.raises(ConfigError, match='unknown parameter'):
        P.overrides_from_dict(specs, {'rat': 1.0})
    with pytest.raises(ConfigError, match='outside'):
        P.overrides_from_dict(specs, {'rate': 1000.0})
    with pytest.raises(ConfigError, match='expected a string'):
        P.overrides_from_dict(specs, {'name': 3})


def test_declare_on_a_node_and_reject_out_of_range(node):
    specs = [P.ParamSpec('gain', 0.0, 'gain [dB]', 0.0, 24.0),
             P.ParamSpec('fixed', 'x', 'fixed', read_only=True),
             P.ParamSpec('level', 3, 'level', 0, 5)]
    assert P.declare(node, specs) == {'gain': 0.0, 'fixed': 'x', 'level': 3}
    desc = node.describe_parameter('gain')
    assert desc.description == 'gain [dB]' and desc.floating_point_range[0].to_value == 24.0
    assert not node.set_parameters([Parameter('gain', value=30.0)])[0].successful
    assert not node.set_parameters([Parameter('fixed', value='y')])[0].successful
    assert node.set_parameters([Parameter('gain', value=6.0)])[0].successful
    values, reason = P.merged_values(node, specs, [Parameter('level', value=9)])
    assert reason and 'level' in reason
    values, reason = P.merged_values(node, specs, [Parameter('level', value=4)])
    assert reason is None and values == {'gain': 6.0, 'fixed': 'x', 'level': 4}


def test_node_specs_have_descriptions_ranges_and_no_duplicates():
    for specs in (ae_parameter_specs(SENSOR), sim_parameter_specs(SENSOR)):
        P.spec_map(specs)
        for spec in specs:
            assert len(spec.description) > 10, spec.name
            if spec.kind in ('int', 'float'):
                assert spec.low is not None and spec.high is not None
    sim = P.spec_map(sim_parameter_specs(SENSOR))
    assert sim['exposure_time'].low == SENSOR.min_exposure_us
    assert sim['exposure_time'].high == SENSOR.max_exposure_us
    assert sim['gain'].high == SENSOR.max_gain_db


def test_qos_profiles():
    img = image_qos()
    assert img.depth == 1 and img.reliability == ReliabilityPolicy.BEST_EFFORT
    assert command_qos().reliability == ReliabilityPolicy.RELIABLE
    assert diagnostics_qos().durability == DurabilityPolicy.VOLATILE
