"""
The controller protocol and what every controller shares.

A controller sees one raw frame and the :class:`ExposureSetting` that actually produced
it, and returns a :class:`Decision`: the next setting plus flags. Subclasses only
implement :meth:`Controller.propose` (the exposure value ``e_s = K * t_exp`` they want
for the next frame); everything a good classical AE offers is implemented once here and
configured by :class:`ControllerOptions`:

- exposure-time and gain bounds (every command stays inside them exactly, in the units it
  is sent in, microseconds and decibels, whatever the policy, the network or the frame
  gives: NaN, inf or huge values included);
- EV compensation, a deadband and a maximum step per frame (EV);
- smoothing as a small strategy object (``'none'``, ``'ema'`` = Eq. 5, ``'adaptive'``,
  ``'stable'`` = adaptive plus damping of sign-alternating corrections);
- fixed exposure time or fixed gain with the other automatic;
- exposure priority (Eq. 6: time up to ``T_max`` first, then gain) or gain priority;
- mains flicker avoidance (exposure time in whole multiples of 10 ms or 8.33 ms when
  it is that long, the difference made up with gain; see :meth:`Limits.split`);
- actuation latency, handled as a Smith predictor does: the target is always computed
  from the setting that produced the frame (``target = used_e * u``, an absolute
  exposure), and the command moves from the setting predicted to be in force when it
  lands, the last *commanded* exposure (every command still in flight will have landed
  by then); so a correction still in flight is never applied twice, whatever the
  latency (:class:`StableSmoothing` documents the loop);
- a fallback to Average AE when a policy returns a non-finite or non-positive value;
- float frames with NaN / inf pixels are measured on their finite pixels; a frame with
  no finite pixel holds the last command (``fallback`` set, ``info['hold_reason']``);
- a ``converged`` flag.

When the constraints cannot all hold, this is the order in which they win: exposure-time
and gain bounds (always, exactly) > the step limit ``max_step_ev`` (always: the last
command is inside the bounds, so holding it is always allowed) > whole light periods >
delivering exactly the exposure value asked for.

Order of operations in :meth:`Controller.step`, one method per stage: measure (propose,
fallback if non-finite) -> target (EV compensation, clip to the reachable range) ->
smooth (the filter: deadband, smoothing, step limit) -> limit (exposure-value bounds) ->
split into time and gain (priority, fixed values, flicker inside the step window, exact
clamp) -> decide (flags). A frame with no finite pixel skips the stages (hold).
"""
from abc import ABC, abstractmethod
from collections import deque
from dataclasses import asdict, dataclass, field, fields
import logging
import math
from typing import Optional

import cv2
from neural_ae.core.errors import ControllerError, NeuralAEError
from neural_ae.core.sensor import load_sensor, SensorConfig, T_MAX_S
import numpy as np

LOG = logging.getLogger(__name__)

FLICKER_PERIODS_S = {'off': None, '50hz': 0.010, '60hz': 1.0 / 120.0}
"""Light from AC mains pulses at twice the mains frequency: 10 ms (50 Hz), 8.33 ms (60 Hz)."""
PRIORITIES = ('exposure', 'gain')
SMOOTHINGS = ('none', 'ema', 'adaptive', 'stable')
WHOLE_PERIOD_TOL = 1e-7
"""Relative slack for an exposure-time bound to count as a whole number of light periods."""


def db_to_linear(gain_db: float) -> float:
    """Amplitude gain from decibels, ``10 ** (dB / 20)``."""
    return 10.0 ** (gain_db / 20.0)


def linear_to_db(gain: float) -> float:
    """Decibels from a linear amplitude gain, ``20 log10 K``."""
    return 20.0 * math.log10(gain)


@dataclass(frozen=True)
class ExposureSetting:
    """
    What a camera is told: exposure time [us] and analog gain [dB].

    ``e_s = K * t_exp_s`` is the exposure value the controllers reason in (seconds).
    """

    exposure_time_us: float
    gain_db: float = 0.0

    @property
    def t_exp_s(self) -> float:
        """Exposure time [s]."""
        return self.exposure_time_us * 1e-6

    @property
    def gain(self) -> float:
        """Analog gain, linear (``K``)."""
        return db_to_linear(self.gain_db)

    @property
    def e_s(self) -> float:
        """Exposure value ``K * t_exp`` [s]."""
        return self.t_exp_s * self.gain

    @classmethod
    def from_linear(cls, t_exp_s: float, gain: float) -> 'ExposureSetting':
        """Build from exposure time [s] and linear gain."""
        return cls(float(t_exp_s) * 1e6, linear_to_db(gain))

    def is_valid(self) -> bool:
        """Finite, positive exposure time, finite gain and a finite, positive ``e_s``."""
        if not (math.isfinite(self.exposure_time_us) and self.exposure_time_us > 0
                and math.isfinite(self.gain_db) and abs(self.gain_db) < 1000):
            return False
        return math.isfinite(self.e_s) and self.e_s > 0


@dataclass(frozen=True)
class Decision:
    """
    One controller step's output.

    ``setting`` is the command for the next frame(s); ``target_e_s`` the exposure value
    the controller wants to reach (after EV compensation and bounds, before smoothing,
    deadband and step limit). Flags: ``clamped`` (the wish or the split hit a bound),
    ``converged`` (target within ``max(converged_ev, deadband_ev)`` of the setting that
    produced the frame), ``fallback`` (the policy's output was unusable, Average AE
    decided; or the frame had no finite pixel and the last command was held,
    ``info['hold_reason']``). ``info`` carries diagnostics (``u``, ``raw_mean_dn``,
    ``mu``, reasons).
    """

    setting: ExposureSetting
    target_e_s: float
    clamped: bool
    converged: bool
    fallback: bool
    info: dict = field(default_factory=dict)


# --------------------------------------------------------------------------- options


