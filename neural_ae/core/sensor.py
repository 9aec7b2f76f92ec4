"""
Image formation of a low-dynamic-range raw sensor (Onzon et al., Sec. 3, Eq. 1-3).

Units used throughout:

- irradiance ``phi``: photo-electrons per second per pixel (quantum efficiency folded in);
- exposure time ``t_exp_s`` in seconds, ``exposure_time_us`` in microseconds;
- gain ``K`` linear (``K = 1`` at ISO 100) or ``gain_db = 20 log10 K``;
- exposure value ``e_s = K * t_exp_s`` in seconds (what the controllers predict);
- raw values in digital numbers (DN), ``0 .. 2**bit_depth - 1``.

The model, per pixel::

    y_e = min(Poisson(phi t) + Poisson(mu_d t), M_well)                     (Eq. 1)
    I   = q(black + g1 K (y_e + n_pre) + n_post),  q(x) = clip(floor(x + .5))  (Eq. 2-3)

Two paths share this physics: :func:`capture` (numpy, for simulation: exact Poisson
where the count is low or near the full well, a skew-matched Gaussian elsewhere, or exact
Poisson everywhere with ``exact_poisson=True``) and :func:`capture_torch` /
:class:`SensorModel` (torch, Gaussian stand-in for Poisson and straight-through rounding,
for training with gradients).
"""
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, fields, replace
import logging
import math
import os
from pathlib import Path
import re
import threading
from typing import Optional, Union

from neural_ae.core import hdr, isp
from neural_ae.core.checks import check_shape
from neural_ae.core.color import BAYER_PATTERNS, bayer_sites
from neural_ae.core.errors import ConfigError, HDRError, SensorError
from neural_ae.core.paths import config_dir
import numpy as np
import torch
from torch import nn
import yaml

LOG = logging.getLogger(__name__)

T_MAX_S = 0.015
"""Longest exposure time before gain is raised (paper Sec. 4.4, ``T_max = 15 ms``)."""

RAW_BIT_DEPTHS = (8, 16)
"""Bit depths a raw (LDR) sensor may have: raw frames are 16-bit words (``bayer_*16``)."""

HDR_SOURCE_MAX_BIT_DEPTH = 32
"""Largest bit depth of an HDR source description (noise adaptation only, never captured)."""

MAX_GAIN_DB_LIMIT = 60.0
"""Largest accepted ``max_gain_db`` (K = 1000); beyond it the linear gain is meaningless."""

MAX_FULL_WELL_E = 1e9
"""Largest accepted full well [e-]; real pixels hold well below 1e7."""

_POISSON_CAP_E = 1e18
"""Expected electron counts are clipped here before the Poisson draw: far above any full
well (at most :data:`MAX_FULL_WELL_E`), so the pixel saturates as it would, and below
numpy's largest Poisson mean (about 9.2e18), which raises on huge finite radiance."""

POISSON_EXACT_BELOW_E = 20.0
"""Fast capture: expected counts below this [e-] get an exact Poisson draw."""

CAPTURE_THREADS = max(1, min(2, len(os.sched_getaffinity(0))))
"""Threads of the fast capture (numpy and torch release the GIL; the target is 2 cores)."""

FULL_WELL_BAND_SIGMAS = 8.0
"""Fast capture: counts within this many ``sqrt(full well)`` of the full well are drawn
exactly (the clip at the well shapes their distribution); counts above the band
saturate (a Poisson draw below the well has probability < 1e-15 there)."""


@dataclass(frozen=True)
class SensorConfig:
    """
    EMVA 1288 description of a raw sensor; see ``config/sensors/*.yaml``.

    All noise figures are standard deviations. ``g1_dn_per_e`` is the system gain at
    ``K = 1``; the white level is ``2**bit_depth - 1``.
    """

    name: str
    width: int
    height: int
    bit_depth: int
    bayer_pattern: str
    quantum_efficiency: float
    full_well_e: float
    g1_dn_per_e: float
    dark_current_e_per_s: float
    read_noise_pre_e: float
    read_noise_post_dn: float
    black_level_dn: float
    max_gain_db: float
    min_exposure_us: float
    max_exposure_us: float

    def __post_init__(self):
        _validate_sensor(self)

    @property
    def white_level_dn(self) -> int:
        """Largest raw value, ``M_white = 2**bit_depth - 1`` [DN]."""
        return 2 ** self.bit_depth - 1

    @property
    def max_gain(self) -> float:
        """Maximum analog gain, linear."""
        return 10.0 ** (self.max_gain_db / 20.0)

    @property
    def min_exposure_s(self) -> float:
        """Shortest exposure time [s]."""
        return self.min_exposure_us * 1e-6

    @property
    def max_exposure_s(self) -> float:
        """Longest exposure time [s]."""
        return self.max_exposure_us * 1e-6

    def to_dict(self) -> dict:
        """Plain dict (for YAML/JSON and checkpoints)."""
        return asdict(self)


