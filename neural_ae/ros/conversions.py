"""
``sensor_msgs/Image`` <-> numpy with cv_bridge's semantics, written by hand.

cv_bridge for ROS 2 is not installable here (the PyPI ``cv-bridge`` is ROS 1's and breaks
on numpy 2), so this module re-implements the part the project needs:

- :func:`image_to_array` honours ``step`` (row padding), ``is_bigendian`` and the
  encodings listed in :data:`SUPPORTED_ENCODINGS` plus the generic OpenCV names
  ``<8U|8S|16U|16S|32S|32F|64F>C<1-4>``; it returns ``(H, W)`` for one channel and
  ``(H, W, C)`` otherwise, always a fresh, writable, native-endian C-contiguous array.
- :func:`array_to_image` writes little-endian data with ``step = width * bytes * channels``.
- :func:`raw_frame_from_image` turns whatever the camera publishes into the 12-bit raw
  frame the auto-exposure node works on (``bit_depth`` bits stored ``bit_shift`` bits up in
  16-bit words); :func:`inspect_raw16` tells when a stream does not look like that
  (values above the white level, data in the top bits, a wrong byte-order flag), and
  :func:`check_image_size` refuses oversized images before they are decoded.

Both conversion directions accept any object with the ``sensor_msgs/Image`` fields (rclpy
messages, and rosbags' deserialized messages too). Every failure raises
:class:`ImageConversionError` with a one-line message naming the encoding and shape. The
layout decoding itself is ROS-free and shared with the bag reader
(:mod:`neural_ae.core.image_encodings`).
"""
from dataclasses import dataclass
from functools import lru_cache
from typing import Optional

from builtin_interfaces.msg import Time
from neural_ae.core import image_encodings as _enc
from neural_ae.core.errors import NeuralAEError
from neural_ae.core.image_encodings import (bayer_pattern_of, BAYER_PATTERNS, ImageLayoutError,
                                            srgb_to_linear, SUPPORTED_ENCODINGS)
import numpy as np
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

__all__ = [
    'BAYER_PATTERNS',
    'ImageConversionError',
    'RAW_ENCODINGS',
    'RawCheck',
    'SUPPORTED_ENCODINGS',
    'array_to_image',
    'bayer_pattern_of',
    'camera_info_for',
    'check_image_size',
    'decode_raw',
    'encoding_layout',
    'image_to_array',
    'inspect_raw16',
    'ns_to_stamp',
    'raw_frame_from_array',
    'raw_frame_from_image',
    'short_name',
    'srgb_to_linear',
    'stamp_to_ns',
]


class ImageConversionError(NeuralAEError, ValueError):
    """A message cannot be converted: bad encoding, step, data length, shape or dtype."""


#: Encodings :func:`raw_frame_from_image` accepts.
RAW_ENCODINGS = tuple(sorted(
    [e for e in SUPPORTED_ENCODINGS if e.startswith('bayer_')]
    + ['mono8', 'mono16', '8UC1', '16UC1', 'rgb8', 'bgr8', 'rgba8', 'bgra8']))


def encoding_layout(encoding: str) -> tuple:
    """
    Return ``(dtype, channels)`` of an image encoding, as cv_bridge maps it.

    Raises :class:`ImageConversionError` for an encoding this module does not handle
    (for example ``yuv422`` or a compressed format).
    """
    try:
        return _enc.encoding_layout(encoding)
    except ImageLayoutError as err:
        raise ImageConversionError(str(err)) from err


def image_to_array(msg) -> np.ndarray:
    """
    Convert a ``sensor_msgs/Image`` (or a look-alike) to a numpy array.

    The result has the encoding's dtype (see :func:`encoding_layout`), shape ``(H, W)``
    for one channel and ``(H, W, C)`` otherwise; channel order is the encoding's own
    (``bgr8`` stays BGR, as in cv_bridge). Row padding beyond ``width * bytes * C`` is
    dropped and big-endian data is byte-swapped to native order. The array never shares
    memory with the message.
    """
    encoding = msg.encoding
    dtype, channels = encoding_layout(encoding)
    try:
        return _enc.decode_image(msg.data, msg.height, msg.width, msg.step, msg.is_bigendian,
                                 dtype, channels, encoding)
    except ImageLayoutError as err:
        raise ImageConversionError(str(err)) from err


