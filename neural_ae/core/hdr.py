"""
HDR input for training and evaluation (paper Sec. 5, Eq. 7).

Three pieces:

* a camera response: an sRGB-like tone curve :func:`tone_curve` (linear ``[0, 1]`` to
  display ``[0, 1]``), its exact inverse :func:`inverse_tone_curve`, and
  :func:`render_ldr`, which renders one 8-bit LDR bracket from linear radiance;
* :func:`merge_brackets`, the minimum-variance merge of bracketed LDR images (Eq. 7);
* HDR file I/O (:func:`read_hdr`, :func:`write_hdr`) for Radiance ``.hdr``, OpenEXR
  ``.exr`` and ``.npy``/``.npz`` float arrays,
  with :func:`sanitize_radiance` for NaN/Inf/negative values;

plus two scene statistics used everywhere else: the base exposure :func:`e_base_s` and
the robust scene dynamic range :func:`dynamic_range_db`.

Units: radiance is linear; for the procedural scenes (:mod:`neural_ae.core.scenes`) it
is in photo-electrons per second per pixel of the target sensor (quantum efficiency
folded in), so a raw value is ``raw ~ g1 * K * t_exp * radiance``.

OpenEXR files are read and written with the OpenEXR project's own Python binding
(``openexr``): the pinned ``opencv-python-headless`` wheel is built without OpenEXR.
"""
import logging
import math
from pathlib import Path

import cv2
from neural_ae.core.checks import check_shape
from neural_ae.core.color import srgb_decode, srgb_decode_derivative, srgb_encode
from neural_ae.core.errors import HDRError
import numpy as np
import OpenEXR

logger = logging.getLogger(__name__)

#: Rec. 709 / sRGB luminance weights for linear RGB.
LUMA_RGB = np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)

HDR_SUFFIXES = ('.hdr', '.pic', '.exr', '.npy', '.npz')


# --------------------------------------------------------------------------- response

def tone_curve(x_linear):
    """
    sRGB-like camera response: linear ``[0, 1]`` to display ``[0, 1]``.

    ``12.92 x`` below ``x = 0.0031308``, ``1.055 x^(1/2.4) - 0.055`` above; input is
    clipped to ``[0, 1]`` first (the sensor saturates). Returns float32
    (:func:`neural_ae.core.color.srgb_encode`).
    """
    return srgb_encode(x_linear, np.float32)


def inverse_tone_curve(j):
    """
    Exact inverse of :func:`tone_curve`: display ``[0, 1]`` to linear ``[0, 1]``.

    ``j / 12.92`` below ``j = 12.92 * 0.0031308``, ``((j + 0.055) / 1.055)^2.4`` above.
    The breakpoint is the image of the forward one, so the two are inverses to float
    precision on the whole interval. Returns float32
    (:func:`neural_ae.core.color.srgb_decode`).
    """
    return srgb_decode(j, np.float32)


def inverse_tone_curve_derivative(j):
    """
    Return the derivative ``d phi^-1 / dJ`` of :func:`inverse_tone_curve` (noise model).

    ``1 / 12.92`` on the linear segment, ``2.4 / 1.055 * ((j + 0.055) / 1.055)^1.4``
    above it. Returns float32.
    """
    return srgb_decode_derivative(j, np.float32)


def inverse_response_lut(inverse_response=None, levels: int = 256) -> np.ndarray:
    """
    Tabulate an inverse response at ``levels`` codes as a ``(levels,)`` float32 array.

    ``None`` tabulates :func:`inverse_tone_curve` at ``code / (levels - 1)``.
    """
    codes = np.arange(levels, dtype=np.float32) / (levels - 1)
    if inverse_response is None:
        return inverse_tone_curve(codes)
    return np.asarray(inverse_response(codes), dtype=np.float32)


def render_ldr(radiance, t_s: float, gain: float = 1.0, *, full_scale: float = 1.0,
               tone=None) -> np.ndarray:
    """
    Render one 8-bit LDR bracket from linear radiance.

    ``J = round(255 * tone(clip(radiance * gain * t_s / full_scale, 0, 1)))``: the linear
    exposure ``radiance * K * t`` is expressed in units of the bracket camera's
    saturation level ``full_scale`` (e.g. its full well in electrons when ``radiance``
    is in electrons per second), clipped (saturation), tone-mapped by ``tone``
    (default :func:`tone_curve`) and quantised. Returns uint8 with ``radiance``'s shape.
    """
    if not (t_s > 0 and gain > 0 and full_scale > 0):
        raise HDRError(f'render_ldr needs t_s, gain, full_scale > 0; got t_s={t_s}, '
                       f'gain={gain}, full_scale={full_scale}')
    rad = np.asarray(radiance, dtype=np.float32)
    x = rad * np.float32(t_s * gain / full_scale)
    j = (tone or tone_curve)(np.clip(x, 0.0, 1.0))
    return np.clip(np.floor(np.asarray(j, dtype=np.float32) * 255.0 + 0.5),
                   0, 255).astype(np.uint8)


