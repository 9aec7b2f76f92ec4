"""
Declarative ROS 2 parameters: one :class:`ParamSpec` per parameter, declared with a descriptor.

Every node of the package lists its parameters as :class:`ParamSpec` objects (name,
default, description with unit, range, read-only flag, allowed strings) and declares them
with :func:`declare`, so each parameter carries a ``ParameterDescriptor`` with a
description and a ``FloatingPointRange``/``IntegerRange``. The same specs validate merged
values in on-set-parameters callbacks (:func:`check_value`, :func:`merged_values`) and
turn a parsed ROS 2 params YAML into typed ``parameter_overrides``
(:func:`overrides_from_dict`), so ``1`` in YAML is accepted for a float parameter.

:func:`controller_option_specs` maps :class:`~neural_ae.core.controllers.ControllerOptions`
to one parameter per option (same names). ROS parameters cannot be ``None``; optional
options use a documented sentinel instead (``0`` or ``-1``, see :data:`OPTION_NONE`),
which :func:`options_from_values` turns back into ``None``.
"""
from dataclasses import dataclass, fields
import math
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from neural_ae.core.controllers import ControllerOptions
from neural_ae.core.controllers.base import SMOOTHINGS
from neural_ae.core.errors import ConfigError, ControllerError
from neural_ae.core.sensor import SensorConfig
from rcl_interfaces.msg import (FloatingPointRange, IntegerRange, ParameterDescriptor,
                                ParameterType)
from rclpy.parameter import Parameter

__all__ = [
    'OPTION_NONE',
    'ParamSpec',
    'check_options',
    'check_value',
    'controller_option_specs',
    'declare',
    'declare_sensor',
    'merged_values',
    'options_from_values',
    'overrides_from_dict',
    'read',
    'spec_map',
    'values_from_options',
]


@dataclass(frozen=True)
class ParamSpec:
    """
    One node parameter: name, default (its type sets the parameter type), documentation.

    ``low``/``high`` give the range of a number (both required for numbers; ``step`` 0 =
    continuous), ``choices`` the allowed values of a string (empty = free text),
    ``read_only`` parameters can only be set at start-up (overrides / YAML).
    """

    name: str
    default: Any
    description: str
    low: Optional[float] = None
    high: Optional[float] = None
    step: float = 0.0
    read_only: bool = False
    choices: Tuple[str, ...] = ()

    def __post_init__(self):
        kind = self.kind
        if kind in ('int', 'float'):
            if self.low is None or self.high is None or self.low > self.high:
                raise ConfigError(f'parameter {self.name}: a number needs low <= high, '
                                  f'got [{self.low}, {self.high}]')
        reason = check_value(self, self.default)
        if reason:
            raise ConfigError(f'parameter {self.name}: default {self.default!r} invalid: '
                              f'{reason}')

    @property
    def kind(self) -> str:
        """``'bool'``, ``'int'``, ``'float'``, ``'str'`` or ``'str_list'``."""
        d = self.default
        if isinstance(d, bool):
            return 'bool'
        if isinstance(d, int):
            return 'int'
        if isinstance(d, float):
            return 'float'
        if isinstance(d, str):
            return 'str'
        if isinstance(d, (list, tuple)) and all(isinstance(v, str) for v in d):
            return 'str_list'
        raise ConfigError(f'parameter {self.name}: unsupported default {d!r}')

    @property
    def ros_type(self) -> int:
        """Return the ``rcl_interfaces/ParameterType`` constant of this parameter."""
        return {'bool': ParameterType.PARAMETER_BOOL,
                'int': ParameterType.PARAMETER_INTEGER,
                'float': ParameterType.PARAMETER_DOUBLE,
                'str': ParameterType.PARAMETER_STRING,
                'str_list': ParameterType.PARAMETER_STRING_ARRAY}[self.kind]

    def descriptor(self) -> ParameterDescriptor:
        """Build a ``ParameterDescriptor`` with description, range and read-only flag."""
        desc = ParameterDescriptor(name=self.name, type=self.ros_type,
                                   description=self.description, read_only=self.read_only)
        if self.kind == 'float':
            desc.floating_point_range = [FloatingPointRange(
                from_value=float(self.low), to_value=float(self.high), step=float(self.step))]
        elif self.kind == 'int':
            desc.integer_range = [IntegerRange(
                from_value=int(self.low), to_value=int(self.high), step=int(self.step))]
        if self.choices:
            desc.additional_constraints = 'one of: ' + ', '.join(self.choices)
        return desc


def check_value(spec: ParamSpec, value) -> Optional[str]:
    """Return why ``value`` is not valid for ``spec`` (type, range, choices), else None."""
    kind = spec.kind
    if kind == 'bool':
        return None if isinstance(value, bool) else f'expected a bool, got {value!r}'
    if kind in ('int', 'float'):
        ok_type = isinstance(value, int) if kind == 'int' else isinstance(value, (int, float))
        if isinstance(value, bool) or not ok_type:
            return f'expected {"an integer" if kind == "int" else "a number"}, got {value!r}'
        if kind == 'float' and not math.isfinite(value):
            return f'must be finite, got {value!r}'
        if not spec.low <= value <= spec.high:
            return f'{value!r} is outside [{spec.low:g}, {spec.high:g}]'
        return None
    if kind == 'str':
        if not isinstance(value, str):
            return f'expected a string, got {value!r}'
        if spec.choices and value not in spec.choices:
            return f'{value!r} is not one of {", ".join(spec.choices)}'
        return None
    if not (isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)):
        return f'expected a list of strings, got {value!r}'
    return None


