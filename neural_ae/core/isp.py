"""
Differentiable image signal processor (ISP): raw Bayer DN -> display-referred RGB.

The paper trains the ISP jointly with the exposure network and the detector (Sec. 5,
Fig. 4), so every stage is an ordinary torch expression with useful gradients with
respect to its input and its parameters. Each stage is a function plus an
:class:`torch.nn.Module` wrapper over ``(*, C, H, W)`` float tensors:

==========================  ==================  ==================  =====================
stage                       input               output              units / range
==========================  ==================  ==================  =====================
:func:`normalize_raw`       ``(*, 1, H, W)``    ``(*, 1, H, W)``    DN -> [0, 1] (linear)
:func:`demosaic`            ``(*, 1, H, W)``    ``(*, 3, H, W)``    linear, unbounded
:func:`white_balance`       ``(*, 3, H, W)``    ``(*, 3, H, W)``    linear, unbounded
:func:`color_correction`    ``(*, 3, H, W)``    ``(*, 3, H, W)``    linear, unbounded
:func:`tone_curve`          ``(*, 3, H, W)``    ``(*, 3, H, W)``    [0, 1], gamma-encoded
==========================  ==================  ==================  =====================

:class:`ISP` composes them. Only :func:`tone_curve` clamps: the linear stages keep
negative values (read noise below the black level) and values above 1 (white-balance
gains on a nearly saturated channel) so that the clamp happens once, at a documented
place, with a documented gradient.
"""
from dataclasses import dataclass
import math
from typing import Any, Dict, Optional, Sequence, Union

from neural_ae.core.checks import check_shape
from neural_ae.core.color import BAYER_PATTERNS, bayer_sites
from neural_ae.core.errors import NeuralAEError
import torch
from torch import nn
import torch.nn.functional as F

IDENTITY_CCM = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))

# Bilinear demosaicking kernels applied to each colour plane after masking the mosaic
# with that colour's sampling positions. They are pattern-agnostic: the green kernel
# averages the 4 direct neighbours where green is missing, the red/blue kernel averages 2
# (same row or column) or 4 (diagonal) neighbours; at a sampled site both return the
# sample itself.
_K_GREEN = ((0.0, 0.25, 0.0), (0.25, 1.0, 0.25), (0.0, 0.25, 0.0))
_K_RED_BLUE = ((0.25, 0.5, 0.25), (0.5, 1.0, 0.5), (0.25, 0.5, 0.25))

TensorLike = Union[torch.Tensor, float, Sequence[float], Sequence[Sequence[float]]]


class ISPError(NeuralAEError, ValueError):
    """Bad input to an ISP stage (type, dtype, shape, Bayer pattern, parameter value)."""


# --------------------------------------------------------------------------- checks


def _check_image(x, channels: int, name: str, allow_int: bool = False) -> None:
    """Raise :class:`ISPError` unless ``x`` is a floating ``(*, channels, H, W)`` tensor."""
    check_shape(x, ('*', channels, 'H', 'W'), name=name, error=ISPError, kind='tensor')
    if not (x.is_floating_point() or allow_int):
        raise ISPError(f'{name}: expected a floating point tensor, got dtype {x.dtype}')


def _as_param_tensor(value: TensorLike, like: torch.Tensor, name: str) -> torch.Tensor:
    """Return ``value`` as a tensor on ``like``'s device (float values take its dtype)."""
    if isinstance(value, torch.Tensor):
        if not value.is_floating_point():
            value = value.to(like.dtype)
        return value.to(device=like.device)
    try:
        return torch.as_tensor(value, dtype=like.dtype, device=like.device)
    except (TypeError, ValueError, RuntimeError) as err:
        raise ISPError(f'{name}: cannot convert {value!r} to a tensor') from err


def _check_pattern(pattern: str) -> str:
    if pattern not in BAYER_PATTERNS:
        raise ISPError(f'Bayer pattern must be one of {BAYER_PATTERNS}, got {pattern!r}')
    return pattern