# ------------------------------------------------------------------------------- merge

def _to_unit(image, index: int):
    """Return (display values in [0, 1] float32, quantisation step) for one bracket."""
    arr = np.asarray(image)
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / 255.0, 1.0 / 255.0
    if arr.dtype == np.uint16:
        return arr.astype(np.float32) / 65535.0, 1.0 / 65535.0
    if np.issubdtype(arr.dtype, np.floating):
        f = arr.astype(np.float32)
        if not np.all(np.isfinite(f)):
            raise HDRError(f'bracket {index} holds non-finite values')
        lo, hi = float(f.min()), float(f.max())
        if lo < -1e-6 or hi > 1.0 + 1e-6:
            raise HDRError(f'float bracket {index} must lie in [0, 1]; '
                           f'got range [{lo:g}, {hi:g}]')
        # A float bracket is taken to come from an 8-bit source (documented).
        return np.clip(f, 0.0, 1.0), 1.0 / 255.0
    raise HDRError(f'bracket {index} has unsupported dtype {arr.dtype}; '
                   'expected uint8, uint16 or float')


def _linearise(j, inverse_response):
    """Linear value and ``d phi^-1/dJ`` of display values ``j`` under a response."""
    if inverse_response is None:
        return inverse_tone_curve(j), inverse_tone_curve_derivative(j)
    if callable(inverse_response):
        lin = np.asarray(inverse_response(j), dtype=np.float32)
        h = 1e-3
        deriv = (np.asarray(inverse_response(np.clip(j + h, 0, 1)), dtype=np.float32)
                 - np.asarray(inverse_response(np.clip(j - h, 0, 1)), dtype=np.float32))
        deriv /= (np.clip(j + h, 0, 1) - np.clip(j - h, 0, 1))
        return lin, deriv
    lut = np.asarray(inverse_response, dtype=np.float32)
    if lut.shape in ((256, 1, 3), (256, 1, 1), (256, 1)):
        lut = lut.reshape(256, -1)
    if lut.shape not in ((256,), (256, 1), (256, 3)):
        raise HDRError('inverse_response LUT must have shape (256,), (256, 3) or '
                       f'(256, 1, 3); got {lut.shape}')
    if lut.ndim == 2 and lut.shape[1] == 1:
        lut = lut[:, 0]
    grad = np.gradient(lut, axis=0) * 255.0  # d lin / dJ with J = code / 255
    codes = np.clip(np.floor(j * 255.0 + 0.5), 0, 255).astype(np.intp)
    if lut.ndim == 1:
        return lut[codes], grad[codes]
    ch = np.arange(3)
    return lut[codes, ch], grad[codes, ch]