def spec_map(specs: Iterable[ParamSpec]) -> Dict[str, ParamSpec]:
    """``{name: spec}``; duplicate names are a :class:`ConfigError`."""
    out = {}
    for spec in specs:
        if spec.name in out:
            raise ConfigError(f'parameter {spec.name} is declared twice')
        out[spec.name] = spec
    return out


def declare(node, specs: Sequence[ParamSpec]) -> Dict[str, Any]:
    """
    Declare every spec on ``node`` with its descriptor; return ``{name: value}``.

    Parameters the node has already declared are left as they are.
    """
    for spec in specs:
        if node.has_parameter(spec.name):
            continue
        default = list(spec.default) if spec.kind == 'str_list' else spec.default
        node.declare_parameter(spec.name, default, spec.descriptor())
    return read(node, specs)


def declare_sensor(node, default: str = 'imx249') -> str:
    """
    Declare the read-only ``sensor`` parameter first and return its value.

    Nodes whose parameter ranges depend on the sensor (exposure and gain limits) call this
    before building their other specs, so ``-p sensor:=...`` on the command line, a params
    file and ``parameter_overrides`` all work.
    """
    spec = ParamSpec('sensor', default, 'Sensor preset name (config/sensors/<name>.yaml) or '
                     'YAML path; sets exposure and gain limits, levels and Bayer pattern.',
                     read_only=True)
    if not node.has_parameter('sensor'):
        node.declare_parameter('sensor', default, spec.descriptor())
    return node.get_parameter('sensor').value or default


def read(node, specs: Sequence[ParamSpec]) -> Dict[str, Any]:
    """Read the current values of the declared ``specs`` on ``node``."""
    out = {}
    for spec in specs:
        value = node.get_parameter(spec.name).value
        out[spec.name] = list(value) if spec.kind == 'str_list' else value
    return out


def merged_values(node, specs: Sequence[ParamSpec], changes: Sequence[Parameter]) -> tuple:
    """
    Return the current values with ``changes`` applied: ``(values, reason)``.

    ``reason`` says why one change is invalid for its spec (None when all are valid);
    parameters without a spec are ignored.
    """
    by_name = spec_map(specs)
    values = read(node, specs)
    for param in changes:
        spec = by_name.get(param.name)
        if spec is None:
            continue
        value = param.value
        if spec.kind == 'str_list' and value is not None:
            value = list(value)
        reason = check_value(spec, value)
        if reason:
            return values, f'{param.name}: {reason}'
        values[param.name] = value
    return values, None


def _coerce(spec: ParamSpec, value, where: str):
    if spec.kind == 'float' and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if spec.kind == 'str_list' and isinstance(value, tuple):
        value = list(value)
    reason = check_value(spec, value)
    if reason:
        raise ConfigError(f'{where}: parameter {spec.name}: {reason}')
    return value


def overrides_from_dict(specs: Sequence[ParamSpec], values: Optional[dict],
                        where: str = 'parameters') -> List[Parameter]:
    """
    Typed ``parameter_overrides`` for a node from a ``{name: value}`` mapping (e.g. YAML).

    Integers are accepted for float parameters; unknown names, wrong types and
    out-of-range values raise :class:`ConfigError` naming ``where`` and the parameter.
    """
    by_name = spec_map(specs)
    out = []
    for name, value in (values or {}).items():
        spec = by_name.get(name)
        if spec is None:
            raise ConfigError(f'{where}: unknown parameter {name!r}; known: '
                              f'{", ".join(sorted(by_name))}')
        out.append(Parameter(name, value=_coerce(spec, value, where)))
    return out


# --------------------------------------------------------------------------- controller options

#: Sentinel parameter value that stands for ``None`` for the optional ControllerOptions.
OPTION_NONE = {
    'min_exposure_us': 0.0,
    'max_exposure_us': 0.0,
    'max_gain_db': -1.0,
    'fixed_exposure_us': 0.0,
    'fixed_gain_db': -1.0,
    'max_step_ev': 0.0,
    'smoothing': 'default',
}


