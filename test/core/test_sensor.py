"""Sensor model (Eq. 1-3, Eq. 6): statistics against theory, bounds, torch path."""
import math

from hypothesis import given, settings
from hypothesis import strategies as st
from neural_ae.core import sensor as S
from neural_ae.core.errors import ConfigError, SensorError
import numpy as np
import pytest
import torch

IMX249 = S.load_sensor('imx249')


def test_presets_load_and_name_emva_quantities():
    s = S.load_sensor('imx249')
    assert (s.width, s.height, s.white_level_dn) == (1936, 1216, 4095)
    src = S.load_sensor('imx490')
    assert src.full_well_e > s.full_well_e
    assert math.isclose(s.max_gain, 10 ** (s.max_gain_db / 20))


def test_preset_errors_are_clear(tmp_path):
    with pytest.raises(ConfigError, match='not found'):
        S.load_sensor('no_such_sensor')
    bad = dict(IMX249.to_dict(), full_well_e=-1.0)
    with pytest.raises(ConfigError, match='full_well_e'):
        S.sensor_from_dict(bad)
    with pytest.raises(ConfigError, match='unknown keys'):
        S.sensor_from_dict(dict(IMX249.to_dict(), colour='x'))


@pytest.mark.parametrize('signal_e', [200.0, 1000.0, 4000.0, 10000.0, 20000.0, 30000.0])
@pytest.mark.parametrize('gain', [1.0])
def test_raw_mean_and_variance_match_theory(signal_e, gain):
    """Mean and variance within 3% of the shot + read + quantization model."""
    t = 0.01
    phi = np.full((256, 256), signal_e / t)
    raw = S.capture(phi, t, gain, IMX249, np.random.default_rng(1)).astype(np.float64)
    mean, var = S.raw_mean_var(signal_e / t, t, gain, IMX249)
    assert abs(raw.mean() - mean) / mean < 0.03
    assert abs(raw.var() - var) / var < 0.03


def test_statistics_with_gain_match_theory():
    t, gain = 0.01, 4.0
    for signal_e in (100.0, 1000.0, 5000.0):
        raw = S.capture(np.full((256, 256), signal_e / t), t, gain, IMX249,
                        np.random.default_rng(2)).astype(np.float64)
        mean, var = S.raw_mean_var(signal_e / t, t, gain, IMX249)
        assert abs(raw.mean() - mean) / mean < 0.03
        assert abs(raw.var() - var) / var < 0.03


def test_full_well_and_white_clip():
    raw = S.capture(np.full((32, 32), 1e9), 0.01, 1.0, IMX249, np.random.default_rng(0))
    assert raw.max() <= IMX249.white_level_dn
    assert raw.min() >= IMX249.white_level_dn - 2  # full well ~ white level at K=1
    raw = S.capture(np.full((32, 32), 1e9), 0.01, 8.0, IMX249, np.random.default_rng(0))
    assert (raw == IMX249.white_level_dn).all()


def test_snr_theory_follows_formula_and_measurement():
    t, gain = 0.01, 1.0
    mu = np.array([500.0, 2000.0, 8000.0])
    snr = S.snr_theory(mu, t, gain, IMX249)
    for m, s in zip(mu, snr):
        raw = S.capture(np.full((256, 256), m / t), t, gain, IMX249,
                        np.random.default_rng(3)).astype(np.float64)
        g = IMX249.g1_dn_per_e * gain
        measured = (raw.mean() - IMX249.black_level_dn - g * IMX249.dark_current_e_per_s * t) \
            / raw.std()
        assert abs(measured - s) / s < 0.03
    assert S.snr_theory(IMX249.full_well_e * 2, t, gain, IMX249) == 0


def test_mosaic_patterns():
    rgb = np.stack([np.full((5, 7), v, np.float32) for v in (1, 2, 3)], axis=-1)
    m = S.mosaic(rgb, 'RGGB')
    assert m.shape == (5, 7)
    assert m[0, 0] == 1 and m[0, 1] == 2 and m[1, 0] == 2 and m[1, 1] == 3
    assert S.mosaic(rgb, 'BGGR')[0, 0] == 3
    assert S.first_green_offset('RGGB') == (0, 1)
    assert S.first_green_offset('GRBG') == (0, 0)
    t = torch.from_numpy(rgb).permute(2, 0, 1)
    assert np.array_equal(S.mosaic_torch(t, 'GBRG')[0].numpy(), S.mosaic(rgb, 'GBRG'))
    with pytest.raises(SensorError, match=r'\(5, 7\)'):
        S.mosaic(rgb[..., 0])


def test_capture_rejects_bad_input_and_sanitizes_nan():
    with pytest.raises(SensorError, match=r'\(4, 4, 3\)'):
        S.capture(np.ones((4, 4, 3)), 0.01, 1.0, IMX249)
    with pytest.raises(SensorError, match='t_exp_s'):
        S.capture(np.ones((4, 4)), float('nan'), 1.0, IMX249)
    phi = np.ones((8, 8))
    phi[0, 0] = np.nan
    phi[1, 1] = np.inf
    raw = S.capture(phi, 0.01, 1.0, IMX249, np.random.default_rng(0))
    assert raw.dtype == np.uint16 and raw.max() <= 4095


@settings(max_examples=200, deadline=None)
@given(st.floats(allow_nan=True, allow_infinity=True))
def test_split_exposure_always_inside_bounds(e_s):
    sp = S.split_exposure(e_s, IMX249)
    assert IMX249.min_exposure_s <= sp.t_exp_s <= min(S.T_MAX_S, IMX249.max_exposure_s)
    assert 1.0 <= sp.gain <= IMX249.max_gain + 1e-12
    assert math.isfinite(sp.exposure_time_us) and math.isfinite(sp.gain_db)
    lo, hi = S.exposure_bounds_s(IMX249)
    if math.isfinite(e_s) and lo <= e_s <= hi:
        assert not sp.clamped and math.isclose(sp.e_s, e_s, rel_tol=1e-9)
    elif math.isfinite(e_s) and e_s > 0:
        assert sp.clamped