def merge_brackets(images, exposure_times_s, gains=None, *, saturation: float = 0.98,
                   underexposure: float = 1.5 / 255.0, inverse_response=None,
                   full_scale: float = 1.0, read_noise: float = 0.0) -> np.ndarray:
    """
    Merge bracketed LDR images into one linear HDR image (paper Eq. 7).

    Each bracket ``J_i`` (display values in ``[0, 1]``) gives a linear estimate
    ``I_i = alpha_i * phi^-1(J_i) * full_scale`` with ``alpha_i = 1 / (K_i t_i)``; the
    estimates are averaged with inverse-variance weights
    ``w_i = [J_i valid] / (alpha_i^2 V(J_i))``.

    Noise model for ``V``: the dominant noise of an 8-bit JPEG/PNG bracket is the
    quantisation of ``J`` (step ``q = 1/255``, variance ``q^2 / 12``). Propagated through
    the inverse response, ``V(J) = (d phi^-1/dJ (J))^2 * q^2 / 12``; in the units of
    ``I_i`` the variance is ``alpha_i^2 V(J_i)``, hence the weight. (The paper's
    ``V_unsat`` is the same quantity for unsaturated pixels.) Brackets from a noisy
    camera through a steep response (a gamma curve: its inverse is nearly flat at the
    dark codes) need the camera's noise floor too: ``read_noise``, a standard deviation
    in linear units of the saturation level (read noise in e- over full well in e-),
    adds ``read_noise^2`` to ``V`` (default 0: quantisation only).

    Validity: a pixel of bracket ``i`` is saturated when any of its channels is
    ``>= saturation`` (fraction of full scale); a channel is underexposed when it is
    ``<= underexposure`` (the 0 and 1 codes of 8-bit data, whose value is censored at
    zero). Underexposure is judged per channel: a dark channel does not count, while
    the pixel's other channels in the same bracket still do; and a channel that is
    underexposed in a longer bracket does not count in the shorter ones either (it is
    darker there still: a code above black is noise or a JPEG artefact; noise-free
    brackets are unaffected, they are underexposed there too). Pixels saturated in *all*
    brackets take the shortest exposure's value (the largest ``alpha``; this is a lower
    bound of the true radiance); channels invalid otherwise in all brackets
    (underexposed everywhere) take the longest exposure's value.

    Arguments: ``images``, a sequence of ``(H, W, 3)`` arrays, uint8, uint16 or float
    in ``[0, 1]`` (float brackets are assumed to come from 8-bit data for the noise
    model); ``exposure_times_s``, one exposure time per bracket in seconds (> 0);
    ``gains``, one analog gain ``K`` per bracket (default all 1); ``saturation`` and
    ``underexposure``, thresholds as fractions of the maximum code;
    ``inverse_response``, ``None`` for :func:`inverse_tone_curve`, a callable mapping
    display ``[0, 1]`` to linear ``[0, 1]``, or a 256-entry LUT (``(256,)``,
    ``(256, 3)`` or OpenCV's ``(256, 1, 3)``) indexed by the 8-bit code;
    ``full_scale``, the linear value of a saturated pixel at ``K t = 1`` (see
    :func:`render_ldr`); ``read_noise`` (>= 0), the noise floor described above.

    Returns ``(H, W, 3)`` float32 linear radiance.
    """
    if isinstance(images, np.ndarray) and images.ndim == 4:
        images = list(images)
    try:
        images = list(images)
        times = np.asarray(exposure_times_s, dtype=np.float64).reshape(-1)
        gains_arr = (np.ones_like(times) if gains is None
                     else np.asarray(gains, dtype=np.float64).reshape(-1))
    except (TypeError, ValueError) as err:
        raise HDRError(f'bad bracket arguments: {err}') from err
    n = len(images)
    if n == 0:
        raise HDRError('merge_brackets needs at least one image')
    if times.size != n or gains_arr.size != n:
        raise HDRError(f'{n} images but {times.size} exposure times and '
                       f'{gains_arr.size} gains')
    if not np.all(np.isfinite(times)) or np.any(times <= 0):
        raise HDRError(f'exposure times must be finite and > 0; got {times.tolist()}')
    if not np.all(np.isfinite(gains_arr)) or np.any(gains_arr <= 0):
        raise HDRError(f'gains must be finite and > 0; got {gains_arr.tolist()}')
    if not full_scale > 0:
        raise HDRError(f'full_scale must be > 0; got {full_scale}')
    if not (math.isfinite(read_noise) and read_noise >= 0):
        raise HDRError(f'read_noise must be finite and >= 0; got {read_noise}')
    shape0 = np.shape(images[0])
    for i, im in enumerate(images):
        shp = check_shape(im, ('H', 'W', 3), name=f'bracket {i}', error=HDRError)
        if shp != shape0:
            raise HDRError(f'bracket {i} has shape {shp}, bracket 0 has {shape0}')

    alphas = 1.0 / (gains_arr * times)
    num = np.zeros(shape0, dtype=np.float64)
    den = np.zeros(shape0, dtype=np.float64)
    i_short = int(np.argmax(alphas))
    i_long = int(np.argmin(alphas))
    any_sat_free = np.zeros(shape0[:2], dtype=bool)
    fallback_short = fallback_long = None
    units = [_to_unit(im, i) for i, im in enumerate(images)]
    # Underexposure is judged per channel: a channel at code 0 or 1 is censored at zero,
    # and its quantisation variance (tiny where the response is steep at black) would
    # otherwise outweigh every other bracket and pull the merged value to about 0.
    censored = [j <= underexposure for j, _ in units]
    for i, (j, q) in enumerate(units):
        lin, deriv = _linearise(j, inverse_response)
        value = lin.astype(np.float64) * (alphas[i] * full_scale)
        sat = np.any(j >= saturation, axis=2)
        # A channel censored in a longer bracket is darker still in this one: a code
        # above black here is noise or a compression artefact, not a measurement.
        darker = np.zeros(shape0, dtype=bool)
        for k in np.flatnonzero(alphas < alphas[i]):
            darker |= censored[k]
        valid = ~sat[..., None] & ~censored[i] & ~darker
        any_sat_free |= ~sat
        var = (np.maximum(np.abs(deriv.astype(np.float64)), 1e-6) * q) ** 2 / 12.0
        if read_noise:
            var += read_noise ** 2
        w = valid / ((alphas[i] * full_scale) ** 2 * var)
        num += w * value
        den += w
        if i == i_short:
            fallback_short = value
        if i == i_long:
            fallback_long = value
    # i_short and i_long index brackets (n >= 1), so the loop set both fallbacks
    assert fallback_short is not None and fallback_long is not None
    with np.errstate(invalid='ignore', divide='ignore'):
        out = num / den
    none_valid = den <= 0
    sat_everywhere = ~any_sat_free[..., None]
    out[none_valid & sat_everywhere] = fallback_short[none_valid & sat_everywhere]
    out[none_valid & ~sat_everywhere] = fallback_long[none_valid & ~sat_everywhere]
    return out.astype(np.float32)


