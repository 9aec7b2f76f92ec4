"""
Command a camera driver through its own ROS 2 parameters (``rcl_interfaces/srv/SetParameters``).

A :class:`DriverPreset` says how a driver names and scales exposure time, gain and its
own auto-exposure switch; :class:`CameraActuator` sends one asynchronous
``<driver_node>/set_parameters`` request per decision, never blocks, and reports whether
the driver is reachable.

Presets (:data:`PRESETS`); names and units of the real drivers as documented by them,
``guess`` where we could not confirm them:

- ``generic``: ``exposure_time`` [us, double], ``gain`` [dB, double], no auto-exposure
  switch. What ``camera_sim_node`` and many machine-vision drivers expose.
- ``v4l2_camera`` (ros-drivers / tier4 ``v4l2_camera``): parameters are the V4L2 control
  names, lower case, commas removed, spaces as underscores. ``exposure_time_absolute``
  (kernel control "Exposure Time, Absolute", integer in units of 100 us; older kernels
  call it "Exposure (Absolute)" -> set ``exposure_param``), ``gain`` (integer in
  device-specific units: linear with ``gain_scale`` per 1x is a guess, check
  ``v4l2-ctl --list-ctrls``), ``auto_exposure`` (menu: 1 = manual, 3 = aperture
  priority; the value to restore is a guess, UVC cameras default to 3).
- ``camera_ros`` (libcamera): ``ExposureTime`` [us, integer], ``AnalogueGain``
  [linear, double], ``AeEnable`` [bool] (parameter names are libcamera's control names;
  ``AeEnable`` must be false for manual values to stick).

Unit conversions are plain functions (:func:`exposure_to_driver`,
:func:`exposure_from_driver`, :func:`gain_to_driver`, :func:`gain_from_driver`) so they
are testable without ROS. :class:`CommandBounds` are the configured limits; what the
actuator sends (:func:`bounded_driver_values`) lies inside them exactly, in our units and
in the driver's (no float hair below the minimum, integer drivers rounded inwards).
"""
from dataclasses import dataclass, replace
import math
import threading
import time
from typing import Any, Callable, Optional

from neural_ae.core.controllers import ExposureSetting
from neural_ae.core.errors import ConfigError, NeuralAEError
from rcl_interfaces.srv import GetParameters, SetParameters
from rclpy.parameter import Parameter, parameter_value_to_python

__all__ = [
    'ActuatorError',
    'CameraActuator',
    'CommandBounds',
    'DriverPreset',
    'GAIN_UNITS',
    'PRESETS',
    'bounded_driver_values',
    'db_to_linear',
    'driver_parameters',
    'exposure_from_driver',
    'exposure_to_driver',
    'gain_from_driver',
    'gain_to_driver',
    'linear_to_db',
    'make_preset',
    'quantized_setting',
]

GAIN_UNITS = ('db', 'linear')


class ActuatorError(NeuralAEError, ValueError):
    """A value cannot be converted to or from a driver's units."""


def db_to_linear(gain_db: float) -> float:
    """Amplitude gain from decibels: ``10 ** (dB / 20)``."""
    return 10.0 ** (float(gain_db) / 20.0)


def linear_to_db(gain: float) -> float:
    """Decibels from a linear amplitude gain ``K > 0``: ``20 log10 K``."""
    if not (math.isfinite(gain) and gain > 0):
        raise ActuatorError(f'linear gain must be finite and > 0, got {gain!r}')
    return 20.0 * math.log10(gain)