@dataclass(frozen=True)
class ControllerOptions:
    """
    Options shared by every controller; defaults reproduce the paper (Sec. 4.3-4.4).

    Bounds (``None`` = the sensor's limit):

    - ``min_exposure_us`` [us]: shortest exposure time (default: sensor minimum).
    - ``max_exposure_us`` [us]: longest exposure time; with exposure priority this is
      Eq. 6's ``T_max`` (default 15000 us = 15 ms, the paper's value).
    - ``min_gain_db`` [dB]: lowest analog gain (default 0 dB, ``K = 1``).
    - ``max_gain_db`` [dB]: highest analog gain (default: sensor maximum).

    Behaviour:

    - ``priority``: ``'exposure'`` (Eq. 6: raise time up to ``max_exposure_us`` first,
      then gain) or ``'gain'`` (raise gain first, keep the time short).
    - ``fixed_exposure_us`` [us] / ``fixed_gain_db`` [dB]: hold one of them, the other
      stays automatic (both set = manual exposure).
    - ``ev_compensation`` [EV]: bias of the target, ``e_target *= 2 ** ev``
      (+1 EV = twice the exposure); range [-6, 6].
    - ``deadband_ev`` [EV]: hold the last command while the target is closer than this
      (0 = off).
    - ``max_step_ev`` [EV]: largest change of the command per frame, in (0, 12]
      (``None`` = no limit); it holds between any two consecutive commands.
    - ``flicker``: ``'off'``, ``'50hz'`` or ``'60hz'``: exposure times of at least one
      light period (10 ms / 8.33 ms) become whole multiples of it; gain makes up the rest
      (:meth:`Limits.split` says what happens when it cannot).
    - ``latency_frames`` [frames]: a command issued after frame ``n`` takes effect at frame
      ``n + 1 + latency_frames``; used to infer the setting of a frame when the caller
      does not pass it, and by the closed-loop simulator.
    - ``smoothing``: ``'none'``, ``'ema'`` (Eq. 5 in log space), ``'adaptive'`` (EMA
      whose ``mu`` shrinks for large corrections: ``mu * exp(-(dEV / adaptive_scale_ev)^2)``)
      or ``'stable'`` (adaptive, and a correction that reverses the previous one is
      halved per consecutive reversal: :class:`StableSmoothing`); ``None`` = the
      controller's default (``'stable'`` for the networks, ``'none'`` for the baselines,
      which carry their own update laws).
    - ``mu``: EMA weight of the previous exposure (paper: 0.9), in [0, 1).
    - ``adaptive_scale_ev`` [EV]: correction size at which adaptive ``mu`` drops to
      ``mu / e``, in (0, 12].
    - ``m_exp``: Eq. 4 bound, network corrections lie in ``[1 / m_exp, m_exp]`` (paper: 10),
      in (1, 1000].
    - ``converged_ev`` [EV]: ``converged`` when the target is this close to the setting
      that produced the frame, in (0, 6].
    """

    min_exposure_us: Optional[float] = None
    max_exposure_us: Optional[float] = T_MAX_S * 1e6
    min_gain_db: float = 0.0
    max_gain_db: Optional[float] = None
    priority: str = 'exposure'
    fixed_exposure_us: Optional[float] = None
    fixed_gain_db: Optional[float] = None
    ev_compensation: float = 0.0
    deadband_ev: float = 0.0
    max_step_ev: Optional[float] = None
    flicker: str = 'off'
    latency_frames: int = 0
    smoothing: Optional[str] = None
    mu: float = 0.9
    adaptive_scale_ev: float = 1.0
    m_exp: float = 10.0
    converged_ev: float = 0.1

    def __post_init__(self):
        def bad(name, rule):
            raise ControllerError(f'ControllerOptions.{name} must be {rule}, '
                                  f'got {getattr(self, name)!r}')

        def is_num(v):
            return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

        for name in ('min_exposure_us', 'max_exposure_us', 'fixed_exposure_us'):
            v = getattr(self, name)
            if v is not None and not (is_num(v) and v > 0):
                bad(name, 'None or a finite number > 0')
        if self.max_step_ev is not None and not (is_num(self.max_step_ev)
                                                 and 0 < self.max_step_ev <= 12):
            bad('max_step_ev', 'None or a number in (0, 12] EV')
        for name in ('min_gain_db', 'max_gain_db', 'fixed_gain_db'):
            v = getattr(self, name)
            if v is not None and not (is_num(v) and 0 <= v <= 60):
                bad(name, 'None or a number in [0, 60] dB' if name != 'min_gain_db'
                    else 'a number in [0, 60] dB')
        if self.min_gain_db is None:
            bad('min_gain_db', 'a number in [0, 60] dB')
        if (self.min_exposure_us is not None and self.max_exposure_us is not None
                and self.min_exposure_us > self.max_exposure_us):
            raise ControllerError(f'ControllerOptions: min_exposure_us {self.min_exposure_us} '
                                  f'> max_exposure_us {self.max_exposure_us}')
        if self.max_gain_db is not None and self.min_gain_db > self.max_gain_db:
            raise ControllerError(f'ControllerOptions: min_gain_db {self.min_gain_db} '
                                  f'> max_gain_db {self.max_gain_db}')
        if self.priority not in PRIORITIES:
            bad('priority', f'one of {PRIORITIES}')
        if self.flicker not in FLICKER_PERIODS_S:
            bad('flicker', f'one of {tuple(FLICKER_PERIODS_S)}')
        if self.smoothing is not None and self.smoothing not in SMOOTHINGS:
            bad('smoothing', f'None or one of {SMOOTHINGS}')
        if not (is_num(self.ev_compensation) and -6 <= self.ev_compensation <= 6):
            bad('ev_compensation', 'a number in [-6, 6] EV')
        if not (is_num(self.deadband_ev) and 0 <= self.deadband_ev <= 6):
            bad('deadband_ev', 'a number in [0, 6] EV')
        if not (isinstance(self.latency_frames, (int, np.integer))
                and not isinstance(self.latency_frames, bool)
                and 0 <= self.latency_frames <= 30):
            bad('latency_frames', 'an integer in [0, 30]')
        if not (is_num(self.mu) and 0 <= self.mu < 1):
            bad('mu', 'a number in [0, 1)')
        if not (is_num(self.adaptive_scale_ev) and 0 < self.adaptive_scale_ev <= 12):
            bad('adaptive_scale_ev', 'a number in (0, 12] EV')
        if not (is_num(self.m_exp) and 1 < self.m_exp <= 1000):
            bad('m_exp', 'a number in (1, 1000]')
        if not (is_num(self.converged_ev) and 0 < self.converged_ev <= 6):
            bad('converged_ev', 'a number in (0, 6] EV')

    @classmethod
    def from_dict(cls, data: Optional[dict]) -> 'ControllerOptions':
        """Build from a mapping (e.g. node parameters); unknown keys are an error."""
        data = dict(data or {})
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ControllerError(f'unknown controller option(s) {unknown}; '
                                  f'known: {sorted(names)}')
        return cls(**data)

    def to_dict(self) -> dict:
        """Plain dict of the options."""
        return asdict(self)

    def resolve(self, sensor: SensorConfig) -> 'Limits':
        """Bounds in SI units against ``sensor``; out-of-range values -> ControllerError."""
        t_lo = (sensor.min_exposure_s if self.min_exposure_us is None
                else self.min_exposure_us * 1e-6)
        t_hi = (sensor.max_exposure_s if self.max_exposure_us is None
                else self.max_exposure_us * 1e-6)
        g_hi_db = sensor.max_gain_db if self.max_gain_db is None else self.max_gain_db
        tol = 1e-9
        if t_lo < sensor.min_exposure_s * (1 - tol) or t_hi > sensor.max_exposure_s * (1 + tol):
            raise ControllerError(f'exposure bounds [{t_lo * 1e6:g}, {t_hi * 1e6:g}] us outside '
                                  f'sensor {sensor.name} range [{sensor.min_exposure_us:g}, '
                                  f'{sensor.max_exposure_us:g}] us')
        if t_lo > t_hi:
            raise ControllerError(f'min exposure {t_lo * 1e6:g} us > max exposure '
                                  f'{t_hi * 1e6:g} us (sensor {sensor.name})')
        if g_hi_db > sensor.max_gain_db + tol or self.min_gain_db > g_hi_db:
            raise ControllerError(f'gain bounds [{self.min_gain_db:g}, {g_hi_db:g}] dB outside '
                                  f'sensor {sensor.name} range [0, {sensor.max_gain_db:g}] dB')
        fixed_t = None if self.fixed_exposure_us is None else self.fixed_exposure_us * 1e-6
        if fixed_t is not None and not t_lo * (1 - tol) <= fixed_t <= t_hi * (1 + tol):
            raise ControllerError(f'fixed_exposure_us {self.fixed_exposure_us:g} outside '
                                  f'[{t_lo * 1e6:g}, {t_hi * 1e6:g}] us')
        fixed_g = None
        if self.fixed_gain_db is not None:
            if not self.min_gain_db - tol <= self.fixed_gain_db <= g_hi_db + tol:
                raise ControllerError(f'fixed_gain_db {self.fixed_gain_db:g} outside '
                                      f'[{self.min_gain_db:g}, {g_hi_db:g}] dB')
            fixed_g = db_to_linear(self.fixed_gain_db)
        t_lo_us = max(sensor.min_exposure_us if self.min_exposure_us is None
                      else self.min_exposure_us, sensor.min_exposure_us)
        t_hi_us = min(sensor.max_exposure_us if self.max_exposure_us is None
                      else self.max_exposure_us, sensor.max_exposure_us)
        limits = Limits(t_lo, t_hi, db_to_linear(self.min_gain_db), db_to_linear(g_hi_db),
                        self.priority, fixed_t, fixed_g, FLICKER_PERIODS_S[self.flicker],
                        t_lo_us, t_hi_us, float(self.min_gain_db),
                        min(float(g_hi_db), float(sensor.max_gain_db)))
        period = limits.flicker_period_s
        if period is not None and fixed_t is None and t_hi >= period:
            k_lo, k_hi = limits.whole_periods()
            if k_lo > k_hi:
                LOG.warning('flicker %s: no whole %.4g ms light period inside the exposure '
                            'bounds [%g, %g] us; exposure times of one period or more are '
                            'not whole periods (the bounds win)', self.flicker,
                            period * 1e3, t_lo_us, t_hi_us)
        return limits