# ------------------------------------------------------------------ black/white level


def normalize_raw(raw_dn: torch.Tensor, black_level_dn: float = 0.0,
                  white_level_dn: float = 4095.0) -> torch.Tensor:
    """
    Subtract the black level and scale the white level to 1.

    ``out = (raw_dn - black_level_dn) / (white_level_dn - black_level_dn)``. No clamp:
    dark pixels whose read noise falls below the black level stay slightly negative (the
    mean of the noise is preserved and the gradient is 1 everywhere).

    :param raw_dn: ``(*, 1, H, W)`` raw mosaic in digital numbers (DN), 12-bit values in
        ``0 .. 4095``. Integer tensors are converted to float32 (no gradient).
    :param black_level_dn: black level offset in DN.
    :param white_level_dn: saturation value in DN; must exceed the black level.
    :return: ``(*, 1, H, W)`` linear signal, 0 at black, 1 at white.
    :raises ISPError: wrong type/shape, or ``white_level_dn <= black_level_dn``.
    """
    _check_image(raw_dn, 1, 'normalize_raw', allow_int=True)
    if not white_level_dn > black_level_dn:
        raise ISPError(f'normalize_raw: white_level_dn ({white_level_dn}) must exceed '
                       f'black_level_dn ({black_level_dn})')
    if not raw_dn.is_floating_point():
        raw_dn = raw_dn.to(torch.float32)
    return (raw_dn - black_level_dn) / (white_level_dn - black_level_dn)


class NormalizeRaw(nn.Module):
    """Module form of :func:`normalize_raw`; ``(*, 1, H, W)`` DN -> ``(*, 1, H, W)``."""

    def __init__(self, black_level_dn: float = 0.0, white_level_dn: float = 4095.0):
        super().__init__()
        if not white_level_dn > black_level_dn:
            raise ISPError(f'NormalizeRaw: white_level_dn ({white_level_dn}) must exceed '
                           f'black_level_dn ({black_level_dn})')
        self.black_level_dn = float(black_level_dn)
        self.white_level_dn = float(white_level_dn)

    def forward(self, raw_dn: torch.Tensor) -> torch.Tensor:
        return normalize_raw(raw_dn, self.black_level_dn, self.white_level_dn)

    def extra_repr(self) -> str:
        return f'black_level_dn={self.black_level_dn}, white_level_dn={self.white_level_dn}'


# ------------------------------------------------------------------------- demosaic


def _site_masks(pattern: str, height: int, width: int, dtype: torch.dtype,
                device: Optional[torch.device]) -> torch.Tensor:
    """``(3, H, W)`` 0/1 masks of each colour's sites, any ``H, W >= 1`` (odd included)."""
    masks = torch.zeros(3, height, width, dtype=dtype, device=device)
    for colour, sites in bayer_sites(pattern).items():
        for dy, dx in sites:
            masks[colour, dy::2, dx::2] = 1
    return masks


def bayer_masks(pattern: str, height: int, width: int, dtype: torch.dtype = torch.float32,
                device: Optional[torch.device] = None) -> torch.Tensor:
    """
    Return the ``(3, H, W)`` 0/1 sampling masks (R, G, B) of a Bayer mosaic.

    :param pattern: one of ``RGGB``, ``GRBG``, ``GBRG``, ``BGGR`` (colours of the top-left
        2x2 cell, row-major).
    :raises ISPError: unknown pattern, or odd/non-positive ``height``/``width``.
    """
    _check_pattern(pattern)
    if height < 2 or width < 2 or height % 2 or width % 2:
        raise ISPError(f'Bayer mosaics need even height and width >= 2, got '
                       f'(H, W) = ({height}, {width})')
    return _site_masks(pattern, height, width, dtype, device)


