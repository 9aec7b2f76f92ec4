"""
Classical (non-differentiable) raw -> 8-bit RGB rendering for previews and debug images.

OpenCV demosaics; black level is subtracted, the white level maps to 1, and an sRGB
curve is applied. This is for people to look at; the trainable ISP is
:mod:`neural_ae.core.isp`.
"""
import cv2
from neural_ae.core.errors import SensorError
import numpy as np

_BAYER_TO_RGB = {
    'RGGB': cv2.COLOR_BayerRGGB2RGB,
    'GRBG': cv2.COLOR_BayerGRBG2RGB,
    'GBRG': cv2.COLOR_BayerGBRG2RGB,
    'BGGR': cv2.COLOR_BayerBGGR2RGB,
}


def srgb_encode(x: np.ndarray) -> np.ndarray:
    """Apply the sRGB transfer curve on linear values in ``[0, 1]`` (clipped)."""
    x = np.clip(x, 0.0, 1.0)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1 / 2.4) - 0.055)


def demosaic(raw: np.ndarray, pattern: str = 'RGGB') -> np.ndarray:
    """Demosaic with OpenCV of a ``(H, W)`` uint16/uint8 Bayer frame to ``(H, W, 3)``."""
    if not isinstance(raw, np.ndarray) or raw.ndim != 2:
        raise SensorError(f'demosaic expects an (H, W) Bayer frame, got '
                          f'{getattr(raw, "shape", type(raw).__name__)}')
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

    ``max_width > 0`` shrinks the demosaiced image (area average) to at most that width
    before the float work, so a full-resolution frame renders in a few milliseconds.
    """
    rgb = demosaic(raw, pattern)
    if 0 < max_width < rgb.shape[1]:
        h = max(1, int(round(rgb.shape[0] * max_width / rgb.shape[1])))
        rgb = cv2.resize(rgb, (max_width, h), interpolation=cv2.INTER_AREA)
    rgb = rgb.astype(np.float32)
    rgb = (rgb - black_level_dn) / max(white_level_dn - black_level_dn, 1.0)
    rgb *= np.asarray(wb, dtype=np.float32)
    return (srgb_encode(rgb) * 255.0 + 0.5).astype(np.uint8)


def resize_bayer(raw: np.ndarray, height: int, width: int) -> np.ndarray:
    """
    Shrink a Bayer frame ``(H, W)`` to ``(height, width)`` (both even), keeping its pattern.

    Each of the four colour sites of the 2x2 cell is area-averaged as its own plane and the
    planes are interleaved again, so the result is a valid mosaic of the same pattern
    (what a binning sensor mode would deliver). Values keep the input dtype.
    """
    if not isinstance(raw, np.ndarray) or raw.ndim != 2:
        raise SensorError(f'resize_bayer expects an (H, W) Bayer frame, got '
                          f'{getattr(raw, "shape", type(raw).__name__)}')
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