def _is_number(value) -> bool:
    """Say whether ``value`` is a real number (int or float, numpy too; bool is not)."""
    return isinstance(value, (int, float, np.integer, np.floating)) and \
        not isinstance(value, (bool, np.bool_))


def _validate_sensor(cfg: 'SensorConfig') -> None:
    """
    Check every field of ``cfg``; raise a one-line :class:`ConfigError` naming the key.

    Types first (numbers must be real and finite, sizes and the bit depth whole), then
    ranges: positive sizes, full well and system gain; a bit depth in ``[8, 32]`` (the
    raw-sensor limit of 16 bits is applied by :func:`sensor_from_dict` and
    :func:`capture`); a black level below the white level; non-negative noise figures;
    ``0 < min_exposure_us <= max_exposure_us``; ``0 <= max_gain_db <= 60``. Integral
    floats (``12.0``) for the whole-number fields are stored as ``int``.
    """
    name = cfg.name

    def fail(key, rule):
        raise ConfigError(f'sensor {name!r}: {key} {rule}, got {getattr(cfg, key)!r}')

    if not isinstance(name, str) or not name:
        raise ConfigError(f'sensor name must be a non-empty string, got {name!r}')
    if not isinstance(cfg.bayer_pattern, str) or cfg.bayer_pattern not in BAYER_PATTERNS:
        fail('bayer_pattern', f'must be one of {BAYER_PATTERNS}')
    for f in fields(cfg):
        if f.name in ('name', 'bayer_pattern'):
            continue
        value = getattr(cfg, f.name)
        if isinstance(value, str) and re.fullmatch(r'[-+]?[0-9.]+[eE][-+]?[0-9]+', value):
            fail(f.name, 'must be a finite number (YAML reads 1e6 as text: write 1.0e+6)')
        if not _is_number(value) or not math.isfinite(value):
            fail(f.name, 'must be a finite number')
    for key in ('width', 'height', 'bit_depth'):
        value = getattr(cfg, key)
        if value != int(value):
            fail(key, 'must be a whole number')
        object.__setattr__(cfg, key, int(value))
    for key in ('width', 'height'):
        if not 1 <= getattr(cfg, key) <= 1 << 16:
            fail(key, 'must be in [1, 65536]')
    if not RAW_BIT_DEPTHS[0] <= cfg.bit_depth <= HDR_SOURCE_MAX_BIT_DEPTH:
        fail('bit_depth', f'must be in [{RAW_BIT_DEPTHS[0]}, {RAW_BIT_DEPTHS[1]}] '
             f'(a raw sensor) or at most {HDR_SOURCE_MAX_BIT_DEPTH} (an HDR source)')
    if not 0 < cfg.quantum_efficiency <= 1:
        fail('quantum_efficiency', 'must be in (0, 1]')
    if not 0 < cfg.full_well_e <= MAX_FULL_WELL_E:
        fail('full_well_e', f'must be in (0, {MAX_FULL_WELL_E:g}] e-')
    if not cfg.g1_dn_per_e > 0:
        fail('g1_dn_per_e', 'must be > 0')
    for key in ('dark_current_e_per_s', 'read_noise_pre_e', 'read_noise_post_dn'):
        if not getattr(cfg, key) >= 0:
            fail(key, 'must be >= 0')
    if not 0 <= cfg.black_level_dn < cfg.white_level_dn:
        fail('black_level_dn', f'must be in [0, white level {cfg.white_level_dn}) '
             f'(2**bit_depth - 1, bit_depth {cfg.bit_depth})')
    if not 0 <= cfg.max_gain_db <= MAX_GAIN_DB_LIMIT:
        fail('max_gain_db', f'must be in [0, {MAX_GAIN_DB_LIMIT:g}] dB')
    if not cfg.min_exposure_us > 0:
        fail('min_exposure_us', 'must be > 0')
    if not cfg.max_exposure_us >= cfg.min_exposure_us:
        fail('max_exposure_us', f'must be >= min_exposure_us {cfg.min_exposure_us!r}')


def require_raw_sensor(sensor: 'SensorConfig', what: str = 'a raw sensor') -> None:
    """
    Raise :class:`SensorError` unless ``sensor`` can produce raw frames (bit depth 8-16).

    Presets with more bits describe an HDR source for noise adaptation only: their white
    level does not fit the 16-bit raw words that :func:`capture` returns.
    """
    lo, hi = RAW_BIT_DEPTHS
    if not lo <= sensor.bit_depth <= hi:
        raise SensorError(f'sensor {sensor.name!r}: bit_depth must be in [{lo}, {hi}] for '
                          f'{what} (raw frames are 16-bit words), got {sensor.bit_depth}')


