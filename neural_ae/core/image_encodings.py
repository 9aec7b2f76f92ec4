"""
``sensor_msgs/Image`` data layout without ROS: encodings, row step, byte order.

One implementation of what cv_bridge does when it reads an Image, shared by
:mod:`neural_ae.ros.conversions` (rclpy messages) and :mod:`neural_ae.core.bags` (rosbags'
messages), so both honour ``step`` (row padding) and ``is_bigendian`` the same way.

- :func:`encoding_layout`: ``(dtype, channels)`` of the named encodings
  (:data:`SUPPORTED_ENCODINGS`) and of the generic OpenCV names
  ``<8U|8S|16U|16S|32S|32F|64F>C<1-4>``;
- :func:`decode_image`: message fields -> a fresh, native-endian, C-contiguous array of
  shape ``(H, W)`` (one channel) or ``(H, W, C)``;
- :func:`srgb_to_linear`: the inverse sRGB transfer curve used for 8-bit colour data
  (:func:`neural_ae.core.color.srgb_decode` in float64).

Errors are :class:`ImageLayoutError` with one-line messages naming the encoding and shape;
callers re-raise them as their own subsystem's error.
"""
import re

from neural_ae.core.color import BAYER_PATTERNS, srgb_decode
from neural_ae.core.errors import NeuralAEError
import numpy as np

__all__ = [
    'BAYER_PATTERNS',
    'ImageLayoutError',
    'SUPPORTED_ENCODINGS',
    'as_bytes',
    'bayer_pattern_of',
    'decode_image',
    'encoding_layout',
    'srgb_to_linear',
]


class ImageLayoutError(NeuralAEError, ValueError):
    """Image data that do not match their encoding, size or step."""


_NAMED = {
    'mono8': (np.uint8, 1),
    'mono16': (np.uint16, 1),
    'rgb8': (np.uint8, 3),
    'bgr8': (np.uint8, 3),
    'rgba8': (np.uint8, 4),
    'bgra8': (np.uint8, 4),
    'rgb16': (np.uint16, 3),
    'bgr16': (np.uint16, 3),
    'rgba16': (np.uint16, 4),
    'bgra16': (np.uint16, 4),
}
for _pattern in BAYER_PATTERNS:
    _NAMED['bayer_%s8' % _pattern.lower()] = (np.uint8, 1)
    _NAMED['bayer_%s16' % _pattern.lower()] = (np.uint16, 1)

_GENERIC = re.compile(r'^(8U|8S|16U|16S|32S|32F|64F)C([1-4])$')
_GENERIC_DTYPES = {
    '8U': np.uint8, '8S': np.int8, '16U': np.uint16, '16S': np.int16,
    '32S': np.int32, '32F': np.float32, '64F': np.float64,
}

#: Named encodings understood besides the generic ``<depth>C<n>`` OpenCV names.
SUPPORTED_ENCODINGS = tuple(sorted(_NAMED))


def encoding_layout(encoding: str) -> tuple:
    """
    Return ``(dtype, channels)`` of an image encoding, as cv_bridge maps it.

    Raises :class:`ImageLayoutError` for an encoding this module does not handle (for
    example ``yuv422`` or a compressed format).
    """
    if encoding in _NAMED:
        dtype, channels = _NAMED[encoding]
        return np.dtype(dtype), channels
    match = _GENERIC.match(encoding or '')
    if match:
        return np.dtype(_GENERIC_DTYPES[match.group(1)]), int(match.group(2))
    raise ImageLayoutError(
        f'unsupported encoding {encoding!r}: expected one of {", ".join(SUPPORTED_ENCODINGS)}'
        ' or <8U|8S|16U|16S|32S|32F|64F>C<1-4>')


def bayer_pattern_of(encoding: str):
    """Return the Bayer pattern (``'RGGB'``, ``'BGGR'``, ``'GBRG'``, ``'GRBG'``) or None."""
    if encoding and encoding.startswith('bayer_'):
        pattern = encoding[len('bayer_'):].rstrip('0123456789').upper()
        if pattern in BAYER_PATTERNS:
            return pattern
    return None


def as_bytes(data) -> np.ndarray:
    """View any message ``data`` (bytes, array.array, memoryview, list, ndarray) as uint8."""
    if isinstance(data, np.ndarray):
        return np.ascontiguousarray(data).reshape(-1).view(np.uint8)
    if isinstance(data, (list, tuple)):
        return np.asarray(data, dtype=np.uint8)
    return np.frombuffer(data, dtype=np.uint8)


def decode_image(data, height: int, width: int, step: int, is_bigendian, dtype,
                 channels: int, encoding: str = '') -> np.ndarray:
    """
    Decode Image message fields into a fresh native-endian array.

    ``dtype`` and ``channels`` describe one pixel (see :func:`encoding_layout`). Row
    padding beyond ``width * bytes * channels`` is dropped, big-endian data are
    byte-swapped. Returns ``(H, W)`` for one channel, ``(H, W, C)`` otherwise; never shares
    memory with ``data``. Empty images, a short ``step`` and a data length other than
    ``height * step`` raise :class:`ImageLayoutError`.
    """
    dtype = np.dtype(dtype)
    height, width, step = int(height), int(width), int(step)
    desc = f'{height}x{width} image with encoding {encoding!r}'
    if height <= 0 or width <= 0:
        raise ImageLayoutError(f'empty image: {desc}')
    row_bytes = width * channels * dtype.itemsize
    if step < row_bytes:
        raise ImageLayoutError(
            f'step {step} < width {width} * {channels} channels * {dtype.itemsize} bytes'
            f' = {row_bytes} for {desc}')
    buf = as_bytes(data)
    if buf.size != height * step:
        raise ImageLayoutError(
            f'data length {buf.size} != height {height} * step {step} = {height * step}'
            f' for {desc}')
    rows = np.array(buf.reshape(height, step)[:, :row_bytes], order='C', copy=True)
    wire = dtype.newbyteorder('>' if is_bigendian else '<')
    arr = rows.view(wire).reshape((height, width) if channels == 1 else
                                  (height, width, channels))
    if not wire.isnative:
        arr = arr.byteswap().view(wire.newbyteorder('='))
    return arr


def srgb_to_linear(values) -> np.ndarray:
    """
    Inverse sRGB transfer curve (IEC 61966-2-1): encoded ``[0, 1]`` -> linear ``[0, 1]``.

    Float64, not clipped (values outside ``[0, 1]`` follow the formulas); see
    :func:`neural_ae.core.color.srgb_decode`.
    """
    return srgb_decode(values, np.float64, clip=False)
