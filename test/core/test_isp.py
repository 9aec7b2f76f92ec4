"""Differentiable ISP: gradients (gradcheck), demosaic correctness, shape errors."""
from types import SimpleNamespace

from neural_ae.core.errors import NeuralAEError
from neural_ae.core.isp import (
    bayer_masks, BAYER_PATTERNS, clamp_unit, color_correction, ColorCorrection, Demosaic,
    demosaic, ISP, ISPConfig, ISPError, mosaic, normalize_raw, NormalizeRaw, tone_curve,
    ToneCurve, white_balance, WhiteBalance)
import pytest
import torch
from torch.autograd import gradcheck

D = torch.float64


def _rgb(*shape, low=0.05, high=0.95):
    return (low + (high - low) * torch.rand(*shape, dtype=D)).requires_grad_()


def test_normalize_raw_maps_black_and_white_levels():
    raw = torch.tensor([[[[64.0, 4095.0], [2079.5, 0.0]]]])
    out = normalize_raw(raw, black_level_dn=64.0, white_level_dn=4095.0)
    assert out.shape == raw.shape
    assert out[0, 0, 0, 0] == 0.0 and out[0, 0, 0, 1] == 1.0
    assert out[0, 0, 1, 0].item() == pytest.approx(0.5)
    assert out[0, 0, 1, 1] < 0  # below black stays negative: no clamp here
    as_int = normalize_raw(raw.round().to(torch.int32), 64.0, 4095.0)
    assert as_int.dtype == torch.float32
    torch.testing.assert_close(as_int, normalize_raw(raw.round(), 64.0, 4095.0))


def test_gradcheck_normalize_raw():
    raw = (4095 * torch.rand(2, 1, 4, 4, dtype=D)).requires_grad_()
    assert gradcheck(lambda x: normalize_raw(x, 100.0, 4095.0), (raw,))
    assert gradcheck(NormalizeRaw(100.0, 4095.0), (raw,))


@pytest.mark.parametrize('pattern', BAYER_PATTERNS)
def test_gradcheck_demosaic(pattern):
    raw = _rgb(2, 1, 4, 6)
    assert gradcheck(lambda x: demosaic(x, pattern), (raw,), fast_mode=True)
    assert gradcheck(Demosaic(pattern), (raw[:1, :, :4, :4],))


def test_gradcheck_white_balance_input_and_gains():
    rgb = _rgb(2, 3, 3, 4)
    gains = torch.tensor([2.0, 1.0, 1.5], dtype=D, requires_grad=True)
    assert gradcheck(white_balance, (rgb, gains))
    per_image = torch.rand(2, 3, dtype=D, requires_grad=True)
    assert gradcheck(white_balance, (rgb, per_image))
    assert gradcheck(WhiteBalance((2.0, 1.0, 1.5), learnable=True).double(), (rgb,))


def test_gradcheck_color_correction_input_and_matrix():
    rgb = _rgb(2, 3, 3, 4)
    ccm = (torch.eye(3, dtype=D) + 0.1 * torch.randn(3, 3, dtype=D)).requires_grad_()
    assert gradcheck(color_correction, (rgb, ccm))
    per_image = torch.randn(2, 3, 3, dtype=D, requires_grad=True)
    assert gradcheck(color_correction, (rgb, per_image))
    assert gradcheck(ColorCorrection(learnable=True).double(), (rgb,))


def test_color_correction_matches_matrix_product():
    rgb = torch.rand(3, 2, 2, dtype=D)
    ccm = torch.randn(3, 3, dtype=D)
    expected = (ccm @ rgb.reshape(3, -1)).reshape(3, 2, 2)
    torch.testing.assert_close(color_correction(rgb, ccm), expected)


def test_gradcheck_tone_curve_input_and_gamma():
    rgb = _rgb(2, 3, 3, 4)
    gamma = torch.tensor(2.2, dtype=D, requires_grad=True)
    assert gradcheck(tone_curve, (rgb, gamma))
    assert gradcheck(ToneCurve(learnable=True).double(), (rgb,))