def controller_option_specs(sensor: SensorConfig) -> List[ParamSpec]:
    """
    One :class:`ParamSpec` per :class:`ControllerOptions` field, ranges from its docs.

    Exposure bounds are limited to ``sensor``'s range, gains to its maximum gain.
    """
    t_hi = float(sensor.max_exposure_us)
    g_hi = float(sensor.max_gain_db)
    d = ControllerOptions()
    specs = [
        ParamSpec('min_exposure_us', float(d.min_exposure_us or 0.0),
                  f'Shortest exposure time the controller commands [us]; 0 = sensor minimum '
                  f'({sensor.min_exposure_us:g} us).', 0.0, t_hi),
        ParamSpec('max_exposure_us', float(d.max_exposure_us or 0.0),
                  'Longest exposure time [us]; with exposure priority this is Eq. 6 T_max '
                  '(paper: 15000 us); 0 = sensor maximum.', 0.0, t_hi),
        ParamSpec('min_gain_db', float(d.min_gain_db),
                  'Lowest analog gain [dB] (0 dB = K 1).', 0.0, g_hi),
        ParamSpec('max_gain_db', -1.0 if d.max_gain_db is None else float(d.max_gain_db),
                  f'Highest analog gain [dB]; -1 = sensor maximum ({g_hi:g} dB).', -1.0, g_hi),
        ParamSpec('priority', d.priority,
                  'exposure: raise exposure time up to max_exposure_us first, then gain '
                  '(Eq. 6); gain: raise gain first.', choices=('exposure', 'gain')),
        ParamSpec('fixed_exposure_us', 0.0,
                  'Hold the exposure time at this value [us], gain stays automatic; '
                  '0 = automatic.', 0.0, t_hi),
        ParamSpec('fixed_gain_db', -1.0,
                  'Hold the gain at this value [dB], exposure time stays automatic; '
                  '-1 = automatic.', -1.0, g_hi),
        ParamSpec('ev_compensation', float(d.ev_compensation),
                  'Bias of the exposure target [EV]: target *= 2**ev (+1 = twice the '
                  'exposure).', -6.0, 6.0),
        ParamSpec('deadband_ev', float(d.deadband_ev),
                  'Hold the last command while the target is closer than this [EV]; '
                  '0 = off.', 0.0, 6.0),
        ParamSpec('max_step_ev', 0.0,
                  'Largest change of the command per frame [EV]; 0 = no limit.', 0.0, 12.0),
        ParamSpec('flicker', d.flicker,
                  'Mains flicker avoidance: exposure times of at least one light period '
                  '(10 ms at 50 Hz, 8.33 ms at 60 Hz) become whole multiples of it.',
                  choices=('off', '50hz', '60hz')),
        ParamSpec('latency_frames', int(d.latency_frames),
                  'Actuation latency of the camera [frames]: a command issued after frame '
                  'n takes effect at frame n + 1 + latency_frames. Used to infer which '
                  'setting produced a frame when the camera does not report it.', 0, 30),
        ParamSpec('smoothing', 'default',
                  'Temporal smoothing of the command: none, ema (Eq. 5), adaptive, stable '
                  '(adaptive + damping of sign-alternating corrections, stable under '
                  "actuation latency); default = the controller's own (stable for the "
                  'networks, none for the baselines).',
                  choices=('default',) + tuple(SMOOTHINGS)),
        ParamSpec('mu', float(d.mu),
                  'EMA weight of the previous exposure (paper: 0.9) [-].', 0.0, 0.9999),
        ParamSpec('adaptive_scale_ev', float(d.adaptive_scale_ev),
                  'Correction size at which the adaptive EMA weight drops to mu / e [EV].',
                  0.01, 12.0),
        ParamSpec('m_exp', float(d.m_exp),
                  'Eq. 4 bound: network corrections lie in [1 / m_exp, m_exp] (paper: 10) '
                  '[-].', 1.001, 1000.0),
        ParamSpec('converged_ev', float(d.converged_ev),
                  'The decision is flagged converged when the target is this close to the '
                  'setting that produced the frame [EV].', 0.001, 6.0),
    ]
    names = {f.name for f in fields(ControllerOptions)}
    missing = names - {s.name for s in specs}
    if missing:  # a new option in the core must get a parameter here
        raise ConfigError(f'ControllerOptions fields without a parameter: {sorted(missing)}')
    return specs


def options_from_values(values: dict) -> ControllerOptions:
    """
    Build :class:`ControllerOptions` from parameter values (sentinels -> ``None``).

    Keys that are not options are ignored. Invalid combinations raise
    :class:`ControllerError` with the option's own message.
    """
    names = {f.name for f in fields(ControllerOptions)}
    data = {}
    for name in names:
        if name not in values:
            continue
        value = values[name]
        if name in OPTION_NONE and value == OPTION_NONE[name]:
            value = None
        elif name in ('fixed_gain_db', 'max_gain_db') and isinstance(value, float) and value < 0:
            raise ControllerError(f'{name} must be -1 (automatic / sensor maximum) or in '
                                  f'[0, 60] dB, got {value:g}')
        data[name] = value
    return ControllerOptions.from_dict(data)


def values_from_options(options: ControllerOptions) -> dict:
    """Inverse of :func:`options_from_values`: ``None`` -> the sentinel."""
    out = {}
    for name, value in options.to_dict().items():
        if value is None:
            value = OPTION_NONE[name]
        elif isinstance(value, int) and not isinstance(value, bool) and name != 'latency_frames':
            value = float(value)
        out[name] = value
    return out


def check_options(values: dict, sensor: SensorConfig) -> Optional[str]:
    """Why ``values`` do not form valid ControllerOptions for ``sensor``, else None."""
    try:
        options_from_values(values).resolve(sensor)
    except ControllerError as err:
        return str(err)
    return None