def load_sensor(name_or_path: Union[str, Path] = 'imx249', *,
                hdr_source: bool = False) -> SensorConfig:
    """
    Load a sensor preset by name (``config/sensors/<name>.yaml``) or from a YAML path.

    A preset is a raw sensor (bit depth 8-16) unless ``hdr_source`` is set: then it only
    describes the noise of HDR recordings (e.g. ``imx490``, 24-bit merged output) and
    may have up to 32 bits. Every value is validated (:class:`ConfigError`, one line,
    naming the key and the value).
    """
    path = Path(name_or_path)
    if not path.suffix:
        path = config_dir() / 'sensors' / f'{name_or_path}.yaml'
    if not path.exists():
        raise ConfigError(f'sensor preset not found: {path}')
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f'sensor preset {path} is not valid YAML: {err}') from err
    return sensor_from_dict(data, source=str(path), hdr_source=hdr_source)


def sensor_from_dict(data: dict, source: str = 'dict', *,
                     hdr_source: bool = False) -> SensorConfig:
    """
    Build a :class:`SensorConfig` from a dict, rejecting unknown or missing keys.

    Values are validated as in :func:`load_sensor` (``hdr_source`` as there).
    """
    if not isinstance(data, dict):
        raise ConfigError(f'sensor preset {source} must be a mapping, got {type(data).__name__}')
    names = {f.name for f in fields(SensorConfig)}
    unknown = set(data) - names
    missing = names - set(data)
    if unknown or missing:
        raise ConfigError(f'sensor preset {source}: unknown keys {sorted(unknown)}, '
                          f'missing keys {sorted(missing)}')
    try:
        cfg = SensorConfig(**data)
    except TypeError as err:
        raise ConfigError(f'sensor preset {source}: {err}') from err
    except ConfigError as err:
        raise ConfigError(f'sensor preset {source}: {err}') from err
    if not hdr_source:
        try:
            require_raw_sensor(cfg)
        except SensorError as err:
            raise ConfigError(f'sensor preset {source}: {err}; more bits can only describe '
                              'an HDR source (training source_sensor)') from err
    return cfg


# --------------------------------------------------------------------------- Bayer


def _bayer_offsets(pattern: str) -> dict:
    """Map colour index (0=R, 1=G, 2=B) to the (row, col) offsets inside the 2x2 cell."""
    if pattern not in BAYER_PATTERNS:
        raise SensorError(f'unknown Bayer pattern {pattern!r}; expected one of {BAYER_PATTERNS}')
    return bayer_sites(pattern)


def first_green_offset(pattern: str = 'RGGB') -> tuple:
    """(row, col) of the first green pixel in the 2x2 Bayer cell, in raster order."""
    return _bayer_offsets(pattern)[1][0]


def mosaic(rgb: np.ndarray, pattern: str = 'RGGB') -> np.ndarray:
    """
    Sample an RGB image ``(H, W, 3)`` with a Bayer colour filter array.

    Returns ``(H, W)`` of the same dtype; any ``H, W`` (odd included) works.
    """
    check_shape(rgb, ('H', 'W', 3), name='mosaic', error=SensorError, kind='array')
    out = np.empty(rgb.shape[:2], dtype=rgb.dtype)
    for c, offs in _bayer_offsets(pattern).items():
        for dy, dx in offs:
            out[dy::2, dx::2] = rgb[dy::2, dx::2, c]
    return out


def mosaic_torch(rgb: torch.Tensor, pattern: str = 'RGGB') -> torch.Tensor:
    """
    Sample ``(*, 3, H, W)`` RGB with a Bayer CFA into ``(*, 1, H, W)`` (differentiable).

    :func:`neural_ae.core.isp.mosaic` (a sum of masked channels, so gradients reach every
    sampled pixel; any ``H, W`` and dtype), with bad input reported as
    :class:`SensorError`.
    """
    check_shape(rgb, ('*', 3, 'H', 'W'), name='mosaic_torch', error=SensorError, kind='tensor')
    _bayer_offsets(pattern)
    return isp.mosaic(rgb, pattern)


# --------------------------------------------------------------------------- exposure split


@dataclass(frozen=True)
class ExposureSplit:
    """
    An exposure value split into shutter time and gain (Eq. 6), after clamping.

    ``requested_e_s`` is what was asked for, ``e_s`` what the sensor can deliver;
    ``clamped`` says they differ (beyond rounding).
    """

    t_exp_s: float
    gain: float
    requested_e_s: float
    clamped: bool

    @property
    def e_s(self) -> float:
        """Delivered exposure value ``K * t_exp`` [s]."""
        return self.t_exp_s * self.gain

    @property
    def exposure_time_us(self) -> float:
        """Exposure time [us]."""
        return self.t_exp_s * 1e6

    @property
    def gain_db(self) -> float:
        """Gain [dB]."""
        return 20.0 * math.log10(self.gain)


