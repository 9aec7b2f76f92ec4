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
  frame the auto-exposure node works on.

Both conversion directions accept any object with the ``sensor_msgs/Image`` fields (rclpy
messages, and rosbags' deserialized messages too). Every failure raises
:class:`ImageConversionError` with a one-line message naming the encoding and shape. The
layout decoding itself is ROS-free and shared with the bag reader
(:mod:`neural_ae.core.image_encodings`).
"""
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
    'SUPPORTED_ENCODINGS',
    'array_to_image',
    'bayer_pattern_of',
    'camera_info_for',
    'encoding_layout',
    'image_to_array',
    'ns_to_stamp',
    'raw_frame_from_image',
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


def raw_frame_from_image(msg, bit_depth: int = 12) -> tuple:
    """
    Turn a camera image into the raw frame the auto-exposure node works on.

    Returns ``(raw, pattern)``: ``raw`` is uint16 ``(H, W)`` with values in
    ``[0, 2**bit_depth - 1]``, ``pattern`` the Bayer pattern or None for a mono sensor.

    - ``bayer_*16`` passes through; values are assumed to be ``bit_depth``-bit data in a
      16-bit container and anything above ``2**bit_depth - 1`` is clipped to it.
    - ``mono16`` / ``16UC1`` are a single-channel raw (pattern None), clipped the same way.
    - ``bayer_*8`` / ``mono8`` / ``8UC1`` are taken as linear and shifted left by
      ``bit_depth - 8`` bits.
    - ``rgb8`` / ``bgr8`` (and ``rgba8`` / ``bgra8``, alpha dropped) become a pseudo-raw:
      each channel is linearised through the inverse sRGB curve, scaled to
      ``2**bit_depth - 1`` and mosaicked into RGGB. This is an approximation: the camera's
      real tone curve, white balance and colour matrix are unknown, and the two missing
      colours per pixel are simply dropped.
    """
    if not isinstance(bit_depth, (int, np.integer)) or not 8 <= bit_depth <= 16:
        raise ImageConversionError(f'bit_depth must be an integer in [8, 16], got {bit_depth!r}')
    encoding = msg.encoding
    if encoding not in RAW_ENCODINGS:
        raise ImageConversionError(
            f'encoding {encoding!r} ({msg.height}x{msg.width}) is not a camera raw format:'
            f' expected one of {", ".join(RAW_ENCODINGS)}')
    arr = image_to_array(msg)
    max_dn = (1 << int(bit_depth)) - 1
    pattern = bayer_pattern_of(encoding)
    if arr.dtype == np.uint16:
        return np.minimum(arr, max_dn).astype(np.uint16, copy=False), pattern
    if arr.ndim == 2:
        return (arr.astype(np.uint16) << (int(bit_depth) - 8)), pattern
    rgb = arr[..., :3]
    if encoding.startswith('bgr'):
        rgb = rgb[..., ::-1]
    lut = np.round(srgb_to_linear(np.arange(256) / 255.0) * max_dn).astype(np.uint16)
    lin = lut[rgb]
    raw = np.empty(lin.shape[:2], dtype=np.uint16)
    raw[0::2, 0::2] = lin[0::2, 0::2, 0]
    raw[0::2, 1::2] = lin[0::2, 1::2, 1]
    raw[1::2, 0::2] = lin[1::2, 0::2, 1]
    raw[1::2, 1::2] = lin[1::2, 1::2, 2]
    return raw, 'RGGB'


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
