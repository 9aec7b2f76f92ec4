"""
Classical (non-differentiable) raw -> 8-bit RGB rendering for previews and debug images.

OpenCV demosaics; black level is subtracted, the white level maps to 1, and the sRGB
curve (:func:`neural_ae.core.color.srgb_encode`) is applied. This is for people to look
at; the trainable ISP is :mod:`neural_ae.core.isp`.
"""
import cv2
from neural_ae.core.checks import check_shape
from neural_ae.core.color import BAYER_PATTERNS, srgb_encode
from neural_ae.core.errors import SensorError
import numpy as np

__all__ = ['demosaic', 'render_raw', 'resize_bayer', 'srgb_encode']

_BAYER_TO_RGB = {p: getattr(cv2, f'COLOR_Bayer{p}2RGB') for p in BAYER_PATTERNS}
"""OpenCV colour-conversion code (``COLOR_Bayer<pattern>2RGB``) of each Bayer pattern."""


def _check_bayer(raw, name: str) -> None:
    """Raise :class:`SensorError` unless ``raw`` is an ``(H, W)`` array of at least 2x2."""
    check_shape(raw, ('H', 'W'), name=f'{name} Bayer frame', error=SensorError, kind='array')
    if raw.shape[0] < 2 or raw.shape[1] < 2:
        raise SensorError(f'{name} needs at least 2x2 pixels, got {raw.shape}')


def demosaic(raw: np.ndarray, pattern: str = 'RGGB') -> np.ndarray:
    """Demosaic with OpenCV of a ``(H, W)`` uint16/uint8 Bayer frame to ``(H, W, 3)``."""
    check_shape(raw, ('H', 'W'), name='demosaic Bayer frame', error=SensorError, kind='array')
    if pattern not in _BAYER_TO_RGB:
        raise SensorError(f'unknown Bayer pattern {pattern!r}')
    if raw.shape[0] < 2 or raw.shape[1] < 2:
        raise SensorError(f'demosaic needs at least 2x2 pixels, got {raw.shape}')
    src = raw if raw.dtype in (np.uint8, np.uint16) else raw.astype(np.uint16)
    return cv2.cvtColor(src, _BAYER_TO_RGB[pattern])


def render_raw(raw: np.ndarray, black_level_dn: float = 64.0, white_level_dn: float = 4095.0,
               pattern: str = 'RGGB', wb=(1.0, 1.0, 1.0),
               max_width: int = 0) -> np.ndarray:
    """
    Render a raw Bayer frame as display-ready ``uint8 (H, W, 3)`` RGB.

    ``max_width > 0`` renders at most that width, ``(round(H * max_width / W),
    max_width)``: the frame is shrunk in the Bayer domain first (:func:`resize_bayer`,
    each colour site area-averaged, like a binning sensor mode) and only the small mosaic
    is demosaiced: no full-resolution RGB image is made and the float work is done at
    the output size. An odd target size is reached by binning to the next even size and
    area-resizing the small RGB image by that last pixel.
    """
    _check_bayer(raw, 'render_raw')
    if 0 < max_width < raw.shape[1]:
        rgb = _shrunk_rgb(raw, pattern, max_width)
    else:
        rgb = demosaic(raw, pattern)
    rgb = rgb.astype(np.float32)
    rgb = (rgb - black_level_dn) / max(white_level_dn - black_level_dn, 1.0)
    rgb *= np.asarray(wb, dtype=np.float32)
    return (srgb_encode(rgb) * 255.0 + 0.5).astype(np.uint8)


def _shrunk_rgb(raw: np.ndarray, pattern: str, max_width: int) -> np.ndarray:
    """Demosaiced ``(round(H * max_width / W), max_width, 3)`` image, binned before."""
    height, width = raw.shape
    out_h = max(1, int(round(height * max_width / width)))
    bayer_h, bayer_w = max(2, out_h + out_h % 2), max(2, max_width + max_width % 2)
    rgb = demosaic(resize_bayer(raw, bayer_h, bayer_w), pattern)
    if (bayer_h, bayer_w) != (out_h, max_width):
        rgb = cv2.resize(rgb, (max_width, out_h), interpolation=cv2.INTER_AREA)
    return rgb


def resize_bayer(raw: np.ndarray, height: int, width: int) -> np.ndarray:
    """
    Shrink a Bayer frame ``(H, W)`` to ``(height, width)`` (both even), keeping its pattern.

    Each of the four colour sites of the 2x2 cell is area-averaged as its own plane and the
    planes are interleaved again, so the result is a valid mosaic of the same pattern
    (what a binning sensor mode would deliver). Values keep the input dtype.
    """
    _check_bayer(raw, 'resize_bayer')
    if height % 2 or width % 2 or height < 2 or width < 2:
        raise SensorError(f'resize_bayer needs an even target size, got {height}x{width}')
    h2, w2 = raw.shape[0] // 2 * 2, raw.shape[1] // 2 * 2
    out = np.empty((height, width), dtype=raw.dtype)
    src = raw[:h2, :w2]
    for dy in (0, 1):
        for dx in (0, 1):
            plane = np.ascontiguousarray(src[dy::2, dx::2]).astype(np.float32)
            small = cv2.resize(plane, (width // 2, height // 2), interpolation=cv2.INTER_AREA)
            if np.issubdtype(raw.dtype, np.integer):
                small = np.rint(small)
            out[dy::2, dx::2] = small.astype(raw.dtype)
    return out