@dataclass(frozen=True)
class DriverPreset:
    """
    How one camera driver names and scales its exposure parameters.

    - ``exposure_param``: parameter name; ``exposure_unit_us``: microseconds per driver
      unit (1 for us, 100 for V4L2's absolute exposure); ``exposure_integer``: the driver
      declares an integer parameter (values are rounded, at least 1).
    - ``gain_param`` ('' = gain is not commanded); ``gain_unit``: ``'db'`` or
      ``'linear'``; the driver value is ``gain_scale * dB`` or ``gain_scale * K``;
      ``gain_integer``: rounded to an integer.
    - ``auto_param`` ('' = none): the driver's own auto-exposure switch, set to
      ``auto_off`` while our controller runs and back to ``auto_on`` afterwards.
    """

    name: str
    node: str
    exposure_param: str
    exposure_unit_us: float = 1.0
    exposure_integer: bool = False
    gain_param: str = 'gain'
    gain_unit: str = 'db'
    gain_scale: float = 1.0
    gain_integer: bool = False
    auto_param: str = ''
    auto_off: Any = None
    auto_on: Any = None
    notes: str = ''

    def __post_init__(self):
        if not self.exposure_param:
            raise ConfigError(f'driver preset {self.name}: exposure_param must not be empty')
        if not (math.isfinite(self.exposure_unit_us) and self.exposure_unit_us > 0):
            raise ConfigError(f'driver preset {self.name}: exposure_unit_us must be > 0, got '
                              f'{self.exposure_unit_us!r}')
        if self.gain_unit not in GAIN_UNITS:
            raise ConfigError(f'driver preset {self.name}: gain_unit must be one of '
                              f'{GAIN_UNITS}, got {self.gain_unit!r}')
        if not (math.isfinite(self.gain_scale) and self.gain_scale > 0):
            raise ConfigError(f'driver preset {self.name}: gain_scale must be > 0, got '
                              f'{self.gain_scale!r}')
        if self.auto_param and (self.auto_off is None or self.auto_on is None):
            raise ConfigError(f'driver preset {self.name}: auto_param {self.auto_param!r} '
                              'needs auto_off and auto_on values')


PRESETS = {
    'generic': DriverPreset(
        'generic', node='camera', exposure_param='exposure_time', gain_param='gain',
        gain_unit='db', notes='exposure_time [us] and gain [dB] as doubles; camera_sim_node '
        'and many machine-vision drivers'),
    'v4l2_camera': DriverPreset(
        'v4l2_camera', node='v4l2_camera', exposure_param='exposure_time_absolute',
        exposure_unit_us=100.0, exposure_integer=True, gain_param='gain', gain_unit='linear',
        gain_scale=1.0, gain_integer=True, auto_param='auto_exposure', auto_off=1, auto_on=3,
        notes='V4L2 controls: exposure in 100 us units (documented by V4L2); gain units are '
        'device specific (guess: linear, set gain_scale); auto_exposure 1 = manual, '
        '3 = aperture priority (restore value is a guess)'),
    'camera_ros': DriverPreset(
        'camera_ros', node='camera', exposure_param='ExposureTime', exposure_unit_us=1.0,
        exposure_integer=True, gain_param='AnalogueGain', gain_unit='linear', gain_scale=1.0,
        auto_param='AeEnable', auto_off=False, auto_on=True,
        notes='libcamera controls: ExposureTime [us] integer, AnalogueGain linear, '
        'AeEnable bool'),
}


def make_preset(name: str, **overrides) -> DriverPreset:
    """Preset ``name`` with fields replaced by ``overrides`` (None values are ignored)."""
    if name not in PRESETS:
        raise ConfigError(f'unknown driver preset {name!r}; expected one of {sorted(PRESETS)}')
    changes = {k: v for k, v in overrides.items() if v is not None}
    return replace(PRESETS[name], **changes) if changes else PRESETS[name]


# --------------------------------------------------------------------------- conversions


def exposure_to_driver(exposure_time_us: float, preset: DriverPreset):
    """Convert exposure time [us] to the driver's value (int for integer drivers, at least 1)."""
    us = float(exposure_time_us)
    if not (math.isfinite(us) and us > 0):
        raise ActuatorError(f'exposure time must be finite and > 0 us, got {exposure_time_us!r}')
    value = us / preset.exposure_unit_us
    if preset.exposure_integer:
        return max(1, int(round(value)))
    return value


def exposure_from_driver(value, preset: DriverPreset) -> float:
    """Convert the driver's exposure value to exposure time [us]."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ActuatorError(f'{preset.exposure_param}: expected a number, got {value!r}')
    return float(value) * preset.exposure_unit_us


def gain_to_driver(gain_db: float, preset: DriverPreset):
    """Convert gain [dB] to the driver's value (``scale * dB`` or ``scale * K``, rounded)."""
    db = float(gain_db)
    if not math.isfinite(db):
        raise ActuatorError(f'gain must be finite, got {gain_db!r} dB')
    value = preset.gain_scale * (db if preset.gain_unit == 'db' else db_to_linear(db))
    if preset.gain_integer:
        return int(round(value))
    return value