def test_tone_curve_endpoints_finite_slope_and_range():
    x = torch.tensor([-0.5, 0.0, 0.5, 1.0, 3.0], dtype=D).reshape(1, 1, 5).expand(3, 1, 5)
    x = x.clone().requires_grad_()
    y = tone_curve(x, 2.2, clamp_leak=0.0)
    assert y.min() == 0.0 and y.max() == 1.0
    assert y[0, 0, 1] == 0.0 and y[0, 0, 3].item() == pytest.approx(1.0, abs=1e-12)
    y.sum().backward()
    assert torch.isfinite(x.grad).all()
    slope0 = tone_curve(torch.full((3, 1, 1), 1e-9, dtype=D), 2.2)[0, 0, 0] / 1e-9
    assert 10 < slope0 < 30  # finite slope at 0, sRGB-like (12.92)


def _documented_tone(x, gamma, eps):
    """Evaluate the docstring's formula in plain Python: clamp, then the power curve."""
    x = min(max(x, 0.0), 1.0)
    g = 1.0 / gamma
    return ((x + eps) ** g - eps ** g) / ((1 + eps) ** g - eps ** g)


@pytest.mark.parametrize('gamma, eps', [(2.2, 1e-3), (1.8, 1e-2), (2.4, 1e-4), (1.0, 0.5)])
def test_tone_curve_follows_its_documented_formula(gamma, eps):
    xs = [-0.3, 0.0, 1e-6, 1e-3, 0.01, 0.05, 0.18, 0.3, 0.5, 0.75, 0.9, 1.0, 1.7]
    x = torch.tensor(xs, dtype=D).reshape(1, 1, -1).expand(3, 1, -1)
    y = tone_curve(x, gamma, eps)
    expected = torch.tensor([_documented_tone(v, gamma, eps) for v in xs], dtype=D)
    for c in range(3):
        torch.testing.assert_close(y[c, 0], expected, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(ToneCurve(gamma, eps).double()(x), y)
    # one value worked out: gamma 2.2, eps 1e-3, x = 0.18 -> 0.435165
    if (gamma, eps) == (2.2, 1e-3):
        assert y[0, 0, 6].item() == pytest.approx(0.4351648, abs=1e-6)


def test_isp_applies_levels_and_tone_curve_to_a_flat_raw():
    """A flat raw frame comes out as tone((raw - black) / (white - black)) in every channel."""
    cfg = ISPConfig(black_level_dn=64.0, white_level_dn=4095.0, clamp_leak=0.0)
    for dn in (64.0, 100.0, 800.0, 2079.5, 4095.0):
        out = ISP(cfg).double()(torch.full((1, 1, 6, 8), dn, dtype=D))
        x = (dn - 64.0) / (4095.0 - 64.0)
        # gamma is stored as a float32 log: 1e-7 relative
        torch.testing.assert_close(out, torch.full_like(out, _documented_tone(x, 2.2, 1e-3)),
                                   rtol=1e-6, atol=1e-9)


def test_clamp_unit_forward_exact_gradient_leaks():
    x = torch.tensor([-1.0, 0.5, 2.0], dtype=D, requires_grad=True)
    y = clamp_unit(x, leak=0.01)
    assert y.tolist() == [0.0, 0.5, 1.0]
    y.sum().backward()
    assert x.grad.tolist() == [0.01, 1.0, 0.01]
    with pytest.raises(ISPError):
        clamp_unit(x, leak=2.0)


@pytest.mark.parametrize('pattern', BAYER_PATTERNS)
def test_demosaic_constant_colour(pattern):
    colour = torch.tensor([0.2, 0.6, 0.9])
    rgb = colour.reshape(3, 1, 1).expand(2, 3, 8, 10)
    out = demosaic(mosaic(rgb, pattern), pattern)
    assert out.shape == (2, 3, 8, 10)
    # interior pixels (and, with reflect padding, the border too)
    torch.testing.assert_close(out[..., 1:-1, 1:-1], rgb[..., 1:-1, 1:-1])
    torch.testing.assert_close(out, rgb)


def _plane_ramp(h, w, coeffs):
    """``(3, H, W)`` float64 planes ``c0 + cy y + cx x + qy y^2 + qx x^2 + qxy x y``."""
    yy, xx = torch.meshgrid(torch.arange(h, dtype=D), torch.arange(w, dtype=D), indexing='ij')
    return torch.stack([c0 + cy * yy + cx * xx + qy * yy ** 2 + qx * xx ** 2 + qxy * xx * yy
                        for c0, cy, cx, qy, qx, qxy in coeffs])


@pytest.mark.parametrize('pattern', BAYER_PATTERNS)
def test_bilinear_demosaic_is_exact_on_a_linear_ramp(pattern):
    """Bilinear interpolation reproduces a plane (a different one per colour) exactly."""
    rgb = _plane_ramp(10, 12, [(0.1, 0.03, 0.02, 0, 0, 0), (0.5, -0.02, 0.05, 0, 0, 0),
                               (0.9, 0.01, -0.04, 0, 0, 0)])
    out = demosaic(mosaic(rgb[None], pattern), pattern)[0]
    torch.testing.assert_close(out[:, 1:-1, 1:-1], rgb[:, 1:-1, 1:-1], rtol=0, atol=1e-12)


@pytest.mark.parametrize('pattern', BAYER_PATTERNS)
def test_bilinear_demosaic_averages_the_documented_neighbours(pattern):
    """
    On ``f = qy y^2 + qx x^2 + qxy x y`` every missing value has a known error.

    Green from its 4 direct neighbours: ``f + (qy + qx) / 2``; red/blue from 2 neighbours
    in the same row: ``f + qx``, in the same column: ``f + qy``, from 4 diagonal ones:
    ``f + qy + qx`` (the ``x y`` term cancels in each symmetric average). A green averaged
    along rows only would give ``f + qx``, a red from 2 of its 4 diagonals
    ``f + qy + qx - qxy``.
    """
    qy, qx, qxy = 0.003, 0.011, 0.007
    h, w = 10, 12
    rgb = _plane_ramp(h, w, [(0.2, 0, 0, qy, qx, qxy)] * 3)
    out = demosaic(mosaic(rgb[None], pattern), pattern)[0]
    masks = bayer_masks(pattern, h, w, D)
    expected = rgb.clone()
    for y in range(1, h - 1):
        for x in range(1, w - 1):
            for c in range(3):
                if masks[c, y, x]:
                    continue
                if c == 1:
                    expected[c, y, x] += (qy + qx) / 2
                elif masks[c, y, x - 1]:
                    expected[c, y, x] += qx
                elif masks[c, y - 1, x]:
                    expected[c, y, x] += qy
                else:
                    expected[c, y, x] += qy + qx
    torch.testing.assert_close(out[:, 1:-1, 1:-1], expected[:, 1:-1, 1:-1], rtol=0, atol=1e-12)
    assert (out[1, 1:-1, 1:-1] != rgb[1, 1:-1, 1:-1]).any()


def test_demosaic_keeps_samples_and_leading_dims():
    raw = torch.rand(2, 3, 1, 6, 4)
    out = demosaic(raw, 'GRBG')
    assert out.shape == (2, 3, 3, 6, 4)
    masks = bayer_masks('GRBG', 6, 4)
    torch.testing.assert_close((out * masks).sum(-3, keepdim=True), raw)


def test_bayer_masks_partition_the_grid():
    for pattern in BAYER_PATTERNS:
        m = bayer_masks(pattern, 4, 4)
        assert torch.equal(m.sum(0), torch.ones(4, 4))
        assert m[1].sum() == 8 and m[0].sum() == 4
        assert m['RGB'.index(pattern[0]), 0, 0] == 1


def test_isp_full_gradcheck_learnable_params():
    cfg = ISPConfig(black_level_dn=64.0, wb_gains=(1.8, 1.0, 1.4), gamma=2.2,
                    ccm=((1.2, -0.1, -0.1), (-0.1, 1.2, -0.1), (-0.1, -0.1, 1.2)),
                    clamp_leak=0.0, learnable=True)
    isp = ISP(cfg).double()
    raw = (64 + 2000 * torch.rand(1, 1, 4, 4, dtype=D)).requires_grad_()
    assert gradcheck(isp, (raw,))
    names = {n for n, _ in isp.named_parameters()}
    assert names == {'white_balance.log_gains', 'color_correction.ccm', 'tone.log_gamma'}

    def through_params(log_gains, ccm, log_gamma):
        rgb = demosaic(normalize_raw(raw.detach(), 64.0, 4095.0))
        rgb = color_correction(white_balance(rgb, log_gains.exp()), ccm)
        return tone_curve(rgb, log_gamma.exp(), cfg.eps)

    params = (isp.white_balance.log_gains, isp.color_correction.ccm, isp.tone.log_gamma)
    assert gradcheck(through_params, params)
    torch.testing.assert_close(through_params(*params), isp(raw.detach()))


def test_isp_output_range_and_fixed_params():
    isp = ISP()
    assert not list(isp.parameters())
    assert set(isp.state_dict()) == {'white_balance.log_gains', 'color_correction.ccm',
                                     'tone.log_gamma'}
    raw = torch.randint(0, 4096, (2, 1, 8, 12)).float()
    rgb = isp(raw)
    assert rgb.shape == (2, 3, 8, 12)
    assert rgb.min() >= 0 and rgb.max() <= 1
    white = isp(torch.full((1, 8, 12), 4095.0))
    torch.testing.assert_close(white, torch.ones(3, 8, 12))


def test_isp_config_from_sensor():
    sensor = SimpleNamespace(black_level_dn=240, bit_depth=12, bayer_pattern='GBRG')
    cfg = ISPConfig.from_sensor(sensor, gamma=2.0)
    assert (cfg.black_level_dn, cfg.white_level_dn, cfg.pattern, cfg.gamma) == (
        240.0, 4095.0, 'GBRG', 2.0)
    with pytest.raises(ISPError):
        ISPConfig.from_sensor(object())


@pytest.mark.parametrize('call, match', [
    (lambda: demosaic(torch.rand(1, 1, 5, 4)), r'\(1, 1, 5, 4\)'),
    (lambda: demosaic(torch.rand(1, 1, 4, 7)), r'\(1, 1, 4, 7\)'),
    (lambda: demosaic(torch.rand(1, 3, 4, 4)), r'\(1, 3, 4, 4\)'),
    (lambda: demosaic(torch.rand(4, 4)), r'\(4, 4\)'),
    (lambda: demosaic(torch.rand(1, 1, 4, 4), 'RGBG'), 'RGBG'),
    (lambda: demosaic(torch.ones(1, 1, 4, 4, dtype=torch.int32)), 'int32'),
    (lambda: demosaic([[0.0]]), 'list'),
    (lambda: normalize_raw(torch.rand(2, 2, 4, 4)), r'\(2, 2, 4, 4\)'),
    (lambda: normalize_raw(torch.rand(1, 4, 4), 100.0, 50.0), 'must exceed'),
    (lambda: white_balance(torch.rand(1, 4, 4, 4), (1.0, 1.0, 1.0)), r'\(1, 4, 4, 4\)'),
    (lambda: white_balance(torch.rand(3, 4, 4), (1.0, 1.0)), r'\(2,\)'),
    (lambda: white_balance(torch.rand(2, 3, 4, 4), torch.ones(5, 3)), r'\(5, 3\)'),
    (lambda: color_correction(torch.rand(3, 4, 4), torch.eye(2)), r'\(2, 2\)'),
    (lambda: color_correction(torch.rand(2, 3, 4, 4), torch.ones(4, 3, 3)), r'\(4, 3, 3\)'),
    (lambda: tone_curve(torch.rand(2, 4, 4)), r'\(2, 4, 4\)'),
    (lambda: tone_curve(torch.rand(3, 4, 4), -1.0), 'gamma'),
    (lambda: ISP()(torch.rand(1, 3, 4, 4)), r'\(1, 3, 4, 4\)'),
    (lambda: ISPConfig(pattern='XYZW'), 'XYZW'),
    (lambda: WhiteBalance((1.0, -1.0, 1.0)), 'positive'),
])
def test_shape_and_value_errors(call, match):
    with pytest.raises(ISPError, match=match) as info:
        call()
    assert isinstance(info.value, NeuralAEError) and isinstance(info.value, ValueError)
