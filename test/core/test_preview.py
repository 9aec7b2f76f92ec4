"""Classical raw rendering and Bayer-domain resizing."""
import cv2
from neural_ae.core import preview
from neural_ae.core.color import srgb_encode
from neural_ae.core.errors import SensorError
from neural_ae.core.models.perception import detector_input_size
from neural_ae.core.preview import demosaic, render_raw, resize_bayer
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


def _old_render_shrunk(raw, black, white, pattern, max_width):
    """Render the old way (before issue 9): demosaic the full frame, then area-shrink it."""
    rgb = demosaic(raw, pattern)
    h = max(1, int(round(rgb.shape[0] * max_width / rgb.shape[1])))
    rgb = cv2.resize(rgb, (max_width, h), interpolation=cv2.INTER_AREA).astype(np.float32)
    rgb = (rgb - black) / max(white - black, 1.0)
    return (srgb_encode(rgb) * 255.0 + 0.5).astype(np.uint8)


def _gradient_raw(height, width, pattern):
    """Mosaic a smooth, asymmetric scene: red grows left to right, blue top to bottom."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    rgb = np.stack([64 + 3000 * x / width, np.full_like(x, 1500.0), 64 + 3800 * y / height],
                   axis=-1)
    return mosaic(rgb, pattern).astype(np.uint16)


@pytest.mark.parametrize('pattern, max_width', [('RGGB', 640), ('GBRG', 321), ('BGGR', 97)])
def test_render_raw_shrinks_in_the_bayer_domain(monkeypatch, pattern, max_width):
    raw = _gradient_raw(1216, 1936, pattern)
    old = _old_render_shrunk(raw, 64.0, 4095.0, pattern, max_width)
    seen = []

    def recording_demosaic(frame, pat='RGGB'):
        seen.append(frame.shape)
        return demosaic(frame, pat)

    monkeypatch.setattr(preview, 'demosaic', recording_demosaic)
    new = preview.render_raw(raw, 64.0, 4095.0, pattern, max_width=max_width)
    assert new.shape == old.shape and new.dtype == np.uint8
    # only the small mosaic is demosaiced: never a full-resolution RGB array
    assert seen and all(h <= old.shape[0] + 1 and w <= max_width + 1 for h, w in seen)
    diff = np.abs(new.astype(np.int16) - old.astype(np.int16))
    assert diff.mean() < 1.5, diff.mean()
    # same orientation and colour order: red rises to the right, blue downwards
    assert new[:, -4:, 0].mean() > new[:, :4, 0].mean() + 50
    assert new[-4:, :, 2].mean() > new[:4, :, 2].mean() + 50
