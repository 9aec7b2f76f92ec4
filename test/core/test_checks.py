"""The core's one shape check and the shared colour constants (Bayer patterns, sRGB)."""
from neural_ae.core import color, hdr, image_encodings, isp, preview, sensor
from neural_ae.core.checks import check_shape, format_layout
from neural_ae.core.errors import HDRError, NeuralAEError, SensorError
import numpy as np
import pytest
import torch


def test_check_shape_accepts_matching_layouts_and_returns_the_shape():
    assert check_shape(np.zeros((4, 5)), ('H', 'W')) == (4, 5)
    assert check_shape(torch.zeros(2, 1, 4, 6), ['B', '1', 'H', 'W'], kind='tensor') == (
        2, 1, 4, 6)
    assert check_shape(torch.zeros(1, 4, 6), ('*', 1, 'H', 'W')) == (1, 4, 6)
    assert check_shape(torch.zeros(2, 3, 1, 4, 6), ('*', 1, 'H', 'W')) == (2, 3, 1, 4, 6)
    assert check_shape([[0, 1, 2]] * 2, ('H', 3)) == (2, 3)
    assert format_layout(('N',)) == '(N,)' and format_layout(('*', 3, 'H')) == '(*, 3, H)'


@pytest.mark.parametrize('x, layout, kind, needles', [
    (np.zeros((5, 7)), ('H', 'W', 3), None, ['raw: expected shape (H, W, 3), got (5, 7)']),
    (np.zeros((2, 2, 4)), ('H', 'W', 3), 'array', ['(H, W, 3)', '(2, 2, 4)']),
    (torch.zeros(4, 4), ('*', 1, 'H', 'W'), 'tensor', ['(*, 1, H, W)', '(4, 4)']),
    (torch.zeros(2, 3, 4, 4), ('*', 1, 'H', 'W'), 'tensor', ['(2, 3, 4, 4)']),
    (np.zeros((1, 4, 4)), ('*', 1, 'H', 'W'), 'tensor',
     ['expected a torch.Tensor of shape (*, 1, H, W)', 'ndarray of shape (1, 4, 4)']),
    ([[0.0]], ('H', 'W'), 'array', ['expected a numpy array', 'got list of shape (1, 1)']),
    (None, ('H', 'W'), None, ['got NoneType']),
    (np.zeros(400), ('H', 'W'), None, ['(400,)']),
])
def test_check_shape_raises_the_given_error_naming_layout_and_shape(x, layout, kind, needles):
    with pytest.raises(SensorError) as info:
        check_shape(x, layout, name='raw', error=SensorError, kind=kind)
    text = str(info.value)
    assert text.startswith('raw: ') and '\n' not in text
    for needle in needles:
        assert needle in text


def test_check_shape_rejects_bad_layouts():
    with pytest.raises(TypeError):
        check_shape(np.zeros(3), 'HW')
    with pytest.raises(TypeError):
        check_shape(np.zeros(3), ('H', '*'))
    with pytest.raises(TypeError):
        check_shape(np.zeros(3), ('N',), kind='list')
    with pytest.raises(NeuralAEError):
        check_shape(np.zeros(3), (4,))


def test_one_bayer_pattern_definition():
    assert color.BAYER_PATTERNS == ('RGGB', 'GRBG', 'GBRG', 'BGGR')
    for module in (sensor, isp, image_encodings):
        assert module.BAYER_PATTERNS is color.BAYER_PATTERNS
    assert set(preview._BAYER_TO_RGB) == set(color.BAYER_PATTERNS)
    assert color.bayer_sites('GRBG') == {0: [(0, 1)], 1: [(0, 0), (1, 1)], 2: [(1, 0)]}
    for pattern in color.BAYER_PATTERNS:
        assert image_encodings.bayer_pattern_of(f'bayer_{pattern.lower()}16') == pattern


def test_srgb_curves_are_one_pair_of_exact_inverses():
    x = np.linspace(0.0, 1.0, 10001, dtype=np.float32)
    assert np.array_equal(hdr.tone_curve(x), color.srgb_encode(x, np.float32))
    assert np.array_equal(preview.srgb_encode(x), color.srgb_encode(x))
    assert np.abs(color.srgb_decode(color.srgb_encode(x)) - x).max() < 1e-6
    assert color.srgb_encode(x).dtype == np.float32
    assert color.srgb_encode(x.astype(np.float64)).dtype == np.float64


def test_srgb_to_linear_equals_the_iec_formula_on_every_8_and_16_bit_code():
    for levels in (256, 65536):
        v = np.arange(levels) / (levels - 1.0)
        iec = np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)
        assert np.array_equal(image_encodings.srgb_to_linear(v), iec)
    # no clip there: values above 1 follow the power law as before
    assert image_encodings.srgb_to_linear(2.0) == pytest.approx(((2.055) / 1.055) ** 2.4)


def test_sensor_mosaic_torch_is_the_isp_mosaic_with_sensor_errors():
    rgb = torch.rand(2, 3, 5, 7)
    for pattern in color.BAYER_PATTERNS:
        assert torch.equal(sensor.mosaic_torch(rgb, pattern), isp.mosaic(rgb, pattern))
    ints = torch.arange(3 * 4 * 4).reshape(3, 4, 4)
    assert sensor.mosaic_torch(ints).dtype == ints.dtype
    with pytest.raises(SensorError, match=r'\(2, 4, 4\)'):
        sensor.mosaic_torch(torch.rand(2, 4, 4))
    with pytest.raises(SensorError, match='XYZW'):
        sensor.mosaic_torch(rgb, 'XYZW')


def test_hdr_errors_keep_their_type():
    with pytest.raises(HDRError, match=r'bracket 0: expected shape \(H, W, 3\), got \(4, 4\)'):
        hdr.merge_brackets([np.zeros((4, 4), np.uint8)], [1.0])
