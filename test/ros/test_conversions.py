"""Image <-> ndarray conversions with cv_bridge semantics, against real sensor_msgs."""
from hypothesis import given, settings, strategies as st
from neural_ae.core.bags import decode_radiance
from neural_ae.core.errors import NeuralAEError
from neural_ae.ros import conversions as conv
from neural_ae.ros.conversions import (
    array_to_image, bayer_pattern_of, camera_info_for, encoding_layout,
    image_to_array, ImageConversionError, ns_to_stamp, raw_frame_from_image, stamp_to_ns)
import numpy as np
import pytest
from rosbags.typesys import get_typestore, Stores
from sensor_msgs.msg import Image
from std_msgs.msg import Header

GENERIC = [f'{d}C{n}' for d in ('8U', '8S', '16U', '16S', '32S', '32F', '64F')
           for n in (1, 2, 3, 4)]
ALL_ENCODINGS = sorted(conv.SUPPORTED_ENCODINGS) + GENERIC
FAST = settings(max_examples=40, deadline=None)


def _random_array(encoding, height, width, seed):
    dtype, channels = encoding_layout(encoding)
    rng = np.random.default_rng(seed)
    shape = (height, width) if channels == 1 else (height, width, channels)
    if dtype.kind == 'f':
        return (rng.standard_normal(shape) * 1e3).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)


def _message(arr, encoding, pad, bigendian):
    """Build an Image by hand: explicit byte order and ``pad`` bytes of row padding."""
    dtype, _ = encoding_layout(encoding)
    wire = np.ascontiguousarray(arr, dtype=dtype.newbyteorder('>' if bigendian else '<'))
    rows = wire.reshape(arr.shape[0], -1).view(np.uint8)
    padded = np.concatenate([rows, np.full((rows.shape[0], pad), 0xAB, np.uint8)], axis=1)
    msg = Image()
    msg.height, msg.width = arr.shape[0], arr.shape[1]
    msg.encoding = encoding
    msg.is_bigendian = int(bigendian)
    msg.step = padded.shape[1]
    msg.data = padded.tobytes()
    return msg


@FAST
@given(encoding=st.sampled_from(ALL_ENCODINGS), height=st.integers(1, 9),
       width=st.integers(1, 9), seed=st.integers(0, 2**32 - 1))
def test_round_trip_every_encoding(encoding, height, width, seed):
    arr = _random_array(encoding, height, width, seed)
    msg = array_to_image(arr, encoding)
    _, channels = encoding_layout(encoding)
    assert (msg.height, msg.width, msg.encoding) == (height, width, encoding)
    assert msg.is_bigendian == 0
    assert msg.step == width * channels * arr.dtype.itemsize
    assert len(msg.data) == msg.step * height
    back = image_to_array(msg)
    assert back.dtype == arr.dtype and back.shape == arr.shape
    assert np.array_equal(back, arr)


@FAST
@given(encoding=st.sampled_from(ALL_ENCODINGS), height=st.integers(1, 7),
       width=st.integers(1, 7), pad=st.integers(0, 9), bigendian=st.booleans(),
       seed=st.integers(0, 2**32 - 1))
def test_padded_step_and_byte_order_are_honoured(encoding, height, width, pad, bigendian,
                                                 seed):
    arr = _random_array(encoding, height, width, seed)
    back = image_to_array(_message(arr, encoding, pad, bigendian))
    assert back.dtype.isnative and back.flags['C_CONTIGUOUS'] and back.flags['WRITEABLE']
    assert np.array_equal(back, arr)


def test_big_endian_input_is_read_correctly():
    msg = Image(height=1, width=2, encoding='mono16', is_bigendian=1, step=4)
    msg.data = bytes([0x01, 0x02, 0xAB, 0xCD])
    assert image_to_array(msg).tolist() == [[0x0102, 0xABCD]]
    msg.is_bigendian = 0
    assert image_to_array(msg).tolist() == [[0x0201, 0xCDAB]]
    fmsg = Image(height=1, width=1, encoding='32FC1', is_bigendian=1, step=4)
    fmsg.data = np.array([1.5], '>f4').tobytes()
    assert image_to_array(fmsg)[0, 0] == np.float32(1.5)