@dataclass(frozen=True)
class Limits:
    """
    Resolved bounds (SI units) and the exposure-value split that honours them.

    ``t_lo_us`` / ``t_hi_us`` [us] and ``g_lo_db`` / ``g_hi_db`` [dB] are the same bounds
    in the units a command is sent in (as configured, so a 100 us bound is 100.0 and not
    ``100e-6 * 1e6``); :meth:`setting` clamps to them exactly. NaN = derived from the SI
    bounds.
    """

    t_lo_s: float
    t_hi_s: float
    g_lo: float
    g_hi: float
    priority: str = 'exposure'
    fixed_t_s: Optional[float] = None
    fixed_g: Optional[float] = None
    flicker_period_s: Optional[float] = None
    t_lo_us: float = math.nan
    t_hi_us: float = math.nan
    g_lo_db: float = math.nan
    g_hi_db: float = math.nan

    def __post_init__(self):
        derived = {'t_lo_us': self.t_lo_s * 1e6, 't_hi_us': self.t_hi_s * 1e6,
                   'g_lo_db': linear_to_db(self.g_lo), 'g_hi_db': linear_to_db(self.g_hi)}
        for name, value in derived.items():
            if math.isnan(getattr(self, name)):
                object.__setattr__(self, name, value)

    def whole_periods(self) -> tuple:
        """
        ``(k_lo, k_hi)``: the whole numbers of light periods inside the time bounds.

        ``k_lo > k_hi`` when none fits (or flicker avoidance is off, or the time is
        fixed). A bound within ``WHOLE_PERIOD_TOL`` of a whole period counts as one.
        """
        period = self.flicker_period_s
        if period is None or self.fixed_t_s is not None:
            return 1, 0
        k_lo = max(1, math.ceil(self.t_lo_s / period - WHOLE_PERIOD_TOL))
        k_hi = math.floor(self.t_hi_s / period + WHOLE_PERIOD_TOL)
        return k_lo, k_hi

    def _period_time(self, k: int, period: float) -> float:
        """``k`` light periods [s], inside the time bounds (a rounding's worth at most)."""
        return min(max(k * period, self.t_lo_s), self.t_hi_s)

    def e_bounds(self) -> tuple:
        """Smallest and largest exposure value ``K t`` [s] these limits can deliver."""
        if self.fixed_t_s is not None:
            t_lo = t_hi = self.fixed_t_s
        else:
            t_lo, t_hi = self.t_lo_s, self.t_hi_s
            period = self.flicker_period_s
            if period is not None and t_hi >= period:
                k_lo, k_hi = self.whole_periods()
                if k_lo <= k_hi:
                    t_hi = self._period_time(k_hi, period)
                    if t_lo >= period * (1 - 1e-9):
                        t_lo = self._period_time(k_lo, period)
        g_lo, g_hi = (self.fixed_g,) * 2 if self.fixed_g is not None else (self.g_lo, self.g_hi)
        return t_lo * g_lo, t_hi * g_hi

    def clamp_setting(self, t_s: float, g: float) -> tuple:
        """Force ``(t, K)`` into the bounds (non-finite values -> the lower bounds)."""
        t = t_s if math.isfinite(t_s) else self.t_lo_s
        g = g if math.isfinite(g) else self.g_lo
        if self.fixed_t_s is not None:
            t = self.fixed_t_s
        if self.fixed_g is not None:
            g = self.fixed_g
        return min(max(t, self.t_lo_s), self.t_hi_s), min(max(g, self.g_lo), self.g_hi)

    def contains(self, setting: ExposureSetting) -> bool:
        """Whether ``setting``, as it would be sent, lies inside the bounds exactly."""
        return (self.t_lo_us <= setting.exposure_time_us <= self.t_hi_us
                and self.g_lo_db <= setting.gain_db <= self.g_hi_db)

    def setting(self, t_s: float, g: float) -> ExposureSetting:
        """
        Build the command for time ``t_s`` [s] and linear gain ``g``, clamped exactly.

        The bounds are applied in the command's own units (us, dB), after the conversion,
        so a rounding in ``t * 1e6`` or ``20 log10 K`` cannot put it a hair outside.
        """
        t, g = self.clamp_setting(t_s, g)
        t_us = min(max(t * 1e6, self.t_lo_us), self.t_hi_us)
        g_db = min(max(linear_to_db(g), self.g_lo_db), self.g_hi_db)
        return ExposureSetting(t_us, g_db)

    def split(self, e_s: float, window: Optional[tuple] = None) -> tuple:
        """
        Split exposure value ``e_s`` [s] into ``(t_exp_s, K, clamped)``.

        Exposure priority is Eq. 6 with ``T_max = t_hi``; gain priority raises ``K``
        first. Fixed values win (a fixed exposure time is used as is, flicker or not).

        Flicker avoidance (exposure times of one light period or more): when a whole
        number of periods fits the time bounds, ``t`` is one, inside the bounds:

        - if some whole period delivers ``e_s`` exactly with a gain inside its bounds,
          the longest such period not above the plain split's time (else the shortest
          above it), the gain making up the rest: ``K t = e_s`` up to rounding;
        - otherwise (the gain range cannot bridge two whole periods) the whole-period
          setting with the largest ``K t`` not above ``e_s``, or, when there is none, the
          smallest above; ``window = (lo, hi)`` [s] (the step limit around the last
          command) restricts that choice, and when no whole-period setting lies inside
          it the time is not rounded (the step limit wins over flicker avoidance).

        When no whole period fits the time bounds at all, the time is not rounded either
        (the bounds win; :meth:`ControllerOptions.resolve` warns). ``clamped`` says the
        delivered ``K t`` differs from ``e_s``.
        """
        e_lo, e_hi = self.e_bounds()
        e = e_s if (math.isfinite(e_s) and e_s > 0) else e_lo
        e = min(max(e, e_lo), e_hi)
        t, g = self._plain_split(e)
        period = self.flicker_period_s
        if period is not None and self.fixed_t_s is None and t >= period * (1 - 1e-9):
            t, g = self._avoid_flicker(e, t, g, period, window)
        t, g = self.clamp_setting(t, g)
        clamped = (not math.isfinite(e_s) or e_s <= 0
                   or abs(math.log(t * g / e_s)) > 1e-6)
        return t, g, clamped

    def _plain_split(self, e: float) -> tuple:
        """Time and gain for ``e`` by fixed values and priority, inside the bounds."""
        if self.fixed_t_s is not None and self.fixed_g is not None:
            t, g = self.fixed_t_s, self.fixed_g
        elif self.fixed_t_s is not None:
            t, g = self.fixed_t_s, e / self.fixed_t_s
        elif self.fixed_g is not None:
            t, g = e / self.fixed_g, self.fixed_g
        elif self.priority == 'exposure':
            t = min(max(e / self.g_lo, self.t_lo_s), self.t_hi_s)
            g = e / t
        else:
            g = min(max(e / self.t_lo_s, self.g_lo), self.g_hi)
            t = e / g
        return self.clamp_setting(t, g)

    def _avoid_flicker(self, e: float, t: float, g: float, period: float,
                       window: Optional[tuple]) -> tuple:
        """Whole light periods for ``e`` (see :meth:`split`); ``(t, g)`` is the plain split."""
        k_lo, k_hi = self.whole_periods()
        if k_lo > k_hi:
            return t, g
        g_lo, g_hi = (self.fixed_g,) * 2 if self.fixed_g is not None else (self.g_lo, self.g_hi)
        rel = 1e-12
        # Whole periods k that deliver e exactly: g_lo <= e / (k P) <= g_hi.
        k_a = max(k_lo, math.ceil(e / (period * g_hi) * (1 - rel)))
        k_b = min(k_hi, math.floor(e / (period * g_lo) * (1 + rel)))
        if k_a <= k_b:
            k = min(max(math.floor(t / period + 1e-9), k_a), k_b)
            t_k = self._period_time(k, period)
            return t_k, e / t_k
        w_lo, w_hi = window if window is not None else (0.0, math.inf)
        below = min(k_a - 1, k_hi)    # longest period whose highest gain stays under e
        if below >= k_lo:
            t_k = self._period_time(below, period)
            if t_k * g_hi >= w_lo * (1 - rel):
                return t_k, g_hi
        above = max(k_b + 1, k_lo)    # shortest period whose lowest gain exceeds e
        if above <= k_hi:
            t_k = self._period_time(above, period)
            if t_k * g_lo <= w_hi * (1 + rel):
                return t_k, g_lo
        return t, g