def gain_from_driver(value, preset: DriverPreset) -> float:
    """Convert the driver's gain value to gain [dB]."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ActuatorError(f'{preset.gain_param}: expected a number, got {value!r}')
    scaled = float(value) / preset.gain_scale
    if preset.gain_unit == 'db':
        return scaled
    return linear_to_db(scaled)


@dataclass(frozen=True)
class CommandBounds:
    """
    The limits every command respects: exposure time [us] and gain [dB], ends included.

    The node builds them from the controller options as configured (``min_exposure_us``
    ...), in these units, so a bound is met exactly and not up to a unit conversion.
    """

    min_exposure_us: float
    max_exposure_us: float
    min_gain_db: float = 0.0
    max_gain_db: float = 1000.0

    def __post_init__(self):
        t_lo, t_hi = self.min_exposure_us, self.max_exposure_us
        g_lo, g_hi = self.min_gain_db, self.max_gain_db
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                   for v in (t_lo, t_hi, g_lo, g_hi)):
            raise ConfigError(f'command bounds must be finite numbers, got {self}')
        if not 0 < t_lo <= t_hi or not g_lo <= g_hi:
            raise ConfigError(f'command bounds need 0 < min <= max: exposure [{t_lo:g}, '
                              f'{t_hi:g}] us, gain [{g_lo:g}, {g_hi:g}] dB')

    def clamp(self, setting: ExposureSetting) -> ExposureSetting:
        """Return ``setting`` with exposure time and gain forced into the bounds."""
        return ExposureSetting(min(max(float(setting.exposure_time_us), self.min_exposure_us),
                                   self.max_exposure_us),
                               min(max(float(setting.gain_db), self.min_gain_db),
                                   self.max_gain_db))


def _inside(value, lo: float, hi: float, integer: bool, floor_one: bool = False):
    """``value`` inside ``[lo, hi]``; integers rounded inwards (the nearest end if none fits)."""
    if not integer:
        return min(max(value, lo), hi)
    first = max(1 if floor_one else -2**62, math.floor(lo))
    while first < lo:
        first += 1
    last = math.ceil(hi)
    while last > hi:
        last -= 1
    if first > last:  # no integer inside the bounds: the nearer end
        return first if abs(first - value) <= abs(value - last) else last
    return int(min(max(value, first), last))


def bounded_driver_values(setting: ExposureSetting, preset: DriverPreset,
                          bounds: Optional[CommandBounds] = None) -> tuple:
    """
    ``(exposure value, gain value or None, applied setting)`` for ``setting``, in bounds.

    The setting is clamped to ``bounds`` in our units, converted, clamped again to the
    bounds converted to the driver's units (integer drivers: the nearest integer inside),
    and the setting the driver will apply is read back and held inside ``bounds`` too.
    """
    if bounds is not None:
        setting = bounds.clamp(setting)
    exposure = exposure_to_driver(setting.exposure_time_us, preset)
    gain = gain_to_driver(setting.gain_db, preset) if preset.gain_param else None
    if bounds is not None:
        unit = preset.exposure_unit_us
        exposure = _inside(exposure, bounds.min_exposure_us / unit,
                           bounds.max_exposure_us / unit, preset.exposure_integer, True)
        if gain is not None:
            g_lo = gain_to_driver_float(bounds.min_gain_db, preset)
            g_hi = gain_to_driver_float(bounds.max_gain_db, preset)
            gain = _inside(gain, g_lo, g_hi, preset.gain_integer)
    t_us = exposure_from_driver(exposure, preset)
    g_db = setting.gain_db
    if gain is not None and not (preset.gain_unit == 'linear' and gain <= 0):
        g_db = gain_from_driver(gain, preset)
    applied = ExposureSetting(t_us, g_db)
    if bounds is not None:
        held = bounds.clamp(applied)
        if math.isclose(held.exposure_time_us, t_us, rel_tol=1e-9) and \
                math.isclose(held.gain_db, g_db, rel_tol=1e-9, abs_tol=1e-9):
            applied = held  # a conversion's last bit, not a real difference
    return exposure, gain, applied


def gain_to_driver_float(gain_db: float, preset: DriverPreset) -> float:
    """:func:`gain_to_driver` without the integer rounding (for bounds)."""
    db = float(gain_db)
    return preset.gain_scale * (db if preset.gain_unit == 'db' else db_to_linear(db))


def quantized_setting(setting: ExposureSetting, preset: DriverPreset,
                      bounds: Optional[CommandBounds] = None) -> ExposureSetting:
    """Return the setting the driver will really apply (its rounding, ``bounds`` honoured)."""
    return bounded_driver_values(setting, preset, bounds)[2]


def driver_parameters(setting: ExposureSetting, preset: DriverPreset,
                      bounds: Optional[CommandBounds] = None) -> list:
    """``rcl_interfaces/Parameter`` messages commanding ``setting`` in the driver's units."""
    exposure, gain, _ = bounded_driver_values(setting, preset, bounds)
    return _parameter_msgs(exposure, gain, preset)