def array_to_image(arr, encoding: str, header=None) -> Image:
    """
    Convert a numpy array to a little-endian ``sensor_msgs/Image``.

    ``arr`` must have the encoding's dtype (any byte order) and shape ``(H, W)`` (or
    ``(H, W, 1)``) for one channel, ``(H, W, C)`` otherwise. ``step`` is
    ``width * bytes * C`` (no padding). ``header`` is used as given; by default an empty
    ``std_msgs/Header``.
    """
    dtype, channels = encoding_layout(encoding)
    arr = np.asarray(arr)
    shape_ok = (arr.ndim == 2 and channels == 1) or (arr.ndim == 3 and arr.shape[2] == channels)
    expected = '(H, W)' if channels == 1 else f'(H, W, {channels})'
    if not shape_ok or arr.dtype.str[1:] != dtype.str[1:]:
        raise ImageConversionError(
            f'encoding {encoding!r} needs a {dtype.name} array of shape {expected},'
            f' got {arr.dtype.name} {arr.shape}')
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ImageConversionError(f'empty image: shape {arr.shape} for encoding {encoding!r}')
    data = np.ascontiguousarray(arr, dtype=dtype.newbyteorder('<'))
    msg = Image()
    msg.header = header if header is not None else Header()
    msg.height, msg.width = int(arr.shape[0]), int(arr.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = int(arr.shape[1]) * channels * dtype.itemsize
    msg.data = data.tobytes()
    return msg


def short_name(text, limit: int = 40) -> str:
    """``repr(text)`` cut to ``limit`` characters (hostile encodings can be megabytes long)."""
    text = repr(text)
    return text if len(text) <= limit else text[:limit - 3] + '...'


def check_image_size(msg, max_pixels: int) -> None:
    """
    Refuse an image before decoding it: more than ``max_pixels`` declared pixels, or more data.

    The data may not exceed what ``max_pixels`` pixels of the widest encoding
    (``64FC4``, 32 bytes) with row padding could hold. Raises :class:`ImageConversionError`.
    """
    height, width = int(msg.height), int(msg.width)
    if height * width > int(max_pixels):
        raise ImageConversionError(
            f'image {height}x{width} ({short_name(msg.encoding)}) declares {height * width} '
            f'pixels, more than the limit of {int(max_pixels)}')
    n_bytes = len(msg.data)
    if n_bytes > 32 * int(max_pixels) + 64 * max(height, 1):
        raise ImageConversionError(
            f'image {height}x{width} ({short_name(msg.encoding)}) carries {n_bytes} bytes of '
            f'data, more than {int(max_pixels)} pixels can hold')


def decode_raw(msg) -> tuple:
    """
    Decode a camera image of one of :data:`RAW_ENCODINGS`: ``(array, pattern)``.

    ``array`` is the native-endian array of the message (uint16 ``(H, W)`` for the
    16-bit encodings, uint8 ``(H, W)`` or ``(H, W, C)`` otherwise); ``pattern`` the Bayer
    pattern of the encoding (None for mono and colour). Raises
    :class:`ImageConversionError` for any other encoding or an inconsistent layout.
    """
    encoding = msg.encoding
    if encoding not in RAW_ENCODINGS:
        raise ImageConversionError(
            f'encoding {short_name(encoding)} ({msg.height}x{msg.width}) is not a camera raw '
            f'format: expected one of {", ".join(RAW_ENCODINGS)}')
    return image_to_array(msg), bayer_pattern_of(encoding)


def _check_bits(bit_depth, bit_shift, out_bit_depth) -> None:
    for name, value in (('bit_depth', bit_depth), ('out_bit_depth', out_bit_depth)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) \
                or not 8 <= value <= 16:
            raise ImageConversionError(f'{name} must be an integer in [8, 16], got {value!r}')
    if isinstance(bit_shift, bool) or not isinstance(bit_shift, (int, np.integer)) \
            or not 0 <= bit_shift <= 16 - bit_depth:
        raise ImageConversionError(f'bit_shift must be an integer in [0, 16 - bit_depth = '
                                   f'{16 - int(bit_depth)}], got {bit_shift!r}')


@lru_cache(maxsize=None)
def _srgb_lut(out_bits: int) -> np.ndarray:
    """8-bit sRGB code to linear ``out_bits``-bit value (read-only; built once per depth)."""
    max_out = (1 << out_bits) - 1
    lut = np.round(srgb_to_linear(np.arange(256) / 255.0) * max_out).astype(np.uint16)
    lut.setflags(write=False)
    return lut


def raw_frame_from_array(arr: np.ndarray, encoding: str, bit_depth: int = 12,
                         bit_shift: int = 0, out_bit_depth: Optional[int] = None) -> tuple:
    """
    Turn a decoded camera image (:func:`decode_raw`) into a raw frame: ``(raw, pattern)``.

    See :func:`raw_frame_from_image` for the rules; ``out_bit_depth`` (default
    ``bit_depth``) is the bit depth of the result.
    """
    out_bit_depth = bit_depth if out_bit_depth is None else out_bit_depth
    _check_bits(bit_depth, bit_shift, out_bit_depth)
    bit_depth, bit_shift, out_bits = int(bit_depth), int(bit_shift), int(out_bit_depth)
    pattern = bayer_pattern_of(encoding)
    if arr.dtype == np.uint16:
        values = arr >> bit_shift if bit_shift else arr
        values = np.minimum(values, (1 << bit_depth) - 1).astype(np.uint16, copy=False)
        if out_bits > bit_depth:
            values = values << (out_bits - bit_depth)
        elif out_bits < bit_depth:
            values = values >> (bit_depth - out_bits)
        return values.astype(np.uint16, copy=False), pattern
    if arr.ndim == 2:
        return (arr.astype(np.uint16) << (out_bits - 8)), pattern
    rgb = arr[..., :3]
    if encoding.startswith('bgr'):
        rgb = rgb[..., ::-1]
    lin = _srgb_lut(out_bits)[rgb]
    raw = np.empty(lin.shape[:2], dtype=np.uint16)
    raw[0::2, 0::2] = lin[0::2, 0::2, 0]
    raw[0::2, 1::2] = lin[0::2, 1::2, 1]
    raw[1::2, 0::2] = lin[1::2, 0::2, 1]
    raw[1::2, 1::2] = lin[1::2, 1::2, 2]
    return raw, 'RGGB'


def raw_frame_from_image(msg, bit_depth: int = 12, bit_shift: int = 0,
                         out_bit_depth: Optional[int] = None) -> tuple:
    """
    Turn a camera image into the raw frame the auto-exposure node works on.

    Returns ``(raw, pattern)``: ``raw`` is uint16 ``(H, W)`` with values in
    ``[0, 2**out_bit_depth - 1]`` (``out_bit_depth`` defaults to ``bit_depth``),
    ``pattern`` the Bayer pattern or None for a mono sensor.

    - ``bayer_*16`` passes through; values are ``bit_depth``-bit data in a 16-bit
      container, stored shifted left by ``bit_shift`` bits (4 for 12-bit data in the top
      bits of the word); after the shift anything above ``2**bit_depth - 1`` is clipped to
      it, then the data are rescaled (by bit shifts) to ``out_bit_depth``.
      :func:`inspect_raw16` tells when these assumptions look wrong.
    - ``mono16`` / ``16UC1`` are a single-channel raw (pattern None), handled the same way.
    - ``bayer_*8`` / ``mono8`` / ``8UC1`` are taken as linear and shifted left by
      ``out_bit_depth - 8`` bits.
    - ``rgb8`` / ``bgr8`` (and ``rgba8`` / ``bgra8``, alpha dropped) become a pseudo-raw:
      each channel is linearised through the inverse sRGB curve, scaled to
      ``2**out_bit_depth - 1`` and mosaicked into RGGB. This is an approximation: the
      camera's real tone curve, white balance and colour matrix are unknown, and the two
      missing colours per pixel are simply dropped.
    """
    out_bit_depth = bit_depth if out_bit_depth is None else out_bit_depth
    _check_bits(bit_depth, bit_shift, out_bit_depth)
    arr, _ = decode_raw(msg)
    return raw_frame_from_array(arr, msg.encoding, bit_depth, bit_shift, out_bit_depth)


@dataclass(frozen=True)
class RawCheck:
    """
    What one 16-bit raw frame says about the layout assumed for it (:func:`inspect_raw16`).

    ``finding``: ``''`` (nothing detectable is wrong), ``'over_white'`` (values above the
    white level, clipped), ``'shifted'`` (the data look stored in the top bits),
    ``'byte_order'`` (the ``is_bigendian`` flag looks wrong), ``'shifted_or_byte_order'``
    (either), ``'low_bits'`` (``bit_shift`` set but the low bits carry data);
    ``message`` says it in one line; ``suggested_shift`` is the ``bit_shift`` that fits
    the data when a shift explains them (else None); ``over_white`` the share of pixels
    above the white level; ``max_value`` the largest container value.
    """

    finding: str
    message: str
    suggested_shift: Optional[int]
    over_white: float
    max_value: int


def inspect_raw16(arr: np.ndarray, bit_depth: int = 12, bit_shift: int = 0,
                  is_bigendian: bool = False) -> RawCheck:
    """
    Check a decoded 16-bit raw frame against ``bit_depth`` / ``bit_shift`` / byte order.

    Detectable misreads: values above ``2**bit_depth - 1`` after the shift (a deeper
    stream, or wrong settings); all low ``16 - bit_depth`` bits zero while values exceed
    the white level (data stored in the top bits: ``bit_shift 16 - bit_depth``); values
    above the white level that all fit once byte-swapped (``is_bigendian`` wrong); and
    ``bit_shift`` set while the low bits carry data. A dark frame whose values all fit
    cannot tell a shift from none; it reports nothing.
    """
    _check_bits(bit_depth, bit_shift, bit_depth)
    arr = np.asarray(arr)
    if arr.dtype != np.uint16:
        raise ImageConversionError(f'inspect_raw16 needs uint16 data, got {arr.dtype.name}')
    if arr.size == 0:
        return RawCheck('', '', None, 0.0, 0)
    bit_depth, bit_shift = int(bit_depth), int(bit_shift)
    max_dn = (1 << bit_depth) - 1
    top = int(arr.max())
    if bit_shift:
        used_bits = int(np.bitwise_or.reduce(arr, axis=None))
        if used_bits & ((1 << bit_shift) - 1):
            return RawCheck('low_bits', f'bit_shift {bit_shift} is set but the low {bit_shift} '
                            f'bits carry data (values are not stored shifted?)', 0, 0.0, top)
    if (top >> bit_shift) <= max_dn:
        return RawCheck('', '', None, 0.0, top)
    over = float(np.count_nonzero((arr >> bit_shift) > max_dn)) / arr.size
    spare = 16 - bit_depth - bit_shift
    shifted = False
    if spare > 0:
        used_bits = int(np.bitwise_or.reduce(arr >> bit_shift, axis=None))
        shifted = not used_bits & ((1 << spare) - 1)
    swapped = int((arr.byteswap() >> bit_shift).max()) <= max_dn
    flag = 'set' if is_bigendian else 'not set'
    other = 'little' if is_bigendian else 'big'
    head = (f'{over:.1%} of the values exceed the {bit_depth}-bit white level {max_dn} '
            f'(max {top})')
    if shifted and swapped:
        return RawCheck('shifted_or_byte_order', f'{head}: the data look stored in the top '
                        f'bits (bit_shift {bit_shift + spare}) or {other}-endian '
                        f'(is_bigendian {flag})', None, over, top)
    if shifted:
        return RawCheck('shifted', f'{head} and the low {spare} bits are all zero: '
                        f'{bit_depth}-bit data stored in the top bits of the 16-bit word? '
                        f'(set bit_shift {bit_shift + spare})', bit_shift + spare, over, top)
    if swapped:
        return RawCheck('byte_order', f'{head} but none once byte-swapped: is_bigendian is '
                        f'{flag} while the data look {other}-endian', None, over, top)
    return RawCheck('over_white', f'{head}: clipped (is bit_depth {bit_depth} right?)', None,
                    over, top)


def camera_info_for(width: int, height: int, frame_id: str, focal_px=None) -> CameraInfo:
    """
    Build a plain ``sensor_msgs/CameraInfo`` for a ``width`` x ``height`` camera.

    Without ``focal_px`` the camera is marked uncalibrated the ROS way (``K``, ``R`` and
    ``P`` all zero). With it, an ideal pinhole: fx = fy = ``focal_px``, principal point at
    the image centre, no distortion (``plumb_bob`` with five zeros).
    """
    if int(width) <= 0 or int(height) <= 0:
        raise ImageConversionError(f'camera_info_for: empty image {height}x{width}')
    info = CameraInfo()
    info.header.frame_id = frame_id
    info.width, info.height = int(width), int(height)
    info.distortion_model = 'plumb_bob'
    info.d = [0.0] * 5
    if focal_px is not None:
        f = float(focal_px)
        if not f > 0.0:
            raise ImageConversionError(f'camera_info_for: focal_px must be > 0, got {focal_px}')
        cx, cy = (info.width - 1) / 2.0, (info.height - 1) / 2.0
        info.k = [f, 0.0, cx, 0.0, f, cy, 0.0, 0.0, 1.0]
        info.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
        info.p = [f, 0.0, cx, 0.0, 0.0, f, cy, 0.0, 0.0, 0.0, 1.0, 0.0]
    return info


def stamp_to_ns(stamp) -> int:
    """Return ``stamp.sec * 1e9 + stamp.nanosec`` as an int (any Time-like object)."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def ns_to_stamp(t_ns: int) -> Time:
    """Return a ``builtin_interfaces/Time`` for ``t_ns`` nanoseconds (floor division)."""
    sec, nanosec = divmod(int(t_ns), 1_000_000_000)
    if not -2**31 <= sec < 2**31:
        raise ImageConversionError(f'timestamp {t_ns} ns does not fit a ROS Time (int32 sec)')
    return Time(sec=sec, nanosec=nanosec)