def exposure_bounds_s(sensor: SensorConfig, t_max_s: float = T_MAX_S) -> tuple:
    """Smallest and largest exposure value ``e = K t`` [s] reachable with Eq. 6."""
    t_hi = min(t_max_s, sensor.max_exposure_s)
    return sensor.min_exposure_s, t_hi * sensor.max_gain


def split_exposure(e_s: float, sensor: SensorConfig, t_max_s: float = T_MAX_S) -> ExposureSplit:
    """
    Split exposure value ``e_s`` into ``(t_exp, K)`` with Eq. 6, clamped to the sensor.

    ``K = max(1, e / T_max)``, ``t_exp = e / K``; then ``K`` is limited to the sensor's
    maximum gain and ``t_exp`` to its exposure range. Non-finite or non-positive ``e_s``
    maps to the shortest exposure and is reported as clamped.
    """
    if not t_max_s > 0:
        raise SensorError(f't_max_s must be > 0, got {t_max_s}')
    requested = float(e_s)
    t_hi = min(t_max_s, sensor.max_exposure_s)
    if not math.isfinite(requested) or requested <= 0:
        return ExposureSplit(sensor.min_exposure_s, 1.0, requested, True)
    gain = min(max(1.0, requested / t_hi), sensor.max_gain)
    t_exp = min(max(requested / gain, sensor.min_exposure_s), t_hi)
    clamped = abs(t_exp * gain - requested) > 1e-9 * requested
    return ExposureSplit(t_exp, gain, requested, clamped)


def split_exposure_torch(e_s: torch.Tensor, sensor: SensorConfig,
                         t_max_s: float = T_MAX_S) -> tuple:
    """
    Differentiable Eq. 6 on a tensor of exposure values ``e_s`` [s].

    Returns ``(t_exp_s, gain)`` tensors of the same shape, clamped to the sensor limits;
    the gradient is that of the clamp (zero where a bound is active).
    """
    t_hi = min(t_max_s, sensor.max_exposure_s)
    gain = torch.clamp(e_s / t_hi, min=1.0, max=sensor.max_gain)
    t_exp = torch.clamp(e_s / gain, min=sensor.min_exposure_s, max=t_hi)
    return t_exp, gain


def e_base_s(phi: np.ndarray, sensor: SensorConfig, target_fraction: float = 0.5,
             clip_percentile: Optional[float] = 99.0) -> float:
    """
    Return the base exposure value, which puts the mean raw signal at half the white level.

    ``e_base = 0.5 M_white / (g1 mean(phi))`` (spec, Sec. 5.3 of the paper), in seconds.
    ``phi`` is first clipped at its ``clip_percentile`` percentile (``None``: no clip), so a
    sun disc or a headlight covering less than 1 % of the frame does not set the base
    exposure; the paper's HDR camera saturates on such sources by itself, our procedural
    scenes do not (project decision, README design notes).
    """
    phi = np.asarray(phi, dtype=np.float64)
    if clip_percentile is not None and phi.size:
        phi = np.minimum(phi, np.percentile(phi, clip_percentile))
    try:
        half = hdr.e_base_s(phi, sensor.g1_dn_per_e, sensor.white_level_dn)
    except HDRError as err:
        raise SensorError(f'e_base needs a positive finite mean irradiance: {err}') from err
    return 2.0 * target_fraction * half


# --------------------------------------------------------------------------- numpy capture


def _check_phi(phi, name='phi'):
    """Raise :class:`SensorError` unless ``phi`` is a non-empty ``(H, W)`` numpy array."""
    check_shape(phi, ('H', 'W'), name=f'{name} [e-/s]', error=SensorError, kind='array')
    if phi.size == 0:
        raise SensorError(f'{name} is empty: shape {phi.shape}')


def _expected_electrons(phi: np.ndarray, t_exp_s: float, sensor: SensorConfig) -> np.ndarray:
    """
    Return the expected electron count ``phi t + mu_d t`` as a new float32 array [e-].

    Non-finite or negative ``phi`` counts as 0; huge finite values (overflow included) are
    clipped at half of :data:`_POISSON_CAP_E`, where every draw saturates anyway.
    """
    cap = 0.5 * _POISSON_CAP_E
    mu_dark = min(sensor.dark_current_e_per_s * t_exp_s, cap)
    mu = np.empty(phi.shape, dtype=np.float32)
    with np.errstate(over='ignore', invalid='ignore'):
        np.multiply(phi, t_exp_s, out=mu, casting='unsafe')
    if not np.isfinite(mu.max()):
        # NaN or inf somewhere: +-inf and NaN in phi count as 0, overflow saturates
        clean = np.nan_to_num(phi, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float64)
        with np.errstate(over='ignore'):     # 1e308 e-/s for 10 s: inf, clipped just below
            clean *= t_exp_s
        np.minimum(clean, cap, out=clean)
        mu[...] = clean
    np.maximum(mu, 0.0, out=mu)
    np.minimum(mu, np.float32(cap), out=mu)
    mu += np.float32(mu_dark)
    return mu