# --------------------------------------------------------------------------- smoothing


class Smoothing(ABC):
    """
    How the next command moves from the last commanded exposure towards the target.

    ``__call__(last_e_s, target_e_s, used_e_s) -> (new_e_s, mu_used)``, once per frame
    (``used_e_s``: the exposure value that produced the frame);
    :meth:`reset` forgets any state (:meth:`Controller.reset` calls it). ``none``,
    ``ema`` and ``adaptive`` are stateless; ``stable`` remembers its last step.
    """

    name = 'base'

    @abstractmethod
    def __call__(self, last_e_s: float, target_e_s: float,
                 used_e_s: Optional[float] = None) -> tuple:
        """Return ``(new_e_s, mu)``; ``used_e_s`` produced the frame (optional)."""

    def reset(self) -> None:
        """Forget any state (the stateless strategies have none)."""


class NoSmoothing(Smoothing):
    """Jump to the target (``mu = 0``): the baselines' own update laws."""

    name = 'none'

    def __call__(self, last_e_s: float, target_e_s: float,
                 used_e_s: Optional[float] = None) -> tuple:
        """Return the target unchanged."""
        return target_e_s, 0.0


class EmaSmoothing(Smoothing):
    """
    Eq. 5 in log space: ``log e_new = mu log e_last + (1 - mu) log e_target``.

    With no latency and no clamping this is the paper's ``e_t = e_{t-1} u_t ** (1 - mu)``.
    """

    name = 'ema'

    def __init__(self, mu: float = 0.9):
        self.mu = float(mu)

    def __call__(self, last_e_s: float, target_e_s: float,
                 used_e_s: Optional[float] = None) -> tuple:
        """Geometric interpolation with weight ``mu`` on the last command."""
        return _geo(last_e_s, target_e_s, self.mu), self.mu


