"""Raw layout: bit depth and shift, misread detection (inspect_raw16), size limits."""
from neural_ae.core.sensor import capture, load_sensor
from neural_ae.ros.conversions import (array_to_image, check_image_size, decode_raw,
                                       ImageConversionError, inspect_raw16,
                                       raw_frame_from_array, raw_frame_from_image)
import numpy as np
import pytest
from sensor_msgs.msg import Image

SENSOR = load_sensor('imx249')


def _frame(level=3e6, seed=0, shape=(32, 48)):
    """Return a realistic 12-bit frame: sensor noise, black level, values above 255."""
    return capture(np.full(shape, level), 0.002, 1.0, SENSOR, np.random.default_rng(seed))


def test_a_correct_12bit_stream_has_no_finding():
    raw = _frame()
    assert 255 < raw.max() <= 4095
    check = inspect_raw16(raw, 12)
    assert check.finding == '' and check.message == '' and check.over_white == 0.0
    dark = np.zeros((4, 4), np.uint16)
    assert inspect_raw16(dark, 12).finding == ''


def test_values_above_the_white_level_are_reported():
    deep = (_frame(1e7).astype(np.uint32) * 4 + 1).astype(np.uint16)  # a 14-bit stream
    check = inspect_raw16(deep, 12)
    assert check.finding == 'over_white'
    assert check.over_white > 0.5 and check.max_value == int(deep.max())
    assert '4095' in check.message and 'bit_depth' in check.message
    assert inspect_raw16(deep, 14).finding == ''


def test_data_in_the_top_bits_are_reported_with_the_shift_that_fits():
    shifted = _frame() << 4
    check = inspect_raw16(shifted, 12)
    assert check.finding == 'shifted' and check.suggested_shift == 4
    assert 'bit_shift 4' in check.message
    assert inspect_raw16(shifted, 12, bit_shift=4).finding == ''
    ten = (_frame() >> 2) << 6  # 10-bit data in the top bits
    assert inspect_raw16(ten, 10).suggested_shift == 6


def test_a_wrong_big_endian_flag_is_reported():
    raw = _frame()
    msg = array_to_image(raw, 'bayer_rggb16')  # little-endian bytes
    msg.is_bigendian = 1
    arr, _ = decode_raw(msg)
    assert not np.array_equal(arr, raw)
    check = inspect_raw16(arr, 12, 0, True)
    assert check.finding == 'byte_order'
    assert 'is_bigendian is set' in check.message and 'little-endian' in check.message
    # a big-endian message read without its flag
    flagged = array_to_image(raw.byteswap(), 'bayer_rggb16')
    check = inspect_raw16(decode_raw(flagged)[0], 12, 0, False)
    assert check.finding == 'byte_order' and 'big-endian' in check.message


def test_a_dark_swapped_frame_is_ambiguous_and_low_bits_contradict_a_shift():
    dark = np.random.default_rng(1).integers(1, 200, (8, 8)).astype(np.uint16)
    check = inspect_raw16(dark.byteswap(), 12)  # low byte zero: shift or byte order
    assert check.finding == 'shifted_or_byte_order' and check.suggested_shift is None
    check = inspect_raw16(_frame(), 12, bit_shift=4)
    assert check.finding == 'low_bits' and check.suggested_shift == 0


def test_bit_shift_and_output_depth_in_the_conversion():
    raw = _frame()
    shifted = array_to_image(raw << 4, 'bayer_rggb16')
    out, pattern = raw_frame_from_image(shifted, 12, bit_shift=4)
    assert np.array_equal(out, raw) and pattern == 'RGGB'
    clipped, _ = raw_frame_from_image(shifted, 12)  # misread: everything above 255 clips
    assert clipped.max() == 4095 and not np.array_equal(clipped, raw)
    ten = array_to_image(raw >> 2, 'mono16')
    out, pattern = raw_frame_from_image(ten, 10, out_bit_depth=12)
    assert np.array_equal(out, (raw >> 2) << 2) and pattern is None
    out, _ = raw_frame_from_array(raw, 'bayer_rggb16', 12, 0, 10)
    assert np.array_equal(out, raw >> 2)
    eight, _ = raw_frame_from_array(np.array([[1, 255]], np.uint8), 'mono8', 12, 0, 10)
    assert eight.tolist() == [[4, 1020]]
    with pytest.raises(ImageConversionError, match='bit_shift'):
        raw_frame_from_image(shifted, 14, bit_shift=4)
    with pytest.raises(ImageConversionError, match='bit_shift'):
        raw_frame_from_image(shifted, 12, bit_shift=True)


@pytest.mark.parametrize('height, width, n_data, needle', [
    (2**31, 2**31, 16, 'declares'),
    (1001, 1000, 0, 'declares'),
    (10, 10, 33_000_000, 'bytes of data'),
])
def test_oversized_images_are_refused_before_decoding(height, width, n_data, needle):
    msg = Image(height=height, width=width, step=2 * width, encoding='x' * 10_000)
    msg.data = bytes(n_data)
    with pytest.raises(ImageConversionError, match=needle) as info:
        check_image_size(msg, 1_000_000)
    assert len(str(info.value)) < 200  # the 10,000-character encoding is cut
    check_image_size(Image(height=1000, width=1000, step=2000, encoding='mono16',
                           data=bytes(2_000_000)), 1_000_000)
