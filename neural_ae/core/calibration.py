"""
Radiance calibration: HDR recordings in another camera's units -> e-/s of the sensor model.

The sensor model takes radiance as photo-electrons per second per pixel of the target
sensor. A bag recorded by another HDR camera stores its own units (DN/s, a merged value in
[0, 1], lux-like numbers); taken as e-/s, the simulated camera would sit at its exposure
ceiling or floor for the whole bag. Every tool that replays a bag (``replay``,
``camera_sim_node``, ``evaluate --protocol bag``, ``make-bag``) multiplies the radiance by
a ``radiance_scale``:

- a number: that factor (:data:`GIVEN`);
- ``auto`` (the default): a bag that declares ``e-/s`` (every bag ``make-bag`` and
  :class:`~neural_ae.core.bags.HDRBagWriter` write, :mod:`neural_ae.core.bags.units`) is
  used as is (:data:`DECLARED`, factor 1); any other bag (undeclared or ``relative``)
  gets the factor from its data (:data:`AUTO`): the median ``e_base``
  (:func:`neural_ae.core.sensor.e_base_s`: the exposure value that puts the mean raw
  signal at half the white level) over a sample of the bag's frames (every k-th frame,
  about :data:`AUTO_SAMPLE_FRAMES` of them; the median of ``log e_base``, so a bag half
  in a tunnel and half in daylight is centred between the two) lands at the **geometric
  middle** of the exposure values ``K t`` the target sensor reaches with the default
  controller bounds (:class:`~neural_ae.core.controllers.ControllerOptions` defaults: the
  sensor's shortest
  exposure to 15 ms, gain 0 dB to the sensor's maximum; for the IMX249 preset 20 us x 1
  to 15 ms x 15.8, i.e. 2e-5 to 0.238 s, middle 2.18 ms). The sensor model is linear, so
  ``e_base`` scales as ``1 / scale``: ``scale = median e_base / target``. The
  procedural scenes' own day sequences have their median ``e_base`` within 0.3 EV of that
  point, so a bag of them gets a factor near 1.

The choice is logged and recorded (:meth:`RadianceCalibration.to_dict`) in the tools'
outputs.
"""
from dataclasses import asdict, dataclass
import logging
import math
from typing import Iterable, Iterator, Optional, Tuple, Union

from neural_ae.core.bags.units import E_PER_S
from neural_ae.core.errors import BagFormatError, ConfigError, SensorError
import numpy as np

__all__ = ['AUTO', 'AUTO_POINT', 'AUTO_SAMPLE_FRAMES', 'auto_target_e_s', 'calibrate_bag',
           'calibrate_frames', 'DECLARED', 'GIVEN', 'parse_radiance_scale',
           'RadianceCalibration', 'scaled']

LOG = logging.getLogger(__name__)

AUTO = 'auto'
"""Option value (and method): the factor comes from the bag's data, or its declaration."""
GIVEN = 'given'
"""Method: the user gave the factor."""
DECLARED = 'declared'
"""Method: the bag declares ``e-/s``; used as is (factor 1)."""
AUTO_POINT = 0.5
"""Where ``auto`` puts the median ``e_base`` in ``[log e_lo, log e_hi]``: 0.5 = middle."""
AUTO_SAMPLE_FRAMES = 32
"""About how many frames (every k-th) ``auto`` reads to choose the factor."""
MAX_SCALE_EV = 120.0
"""Largest factor ``auto`` or a user may set, in EV either way (2**120 ~ 1.3e36)."""


def parse_radiance_scale(value, where: str = 'radiance_scale') -> Union[str, float]:
    """
    Return ``'auto'`` or the factor (a finite number > 0) from an option value.

    ``None`` and ``''`` mean ``auto``. Numbers may come as text (``'2.5e4'``). Anything
    else raises a one-line :class:`ConfigError`.
    """
    if value is None or (isinstance(value, str) and value.strip().lower() in ('', AUTO)):
        return AUTO
    if isinstance(value, bool):
        raise ConfigError(f'{where} must be "auto" or a number > 0, got {value!r}')
    try:
        scale = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise ConfigError(f'{where} must be "auto" or a number > 0, got '
                          f'{str(value)[:40]!r}') from None
    if not (math.isfinite(scale) and scale > 0):
        raise ConfigError(f'{where} must be "auto" or a finite number > 0, got {value!r}')
    if abs(math.log2(scale)) > MAX_SCALE_EV:
        raise ConfigError(f'{where} {scale:g} is beyond 2**+-{MAX_SCALE_EV:g}')
    return scale