class AdaptiveSmoothing(Smoothing):
    """
    EMA whose weight shrinks for large corrections: fast on big steps, calm in steady state.

    ``mu_eff = mu * exp(-(|log2(target / last)| / scale_ev) ** 2)``: a 0.1 EV correction
    keeps ``mu_eff ~ 0.99 mu``, 1 EV gives ``0.37 mu``, 2 EV ``0.02 mu``.
    """

    name = 'adaptive'

    def __init__(self, mu: float = 0.9, scale_ev: float = 1.0):
        self.mu = float(mu)
        self.scale_ev = float(scale_ev)

    def __call__(self, last_e_s: float, target_e_s: float,
                 used_e_s: Optional[float] = None) -> tuple:
        """Geometric interpolation with the adapted weight."""
        ratio = abs(math.log2(target_e_s / last_e_s)) / self.scale_ev
        mu = self.mu * math.exp(-ratio * ratio) if ratio < 40.0 else 0.0
        return _geo(last_e_s, target_e_s, mu), mu


class StableSmoothing(AdaptiveSmoothing):
    """
    Adaptive smoothing made stable under actuation latency (a Smith-predictor loop).

    The controller knows which setting produced each frame (``used``) and what the policy
    asked for on it (``target``, an absolute exposure). With ``x = log2 used`` and the
    policy's correction ``f = log2(target / used)``, a policy that is right everywhere has
    ``f = x* - x``; a real network has ``f ~ g (x* - x)`` with a loop gain ``g`` that is
    not one, and a loop gain above one rings under latency. Per frame:

    1. **Dead time**: while a command is in flight (the last command differs from the
       setting that produced this frame, and this frame was produced by the same setting
       as the previous one), the frame says nothing about that command: if the policy's
       target moved less than ``hold_ev`` since the last frame, the last command is held
       (no correction is applied twice, nor creeps on by the smoothing's fraction each
       waiting frame); a target that moved more (the scene changed) is followed.
    2. **Loop gain** (a secant step): the last two observations made at exposures at
       least ``secant_min_ev`` apart give ``g = -(f_b - f_a) / (x_b - x_a)``, clipped to
       ``[min_gain, max_gain]`` (default ``[1, 4]``: the loop gain is only ever lowered,
       where the policy over-corrects; 1 until two observations exist, and again when
       ``g <= 0``: not monotone there, as on a clipped frame whose histogram hides how far
       off it is). The corrected target is ``x + f / g``; but when the target jumps by
       more than ``event_ev`` between two frames of the same exposure (within 0.1 EV: the
       scene changed, a tunnel, a 10x step), that correction is taken as the policy asks
       (``g = 1``): a loop gain is local to the scene where it was learnt.
    3. **Adaptive step** (:class:`AdaptiveSmoothing`) from the last command (the setting
       predicted to be in force when the new command lands) towards that target: large
       corrections at once, small ones damped by ``mu``.
    4. **Reversal damping**: a step smaller than ``reversal_max_ev`` that reverses the
       direction of the previous non-negligible step, without a new loop-gain estimate to
       explain it, is scaled by ``reversal_gain ** n`` (``n`` consecutive reversals, at
       least ``min_reversal_gain``); a step in the same direction resets ``n``. This
       lowers the loop gain below one where the policy contradicts itself at (nearly) the
       same exposure (noise, oncoming headlights), i.e. where it is unsure; a large
       correction is an event and is never damped; steps below ``min_step_ev`` neither
       count nor reset.

    Without ``used`` (a caller of the bare strategy) steps 1 and 2 are skipped.
    """

    name = 'stable'

    def __init__(self, mu: float = 0.9, scale_ev: float = 1.0, min_gain: float = 1.0,
                 max_gain: float = 4.0, secant_min_ev: float = 0.5, hold_ev: float = 0.25,
                 reversal_gain: float = 0.5, min_reversal_gain: float = 0.125,
                 reversal_max_ev: float = 1.0, min_step_ev: float = 0.02,
                 event_ev: float = 1.0):
        super().__init__(mu, scale_ev)
        self.event_ev = float(event_ev)
        self.min_gain, self.max_gain = float(min_gain), float(max_gain)
        self.secant_min_ev = float(secant_min_ev)
        self.hold_ev = float(hold_ev)
        self.reversal_gain = float(reversal_gain)
        self.min_reversal_gain = float(min_reversal_gain)
        self.reversal_max_ev = float(reversal_max_ev)
        self.min_step_ev = float(min_step_ev)
        self.reset()

    def reset(self) -> None:
        """Forget the observations, the loop gain and the last step."""
        self._prev: Optional[tuple] = None
        self._cur: Optional[tuple] = None
        self._frame: Optional[tuple] = None       # (x, log2 target) of the last frame
        self.loop_gain = 1.0
        self._last_step_ev = 0.0
        self._reversals = 0

    def _observe(self, used_e_s: float, target_e_s: float, event: bool = False) -> tuple:
        """
        Record ``(x, f)`` of this frame.

        Returns the gain-corrected target [s] and whether this frame gave a new loop-gain
        estimate (an exposure ``secant_min_ev`` away from the last observation).
        """
        x = math.log2(used_e_s)
        f = math.log2(target_e_s / used_e_s)
        fresh = False
        if self._cur is not None and abs(x - self._cur[0]) < self.secant_min_ev:
            self._cur = (x, f)                     # same exposure: refresh, no new slope
        else:
            self._prev, self._cur = self._cur, (x, f)
            if self._prev is not None:
                g = -(self._cur[1] - self._prev[1]) / (self._cur[0] - self._prev[0])
                if math.isfinite(g) and g > 0:
                    self.loop_gain = min(max(g, self.min_gain), self.max_gain)
                    fresh = True
                else:               # not monotone here (e.g. a clipped frame): trust it
                    self.loop_gain = 1.0
        return 2.0 ** (x + f / (1.0 if event else self.loop_gain)), fresh

    def _waiting(self, last_e_s: float, used_e_s: float, target_e_s: float) -> bool:
        """Whether this frame only waits for a command in flight (step 1)."""
        x, t = math.log2(used_e_s), math.log2(target_e_s)
        before, self._frame = self._frame, (x, t)
        in_flight = abs(math.log2(last_e_s) - x) > self.min_step_ev
        return (in_flight and before is not None and abs(x - before[0]) < 1e-9
                and abs(t - before[1]) < self.hold_ev)

    def __call__(self, last_e_s: float, target_e_s: float,
                 used_e_s: Optional[float] = None) -> tuple:
        """Hold during dead time; else a gain-corrected adaptive step, damped on reversal."""
        fresh = False
        if used_e_s is not None and used_e_s > 0 and math.isfinite(used_e_s):
            before = self._frame
            if self._waiting(last_e_s, used_e_s, target_e_s):
                return last_e_s, 1.0
            # same exposure, an answer far from the last one: the scene changed, and the
            # loop gain learnt around the old scene does not apply to this correction
            event = (before is not None and abs(math.log2(used_e_s) - before[0]) < 0.1
                     and abs(math.log2(target_e_s) - before[1]) > self.event_ev)
            target_e_s, fresh = self._observe(used_e_s, target_e_s, event)
        new, mu = super().__call__(last_e_s, target_e_s)
        step = math.log2(new / last_e_s)
        if abs(step) < self.min_step_ev:
            return new, mu
        if step * self._last_step_ev < 0 and not fresh and abs(step) < self.reversal_max_ev:
            self._reversals += 1
            gain = max(self.reversal_gain ** self._reversals, self.min_reversal_gain)
            step *= gain
            new = last_e_s * 2.0 ** step
            mu = 1.0 - (1.0 - mu) * gain
        else:
            self._reversals = 0
        self._last_step_ev = step
        return new, mu