# ------------------------------------------------------------------------ statistics

def luminance(radiance) -> np.ndarray:
    """Rec. 709 luminance of linear RGB ``(..., 3)``; single-channel input unchanged."""
    rad = np.asarray(radiance, dtype=np.float32)
    if rad.ndim >= 3 and rad.shape[-1] == 3:
        return rad @ LUMA_RGB
    if rad.ndim >= 3 and rad.shape[-1] == 1:
        return rad[..., 0]
    return rad


def e_base_s(radiance_or_phi, g1_dn_per_e: float, white_level: float = 4095.0,
             gamma: float = 1.0) -> float:
    """
    Return the base exposure ``e_base = 0.5 * M_white / (g1 * gamma * mean(I))``, seconds.

    The exposure value is ``e = K * t_exp``. ``radiance_or_phi`` is in photo-electrons
    per second per pixel of the target sensor (QE folded in), so a raw value is
    ``raw ~ g1 * K * t * gamma * phi``: at ``e_base`` the mean raw value is half the
    white level. ``gamma`` is the paper's DN-to-irradiance factor (1 when the radiance
    is already in sensor electrons per second). The mean is over all pixels and
    channels (a Bayer mosaic samples every channel).
    """
    if not (g1_dn_per_e > 0 and white_level > 0 and gamma > 0):
        raise HDRError(f'e_base_s needs g1_dn_per_e, white_level, gamma > 0; got '
                       f'{g1_dn_per_e}, {white_level}, {gamma}')
    mean = float(np.mean(np.asarray(radiance_or_phi, dtype=np.float64)))
    if not math.isfinite(mean) or mean <= 0:
        raise HDRError(f'e_base_s needs a finite positive mean radiance; got {mean}')
    return 0.5 * white_level / (g1_dn_per_e * gamma * mean)


def dynamic_range_db(radiance, lo_pct: float = 0.1, hi_pct: float = 99.9,
                     floor_ratio: float = 1e-12) -> float:
    """
    Robust scene dynamic range ``20 log10(L_hi / L_lo)`` in dB.

    ``L`` is the Rec. 709 luminance; ``L_hi`` and ``L_lo`` are its ``hi_pct`` and
    ``lo_pct`` percentiles (default 99.9 and 0.1, so a handful of hot or dead pixels
    does not set the figure, while a light source covering 0.1 % of the frame does).
    ``L_lo`` is floored at ``floor_ratio * L_hi`` (default 1e-12, i.e. the figure is
    capped at 240 dB) so black pixels do not give an infinite range; the floor is
    relative, so the figure is independent of the radiance unit.
    """
    if not 0 <= lo_pct < hi_pct <= 100:
        raise HDRError(f'need 0 <= lo_pct < hi_pct <= 100; got {lo_pct}, {hi_pct}')
    lum = luminance(radiance).reshape(-1)
    lum = lum[np.isfinite(lum)]
    if lum.size == 0:
        raise HDRError('dynamic_range_db got no finite pixels')
    lo, hi = np.percentile(lum, [lo_pct, hi_pct])
    if hi <= 0:
        return 0.0
    lo = max(float(lo), floor_ratio * float(hi))
    return float(20.0 * np.log10(hi / lo))