@dataclass(frozen=True)
class RadianceCalibration:
    """
    The factor applied to a bag's radiance, and how it was chosen.

    ``scale``: the factor; ``method``: :data:`GIVEN`, :data:`DECLARED` or :data:`AUTO`;
    ``unit``: the unit the bag declares (None: none); for ``auto``: ``target_e_s`` (where
    the median ``e_base`` lands [s]), ``e_range_s`` (the exposure-value range it is the
    geometric middle of [s]), ``median_e_base_s`` (before scaling [s]) and
    ``sample_frames`` (frames it was measured on).
    """

    scale: float
    method: str
    unit: Optional[str] = None
    target_e_s: Optional[float] = None
    e_range_s: Optional[Tuple[float, float]] = None
    median_e_base_s: Optional[float] = None
    sample_frames: int = 0

    def to_dict(self) -> dict:
        """Plain dict for JSON outputs (``e_range_s`` as a list)."""
        out = asdict(self)
        if self.e_range_s is not None:
            out['e_range_s'] = list(self.e_range_s)
        return out

    def describe(self) -> str:
        """One line for the logs."""
        if self.method == AUTO:
            assert self.e_range_s is not None  # an auto calibration records its range
            return (f'radiance scale {self.scale:.6g} (auto: median e_base '
                    f'{self.median_e_base_s:.4g} s over {self.sample_frames} frames -> '
                    f"{self.target_e_s:.4g} s, the geometric middle of the sensor's "
                    f'{self.e_range_s[0]:.3g}..{self.e_range_s[1]:.3g} s; bag unit '
                    f'{self.unit or "undeclared"})')
        if self.method == DECLARED:
            return f'radiance scale 1 (the bag declares {self.unit})'
        return f'radiance scale {self.scale:.6g} (given; bag unit {self.unit or "undeclared"})'

    def apply(self, radiance: np.ndarray) -> np.ndarray:
        """Return ``radiance * scale`` (float32; the array itself when the scale is 1)."""
        if self.scale == 1.0:
            return radiance
        return np.multiply(radiance, np.float32(self.scale), dtype=np.float32)


def auto_target_e_s(sensor, point: float = AUTO_POINT) -> Tuple[float, Tuple[float, float]]:
    """``(target, (e_lo, e_hi))`` [s]: ``point`` of the way up the log range (0.5: middle)."""
    from neural_ae.core.controllers import ControllerOptions

    e_lo, e_hi = ControllerOptions().resolve(sensor).e_bounds()
    target = math.exp((1.0 - point) * math.log(e_lo) + point * math.log(e_hi))
    return target, (float(e_lo), float(e_hi))


def _median_e_base(radiances: Iterable[np.ndarray], sensor) -> Tuple[float, int]:
    from neural_ae.core.sensor import e_base_s, mosaic

    values = []
    for rad in radiances:
        rad = np.asarray(rad)
        phi = mosaic(rad, sensor.bayer_pattern) if rad.ndim == 3 else rad
        try:
            e = e_base_s(phi, sensor)
        except SensorError:
            continue  # a black (or all non-positive) frame says nothing about the scale
        if math.isfinite(e) and e > 0:
            values.append(e)
    if not values:
        return math.nan, 0
    return float(np.exp(np.median(np.log(values)))), len(values)


def calibrate_frames(radiances: Iterable[np.ndarray], sensor, option=AUTO,
                     unit: Optional[str] = None, where: str = 'bag') -> RadianceCalibration:
    """
    Choose the factor for frames of declared ``unit`` (see the module docstring).

    ``radiances``: the sample to measure (read only for ``auto`` on a bag that does not
    declare ``e-/s``); ``option``: ``'auto'``/None or a number. Raises a one-line
    :class:`ConfigError` when ``auto`` finds no usable frame or an absurd factor.
    """
    choice = parse_radiance_scale(option)
    if choice != AUTO:
        return RadianceCalibration(float(choice), GIVEN, unit)
    if unit == E_PER_S:
        return RadianceCalibration(1.0, DECLARED, unit)
    target, e_range = auto_target_e_s(sensor)
    median, n = _median_e_base(radiances, sensor)
    if n == 0:
        raise ConfigError(f'{where}: cannot choose a radiance scale: no sampled frame has a '
                          'positive finite mean radiance; give radiance_scale as a number')
    scale = median / target
    if not (math.isfinite(scale) and scale > 0 and abs(math.log2(scale)) <= MAX_SCALE_EV):
        raise ConfigError(f'{where}: the automatic radiance scale {scale:g} (median e_base '
                          f'{median:g} s) is beyond 2**+-{MAX_SCALE_EV:g}; give '
                          'radiance_scale as a number')
    return RadianceCalibration(float(scale), AUTO, unit, float(target), e_range, median, n)


def calibrate_bag(bag, sensor, option=AUTO, topic: Optional[str] = None,
                  sample_frames: int = AUTO_SAMPLE_FRAMES) -> RadianceCalibration:
    """
    Choose the factor for an open :class:`~neural_ae.core.bags.HDRBag`; log the choice.

    ``auto`` on a bag that does not declare ``e-/s`` reads every k-th frame (about
    ``sample_frames``) with :meth:`~neural_ae.core.bags.HDRBag.sample_radiance` (a
    damaged bag: the frames before the damage).
    """
    unit = bag.radiance_unit

    def sample():
        try:
            for _, _, rad in bag.sample_radiance(sample_frames, topic):
                yield rad
        except BagFormatError as err:  # a damaged bag: measure what could be read
            LOG.warning('%s: radiance scale measured on the frames before the damage: %s',
                        bag.path, err)

    calib = calibrate_frames(sample(), sensor, option, unit, where=str(bag.path))
    LOG.info('%s: %s', bag.path, calib.describe())
    return calib


def scaled(frames: Iterable, calib: RadianceCalibration) -> Iterator:
    """Yield ``(t_ns, radiance * scale)`` for ``(t_ns, radiance)`` frames."""
    for t_ns, radiance in frames:
        yield t_ns, calib.apply(radiance)
