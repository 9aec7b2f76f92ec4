"""Multi-scale histograms (Sec. 4.1): exact against a per-region cv2.calcHist reference."""
import os

import cv2
from hypothesis import given, settings
from hypothesis import strategies as st
from neural_ae.core import histograms as HG
from neural_ae.core import sensor as S
from neural_ae.core.errors import HistogramError
import numpy as np
import pytest
import torch

IMX249 = S.load_sensor('imx249')


def reference(raw, pattern='RGGB', bit_depth=12):
    """
    Independent reference: one cv2.calcHist per region on contiguous green-plane tiles.

    Bins come from calcHist's own uniform binning over ``[0, 2**bit_depth)``; values
    outside that range are added to the first/last bin by hand.
    """
    dy, dx = S.first_green_offset(pattern)
    h, w = raw.shape[0] // 2, raw.shape[1] // 2
    green = raw[dy::2, dx::2][:h, :w].astype(np.float64)
    top = float(2 ** bit_depth)
    cols = []
    for n in (1, 3, 7):
        for i in range(n):
            for j in range(n):
                tile = green[i * h // n:(i + 1) * h // n, j * w // n:(j + 1) * w // n]
                tile32 = np.ascontiguousarray(tile, dtype=np.float32)
                hist = cv2.calcHist([tile32], [0], None, [256], [0, top]).ravel().astype(np.int64)
                hist[0] += np.count_nonzero(tile < 0)
                hist[-1] += np.count_nonzero(tile >= top)
                assert hist.sum() == tile.size > 0
                cols.append(hist.astype(np.float32) / np.float32(tile.size))
    return np.stack(cols, axis=1)


def random_raw(shape, rng, high=4600, dtype=np.uint16):
    """Raw frame with some values above the 12-bit white level."""
    return rng.integers(0, high, size=shape).astype(dtype)


@pytest.mark.parametrize('shape', [(14, 14), (15, 17), (17, 14), (101, 203), (64, 48)])
@pytest.mark.parametrize('pattern', ['RGGB', 'GRBG'])
def test_matches_per_region_calchist_reference(shape, pattern):
    raw = random_raw(shape, np.random.default_rng([*shape, ord(pattern[0])]))
    ref = reference(raw, pattern)
    out = HG.multiscale_histogram(raw, pattern=pattern)
    assert out.shape == (256, 59) and out.dtype == np.float32
    np.testing.assert_array_equal(out, ref)
    np.testing.assert_array_equal(HG.naive_multiscale_histogram(raw, pattern=pattern), ref)
    np.testing.assert_allclose(out.sum(axis=0), 1.0, atol=1e-5)


def test_full_resolution_frame_from_the_sensor_model():
    """One 1936x1216 raw frame of a random-ish scene: all paths equal the reference."""
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[0:IMX249.height, 0:IMX249.width]
    blocks = rng.lognormal(0.0, 0.7, (8, 8)).repeat(152, axis=0).repeat(242, axis=1)
    phi = 2e5 * (1.2 + np.sin(xx / 97.0) * np.cos(yy / 61.0)) * blocks
    raw = S.capture(phi, 0.03, 1.0, IMX249, rng)
    assert raw.shape == (1216, 1936) and raw.max() == IMX249.white_level_dn
    ref = reference(raw)
    out = HG.multiscale_histogram(raw)
    np.testing.assert_array_equal(out, ref)
    np.testing.assert_array_equal(HG.multiscale_histogram(raw, method='bincount'), ref)
    np.testing.assert_array_equal(HG.naive_multiscale_histogram(raw), ref)
    t = HG.multiscale_histogram_torch(torch.from_numpy(raw.astype(np.float32))[None, None])
    np.testing.assert_array_equal(t[0].numpy(), ref)
    np.testing.assert_allclose(out.sum(axis=0), 1.0, atol=1e-5)


def test_column_order_whole_then_3x3_then_7x7_row_major():
    """A bright block in one 7x7 tile shows up in exactly the documented columns."""
    raw = np.zeros((70, 70), dtype=np.uint16)                  # green plane 35 x 35
    raw[2 * 10:2 * 15, 2 * 25:2 * 30] = 4095                   # green tile (2, 5) of 7x7
    out = HG.multiscale_histogram(raw)
    bright = out[255] > 0
    # 3x3 row boundaries are 0, 11, 23, 35: green rows 10..14 straddle rows 0 and 1
    assert set(np.flatnonzero(bright)) == {0, 1 + 3 * 0 + 2, 1 + 3 * 1 + 2, 10 + 7 * 2 + 5}
    assert out[255, 10 + 7 * 2 + 5] == pytest.approx(1.0)
    assert out[255, 0] == pytest.approx(25 / 35 ** 2)
    assert HG.region_bounds(35, 35)[10 + 7 * 2 + 5] == (10, 15, 25, 30)


def test_odd_frame_uses_complete_cells_only():
    """15x17 raw: green plane 7x8; the partial last row/column does not count."""
    rng = np.random.default_rng(3)
    raw = random_raw((15, 17), rng)
    assert HG.green_plane(raw).shape == (7, 8)
    changed = raw.copy()
    changed[-1, :] = 4095 - changed[-1, :]
    changed[:, -1] = 4095 - changed[:, -1]
    np.testing.assert_array_equal(HG.multiscale_histogram(changed), HG.multiscale_histogram(raw))
    # the first green pixel of GBRG is at (0, 0), of RGGB at (0, 1)
    np.testing.assert_array_equal(HG.green_plane(raw, 'GBRG'), raw[0:14:2, 0:16:2])
    np.testing.assert_array_equal(HG.green_plane(raw, 'RGGB'), raw[0:14:2, 1:17:2])


@pytest.mark.parametrize('pattern', ['RGGB', 'GRBG', 'GBRG', 'BGGR'])
@pytest.mark.parametrize('shape, bit_depth', [((20, 28), 12), ((21, 30), 12), ((20, 29), 12),
                                              ((30, 40), 16), ((30, 40), 8)])
def test_uint16_word_path_equals_the_reference(pattern, shape, bit_depth):
    # the 32-bit-word bin image of uint16 frames (any value, the other Bayer pixel included)
    rng = np.random.default_rng([*shape, bit_depth, ord(pattern[1])])
    raw = rng.integers(0, 65536, size=shape).astype(np.uint16)
    raw[::3] = np.minimum(raw[::3], 2 ** bit_depth - 1)            # in range and far above
    offset, shift = HG._check_params(bit_depth, pattern, 256)
    words = HG._green_bins_u16(raw, offset, shift, 256)
    assert (words is None) == (shape[1] % 2 == 1)
    if words is not None:
        np.testing.assert_array_equal(
            words, HG._bin_values(HG.green_plane(raw, pattern), shift, 256, np.uint8))
    out = HG.multiscale_histogram(raw, bit_depth=bit_depth, pattern=pattern)
    np.testing.assert_array_equal(
        out, HG.multiscale_histogram(raw, bit_depth=bit_depth, pattern=pattern,
                                     method='bincount'))
    if bit_depth == 12:
        np.testing.assert_array_equal(out, reference(raw, pattern))
    assert HG._green_bins_u16(raw.astype('>u2'), offset, shift, 256) is None
    assert HG._green_bins_u16(raw[:, 2:], offset, shift, 256) is None   # row stride != width


def test_binning_clips_above_white_and_below_zero():
    raw = np.full((20, 20), 16 * 3 + 15, dtype=np.int32)
    raw[0::2, 1::2][:5] = 60000                               # above the white level
    raw[0::2, 1::2][5:7] = -5                                 # only possible for signed input
    out = HG.multiscale_histogram(raw)
    assert out[3, 0] == pytest.approx(3 / 10)
    assert out[255, 0] == pytest.approx(5 / 10)
    assert out[0, 0] == pytest.approx(2 / 10)
    eight_bit = HG.multiscale_histogram((np.arange(400) % 256).astype(np.uint8).reshape(20, 20),
                                        bit_depth=8)
    np.testing.assert_allclose(eight_bit.sum(axis=0), 1.0, atol=1e-6)


@pytest.mark.parametrize('dtype', [np.uint16, np.int32, np.int64, np.float32, np.float64])
def test_dtypes_and_methods_agree(dtype):
    raw = random_raw((40, 52), np.random.default_rng(11), dtype=dtype)
    ref = reference(raw)
    for method in ('auto', 'calchist', 'bincount'):
        np.testing.assert_array_equal(HG.multiscale_histogram(raw, method=method), ref)


def test_empty_region_normalises_to_zeros():
    """Unreachable through the public API (size check), but defined: a zero column."""
    counts = np.array([[0, 2], [0, 6]])
    np.testing.assert_array_equal(HG._normalise(counts), [[0, 0.25], [0, 0.75]])
    np.testing.assert_array_equal(HG._normalise(torch.as_tensor(counts)).numpy(),
                                  [[0, 0.25], [0, 0.75]])


@pytest.mark.parametrize('shape', [(14, 14), (15, 17), (101, 203)])
@pytest.mark.parametrize('dtype', [torch.float32, torch.int32, torch.float64, torch.int16])
def test_torch_equals_numpy_exactly(shape, dtype):
    raw = random_raw(shape, np.random.default_rng(5)).astype(np.int64)
    t = HG.multiscale_histogram_torch(torch.as_tensor(raw).to(dtype)[None])
    assert t.shape == (256, 59) and t.dtype == torch.float32 and t.is_contiguous()
    assert torch.equal(t, torch.from_numpy(HG.multiscale_histogram(raw)))


def test_torch_batched_agrees_per_element():
    rng = np.random.default_rng(9)
    raw = random_raw((2, 3, 1, 31, 45), rng)
    out = HG.multiscale_histogram_torch(torch.from_numpy(raw.astype(np.float32)),
                                        pattern='BGGR')
    assert out.shape == (2, 3, 256, 59)
    for i in range(2):
        for j in range(3):
            ref = HG.multiscale_histogram(raw[i, j, 0], pattern='BGGR')
            assert torch.equal(out[i, j], torch.from_numpy(ref))
    empty = HG.multiscale_histogram_torch(torch.zeros(0, 1, 20, 20))
    assert empty.shape == (0, 256, 59)


def test_torch_on_sensor_model_output_is_not_differentiable():
    """Float DN from capture_torch; gradients of the input are ignored, no_grad works."""
    gen = torch.Generator().manual_seed(0)
    phi = (2e5 * torch.rand(2, 1, 30, 40, generator=gen)).requires_grad_()
    raw = S.capture_torch(phi, torch.tensor([0.005, 0.02]), IMX249, generator=gen)
    assert raw.requires_grad
    out = HG.MultiScaleHistogram()(raw)
    assert not out.requires_grad and out.shape == (2, 256, 59)
    with torch.no_grad():
        again = HG.multiscale_histogram_torch(raw)
    assert torch.equal(out, again)
    for k in range(2):
        ref = HG.multiscale_histogram(raw[k, 0].detach().numpy())
        assert torch.equal(out[k], torch.from_numpy(ref))
    assert 'bit_depth=12' in repr(HG.MultiScaleHistogram())


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_torch_on_cuda_equals_cpu():
    raw = torch.from_numpy(random_raw((3, 1, 120, 160), np.random.default_rng(1))
                           .astype(np.float32))
    gpu = HG.MultiScaleHistogram().cuda()(raw.cuda())
    assert gpu.device.type == 'cuda'
    assert torch.equal(gpu.cpu(), HG.multiscale_histogram_torch(raw))


@settings(max_examples=30, deadline=None)
@given(h=st.integers(14, 70), w=st.integers(14, 70), high=st.integers(1, 70000),
       seed=st.integers(0, 2 ** 32 - 1),
       dtype=st.sampled_from([np.uint16, np.int32, np.float32]))
def test_property_shape_finite_normalised(h, w, high, seed, dtype):
    raw = random_raw((h, w), np.random.default_rng(seed), high=high).astype(dtype)
    out = HG.multiscale_histogram(raw)
    assert out.shape == (256, 59) and out.dtype == np.float32
    assert np.all(np.isfinite(out)) and np.all(out >= 0)
    np.testing.assert_allclose(out.sum(axis=0), 1.0, atol=1e-5)
    np.testing.assert_array_equal(out, HG.naive_multiscale_histogram(raw))
    t = HG.multiscale_histogram_torch(torch.from_numpy(raw.astype(np.float32))[None])
    assert torch.equal(t, torch.from_numpy(out))


@pytest.mark.parametrize('bad, match', [
    (np.zeros((2, 20, 20), np.uint16), r'\(2, 20, 20\)'),
    (np.zeros(400, np.uint16), r'\(400,\)'),
    (np.zeros((13, 40), np.uint16), r'\(13, 40\)'),
    (np.zeros((40, 12), np.uint16), r'\(40, 12\)'),
    (np.zeros((20, 20), bool), 'bool'),
    (np.full((20, 20), 1.5), 'integer'),
    (np.full((20, 20), np.nan), 'integer'),
    (np.full((20, 20), np.inf), 'integer'),
    ([[0] * 20] * 20, 'list'),
])
def test_numpy_errors_name_the_shape_or_dtype(bad, match):
    with pytest.raises(HistogramError, match=match):
        HG.multiscale_histogram(bad)
    with pytest.raises(HistogramError, match=match):
        HG.naive_multiscale_histogram(bad)


@pytest.mark.parametrize('bad, match', [
    (torch.zeros(20, 20), r'\(20, 20\)'),
    (torch.zeros(2, 3, 20, 20), r'\(2, 3, 20, 20\)'),
    (torch.zeros(1, 13, 20), r'\(1, 13, 20\)'),
    (torch.full((1, 20, 20), 0.5), r'\(1, 20, 20\)'),
    (torch.full((1, 20, 20), float('nan')), 'integer'),
    (torch.zeros(1, 20, 20, dtype=torch.bool), 'bool'),
    (np.zeros((1, 20, 20)), 'ndarray'),
])
def test_torch_errors_name_the_shape(bad, match):
    with pytest.raises(HistogramError, match=match):
        HG.multiscale_histogram_torch(bad)


def test_parameter_errors():
    raw = np.zeros((20, 20), np.uint16)
    with pytest.raises(HistogramError, match='XYZW'):
        HG.multiscale_histogram(raw, pattern='XYZW')
    with pytest.raises(HistogramError, match='bit_depth'):
        HG.multiscale_histogram(raw, bit_depth=0)
    with pytest.raises(HistogramError, match='bins'):
        HG.multiscale_histogram(raw, bins=100)
    with pytest.raises(HistogramError, match='method'):
        HG.multiscale_histogram(raw, method='fast')
    with pytest.raises(HistogramError, match='bins=512'):
        HG.multiscale_histogram(raw, bins=512, method='calchist')
    with pytest.raises(HistogramError, match='bins'):
        HG.MultiScaleHistogram(bit_depth=4)
    big = HG.multiscale_histogram(raw + 7, bins=4096, method='auto')   # bincount, 1 DN bins
    assert big.shape == (4096, 59) and np.all(big[7] == 1.0)


@pytest.mark.parametrize('pattern', ['RGGB', 'GRBG', 'GBRG', 'BGGR'])
@pytest.mark.parametrize('shape', [(28, 28), (29, 40), (61, 98), (1216, 1936)])
def test_two_thread_split_is_bit_identical(pattern, shape):
    # the pass split at the middle green row over two threads adds two exact float32 grids
    rng = np.random.default_rng([*shape, ord(pattern[0])])
    raw = random_raw(shape, rng, high=65536)
    raw[::5] = np.minimum(raw[::5], 4095)
    split = HG.multiscale_histogram(raw, pattern=pattern, threads=2)
    np.testing.assert_array_equal(split, HG.multiscale_histogram(raw, pattern=pattern,
                                                                 threads=1))
    np.testing.assert_array_equal(split, reference(raw, pattern))
    # the worker counted only the lower half: its band alone differs from the whole grid
    offset, shift = HG._check_params(12, pattern, 256)
    h = shape[0] // 2
    lower = HG._band_counts_u16(raw, h // 2, h, offset, shift, 256)
    assert 0 < lower.sum() < h * (shape[1] // 2)


def test_threads_parameter():
    assert HG.resolve_threads(1, 10 ** 7) == 1
    assert HG.resolve_threads('auto', HG.MIN_THREADED_PIXELS - 1) == 1
    expected = 2 if len(os.sched_getaffinity(0)) > 1 else 1
    assert HG.resolve_threads('auto', 608 * 968) == expected
    raw = np.zeros((20, 20), np.uint16)
    for bad in (0, 3, True, 1.5, 'two'):
        with pytest.raises(HistogramError, match='threads'):
            HG.multiscale_histogram(raw, threads=bad)