def test_split_follows_eq6():
    sp = S.split_exposure(0.006, IMX249)
    assert (sp.t_exp_s, sp.gain) == (0.006, 1.0)
    sp = S.split_exposure(0.06, IMX249)
    assert math.isclose(sp.t_exp_s, 0.015) and math.isclose(sp.gain, 4.0)


@settings(max_examples=60, deadline=None)
@given(phi_val=st.floats(min_value=-1e12, max_value=1e12, allow_nan=False),
       e_s=st.floats(min_value=1e-9, max_value=1e3),
       noise=st.booleans())
def test_raw_values_in_range_and_finite_for_any_finite_input(phi_val, e_s, noise):
    sp = S.split_exposure(e_s, IMX249)
    raw = S.capture(np.full((6, 6), phi_val), sp.t_exp_s, sp.gain, IMX249,
                    np.random.default_rng(0), noise=noise)
    assert raw.min() >= 0 and raw.max() <= 4095
    out = S.capture_torch(torch.full((1, 6, 6), phi_val, dtype=torch.float64),
                          torch.tensor(e_s, dtype=torch.float64), IMX249, noise=noise)
    assert torch.isfinite(out).all() and out.min() >= 0 and out.max() <= 4095


def test_torch_path_matches_numpy_statistics():
    t = 0.008
    phi = np.full((128, 128), 6000.0 / t)
    mean, var = S.raw_mean_var(6000.0 / t, t, 1.0, IMX249)
    g = torch.Generator().manual_seed(0)
    raw = S.capture_torch(torch.from_numpy(phi)[None], torch.tensor(t, dtype=torch.float64),
                          IMX249, generator=g)
    assert abs(raw.mean().item() - mean) / mean < 0.03
    assert abs(raw.var().item() - var) / var < 0.05
    nonoise = S.capture_torch(torch.from_numpy(phi)[None], torch.tensor(t, dtype=torch.float64),
                              IMX249, noise=False)
    np_nonoise = S.capture(phi, t, 1.0, IMX249, noise=False)
    assert np.array_equal(nonoise[0].numpy(), np_nonoise.astype(np.float64))


def test_torch_capture_gradient_reaches_exposure():
    phi = torch.full((2, 1, 8, 8), 1e5, dtype=torch.float64)
    e = torch.tensor([0.002, 0.004], dtype=torch.float64, requires_grad=True)
    raw = S.capture_torch(phi, e, IMX249, noise=True, generator=torch.Generator().manual_seed(0))
    raw.mean().backward()
    # d mean / d e = g1 * phi (straight-through rounding): about 0.124 * 1e5 / 2 per example
    expected = IMX249.g1_dn_per_e * 1e5 / 2
    assert torch.isfinite(e.grad).all()
    assert torch.allclose(e.grad, torch.full_like(e.grad, expected), rtol=0.05)


def test_saturated_pixels_pass_no_gradient():
    phi = torch.full((1, 1, 4, 4), 1e9, dtype=torch.float64)
    e = torch.tensor(0.01, dtype=torch.float64, requires_grad=True)
    S.capture_torch(phi, e, IMX249, noise=False).sum().backward()
    assert e.grad.item() == 0.0


def test_noise_adaptation_reduces_added_noise():
    t = 0.01
    phi = np.full((256, 256), 5000.0 / t)
    src = S.load_sensor('imx490')
    src_var = S.source_noise_var_e(phi, t, src, source_t_exp_s=4 * t)
    full = S.capture(phi, t, 1.0, IMX249, np.random.default_rng(0), noise_scale=1.0 + 1e-12)
    adapted = S.capture(phi, t, 1.0, IMX249, np.random.default_rng(0), source_var_e=src_var)
    g = IMX249.g1_dn_per_e
    expected_added = g ** 2 * (5000 + IMX249.dark_current_e_per_s * t - src_var.mean()
                               + IMX249.read_noise_pre_e ** 2) + IMX249.read_noise_post_dn ** 2
    assert adapted.astype(float).var() < full.astype(float).var()
    assert abs(adapted.astype(float).var() - expected_added - 1 / 12) / expected_added < 0.05


def test_noise_augmentation_scale_range():
    rng = np.random.default_rng(0)
    scales = [S.sample_noise_scale(rng) for _ in range(500)]
    assert 0.75 <= min(scales) and max(scales) <= 1.5
    m = S.SensorModel(IMX249, augment_noise=True).train()
    out = m(torch.full((3, 1, 8, 8), 1e5), torch.full((3,), 0.003))
    assert out.shape == (3, 1, 8, 8)


def test_e_base_puts_mean_at_half_white():
    rng = np.random.default_rng(0)
    phi = rng.uniform(2e5, 8e5, size=(64, 64))
    sp = S.split_exposure(S.e_base_s(phi, IMX249), IMX249)
    assert not sp.clamped
    raw = S.capture(phi, sp.t_exp_s, sp.gain, IMX249, rng, noise=False)
    expected = 0.5 * 4095 + IMX249.black_level_dn \
        + IMX249.g1_dn_per_e * sp.gain * IMX249.dark_current_e_per_s * sp.t_exp_s
    assert abs(raw.mean() - expected) / expected < 0.01
    with pytest.raises(SensorError):
        S.e_base_s(np.zeros((4, 4)), IMX249)