def test_result_does_not_share_memory_with_message():
    msg = array_to_image(np.zeros((2, 3), np.uint8), 'mono8')
    arr = image_to_array(msg)
    arr[:] = 7
    assert bytes(msg.data) == bytes(6)


def test_array_to_image_uses_header_and_accepts_any_byte_order_and_hw1():
    header = Header(frame_id='cam')
    msg = array_to_image(np.array([[1, 2]], '>u2'), '16UC1', header=header)
    assert msg.header.frame_id == 'cam' and bytes(msg.data) == b'\x01\x00\x02\x00'
    msg = array_to_image(np.ones((2, 2, 1), np.uint8), 'mono8')
    assert image_to_array(msg).shape == (2, 2)


def test_reads_rosbags_messages_too():
    store = get_typestore(Stores.ROS2_KILTED)
    arr = np.arange(2 * 3 * 3, dtype=np.float32).reshape(2, 3, 3)
    rmsg = store.types['sensor_msgs/msg/Image'](
        header=store.types['std_msgs/msg/Header'](
            stamp=store.types['builtin_interfaces/msg/Time'](sec=1, nanosec=2), frame_id='c'),
        height=2, width=3, encoding='32FC3', is_bigendian=0, step=36,
        data=arr.reshape(-1).view(np.uint8))
    wire = store.deserialize_cdr(store.serialize_cdr(rmsg, rmsg.__msgtype__), rmsg.__msgtype__)
    assert np.array_equal(image_to_array(wire), arr)
    assert stamp_to_ns(wire.header.stamp) == 1_000_000_002


def test_core_radiance_decoder_reads_rclpy_images():
    arr = np.arange(2 * 5 * 3, dtype=np.float32).reshape(2, 5, 3) / 7
    assert np.array_equal(decode_radiance(array_to_image(arr, '32FC3')), arr)
    mono = image_to_array(_message(arr[..., 0], '32FC1', pad=3, bigendian=True))
    assert np.array_equal(decode_radiance(_message(mono, '32FC1', 3, True))[..., 2], mono)


def _bad(msg_kwargs, data):
    msg = Image(**msg_kwargs)
    msg.data = data
    return msg


@pytest.mark.parametrize('make, needles', [
    (lambda: image_to_array(_bad({'height': 2, 'width': 2, 'encoding': 'yuv422', 'step': 4},
                                 bytes(8))), ['unsupported encoding', 'yuv422']),
    (lambda: image_to_array(_bad({'height': 3, 'width': 4, 'encoding': 'rgb8', 'step': 12},
                                 bytes(35))), ['data length 35', "'rgb8'", '3x4']),
    (lambda: image_to_array(_bad({'height': 3, 'width': 4, 'encoding': 'mono16', 'step': 7},
                                 bytes(21))), ['step 7', "'mono16'", '3x4']),
    (lambda: image_to_array(_bad({'height': 0, 'width': 4, 'encoding': 'mono8', 'step': 4},
                                 b'')), ['empty image', "'mono8'", '0x4']),
    (lambda: array_to_image(np.zeros((2, 3), np.uint8), 'rgb8'),
     ["'rgb8'", 'uint8', '(2, 3)', '(H, W, 3)']),
    (lambda: array_to_image(np.zeros((2, 3), np.float32), 'mono16'),
     ["'mono16'", 'float32', '(2, 3)']),
    (lambda: array_to_image(np.zeros((0, 3), np.uint8), 'mono8'),
     ['empty image', '(0, 3)', "'mono8'"]),
    (lambda: array_to_image(np.zeros((2, 2), np.uint8), 'jpeg'), ['unsupported', 'jpeg']),
    (lambda: raw_frame_from_image(array_to_image(np.zeros((2, 2), np.float32), '32FC1')),
     ["'32FC1'", '2x2', 'raw']),
    (lambda: raw_frame_from_image(array_to_image(np.zeros((2, 2), np.uint16), 'mono16'),
                                  bit_depth=20), ['bit_depth', '20']),
    (lambda: ns_to_stamp(2**80), ['timestamp', str(2**80)]),
])
def test_every_error_is_typed_and_names_encoding_and_shape(make, needles):
    with pytest.raises(ImageConversionError) as info:
        make()
    assert isinstance(info.value, NeuralAEError) and isinstance(info.value, ValueError)
    text = str(info.value)
    assert '\n' not in text
    for needle in needles:
        assert needle in text