def mosaic(rgb: torch.Tensor, pattern: str = 'RGGB') -> torch.Tensor:
    """
    Sample an RGB image with a Bayer colour filter array (the inverse of a demosaic).

    A sum of masked channels, so it is differentiable and gradients reach every sampled
    pixel. This is the one torch mosaic (:func:`neural_ae.core.sensor.mosaic_torch` calls
    it); the numpy one is :func:`neural_ae.core.sensor.mosaic`.

    :param rgb: ``(*, 3, H, W)`` image, any units and dtype, any ``H, W`` (odd ones
        included: the last partial 2x2 cell keeps the sites that fall inside).
    :return: ``(*, 1, H, W)`` mosaic in the same units and dtype.
    """
    _check_image(rgb, 3, 'mosaic', allow_int=True)
    _check_pattern(pattern)
    masks = _site_masks(pattern, rgb.shape[-2], rgb.shape[-1], rgb.dtype, rgb.device)
    return (rgb * masks).sum(dim=-3, keepdim=True)


def demosaic(raw: torch.Tensor, pattern: str = 'RGGB') -> torch.Tensor:
    """
    Bilinear demosaic of a Bayer mosaic with fixed convolutions.

    Each colour plane is the mosaic masked by that colour's sampling sites, convolved
    with a fixed 3x3 bilinear kernel (one grouped ``conv2d``, so the op is linear and
    cheap to differentiate). The kernels do not depend on the pattern; only the masks
    do, so all four Bayer patterns are handled without flipping or rolling. Borders use
    reflect padding, which keeps the colour of every padded site (reflection maps index
    ``i`` to one of the same parity), so a constant-colour mosaic demosaics to exactly
    that colour everywhere, borders included.

    :param raw: ``(*, 1, H, W)`` float mosaic (any units, typically the output of
        :func:`normalize_raw` in [0, 1]); H and W must be even.
    :param pattern: Bayer pattern, one of ``RGGB``, ``GRBG``, ``GBRG``, ``BGGR``.
    :return: ``(*, 3, H, W)`` RGB in the units of ``raw``.
    :raises ISPError: wrong type/dtype/shape, odd H or W, unknown pattern.
    """
    _check_image(raw, 1, 'demosaic')
    height, width = raw.shape[-2:]
    if height < 2 or width < 2 or height % 2 or width % 2:
        raise ISPError(f'demosaic: Bayer mosaics need even H and W >= 2, got shape '
                       f'{tuple(raw.shape)}')
    masks = bayer_masks(pattern, height, width, raw.dtype, raw.device)
    lead = raw.shape[:-3]
    planes = raw.reshape(-1, 1, height, width) * masks
    planes = F.pad(planes, (1, 1, 1, 1), mode='reflect')
    kernel = torch.tensor((_K_RED_BLUE, _K_GREEN, _K_RED_BLUE), dtype=raw.dtype,
                          device=raw.device).unsqueeze(1)
    rgb = F.conv2d(planes, kernel, groups=3)
    return rgb.reshape(*lead, 3, height, width)


class Demosaic(nn.Module):
    """Module form of :func:`demosaic`; ``(*, 1, H, W)`` -> ``(*, 3, H, W)``."""

    def __init__(self, pattern: str = 'RGGB'):
        super().__init__()
        self.pattern = _check_pattern(pattern)

    def forward(self, raw: torch.Tensor) -> torch.Tensor:
        return demosaic(raw, self.pattern)

    def extra_repr(self) -> str:
        return f'pattern={self.pattern!r}'


# -------------------------------------------------------------------- white balance


