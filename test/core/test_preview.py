"""Classical raw rendering and Bayer-domain resizing."""
from neural_ae.core.errors import SensorError
from neural_ae.core.models.perception import detector_input_size
from neural_ae.core.preview import render_raw, resize_bayer
from neural_ae.core.sensor import mosaic
import numpy as np
import pytest


def test_resize_bayer_keeps_pattern_and_colour():
    rgb = np.zeros((120, 200, 3), np.uint16)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 1000, 2000, 3000
    small = resize_bayer(mosaic(rgb, 'RGGB'), 24, 40)
    assert small.shape == (24, 40) and small.dtype == np.uint16
    assert (small[0::2, 0::2] == 1000).all() and (small[1::2, 1::2] == 3000).all()
    assert (small[0::2, 1::2] == 2000).all() and (small[1::2, 0::2] == 2000).all()


def test_resize_bayer_averages_areas():
    raw = np.arange(16 * 16, dtype=np.float32).reshape(16, 16)
    small = resize_bayer(raw, 8, 8)
    assert small[0, 0] == pytest.approx(raw[0:4:2, 0:4:2].mean())
    with pytest.raises(SensorError, match='even'):
        resize_bayer(raw, 7, 8)
    with pytest.raises(SensorError, match=r'\(2, 2, 2\)'):
        resize_bayer(np.zeros((2, 2, 2)), 2, 2)


def test_detector_input_size_only_shrinks_and_is_even():
    assert detector_input_size(1216, 1936, 192, 320) == (192, 306)
    assert detector_input_size(192, 320, 192, 320) == (192, 320)
    assert detector_input_size(100, 150, 192, 320) == (100, 150)
    h, w = detector_input_size(1217, 1935, 192, 320)
    assert h % 2 == 0 and w % 2 == 0 and w <= 320


def test_render_raw_max_width_matches_full_render_downscaled():
    rng = np.random.default_rng(0)
    raw = rng.integers(64, 4095, (96, 160)).astype(np.uint16)
    small = render_raw(raw, max_width=80)
    assert small.shape == (48, 80, 3) and small.dtype == np.uint8
    assert render_raw(raw).shape == (96, 160, 3)
