"""
Colour constants shared by the sensor, the ISPs, the HDR code and the image encodings.

- :data:`BAYER_PATTERNS` and :func:`bayer_sites`: the four 2x2 colour filter layouts and
  where each colour sits in the cell (row-major: ``'GRBG'`` has green at ``(0, 0)``);
- the sRGB transfer curve (IEC 61966-2-1) in both directions, :func:`srgb_encode`
  (linear -> display) and :func:`srgb_decode` (display -> linear), and the derivative
  of the decode, :func:`srgb_decode_derivative`.

The curves are numpy-only and the module imports nothing heavy, so the ROS message
conversions can use it. The decode's breakpoint is the image of the encode's
(``0.0031308 * 12.92 = 0.040449936``), which makes the two exact inverses; the rounded
``0.04045`` of the standard differs from it only for inputs in
``(0.040449936, 0.04045]``, where both branches agree to 1e-9 (no 8- or 16-bit code lies
there).
"""
from typing import Dict, List, Tuple

import numpy as np

__all__ = [
    'BAYER_PATTERNS',
    'SRGB_A',
    'SRGB_DISPLAY_THRESHOLD',
    'SRGB_GAMMA',
    'SRGB_LINEAR_THRESHOLD',
    'SRGB_SLOPE',
    'bayer_sites',
    'srgb_decode',
    'srgb_decode_derivative',
    'srgb_encode',
]

BAYER_PATTERNS = ('RGGB', 'GRBG', 'GBRG', 'BGGR')
"""Bayer patterns, named by the colours of the top-left 2x2 cell in raster order."""

SRGB_A = 0.055
"""Offset of the sRGB power segment: ``(1 + a) x^(1/gamma) - a``."""
SRGB_SLOPE = 12.92
"""Slope of the sRGB linear toe."""
SRGB_GAMMA = 2.4
"""Exponent of the sRGB power segment."""
SRGB_LINEAR_THRESHOLD = 0.0031308
"""End of the linear toe, in linear units."""
SRGB_DISPLAY_THRESHOLD = SRGB_LINEAR_THRESHOLD * SRGB_SLOPE
"""End of the linear toe in display units (0.040449936): the image of the linear one."""


def bayer_sites(pattern: str) -> dict:
    """
    Map colour index (0 = R, 1 = G, 2 = B) to its ``(row, col)`` sites in the 2x2 cell.

    Green has two sites, listed in raster order. ``pattern`` must be one of
    :data:`BAYER_PATTERNS`; callers validate it first and raise their own error
    (a ``KeyError`` or ``ValueError`` comes out of a bad one here).
    """
    out: Dict[int, List[Tuple[int, int]]] = {0: [], 1: [], 2: []}
    for k, colour in enumerate(pattern):
        out['RGB'.index(colour)].append((k // 2, k % 2))
    return out


def _as_float(x, dtype) -> np.ndarray:
    """``x`` as an array of ``dtype`` (None: its own float dtype, float64 otherwise)."""
    arr = np.asarray(x)
    if dtype is None:
        dtype = arr.dtype if np.issubdtype(arr.dtype, np.floating) else np.float64
    return np.asarray(arr, dtype=dtype)


def srgb_encode(x_linear, dtype=None) -> np.ndarray:
    """
    Apply the sRGB transfer curve: linear ``[0, 1]`` to display ``[0, 1]``.

    ``12.92 x`` up to ``x = 0.0031308``, ``1.055 x^(1/2.4) - 0.055`` above; the input is
    clipped to ``[0, 1]`` first (the sensor saturates). The result has ``dtype``
    (None: the input's float dtype, float64 for integer input), and so does the
    arithmetic.
    """
    x = np.clip(_as_float(x_linear, dtype), 0.0, 1.0)
    hi = (1.0 + SRGB_A) * np.power(np.maximum(x, SRGB_LINEAR_THRESHOLD),
                                   1.0 / SRGB_GAMMA) - SRGB_A
    return np.where(x <= SRGB_LINEAR_THRESHOLD, x * SRGB_SLOPE, hi).astype(x.dtype, copy=False)


def srgb_decode(j, dtype=None, clip: bool = True) -> np.ndarray:
    """
    Invert :func:`srgb_encode`: display ``[0, 1]`` to linear ``[0, 1]``.

    ``j / 12.92`` up to ``j = 12.92 * 0.0031308``, ``((j + 0.055) / 1.055)^2.4`` above.
    ``clip`` first clips the input to ``[0, 1]``; without it, values outside follow the
    two formulas (negative ones the linear toe). ``dtype`` as in :func:`srgb_encode`.
    """
    v = _as_float(j, dtype)
    if clip:
        v = np.clip(v, 0.0, 1.0)
    hi = np.power((np.maximum(v, SRGB_DISPLAY_THRESHOLD) + SRGB_A) / (1.0 + SRGB_A), SRGB_GAMMA)
    return np.where(v <= SRGB_DISPLAY_THRESHOLD, v / SRGB_SLOPE, hi).astype(v.dtype, copy=False)


def srgb_decode_derivative(j, dtype=None) -> np.ndarray:
    """
    Return ``d srgb_decode / dj`` on ``[0, 1]`` (input clipped), for noise propagation.

    ``1 / 12.92`` on the linear toe, ``2.4 / 1.055 * ((j + 0.055) / 1.055)^1.4`` above.
    ``dtype`` as in :func:`srgb_encode`.
    """
    v = np.clip(_as_float(j, dtype), 0.0, 1.0)
    hi = (SRGB_GAMMA / (1.0 + SRGB_A)) * np.power(
        (np.maximum(v, SRGB_DISPLAY_THRESHOLD) + SRGB_A) / (1.0 + SRGB_A), SRGB_GAMMA - 1.0)
    return np.where(v <= SRGB_DISPLAY_THRESHOLD, 1.0 / SRGB_SLOPE, hi).astype(v.dtype,
                                                                              copy=False)