def tonemap(radiance, key: float = 0.18, white_pct: float = 99.5) -> np.ndarray:
    """
    Global photographic (Reinhard) tone mapping of linear RGB to 8-bit sRGB, for previews.

    Scales the log-average luminance to ``key``, compresses with
    ``L (1 + L / L_white^2) / (1 + L)`` (``L_white`` at the ``white_pct`` percentile) and
    applies :func:`tone_curve`. Returns uint8 ``(H, W, 3)``.
    """
    rad = np.maximum(np.asarray(radiance, dtype=np.float32), 0.0)
    lum = luminance(rad)
    pos = lum[lum > 0]
    if pos.size == 0:
        return np.zeros(rad.shape[:2] + (3,), dtype=np.uint8)
    log_avg = float(np.exp(np.mean(np.log(pos))))
    scaled = lum * (key / log_avg)
    l_white = max(float(np.percentile(scaled, white_pct)), 1e-6)
    ld = scaled * (1.0 + scaled / l_white ** 2) / (1.0 + scaled)
    ratio = np.where(lum > 0, ld / np.maximum(lum, 1e-30), 0.0)
    rgb = rad * ratio[..., None] if rad.ndim == 3 else (rad * ratio)[..., None]
    return np.clip(np.floor(tone_curve(np.clip(rgb, 0, 1)) * 255 + 0.5),
                   0, 255).astype(np.uint8)


# ------------------------------------------------------------------------------- files

def sanitize_radiance(x):
    """
    Replace non-finite and negative radiance values; return ``(clean, n_bad)``.

    NaN, ``-inf`` and negative values become 0, ``+inf`` becomes the largest finite
    value of the array (0 if there is none). ``n_bad`` counts the replaced elements
    (array elements, not pixels); a warning with the counts is logged when it is > 0.
    The result is float32.
    """
    arr = np.asarray(x, dtype=np.float32)
    finite = np.isfinite(arr)
    n_nan = int(np.count_nonzero(np.isnan(arr)))
    n_pinf = int(np.count_nonzero(np.isposinf(arr)))
    n_ninf = int(np.count_nonzero(np.isneginf(arr)))
    n_neg = int(np.count_nonzero(finite & (arr < 0)))
    n_bad = n_nan + n_pinf + n_ninf + n_neg
    if n_bad == 0:
        return arr, 0
    clean = arr.copy()
    top = float(arr[finite].max()) if finite.any() else 0.0
    clean[np.isposinf(arr)] = max(top, 0.0)
    clean[np.isnan(arr) | np.isneginf(arr)] = 0.0
    clean[finite & (arr < 0)] = 0.0
    logger.warning('sanitised %d of %d radiance values: %d NaN, %d +inf, %d -inf, '
                   '%d negative', n_bad, arr.size, n_nan, n_pinf, n_ninf, n_neg)
    return clean, n_bad


def _read_exr(path: Path) -> np.ndarray:
    """Read an OpenEXR file's R, G, B (or Y) channels with the OpenEXR library."""
    try:
        with OpenEXR.File(str(path)) as f:
            channels = {name: np.array(ch.pixels) for name, ch in f.channels().items()}
    except Exception as err:  # noqa: BLE001 - the binding raises plain Exceptions
        raise HDRError(f'cannot read OpenEXR file {path}: {err}') from err
    if 'RGB' in channels:
        data = channels['RGB']
    elif 'RGBA' in channels:
        data = channels['RGBA'][..., :3]
    elif all(c in channels for c in 'RGB'):
        data = np.stack([channels[c] for c in 'RGB'], axis=-1)
    elif 'Y' in channels:
        data = channels['Y']
    else:
        raise HDRError(f'OpenEXR file {path} has no RGB or Y channels: {sorted(channels)}')
    return _as_rgb3(data, path)


def _write_exr(path: Path, rgb: np.ndarray) -> None:
    """Write float32 RGB as a ZIP-compressed scanline OpenEXR file."""
    header = {'compression': OpenEXR.ZIP_COMPRESSION, 'type': OpenEXR.scanlineimage}
    try:
        with OpenEXR.File(header, {'RGB': np.ascontiguousarray(rgb, dtype=np.float32)}) as f:
            f.write(str(path))
    except Exception as err:  # noqa: BLE001 - the binding raises plain Exceptions
        raise HDRError(f'cannot write OpenEXR file {path}: {err}') from err