def _parameter_msgs(exposure, gain, preset: DriverPreset) -> list:
    """Return the messages setting the driver's exposure (and gain, if it has one) values."""
    params = [Parameter(preset.exposure_param, value=exposure)]
    if preset.gain_param:
        params.append(Parameter(preset.gain_param, value=gain))
    return [p.to_parameter_msg() for p in params]


# --------------------------------------------------------------------------- actuator


class CameraActuator:
    """
    Asynchronous SetParameters client of one camera driver node.

    :meth:`command` never blocks: while a request is in flight the newest setting waits
    (older waiting ones are dropped, counted in ``coalesced``) and is sent when the
    answer arrives. A request without answer after ``timeout_s`` counts as a timeout and
    marks the driver unreachable until it answers again. Thread-safe: commands may come
    from a worker thread, answers arrive on the executor.
    """

    def __init__(self, node, preset: DriverPreset, driver_node: Optional[str] = None,
                 timeout_s: float = 1.0, callback_group=None,
                 bounds: Optional[CommandBounds] = None):
        self.node = node
        self.preset = preset
        self.bounds = bounds
        self.driver_node = (driver_node or preset.node).rstrip('/') or preset.node
        self.timeout_s = float(timeout_s)
        self._set_client = node.create_client(
            SetParameters, f'{self.driver_node}/set_parameters', callback_group=callback_group)
        self._get_client = node.create_client(
            GetParameters, f'{self.driver_node}/get_parameters', callback_group=callback_group)
        self._lock = threading.RLock()
        self._in_flight = None
        self._pending = {}
        self._consecutive_timeouts = 0
        self.sent = 0
        self.succeeded = 0
        self.rejected = 0
        self.timeouts = 0
        self.coalesced = 0
        self.unavailable = 0
        self.last_error = ''
        self.last_applied: Optional[ExposureSetting] = None
        self.last_round_trip_ms = math.nan
        self.auto_exposure_driver: Optional[bool] = None

    # -- state

    @property
    def service_name(self) -> str:
        """Return the resolved name of the driver's SetParameters service."""
        return self._set_client.service_name

    @property
    def reachable(self) -> bool:
        """Tell whether the driver's service exists and its last request did not time out."""
        return bool(self._set_client.service_is_ready()) and self._consecutive_timeouts == 0

    def unreachable_reason(self) -> str:
        """Why the driver is unreachable now (``''`` when it is reachable)."""
        with self._lock:
            if not self._set_client.service_is_ready():
                return (f'service {self.service_name} not available (is the driver node '
                        f'{self.driver_node} running?)')
            if self._consecutive_timeouts:
                return self.last_error or f'requests to {self.service_name} time out'
            return ''

    def status(self) -> dict:
        """Counters and state for diagnostics."""
        reason = self.unreachable_reason()
        with self._lock:
            return {'driver_node': self.driver_node, 'preset': self.preset.name,
                    'reachable': not reason, 'unreachable_reason': reason,
                    'sent': self.sent,
                    'succeeded': self.succeeded, 'rejected': self.rejected,
                    'timeouts': self.timeouts, 'coalesced': self.coalesced,
                    'unavailable': self.unavailable, 'in_flight': self._in_flight is not None,
                    'last_error': self.last_error,
                    'round_trip_ms': self.last_round_trip_ms}

    # -- commands

    def command(self, setting: ExposureSetting) -> bool:
        """
        Send ``setting`` (one SetParameters request); False when the driver is unavailable.

        Returns True when the request was sent or is queued behind the one in flight.
        """
        try:
            exposure, gain, applied = bounded_driver_values(setting, self.preset, self.bounds)
            params = _parameter_msgs(exposure, gain, self.preset)
        except ActuatorError as err:
            with self._lock:
                self.last_error = str(err)
            return False
        return self._submit('setting', params, applied)

    def set_auto_exposure(self, enabled: bool) -> bool:
        """Switch the driver's own auto exposure (no-op without ``auto_param``)."""
        if not self.preset.auto_param:
            return True
        value = self.preset.auto_on if enabled else self.preset.auto_off
        msg = Parameter(self.preset.auto_param, value=value).to_parameter_msg()
        return self._submit('auto', [msg], bool(enabled), queue_if_unavailable=True)

    def read_current(self, callback: Callable[[Optional[ExposureSetting]], None]) -> bool:
        """Ask the driver for its exposure and gain; ``callback(setting or None)`` later."""
        if not self._get_client.service_is_ready():
            return False
        names = [self.preset.exposure_param] + ([self.preset.gain_param]
                                                if self.preset.gain_param else [])
        future = self._get_client.call_async(GetParameters.Request(names=names))

        def done(fut):
            setting = None
            try:
                values = [parameter_value_to_python(v) for v in fut.result().values]
                t_us = exposure_from_driver(values[0], self.preset)
                g_db = gain_from_driver(values[1], self.preset) if len(values) > 1 else 0.0
                setting = ExposureSetting(t_us, g_db)
            except Exception as err:  # noqa: BLE001 - any bad answer means "unknown"
                self.node.get_logger().warning(
                    f'cannot read exposure from {self.driver_node}: {err}')
            callback(setting)

        future.add_done_callback(done)
        return True

    def poll(self) -> None:
        """Expire a timed-out request and send what waits (call it periodically)."""
        with self._lock:
            self._expire_locked()
            if self._in_flight is None:
                self._send_next_locked()

    def destroy(self) -> None:
        """Forget pending work and destroy the service clients."""
        with self._lock:
            if self._in_flight is not None:
                self._set_client.remove_pending_request(self._in_flight[0])
            self._in_flight = None
            self._pending.clear()
        self.node.destroy_client(self._set_client)
        self.node.destroy_client(self._get_client)

    # -- internals

    def _submit(self, kind: str, params: list, payload, queue_if_unavailable=False) -> bool:
        with self._lock:
            self._expire_locked()
            if self._in_flight is not None:
                if kind in self._pending:
                    self.coalesced += 1
                self._pending[kind] = (params, payload)
                return True
            if not self._set_client.service_is_ready():
                self.unavailable += 1
                self.last_error = f'service {self.service_name} not available'
                if queue_if_unavailable:
                    self._pending[kind] = (params, payload)
                return False
            self._pending.pop(kind, None)
            self._send_locked(kind, params, payload)
            return True

    def _send_next_locked(self) -> None:
        if not self._pending or not self._set_client.service_is_ready():
            return
        kind = 'auto' if 'auto' in self._pending else next(iter(self._pending))
        params, payload = self._pending.pop(kind)
        self._send_locked(kind, params, payload)

    def _send_locked(self, kind: str, params: list, payload) -> None:
        request = SetParameters.Request(parameters=params)
        future = self._set_client.call_async(request)
        sent_at = time.monotonic()
        self._in_flight = (future, kind, payload, sent_at)
        self.sent += 1
        future.add_done_callback(lambda fut: self._on_done(fut, kind, payload, sent_at))

    def _expire_locked(self) -> None:
        if self._in_flight is None:
            return
        future, kind, _, sent_at = self._in_flight
        if time.monotonic() - sent_at < self.timeout_s:
            return
        self._set_client.remove_pending_request(future)
        self._in_flight = None
        self.timeouts += 1
        self._consecutive_timeouts += 1
        self.last_error = (f'{kind} request to {self.service_name} timed out after '
                           f'{self.timeout_s:g} s')

    def _on_done(self, future, kind: str, payload, sent_at: float) -> None:
        message = None
        with self._lock:
            if self._in_flight is None or self._in_flight[0] is not future:
                return  # expired meanwhile
            self._in_flight = None
            self._consecutive_timeouts = 0
            self.last_round_trip_ms = (time.monotonic() - sent_at) * 1e3
            try:
                results = future.result().results
                reasons = [r.reason or 'rejected' for r in results if not r.successful]
            except Exception as err:  # noqa: BLE001 - a failed future is one failed request
                reasons = [f'{type(err).__name__}: {err}']
            if reasons:
                self.rejected += 1
                self.last_error = f'{self.driver_node} rejected {kind}: {"; ".join(reasons)}'
                message = self.last_error
            else:
                self.succeeded += 1
                if kind == 'setting':
                    self.last_applied = payload
                else:
                    self.auto_exposure_driver = payload
            self._send_next_locked()
        if message:
            self.node.get_logger().warning(message, throttle_duration_sec=5.0)