def white_balance(rgb: torch.Tensor, gains: TensorLike) -> torch.Tensor:
    """
    Multiply each colour channel by its gain.

    :param rgb: ``(*, 3, H, W)`` linear RGB.
    :param gains: ``(3,)`` gains (R, G, B), or ``(*, 3)`` per image, broadcast against the
        leading dimensions of ``rgb``; dimensionless, normally > 0.
    :return: ``(*, 3, H, W)`` linear RGB, not clamped.
    :raises ISPError: wrong type/shape of ``rgb`` or ``gains``.
    """
    _check_image(rgb, 3, 'white_balance')
    gains = _as_param_tensor(gains, rgb, 'white_balance gains')
    check_shape(gains, ('*', 3), name='white_balance gains', error=ISPError)
    try:
        return rgb * gains[..., :, None, None]
    except RuntimeError as err:
        raise ISPError(f'white_balance: gains of shape {tuple(gains.shape)} do not '
                       f'broadcast against image of shape {tuple(rgb.shape)}') from err


class WhiteBalance(nn.Module):
    """
    Module form of :func:`white_balance`.

    The gains are stored as ``log_gains`` so that a learnable white balance stays
    positive; ``gains`` returns ``exp(log_gains)``.
    """

    def __init__(self, gains: Sequence[float] = (1.0, 1.0, 1.0), learnable: bool = False):
        super().__init__()
        gains_t = torch.as_tensor(gains, dtype=torch.float32)
        if gains_t.shape != (3,) or not bool((gains_t > 0).all()):
            raise ISPError(f'WhiteBalance: gains must be 3 positive values, '
                           f'got {gains_t.tolist()}')
        log_gains = gains_t.log()
        if learnable:
            self.log_gains = nn.Parameter(log_gains)
        else:
            self.register_buffer('log_gains', log_gains)

    @property
    def gains(self) -> torch.Tensor:
        return self.log_gains.exp()

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        return white_balance(rgb, self.gains.to(rgb.dtype))


# ---------------------------------------------------------------- colour correction


def color_correction(rgb: torch.Tensor, ccm: TensorLike) -> torch.Tensor:
    """
    Apply a 3x3 colour correction matrix: ``out[c] = sum_k ccm[c, k] * rgb[k]``.

    :param rgb: ``(*, 3, H, W)`` linear camera RGB.
    :param ccm: ``(3, 3)`` matrix (rows: output channels), or ``(*, 3, 3)`` per image,
        broadcast against the leading dimensions of ``rgb``; dimensionless.
    :return: ``(*, 3, H, W)`` linear RGB, not clamped.
    :raises ISPError: wrong type/shape of ``rgb`` or ``ccm``.
    """
    _check_image(rgb, 3, 'color_correction')
    ccm = _as_param_tensor(ccm, rgb, 'color_correction ccm')
    check_shape(ccm, ('*', 3, 3), name='color_correction ccm', error=ISPError)
    try:
        return torch.einsum('...ck,...khw->...chw', ccm, rgb)
    except RuntimeError as err:
        raise ISPError(f'color_correction: ccm of shape {tuple(ccm.shape)} does not '
                       f'broadcast against image of shape {tuple(rgb.shape)}') from err


class ColorCorrection(nn.Module):
    """Module form of :func:`color_correction`, matrix optionally learnable."""

    def __init__(self, ccm: Sequence[Sequence[float]] = IDENTITY_CCM, learnable: bool = False):
        super().__init__()
        ccm_t = torch.as_tensor(ccm, dtype=torch.float32)
        check_shape(ccm_t, (3, 3), name='ColorCorrection ccm', error=ISPError)
        if learnable:
            self.ccm = nn.Parameter(ccm_t)
        else:
            self.register_buffer('ccm', ccm_t)

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        return color_correction(rgb, self.ccm.to(rgb.dtype))


# ----------------------------------------------------------------------- tone curve