def _shot_and_read_block(mu: np.ndarray, g: float, read_std: float, sensor: SensorConfig,
                         seed: int) -> np.ndarray:
    """
    Raw values before quantisation, ``black + 1/2 + g min(Poisson(mu), M_well) + N(0, s^2)``.

    ``mu`` float32 [e-] (overwritten), ``g`` [DN/e-], ``read_std`` ``s`` [DN]; float32
    [DN], same shape. ``seed`` seeds the block's own generators.

    Where the count is at least :data:`POISSON_EXACT_BELOW_E` and below the full-well band
    (:data:`FULL_WELL_BAND_SIGMAS`), shot and read noise are one draw with the exact mean,
    variance and third cumulant: ``kappa_2 = g^2 mu + s^2``, ``kappa_3 = g^3 mu`` through a
    first-order Cornish-Fisher expansion ``z + a (z^2 - 1)``, ``a = skew / 6``, scaled by
    ``sigma (1 - a^2)`` (``1 / sqrt(1 + 2 a^2)`` to ``O(a^4)``, ``a < 0.02``) so the
    variance stays exact. Low counts and the band get exact Poisson draws (numpy) plus
    Gaussian read noise; above the band the pixel holds a full well. The normal draws come
    from torch's vectorised CPU sampler (about three times faster than numpy's).
    """
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(mu.shape, generator=gen, dtype=torch.float32).numpy()
    offset = np.float32(sensor.black_level_dn + 0.5)
    well = float(sensor.full_well_e)
    band = FULL_WELL_BAND_SIGMAS * math.sqrt(well)
    lo, hi = float(mu.min()), float(mu.max())
    exact = np.empty(0, dtype=np.intp)
    fill: np.ndarray = np.empty(0, dtype=np.float32)
    if lo < POISSON_EXACT_BELOW_E or hi > well - band:
        exact = np.flatnonzero((mu < POISSON_EXACT_BELOW_E)
                               | ((mu > well - band) & (mu < well + band)))
        counts = np.random.default_rng(seed).poisson(mu.flat[exact])
        fill = offset + np.float32(g) * np.minimum(counts, well).astype(np.float32) \
            + np.float32(read_std) * z.flat[exact]
        if hi >= well + band:
            np.minimum(mu, np.float32(well), out=mu)   # saturated: a full well, read noise only
    var = mu * np.float32(g * g)
    var += np.float32(read_std ** 2)
    sigma = np.sqrt(var)
    a = mu * np.float32(g ** 3 / 6.0)
    if hi >= well + band:
        a[mu >= np.float32(well)] = 0.0
        var[mu >= np.float32(well)] = np.float32(read_std ** 2)
        np.sqrt(var, out=sigma)
    var *= sigma
    with np.errstate(divide='ignore', invalid='ignore'):   # 0 / 0 only where drawn exactly
        a /= var                                           # a = skew / 6
    x = np.square(z)
    x -= np.float32(1.0)
    x *= a
    x += z
    np.square(a, out=a)
    np.subtract(np.float32(1.0), a, out=a)
    sigma *= a
    x *= sigma
    mu *= np.float32(g)
    mu += offset
    x += mu
    if exact.size:
        x.flat[exact] = fill
    return x


CAPTURE_BLOCK_ROWS = 128
"""Fast capture works on blocks of this many rows (cache-sized; each with its own seed,
so a frame does not depend on the thread count)."""

_POOL: Optional[ThreadPoolExecutor] = None
_POOL_LOCK = threading.Lock()