def test_bayer_pattern_of():
    assert bayer_pattern_of('bayer_rggb16') == 'RGGB'
    assert bayer_pattern_of('bayer_grbg16') == 'GRBG'
    assert bayer_pattern_of('bayer_gbrg8') == 'GBRG'
    assert bayer_pattern_of('bayer_bggr16') == 'BGGR'
    assert bayer_pattern_of('mono16') is None and bayer_pattern_of('bayer_xyzw8') is None


@pytest.mark.parametrize('encoding', ['bayer_rggb16', 'bayer_grbg16', 'bayer_gbrg16',
                                      'bayer_bggr16', 'mono16'])
def test_raw_frame_16bit_passes_through_and_clips(encoding):
    arr = np.array([[0, 100, 4095], [4096, 60000, 7]], np.uint16)
    raw, pattern = raw_frame_from_image(array_to_image(arr, encoding))
    assert raw.dtype == np.uint16
    assert raw.tolist() == [[0, 100, 4095], [4095, 4095, 7]]
    assert pattern == bayer_pattern_of(encoding)
    raw, _ = raw_frame_from_image(array_to_image(arr, encoding), bit_depth=16)
    assert np.array_equal(raw, arr)


def test_raw_frame_from_8bit_bayer_is_shifted():
    raw, pattern = raw_frame_from_image(array_to_image(np.array([[1, 255]], np.uint8),
                                                       'bayer_bggr8'))
    assert raw.tolist() == [[16, 4080]] and pattern == 'BGGR'


@pytest.mark.parametrize('height, width', [(1, 1), (3, 5), (4, 4)])
def test_raw_frame_from_rgb_is_rggb_mosaic_through_inverse_srgb(height, width):
    rgb = np.zeros((height, width, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 255, 128, 0
    raw, pattern = raw_frame_from_image(array_to_image(rgb, 'rgb8'))
    assert pattern == 'RGGB' and raw.shape == (height, width) and raw.dtype == np.uint16
    green = int(round(float(conv.srgb_to_linear(128 / 255.0)) * 4095))
    assert raw[0, 0] == 4095
    if width > 1:
        assert raw[0, 1] == green
    if height > 1:
        assert raw[1, 0] == green
    if height > 1 and width > 1:
        assert raw[1, 1] == 0
    bgr_raw, _ = raw_frame_from_image(array_to_image(rgb[..., ::-1].copy(), 'bgr8'))
    assert np.array_equal(bgr_raw, raw)


def test_camera_info_for():
    info = camera_info_for(640, 480, 'cam')
    assert (info.width, info.height, info.header.frame_id) == (640, 480, 'cam')
    assert info.k[0] == 0.0 and list(info.d) == [0.0] * 5
    info = camera_info_for(640, 480, 'cam', focal_px=500.0)
    assert info.k[0] == info.k[4] == 500.0 and info.k[8] == 1.0 and info.p[10] == 1.0
    with pytest.raises(ImageConversionError):
        camera_info_for(0, 480, 'cam')


@FAST
@given(t_ns=st.integers(-2**31 * 10**9, 2**31 * 10**9 - 1))
def test_stamp_round_trip(t_ns):
    stamp = ns_to_stamp(t_ns)
    assert 0 <= stamp.nanosec < 10**9
    assert stamp_to_ns(stamp) == t_ns