def clamp_unit(x: torch.Tensor, leak: float = 0.0) -> torch.Tensor:
    """
    Clamp to [0, 1] with a leaky gradient outside the range.

    The forward value is exactly ``x.clamp(0, 1)``. The gradient is 1 inside and
    ``leak`` outside (``leak = 0`` is the true gradient of a hard clamp). A small leak
    keeps a training signal for pixels that the ISP pushes out of range (read noise
    below black, white-balance gains on near-white channels): an exposure change still
    moves their loss. It is a straight-through style estimate, biased by design; the
    sensor's own saturation (``min(., M_white)`` in the sensor model) is not affected.

    :param x: any float tensor.
    :param leak: gradient slope outside [0, 1], in ``[0, 1]``.
    """
    if not 0.0 <= leak <= 1.0:
        raise ISPError(f'clamp_unit: leak must be in [0, 1], got {leak}')
    clamped = x.clamp(0.0, 1.0)
    if leak == 0.0:
        return clamped
    outside = leak * (x - clamped)
    # ``outside - outside.detach()`` is exactly 0 in the forward pass (same values), and
    # carries gradient ``leak`` where x is out of range.
    return clamped + (outside - outside.detach())


def tone_curve(rgb: torch.Tensor, gamma: TensorLike = 2.2, eps: float = 1e-3,
               clamp_leak: float = 0.0) -> torch.Tensor:
    """
    Clamp to [0, 1] and apply an sRGB-like power curve with a finite slope at 0.

    ``y = ((x + eps)^(1/gamma) - eps^(1/gamma)) / ((1 + eps)^(1/gamma) - eps^(1/gamma))``
    with ``x = clamp_unit(rgb, clamp_leak)``. It maps 0 to 0 and 1 to 1 exactly; a plain
    ``x^(1/gamma)`` has an infinite derivative at 0, the epsilon bounds it (for
    ``gamma = 2.2``, ``eps = 1e-3`` the slope at 0 is about 20, close to sRGB's linear toe
    of 12.92) and it is differentiable in ``gamma`` too.

    :param rgb: ``(*, 3, H, W)`` linear RGB, nominally [0, 1].
    :param gamma: exponent denominator (> 0), float or 0-d/1-element tensor.
    :param eps: toe offset, > 0.
    :param clamp_leak: gradient slope outside [0, 1], see :func:`clamp_unit`.
    :return: ``(*, 3, H, W)`` gamma-encoded RGB in [0, 1].
    :raises ISPError: wrong type/shape, ``eps <= 0``, ``gamma <= 0``.
    """
    _check_image(rgb, 3, 'tone_curve')
    if not eps > 0:
        raise ISPError(f'tone_curve: eps must be > 0, got {eps}')
    gamma = _as_param_tensor(gamma, rgb, 'tone_curve gamma')
    if gamma.numel() != 1:
        raise ISPError(f'tone_curve: gamma must be a scalar, got shape {tuple(gamma.shape)}')
    if not bool((gamma.detach() > 0).all()):
        raise ISPError(f'tone_curve: gamma must be > 0, got {gamma.detach().item()}')
    inv = 1.0 / gamma.reshape(())
    x = clamp_unit(rgb, clamp_leak)
    eps_t = torch.as_tensor(eps, dtype=rgb.dtype, device=rgb.device)
    floor = eps_t ** inv
    scale = (1.0 + eps_t) ** inv - floor
    return ((x + eps_t) ** inv - floor) / scale


class ToneCurve(nn.Module):
    """
    Module form of :func:`tone_curve`.

    Gamma is stored as ``log_gamma`` so that a learnable curve keeps ``gamma > 0``.
    """

    def __init__(self, gamma: float = 2.2, eps: float = 1e-3, clamp_leak: float = 0.0,
                 learnable: bool = False):
        super().__init__()
        if not gamma > 0 or not eps > 0 or not 0.0 <= clamp_leak <= 1.0:
            raise ISPError(f'ToneCurve: need gamma > 0, eps > 0, 0 <= clamp_leak <= 1, got '
                           f'gamma={gamma}, eps={eps}, clamp_leak={clamp_leak}')
        log_gamma = torch.tensor(math.log(gamma), dtype=torch.float32)
        if learnable:
            self.log_gamma = nn.Parameter(log_gamma)
        else:
            self.register_buffer('log_gamma', log_gamma)
        self.eps = float(eps)
        self.clamp_leak = float(clamp_leak)

    @property
    def gamma(self) -> torch.Tensor:
        return self.log_gamma.exp()

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        return tone_curve(rgb, self.gamma.to(rgb.dtype), self.eps, self.clamp_leak)

    def extra_repr(self) -> str:
        return f'eps={self.eps}, clamp_leak={self.clamp_leak}'