def _capture_pool() -> ThreadPoolExecutor:
    """Return the module's thread pool for capture blocks (numpy, torch release the GIL)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=CAPTURE_THREADS,
                                       thread_name_prefix='neural_ae-capture')
        return _POOL


def _fast_capture(phi: np.ndarray, t_exp_s: float, g: float, read_std: float,
                  sensor: SensorConfig, rng: np.random.Generator) -> np.ndarray:
    """Noisy ``uint16`` raw frame by row blocks (:func:`_shot_and_read_block`), threaded."""
    rows = phi.shape[0]
    starts = range(0, rows, CAPTURE_BLOCK_ROWS)
    seeds = rng.integers(0, 2 ** 63 - 1, size=len(starts))
    out = np.empty(phi.shape, dtype=np.uint16)
    white = sensor.white_level_dn

    def block(i: int) -> None:
        r0 = starts[i]
        sl = slice(r0, min(r0 + CAPTURE_BLOCK_ROWS, rows))
        x = _shot_and_read_block(_expected_electrons(phi[sl], t_exp_s, sensor), g,
                                 read_std, sensor, int(seeds[i]))
        np.floor(x, out=x)
        np.clip(x, 0, white, out=x)
        np.copyto(out[sl], x, casting='unsafe')

    if len(starts) == 1 or CAPTURE_THREADS == 1:
        for i in range(len(starts)):
            block(i)
    else:
        for future in [_capture_pool().submit(block, i) for i in range(len(starts))]:
            future.result()
    return out


def capture(phi: np.ndarray, t_exp_s: float, gain: float, sensor: SensorConfig,
            rng: Optional[np.random.Generator] = None, noise: bool = True,
            noise_scale: float = 1.0, source_var_e: Optional[np.ndarray] = None,
            exact_poisson: bool = False) -> np.ndarray:
    """
    Simulate one raw frame from Bayer-sampled irradiance ``phi`` ``(H, W)`` [e-/s].

    Returns ``uint16 (H, W)`` raw values in ``[0, 2**bit_depth - 1]`` [DN].

    With ``noise=True`` and no adaptation the shot and dark noise follow Poisson
    statistics: exact draws where the expected count is below
    :data:`POISSON_EXACT_BELOW_E` or near the full well, elsewhere one float32 Gaussian
    per pixel for shot and read noise together with the exact mean, variance and skew
    (:func:`_shot_and_read_block`, by row blocks on :data:`CAPTURE_THREADS` threads;
    several times faster than exact Poisson). ``exact_poisson``
    draws every pixel from an exact Poisson (the reference; slow). The draws are
    deterministic for a seeded ``rng``.
    With ``noise_scale != 1`` (noise augmentation) or ``source_var_e`` (noise
    adaptation: the variance, in target electrons, that the input already carries), the
    electron noise is Gaussian with variance ``noise_scale**2 * (signal + dark) -
    source_var_e``, floored at zero (a NaN in ``source_var_e`` removes nothing).
    Non-finite or negative ``phi`` is treated as 0; huge finite ``phi`` (1e30) saturates:
    the expected count is clipped far above the full well before the draw.
    """
    _check_phi(phi)
    require_raw_sensor(sensor, 'capture')
    if not (math.isfinite(t_exp_s) and t_exp_s > 0 and math.isfinite(gain) and gain > 0):
        raise SensorError(f'capture needs finite t_exp_s > 0 and gain > 0, '
                          f'got t_exp_s={t_exp_s}, gain={gain}')
    if not (math.isfinite(noise_scale) and noise_scale >= 0):
        raise SensorError(f'capture needs a finite noise_scale >= 0, got {noise_scale}')
    rng = rng if rng is not None else np.random.default_rng()
    g = sensor.g1_dn_per_e * gain
    read_std = noise_scale * math.hypot(g * sensor.read_noise_pre_e, sensor.read_noise_post_dn)
    adapted = noise_scale != 1.0 or source_var_e is not None
    if noise and not adapted and not exact_poisson:
        return _fast_capture(phi, t_exp_s, g, read_std, sensor, rng)
    if not noise:
        y_e = _expected_electrons(phi, t_exp_s, sensor)
    else:
        mu_signal = np.nan_to_num(phi, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float64)
        np.maximum(mu_signal, 0.0, out=mu_signal)
        with np.errstate(over='ignore'):     # 1e308 e-/s for 10 s: inf, clipped just below
            mu_signal *= t_exp_s
        # Beyond the cap every draw saturates anyway; below it nothing changes.
        mu_dark = min(sensor.dark_current_e_per_s * t_exp_s, 0.5 * _POISSON_CAP_E)
        np.minimum(mu_signal, 0.5 * _POISSON_CAP_E, out=mu_signal)
        if not adapted:
            # Poisson(a) + Poisson(b) = Poisson(a + b): one draw covers shot and dark noise.
            y_e = rng.poisson(mu_signal + mu_dark).astype(np.float32)
        else:
            var = noise_scale ** 2 * (mu_signal + mu_dark)
            if source_var_e is not None:
                var = var - np.nan_to_num(np.asarray(source_var_e, dtype=np.float64),
                                          nan=0.0, neginf=0.0)
            y_e = mu_signal + mu_dark + np.sqrt(np.maximum(var, 0.0)) \
                * rng.standard_normal(phi.shape)
    y_e = np.minimum(y_e, np.float32(sensor.full_well_e), dtype=np.float32)
    y_e *= np.float32(g)
    y_e += np.float32(sensor.black_level_dn + 0.5)
    if noise:
        # g n_pre + n_post is one zero-mean Gaussian: draw it once.
        y_e += np.float32(read_std) * rng.standard_normal(phi.shape, dtype=np.float32)
    np.floor(y_e, out=y_e)
    np.clip(y_e, 0, sensor.white_level_dn, out=y_e)
    return y_e.astype(np.uint16)


def capture_rgb(radiance: np.ndarray, t_exp_s: float, gain: float, sensor: SensorConfig,
                rng: Optional[np.random.Generator] = None, **kwargs) -> np.ndarray:
    """Bayer-sample linear RGB radiance ``(H, W, 3)`` [e-/s] and :func:`capture` it."""
    return capture(mosaic(radiance, sensor.bayer_pattern), t_exp_s, gain, sensor, rng, **kwargs)


def raw_mean_var(phi: Union[float, np.ndarray], t_exp_s: float, gain: float,
                 sensor: SensorConfig) -> tuple:
    """
    Analytic raw mean and variance [DN, DN^2] below saturation.

    ``mean = black + g (phi t + mu_d t)``,
    ``var = g^2 (phi t + mu_d t + sigma_pre^2) + sigma_post^2 + 1/12``.
    """
    g = sensor.g1_dn_per_e * gain
    mu_e = np.asarray(phi, dtype=np.float64) * t_exp_s + sensor.dark_current_e_per_s * t_exp_s
    mean = sensor.black_level_dn + g * mu_e
    var = g ** 2 * (mu_e + sensor.read_noise_pre_e ** 2) + sensor.read_noise_post_dn ** 2 + 1 / 12
    return mean, var


def snr_theory(mu_e: Union[float, np.ndarray], t_exp_s: float, gain: float,
               sensor: SensorConfig) -> np.ndarray:
    """
    SNR of the signal electrons ``mu_e`` (spec): ``mu_e / sqrt(mu_e + sd^2 + sq^2 / g^2)``.

    ``sd^2`` is the dark noise in e-^2 (pre-gain read noise, dark-current shot noise and
    post-gain noise referred to the input); ``sq^2 = 1/12`` DN^2 the quantization noise.
    Zero where the mean signal exceeds the full well.
    """
    mu_e = np.asarray(mu_e, dtype=np.float64)
    g = sensor.g1_dn_per_e * gain
    sd2 = (sensor.read_noise_pre_e ** 2 + sensor.dark_current_e_per_s * t_exp_s
           + sensor.read_noise_post_dn ** 2 / g ** 2)
    snr = mu_e / np.sqrt(mu_e + sd2 + (1 / 12) / g ** 2)
    return np.where(mu_e + sensor.dark_current_e_per_s * t_exp_s < sensor.full_well_e, snr, 0.0)


# --------------------------------------------------------------------------- noise adaptation


def source_noise_var_e(phi: np.ndarray, t_exp_s: float, source: SensorConfig,
                       source_t_exp_s: float) -> np.ndarray:
    """
    Noise variance already in HDR data, expressed in target-sensor electrons.

    The HDR frame was recorded by ``source`` with exposure ``source_t_exp_s``: its
    electron count ``phi t_src`` carries variance ``phi t_src + sigma_src^2``. Rescaled to
    the target exposure ``t`` (factor ``t / t_src``), the variance scales by its square.
    This is the noise that :func:`capture` must not add again (noise adaptation).
    """
    ratio = t_exp_s / source_t_exp_s
    var_src = (np.maximum(phi, 0.0) * source_t_exp_s
               + source.dark_current_e_per_s * source_t_exp_s
               + source.read_noise_pre_e ** 2
               + (source.read_noise_post_dn / source.g1_dn_per_e) ** 2)
    return ratio ** 2 * var_src


def sample_noise_scale(rng: np.random.Generator, low: float = 0.75, high: float = 1.5) -> float:
    """
    Noise augmentation: a random noise strength around the adapted target (log-uniform).

    The paper varies the strength "around" the target without giving the range; ours,
    ``[0.75, 1.5]``, is a project decision recorded in the README's design notes.
    """
    return float(math.exp(rng.uniform(math.log(low), math.log(high))))


# --------------------------------------------------------------------------- torch capture


def _straight_through_round(x: torch.Tensor) -> torch.Tensor:
    """Round with ``floor(x + 0.5)`` forward, identity gradient (the paper's override)."""
    return x + (torch.floor(x + 0.5) - x).detach()


def capture_torch(phi: torch.Tensor, e_s: torch.Tensor, sensor: SensorConfig,
                  noise: bool = True, noise_scale: Union[float, torch.Tensor] = 1.0,
                  source_var_e: Optional[torch.Tensor] = None,
                  generator: Optional[torch.Generator] = None,
                  t_max_s: float = T_MAX_S) -> torch.Tensor:
    """
    Differentiable raw capture of ``phi`` ``(*, 1, H, W)`` [e-/s] at exposure ``e_s``.

    ``e_s`` has the batch shape ``(*)`` (or is a scalar) and is split with Eq. 6.
    Returns float raw values ``(*, 1, H, W)`` in ``[0, M_white]`` [DN], rounded with a
    straight-through gradient; saturated pixels pass no gradient (as in Eq. 3).
    Non-finite or negative ``phi`` counts as 0, as in :func:`capture`. Unlike
    :func:`capture` (16-bit words) any validated bit depth works, up to 32 (used for
    finite-difference checks without quantisation).
    Shot noise is a Gaussian with Poisson variance (reparameterised), so gradients reach
    ``e_s`` and ``phi`` through both the mean and the noise amplitude.
    """
    check_shape(phi, ('*', 1, 'H', 'W'), name='capture_torch phi [e-/s]', error=SensorError,
                kind='tensor')
    e_s = torch.as_tensor(e_s, dtype=phi.dtype, device=phi.device)
    batch = phi.shape[:-3]
    if e_s.dim() > 0 and tuple(e_s.shape) != tuple(batch):
        raise SensorError(f'e_s must be a scalar or have batch shape {tuple(batch)}, '
                          f'got {tuple(e_s.shape)}')
    t_exp, gain = split_exposure_torch(e_s, sensor, t_max_s)
    t_exp = t_exp.reshape(*t_exp.shape, 1, 1, 1) if t_exp.dim() else t_exp
    gain = gain.reshape(*gain.shape, 1, 1, 1) if gain.dim() else gain
    # as in capture: non-finite or negative irradiance counts as 0
    phi = torch.nan_to_num(phi, nan=0.0, posinf=0.0, neginf=0.0)
    mu = phi.clamp(min=0) * t_exp + sensor.dark_current_e_per_s * t_exp
    post: Union[torch.Tensor, float]
    if noise:
        scale = torch.as_tensor(noise_scale, dtype=phi.dtype, device=phi.device)
        if scale.dim():
            scale = scale.reshape(*scale.shape, 1, 1, 1)
        var = scale ** 2 * mu
        if source_var_e is not None:
            var = var - source_var_e
        std = torch.sqrt(var.clamp(min=0) + 1e-12)
        n1, n2, n3 = (torch.randn(mu.shape, generator=generator, dtype=mu.dtype,
                                  device=mu.device) for _ in range(3))
        y_e = torch.minimum(mu + std * n1, torch.full_like(mu, sensor.full_well_e))
        y_e = y_e + scale * sensor.read_noise_pre_e * n2
        post = scale * sensor.read_noise_post_dn * n3
    else:
        y_e = torch.minimum(mu, torch.full_like(mu, sensor.full_well_e))
        post = 0.0
    x = sensor.black_level_dn + sensor.g1_dn_per_e * gain * y_e + post
    return _straight_through_round(x).clamp(0.0, float(sensor.white_level_dn))


class SensorModel(nn.Module):
    """
    :func:`capture_torch` as a module: ``(*, 1, H, W)`` e-/s and ``(*)`` exposure -> DN.

    ``noise`` can be switched off (e.g. for evaluation of the mean image); noise
    augmentation draws a per-example strength when ``augment_noise`` is set and the
    module is in training mode.
    """

    def __init__(self, sensor: SensorConfig, noise: bool = True, augment_noise: bool = False,
                 t_max_s: float = T_MAX_S, noise_range: tuple = (0.75, 1.5)):
        super().__init__()
        self.sensor = sensor
        self.noise = noise
        self.augment_noise = augment_noise
        self.t_max_s = t_max_s
        self.noise_range = noise_range

    def forward(self, phi: torch.Tensor, e_s: torch.Tensor,
                source_var_e: Optional[torch.Tensor] = None,
                generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Capture ``phi`` at exposure ``e_s``; see :func:`capture_torch`."""
        scale: Union[float, torch.Tensor] = 1.0
        if self.noise and self.augment_noise and self.training:
            lo, hi = (math.log(v) for v in self.noise_range)
            u = torch.rand(phi.shape[:-3], generator=generator, dtype=phi.dtype,
                           device=phi.device)
            scale = torch.exp(lo + (hi - lo) * u)
        return capture_torch(phi, e_s, self.sensor, noise=self.noise, noise_scale=scale,
                             source_var_e=source_var_e, generator=generator,
                             t_max_s=self.t_max_s)


def with_overrides(sensor: SensorConfig, **overrides) -> SensorConfig:
    """Copy of ``sensor`` with fields replaced (validated again)."""
    return replace(sensor, **overrides)