def _geo(a: float, b: float, mu: float) -> float:
    return math.exp(mu * math.log(a) + (1.0 - mu) * math.log(b))


def make_smoothing(name: str, mu: float = 0.9, scale_ev: float = 1.0) -> Smoothing:
    """Smoothing strategy by name: ``'none'``, ``'ema'``, ``'adaptive'`` or ``'stable'``."""
    if name == 'none':
        return NoSmoothing()
    if name == 'ema':
        return EmaSmoothing(mu)
    if name == 'adaptive':
        return AdaptiveSmoothing(mu, scale_ev)
    if name == 'stable':
        return StableSmoothing(mu, scale_ev)
    raise ControllerError(f'unknown smoothing {name!r}; expected one of {SMOOTHINGS}')


# --------------------------------------------------------------------------- helpers


def check_raw(raw) -> np.ndarray:
    """Validate a raw frame: a non-empty 2-D integer or float array [DN]."""
    if not isinstance(raw, np.ndarray) or raw.ndim != 2 or raw.size == 0:
        raise ControllerError(f'controller expects a raw (H, W) array, got '
                              f'{getattr(raw, "shape", type(raw).__name__)}')
    if not (np.issubdtype(raw.dtype, np.integer) or np.issubdtype(raw.dtype, np.floating)):
        raise ControllerError(f'raw frame must be integer or float, got dtype {raw.dtype}')
    return raw


def _plain_mean(raw: np.ndarray) -> float:
    if raw.dtype in (np.uint8, np.uint16, np.float32) and min(raw.shape) > 0:
        return float(cv2.mean(np.ascontiguousarray(raw))[0])
    with np.errstate(over='ignore', invalid='ignore'):
        return float(np.mean(raw, dtype=np.float64))


def finite_pixels(raw: np.ndarray) -> str:
    """
    ``'all'``, ``'some'`` or ``'none'``: which pixels of ``raw`` are finite.

    Integer frames are ``'all'``; a float frame whose plain mean is finite has no NaN or
    inf pixel, so the mask is only built for frames that need it.
    """
    if np.issubdtype(raw.dtype, np.integer) or math.isfinite(_plain_mean(raw)):
        return 'all'
    n = int(np.count_nonzero(np.isfinite(raw)))
    return 'all' if n == raw.size else 'some' if n else 'none'


def raw_mean_dn(raw: np.ndarray) -> float:
    """
    Mean raw value [DN] over the finite pixels (fast path through OpenCV).

    Integer frames and float frames without NaN / inf pixels: the plain mean. A float
    frame with NaN / inf pixels is measured on its finite pixels; NaN when none is.
    """
    mean = _plain_mean(raw)
    if math.isfinite(mean) or np.issubdtype(raw.dtype, np.integer):
        return mean
    vals = raw[np.isfinite(raw)].astype(np.float64)
    if vals.size == 0:
        return math.nan
    with np.errstate(over='ignore', invalid='ignore'):
        mean = float(np.mean(vals))
    if not math.isfinite(mean):            # finite values whose sum overflows
        mean = float(np.sum(vals / vals.size))
    return mean


def average_ae_factor(raw: np.ndarray, sensor: SensorConfig, level: float = 0.5) -> tuple:
    """
    Average AE (paper Sec. 6.1): the factor ``level * M_white / I_mean`` and ``I_mean``.

    The black level is subtracted from both (the paper's sensor has none), so the
    settled mean raw value is ``black + level * (M_white - black)``; the signal is floored
    at 0.5 DN so an all-black frame asks for a large (then clamped) increase. ``I_mean``
    is taken over the finite pixels (:func:`raw_mean_dn`); with none the factor is 1
    (hold) and ``I_mean`` NaN.
    """
    mean = raw_mean_dn(raw)
    if not math.isfinite(mean):
        return 1.0, mean
    black = sensor.black_level_dn
    signal = max(mean - black, 0.5)
    return level * (sensor.white_level_dn - black) / signal, mean