# ------------------------------------------------------------------------------ ISP


@dataclass(frozen=True)
class ISPConfig:
    """
    Settings of :class:`ISP`.

    The defaults suit raw frames simulated from linear HDR RGB (the training data is
    already white-balanced and in a display colour space, so white balance and colour
    correction start as identity); ``learnable=True`` lets training adapt them, as the
    paper trains its ISP jointly. Use :meth:`from_sensor` to take the black level, white
    level and Bayer pattern from a sensor preset.
    """

    black_level_dn: float = 0.0
    white_level_dn: float = 4095.0
    pattern: str = 'RGGB'
    wb_gains: tuple = (1.0, 1.0, 1.0)
    ccm: tuple = IDENTITY_CCM
    gamma: float = 2.2
    eps: float = 1e-3
    clamp_leak: float = 0.01
    learnable: bool = False

    def __post_init__(self):
        _check_pattern(self.pattern)

    @classmethod
    def from_sensor(cls, sensor, **overrides) -> 'ISPConfig':
        """
        Build from a sensor description with ``black_level_dn``, ``bit_depth``, ``bayer_pattern``.

        Any object with those attributes works (e.g. ``neural_ae.core.sensor.SensorConfig``).
        """
        try:
            values: Dict[str, Any] = {
                'black_level_dn': float(sensor.black_level_dn),
                'white_level_dn': float(2 ** int(sensor.bit_depth) - 1),
                'pattern': str(sensor.bayer_pattern)}
        except AttributeError as err:
            raise ISPError(f'ISPConfig.from_sensor: {type(sensor).__name__} lacks '
                           f'black_level_dn/bit_depth/bayer_pattern') from err
        values.update(overrides)
        return cls(**values)


class ISP(nn.Module):
    """
    Raw Bayer DN ``(*, 1, H, W)`` -> gamma-encoded RGB ``(*, 3, H, W)`` in [0, 1].

    Stages: :class:`NormalizeRaw` -> :class:`Demosaic` -> :class:`WhiteBalance` ->
    :class:`ColorCorrection` -> :class:`ToneCurve`. With ``config.learnable`` the white
    balance gains (log-parametrised), the CCM and gamma (log-parametrised) are
    ``nn.Parameter``; otherwise buffers (same ``state_dict`` keys either way). The
    white balance is applied after demosaicking; with this per-plane bilinear demosaic
    the two orders give identical results.
    """

    def __init__(self, config: Optional[ISPConfig] = None):
        super().__init__()
        cfg = config if config is not None else ISPConfig()
        self.config = cfg
        self.normalize = NormalizeRaw(cfg.black_level_dn, cfg.white_level_dn)
        self.demosaic = Demosaic(cfg.pattern)
        self.white_balance = WhiteBalance(cfg.wb_gains, learnable=cfg.learnable)
        self.color_correction = ColorCorrection(cfg.ccm, learnable=cfg.learnable)
        self.tone = ToneCurve(cfg.gamma, cfg.eps, cfg.clamp_leak, learnable=cfg.learnable)

    def linear(self, raw_dn: torch.Tensor) -> torch.Tensor:
        """Linear RGB ``(*, 3, H, W)`` before the tone curve (not clamped)."""
        rgb = self.demosaic(self.normalize(raw_dn))
        return self.color_correction(self.white_balance(rgb))

    def forward(self, raw_dn: torch.Tensor) -> torch.Tensor:
        return self.tone(self.linear(raw_dn))