def _as_rgb3(arr, path) -> np.ndarray:
    arr = np.asarray(arr)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    elif arr.ndim == 3 and arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    elif arr.ndim == 3 and arr.shape[2] == 4:
        arr = arr[..., :3]
    check_shape(arr, ('H', 'W', 3), name=f'HDR data in {path}', error=HDRError)
    if arr.size == 0:
        raise HDRError(f'HDR data in {path} must have shape (H, W, 3) with H, W >= 1; '
                       f'got {arr.shape}')
    if not np.issubdtype(arr.dtype, np.number):
        raise HDRError(f'HDR data in {path} must be numeric; got dtype {arr.dtype}')
    return arr.astype(np.float32)


def read_hdr(path) -> np.ndarray:
    """
    Read a linear HDR image as float32 ``(H, W, 3)`` RGB.

    Radiance ``.hdr``/``.pic`` through OpenCV (BGR converted to RGB), OpenEXR ``.exr``
    through the OpenEXR binding (RGB, RGBA or Y channels), ``.npy`` (an ``(H, W, 3)``
    or ``(H, W)`` array) and ``.npz`` (key ``radiance``, else the only array).
    Single-channel data is repeated to 3 channels.
    Non-finite and negative values are replaced (:func:`sanitize_radiance`, logged).

    Raises FileNotFoundError when ``path`` does not exist, and :class:`HDRError` for
    an unknown suffix, an unreadable file, or data that is
    not an image.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f'HDR file not found: {p}')
    suffix = p.suffix.lower()
    if suffix == '.exr':
        arr = _read_exr(p)
    elif suffix in ('.hdr', '.pic'):
        try:
            img = cv2.imread(str(p), cv2.IMREAD_ANYDEPTH | cv2.IMREAD_COLOR)
        except cv2.error as err:
            raise HDRError(f'cannot read HDR file {p}: {err}') from err
        if img is None:
            raise HDRError(f'cannot read HDR file {p}: OpenCV could not decode it')
        arr = cv2.cvtColor(_as_rgb3(img, p), cv2.COLOR_BGR2RGB)
    elif suffix in ('.npy', '.npz'):
        try:
            data = np.load(p, allow_pickle=False)
        except (OSError, ValueError, EOFError) as err:
            raise HDRError(f'cannot read HDR array {p}: {err}') from err
        if suffix == '.npz':
            with data:
                keys = list(data.keys())
                if 'radiance' in keys:
                    data = data['radiance']
                elif len(keys) == 1:
                    data = data[keys[0]]
                else:
                    raise HDRError(f'{p} holds arrays {keys}; expected one array or one '
                                   "named 'radiance'")
        arr = _as_rgb3(data, p)
    else:
        raise HDRError(f'unknown HDR file type {suffix!r} for {p}; expected one of '
                       f'{", ".join(HDR_SUFFIXES)}')
    clean, _ = sanitize_radiance(arr)
    return np.ascontiguousarray(clean)


def write_hdr(path, radiance) -> Path:
    """
    Write linear RGB radiance ``(H, W, 3)`` as ``.hdr``/``.pic``, ``.exr``, ``.npy``, ``.npz``.

    Radiance ``.hdr`` stores RGBE (8-bit mantissa per channel, shared exponent): about
    0.4 % of the pixel's largest channel. ``.exr`` is float32, ZIP-compressed;
    ``.npy``/``.npz`` are exact float32 (npz under key ``radiance``). Non-finite or
    negative values are rejected. Returns the path.
    """
    p = Path(path)
    arr = np.asarray(radiance)
    check_shape(arr, ('H', 'W', 3), name='write_hdr radiance', error=HDRError)
    arr = arr.astype(np.float32)
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise HDRError(f'write_hdr got non-finite or negative radiance for {p}; '
                       'call sanitize_radiance first')
    suffix = p.suffix.lower()
    if suffix == '.exr':
        _write_exr(p, arr)
    elif suffix in ('.hdr', '.pic'):
        try:
            ok = cv2.imwrite(str(p), cv2.cvtColor(arr, cv2.COLOR_RGB2BGR))
        except cv2.error as err:
            raise HDRError(f'cannot write HDR file {p}: {err}') from err
        if not ok:
            raise HDRError(f'cannot write HDR file {p}: OpenCV refused it')
    elif suffix == '.npy':
        np.save(p, arr)
    elif suffix == '.npz':
        np.savez_compressed(p, radiance=arr)
    else:
        raise HDRError(f'unknown HDR file type {suffix!r} for {p}; expected one of '
                       f'{", ".join(HDR_SUFFIXES)}')
    return p