# --------------------------------------------------------------------------- controller


class Controller(ABC):
    """
    Base of every exposure controller (see the module docstring for the shared options).

    Subclasses set ``name`` and ``default_smoothing`` and implement :meth:`propose`.
    ``follows_scene = False`` (fixed, oracle) skips EV compensation, deadband and
    smoothing. The last raw frame stays available as ``last_raw`` together with
    ``sensor.bayer_pattern`` (for policies that want an RGB rendering).
    """

    name = 'base'
    default_smoothing = 'none'
    follows_scene = True

    def __init__(self, options: Optional[ControllerOptions] = None,
                 sensor: Optional[SensorConfig] = None):
        if options is not None and not isinstance(options, ControllerOptions):
            raise ControllerError(f'options must be ControllerOptions, got '
                                  f'{type(options).__name__}')
        self.options = options or ControllerOptions()
        self.sensor = sensor or load_sensor('imx249')
        self.limits = self.options.resolve(self.sensor)
        self.smoothing = make_smoothing(self.options.smoothing or self.default_smoothing,
                                        self.options.mu, self.options.adaptive_scale_ev)
        self._last: Optional[ExposureSetting] = None
        self._commands: deque = deque(maxlen=self.options.latency_frames + 1)
        self.last_raw: Optional[np.ndarray] = None
        self.last_decision: Optional[Decision] = None
        self.frame_index = 0
        self._warned: set = set()

    # -- what it is

    @property
    def spec(self):
        """
        Registry entry of this controller (:class:`ControllerSpec`).

        An unregistered controller (a test double, a user's subclass run directly) gets
        an entry that needs nothing: no features, no scene, no model.
        """
        from neural_ae.core.controllers.registry import ControllerSpec, find_spec

        found = find_spec(self.name)
        return found if found is not None else ControllerSpec(self.name, self.name,
                                                              type(self))

    @property
    def needs_features(self) -> bool:
        """Whether :meth:`step` needs the backbone's ``layer2`` map (from the registry)."""
        return self.spec.needs_features

    @property
    def needs_next_scene(self) -> bool:
        """Whether the controller must be shown the scene its command will expose."""
        return self.spec.needs_next_scene

    # -- state

    def default_initial(self) -> ExposureSetting:
        """Geometric middle of the reachable exposure range (used if never reset)."""
        e_lo, e_hi = self.limits.e_bounds()
        t, g, _ = self.limits.split(math.sqrt(e_lo * e_hi))
        return self.limits.setting(t, g)

    def reset(self, initial: Optional[ExposureSetting] = None) -> ExposureSetting:
        """
        Forget all state; ``initial`` is the setting in force now (clamped to the bounds).

        Returns the clamped setting, which the camera should be given (``initial`` itself
        when it is inside the bounds and no fixed value or flicker rule changes it).
        """
        if initial is None:
            initial = self.default_initial()
        initial = self._check_setting(initial, 'initial')
        lim = self.limits
        if lim.fixed_t_s is None and lim.fixed_g is None and lim.flicker_period_s is None:
            # Keep the caller's time/gain split when it is inside the bounds.
            setting = initial if lim.contains(initial) else \
                lim.setting(initial.t_exp_s, initial.gain)
        else:
            t, g, _ = lim.split(initial.e_s)
            setting = lim.setting(t, g)
        self._last = setting
        self._commands.clear()
        self._commands.extend([setting] * (self.options.latency_frames + 1))
        self.last_raw = None
        self.last_decision = None
        self.frame_index = 0
        self.smoothing.reset()
        self._reset_state()
        return setting

    def _reset_state(self) -> None:
        """Subclass hook: clear policy state."""

    @property
    def last_command(self) -> Optional[ExposureSetting]:
        """Return the most recent command (or the initial setting)."""
        return self._last

    def _last_setting(self) -> ExposureSetting:
        """Return the most recent command; :meth:`step` resets a controller that has none."""
        if self._last is None:
            raise ControllerError(f'{self.name}: no command yet; call reset() first')
        return self._last

    # -- policy

    @abstractmethod
    def propose(self, raw: np.ndarray, used: ExposureSetting, features, info: dict) -> float:
        """
        Exposure value [s] the policy wants for the next frame.

        ``used`` produced ``raw``; return e.g. ``used.e_s * u``. Return NaN (or any
        non-finite / non-positive value) to trigger the Average AE fallback. Write
        diagnostics into ``info``.
        """

    # -- step

    def step(self, raw: np.ndarray, used: Optional[ExposureSetting] = None,
             features=None) -> Decision:
        """
        Process one frame and decide the next setting.

        ``used`` is the setting that produced ``raw``; when ``None`` it is inferred from
        this controller's own commands and ``options.latency_frames``. ``features`` are
        backbone features for the semantic branch (ignored by other controllers).

        The stages, each a method, in the order libcamera's AGC reads: :meth:`measure`
        (the policy's wish, with the Average AE fallback) -> :meth:`target` (EV
        compensation, reachable range) -> :meth:`smooth` (the filter: deadband,
        smoothing, step limit) -> :meth:`limit` (exposure-value bounds) -> :meth:`split`
        (time and gain) -> :meth:`decide` (flags, state). A float frame with no finite
        pixel skips them: :meth:`hold`.
        """
        raw = check_raw(raw)
        if self._last is None:
            self.reset(used)
        inferred = used is None
        used = self._commands[0] if inferred else self._check_setting(used, 'used')
        self.last_raw = raw
        info: dict = {'used_inferred': inferred}
        pixels = finite_pixels(raw)
        if pixels != 'all':
            self._warn_once(pixels, f'{self.name}: raw frame {raw.shape} {raw.dtype} has '
                            + ('NaN / inf pixels; the finite ones are measured'
                               if pixels == 'some' else
                               'no finite pixel; the last command is held'))
            info['finite_pixels'] = pixels
            if pixels == 'none':
                return self.hold(used, info)
        desired, fallback = self.measure(raw, used, features, info)
        desired, target, clamped = self.target(desired)
        new, filtered = self.smooth(target, used)
        new = self.limit(new)
        setting, split_clamped = self.split(new)
        info.update(desired_e_s=desired, **filtered, error_ev=math.log2(target / used.e_s))
        return self.decide(setting, target, used, clamped or split_clamped, fallback, info)

    def measure(self, raw: np.ndarray, used: ExposureSetting, features,
                info: dict) -> tuple:
        """
        Stage 1: the policy's exposure value [s] for the next frame, and ``fallback``.

        A policy that fails arithmetically or proposes a non-finite / non-positive value
        is replaced by Average AE (``fallback = True``, the reason in ``info``).
        """
        try:
            desired = float(self.propose(raw, used, features, info))
        except (ArithmeticError, ValueError) as err:
            if isinstance(err, NeuralAEError):
                raise
            desired = math.nan
            info['propose_error'] = str(err)
        if math.isfinite(desired) and desired > 0:
            return desired, False
        factor, _ = average_ae_factor(raw, self.sensor)
        info['fallback_reason'] = f'{self.name} proposed {desired!r}; Average AE used'
        LOG.debug('%s: %s', self.name, info['fallback_reason'])
        return used.e_s * factor, True

    def target(self, desired: float) -> tuple:
        """
        Stage 2: EV compensation, then the reachable range.

        Returns ``(desired, target, clamped)``: the compensated wish [s], the target [s]
        inside the limits' exposure-value range, and whether the range cut it.
        """
        if self.follows_scene and self.options.ev_compensation:
            desired *= 2.0 ** self.options.ev_compensation
        e_lo, e_hi = self.limits.e_bounds()
        if not (math.isfinite(desired) and desired > 0):   # over- or underflow
            return desired, (e_hi if desired > 0 else e_lo), True
        target = min(max(desired, e_lo), e_hi)
        return desired, target, abs(math.log(target / desired)) > 1e-6

    def smooth(self, target: float, used: Optional[ExposureSetting] = None) -> tuple:
        """
        Stage 3: from the last command towards ``target`` [s]; ``used`` produced the frame.

        Deadband and smoothing (controllers that follow the scene), then the step limit.
        Returns ``(e_s, {'mu', 'deadband', 'step_limited'})``.
        """
        opts = self.options
        last_e = self._last_setting().e_s
        if not (math.isfinite(last_e) and last_e > 0):
            last_e = target
        new, mu, in_deadband = target, 0.0, False
        if self.follows_scene:
            if opts.deadband_ev > 0 and abs(math.log2(target / last_e)) < opts.deadband_ev:
                new, in_deadband = last_e, True
            else:
                new, mu = self.smoothing(last_e, target,
                                         used.e_s if used is not None else None)
        step_limited = False
        if opts.max_step_ev is not None:
            d_ev = math.log2(new / last_e)
            if abs(d_ev) > opts.max_step_ev:
                new = last_e * 2.0 ** math.copysign(opts.max_step_ev, d_ev)
                step_limited = True
        return new, {'mu': mu, 'deadband': in_deadband, 'step_limited': step_limited}

    def limit(self, e_s: float) -> float:
        """Stage 4: clamp the exposure value [s] to what the limits can deliver."""
        e_lo, e_hi = self.limits.e_bounds()
        return min(max(e_s, e_lo), e_hi)

    def step_window(self) -> Optional[tuple]:
        """
        Exposure values ``(lo, hi)`` [s] within ``max_step_ev`` of the last command.

        ``None`` without a step limit. Every command lies inside it: :meth:`smooth` limits
        the step and :meth:`split` keeps flicker rounding inside it.
        """
        if self.options.max_step_ev is None or self._last is None:
            return None
        factor = 2.0 ** self.options.max_step_ev
        return self._last.e_s / factor, self._last.e_s * factor

    def split(self, e_s: float) -> tuple:
        """
        Stage 5: exposure time and gain for ``e_s`` [s] (:meth:`Limits.split`).

        Flicker rounding stays inside :meth:`step_window`; the command is clamped exactly
        (:meth:`Limits.setting`). Returns ``(setting, clamped)``; ``clamped`` when the
        delivered ``K t`` differs from ``e_s`` (fixed values, flicker periods, bounds).
        """
        t, g, split_clamped = self.limits.split(e_s, self.step_window())
        clamped = split_clamped and abs(math.log(t * g / e_s)) > 1e-6
        return self.limits.setting(t, g), clamped

    def hold(self, used: ExposureSetting, info: dict) -> Decision:
        """
        Instead of the stages, for a frame with nothing to measure: repeat the last command.

        Flagged ``fallback`` (never ``converged``) with the reason in ``info``.
        """
        setting = self._last_setting()
        info.update(hold_reason='no finite pixel in the frame; last command held',
                    desired_e_s=math.nan, mu=0.0, deadband=False, step_limited=False,
                    error_ev=math.log2(setting.e_s / used.e_s))
        return self.decide(setting, setting.e_s, used, False, True, info, measured=False)

    def decide(self, setting: ExposureSetting, target: float, used: ExposureSetting,
               clamped: bool, fallback: bool, info: dict, measured: bool = True) -> Decision:
        """Stage 6: the ``converged`` flag, the command history and the :class:`Decision`."""
        tol = max(self.options.converged_ev, self.options.deadband_ev)
        converged = measured and abs(math.log2(target / used.e_s)) <= tol
        self._last = setting
        self._commands.append(setting)
        self.frame_index += 1
        decision = Decision(setting, target, bool(clamped), bool(converged), fallback, info)
        self.last_decision = decision
        return decision

    def _warn_once(self, key: str, message: str) -> None:
        """Log ``message`` as a warning the first time ``key`` comes up, then at debug."""
        if key in self._warned:
            LOG.debug('%s', message)
        else:
            self._warned.add(key)
            LOG.warning('%s (warned once)', message)

    def _check_setting(self, setting, what: str) -> ExposureSetting:
        if not isinstance(setting, ExposureSetting):
            raise ControllerError(f'{what} must be an ExposureSetting, got '
                                  f'{type(setting).__name__}')
        if not setting.is_valid():
            raise ControllerError(f'{what} setting must have a finite exposure time > 0 and '
                                  f'a finite gain, got {setting}')
        return setting

    def describe(self) -> dict:
        """Name, smoothing and options (for logs, diagnostics and reports)."""
        return {'controller': self.name, 'smoothing': self.smoothing.name,
                'options': self.options.to_dict()}
