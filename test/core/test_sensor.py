"""Sensor model (Eq. 1-3, Eq. 6): statistics against theory, bounds, torch path."""
import math

import re

from hypothesis import given, settings
from hypothesis import strategies as st
from neural_ae.core import sensor as S
from neural_ae.core.errors import ConfigError, SensorError
from neural_ae.core.paths import config_dir
import numpy as np
import pytest
from scipy import stats
import torch

IMX249 = S.load_sensor('imx249')


def test_presets_load_and_name_emva_quantities():
    s = S.load_sensor('imx249')
    assert (s.width, s.height, s.white_level_dn) == (1936, 1216, 4095)
    src = S.load_sensor('imx490', hdr_source=True)
    assert src.full_well_e > s.full_well_e and src.bit_depth == 24
    assert math.isclose(s.max_gain, 10 ** (s.max_gain_db / 20))


def test_preset_errors_are_clear(tmp_path):
    with pytest.raises(ConfigError, match='not found'):
        S.load_sensor('no_such_sensor')
    bad = dict(IMX249.to_dict(), full_well_e=-1.0)
    with pytest.raises(ConfigError, match='full_well_e'):
        S.sensor_from_dict(bad)
    with pytest.raises(ConfigError, match='unknown keys'):
        S.sensor_from_dict(dict(IMX249.to_dict(), colour='x'))


PRESET = (config_dir() / 'sensors' / 'imx249.yaml').read_text()


@pytest.mark.parametrize('key, value, match', [
    ('bit_depth', '1', r'bit_depth must be in \[8, 16\].*got 1$'),
    ('bit_depth', '20', r'bit_depth must be in \[8, 16\] for a raw sensor.*got 20;'),
    ('bit_depth', '40', r'bit_depth .*got 40'),
    ('bit_depth', '12.5', 'bit_depth must be a whole number, got 12.5'),
    ('black_level_dn', '4095.0', r'black_level_dn must be in \[0, white level 4095\).*4095.0'),
    ('black_level_dn', '5000.0', 'black_level_dn .*got 5000.0'),
    ('black_level_dn', '-1.0', 'black_level_dn .*got -1.0'),
    ('full_well_e', '.inf', 'full_well_e must be a finite number, got inf'),
    ('full_well_e', '.nan', 'full_well_e must be a finite number, got nan'),
    ('full_well_e', '0.0', 'full_well_e must be in .*got 0.0'),
    ('full_well_e', '-3.0', 'full_well_e must be in .*got -3.0'),
    ('g1_dn_per_e', '0.0', 'g1_dn_per_e must be > 0, got 0.0'),
    ('max_gain_db', '-3.0', r'max_gain_db must be in \[0, 60\] dB, got -3.0'),
    ('max_gain_db', '1.0e+6', r'max_gain_db must be in \[0, 60\] dB, got 1000000.0'),
    ('max_gain_db', '1e6', "max_gain_db must be a finite number .*got '1e6'"),
    ('min_exposure_us', '0.0', 'min_exposure_us must be > 0, got 0.0'),
    ('min_exposure_us', '-20.0', 'min_exposure_us must be > 0, got -20.0'),
    ('max_exposure_us', '.inf', 'max_exposure_us must be a finite number, got inf'),
    ('max_exposure_us', '10.0', 'max_exposure_us must be >= min_exposure_us 20.0, got 10.0'),
    ('quantum_efficiency', '1.5', r'quantum_efficiency must be in \(0, 1\], got 1.5'),
    ('read_noise_pre_e', '-1.0', 'read_noise_pre_e must be >= 0, got -1.0'),
    ('width', 'wide', "width must be a finite number, got 'wide'"),
    ('height', '0', r'height must be in \[1, 65536\], got 0'),
    ('bayer_pattern', 'RGBG', "bayer_pattern must be one of .*got 'RGBG'"),
    ('dark_current_e_per_s', 'true', 'dark_current_e_per_s must be a finite number, got True'),
])
def test_hostile_presets_get_one_line_errors_naming_key_and_value(tmp_path, key, value, match):
    text, n = re.subn(rf'^{key}:\s*\S+', f'{key}: {value}', PRESET, flags=re.M)
    assert n == 1
    path = tmp_path / 'bad.yaml'
    path.write_text(text)
    with pytest.raises(ConfigError, match=match) as info:
        S.load_sensor(path)
    assert '\n' not in str(info.value) and str(path) in str(info.value)


def test_bad_preset_on_the_command_line_is_one_line(tmp_path, capsys):
    from neural_ae import cli

    path = tmp_path / 'bad.yaml'
    path.write_text(PRESET.replace('bit_depth: 12 ', 'bit_depth: 20 '))
    assert cli.main(['sensor', '--preset', str(path), '--size', '8',
                     '--snr-plot', str(tmp_path / 'snr.png')]) == 2
    captured = capsys.readouterr()
    lines = (captured.out + captured.err).strip().splitlines()
    assert len(lines) == 1 and 'bit_depth' in lines[0] and 'got 20' in lines[0]
    assert not (tmp_path / 'snr.png').exists()


def test_hdr_source_presets_describe_noise_but_never_capture_raw_words():
    with pytest.raises(ConfigError, match='bit_depth .*got 24'):
        S.load_sensor('imx490')
    src = S.load_sensor('imx490', hdr_source=True)
    with pytest.raises(SensorError, match='bit_depth .*got 24'):
        S.capture(np.ones((4, 4)), 0.01, 1.0, src)
    # the float torch path has no 16-bit word to overflow: 24 bits are fine there
    out = S.capture_torch(torch.full((1, 4, 4), 1e12), torch.tensor(0.01), src, noise=False)
    assert (out == src.full_well_e * src.g1_dn_per_e).all() and out.max() > 65535
    with pytest.raises(ConfigError, match='bit_depth .*got 40'):
        S.sensor_from_dict(dict(src.to_dict(), bit_depth=40), hdr_source=True)
    # whole-number floats are accepted and stored as int
    assert S.sensor_from_dict(dict(IMX249.to_dict(), bit_depth=12.0)).bit_depth == 12
    with pytest.raises(ConfigError, match='bit_depth'):
        S.with_overrides(IMX249, bit_depth=True)


# ---------------------------------------------------------------- raw statistics
# Flat fields of N pixels against the exact distribution of the model
#   R = clip(floor(black + g min(Poisson(lam), M_well) + N(0, s^2) + 1/2), 0, M_white),
# g = g1 K, s^2 = (g sigma_pre)^2 + sigma_post^2: its pmf is computed with scipy.stats, so
# means and variances are held to 5 standard errors (SE of the mean sqrt(var / N), of the
# variance sqrt((m4 - var^2) / N)) everywhere, the clipped regions included.

FLAT = 512
Z_MAX = 5.0


def _exact_raw_pmf(sensor, lam_e, gain):
    """Raw values ``n`` and their exact probabilities for a pixel of mean count ``lam_e``."""
    g = sensor.g1_dn_per_e * gain
    sigma = math.hypot(g * sensor.read_noise_pre_e, sensor.read_noise_post_dn)
    well, white = sensor.full_well_e, sensor.white_level_dn
    k = np.arange(int(min(stats.poisson.ppf(1e-13, lam_e), well)),
                  int(min(stats.poisson.isf(1e-13, lam_e), well)) + 1)
    p = stats.poisson.pmf(k, lam_e)
    if k[-1] == well:                  # all electrons beyond the well count as a full well
        p[-1] = stats.poisson.sf(well - 1, lam_e)
    level = sensor.black_level_dn + g * k
    n = np.arange(max(int(level.min() - 12 * sigma), 0),
                  min(int(level.max() + 12 * sigma) + 1, white) + 2)
    # P(R >= n), then P(R = n); the clip puts every value above white at white
    surv = np.concatenate([stats.norm.sf((chunk[:, None] - 0.5 - level) / sigma) @ p
                           for chunk in np.array_split(n, max(n.size // 256, 1))])
    surv[n <= 0], surv[n > white] = 1.0, 0.0
    pmf, vals = surv[:-1] - surv[1:], n[:-1]
    assert abs(pmf.sum() - 1) < 1e-9
    return vals, pmf


def _exact_raw_moments(sensor, lam_e, gain):
    """Mean, variance and 4th central moment of one raw pixel (exact, see above)."""
    vals, pmf = _exact_raw_pmf(sensor, lam_e, gain)
    mean = (vals * pmf).sum()
    var = ((vals - mean) ** 2 * pmf).sum()
    return mean, var, ((vals - mean) ** 4 * pmf).sum()


def _assert_flat_field_matches(raw, mean, var, m4):
    raw = raw.astype(np.float64)
    se_mean, se_var = math.sqrt(var / raw.size), math.sqrt((m4 - var ** 2) / raw.size)
    assert abs(raw.mean() - mean) < Z_MAX * se_mean, (raw.mean(), mean, se_mean)
    assert abs(raw.var() - var) < Z_MAX * se_var, (raw.var(), var, se_var)


FW_FIRST = S.with_overrides(IMX249, g1_dn_per_e=0.1)   # white level beyond the full well
K_MAX = IMX249.max_gain


@pytest.mark.parametrize('sensor, signal_e, gain', [
    (IMX249, 5.0, 1.0), (IMX249, 30.0, 1.0), (IMX249, 80.0, 1.0),      # < 100 e-
    (IMX249, 200.0, 1.0), (IMX249, 1000.0, 1.0), (IMX249, 4000.0, 1.0),
    (IMX249, 10000.0, 1.0), (IMX249, 20000.0, 1.0), (IMX249, 30000.0, 1.0),
    (IMX249, 10.0, K_MAX), (IMX249, 100.0, K_MAX), (IMX249, 1000.0, K_MAX),  # high gain
    (IMX249, 100.0, 4.0), (IMX249, 1000.0, 4.0), (IMX249, 5000.0, 4.0),
    (IMX249, 32400.0, 1.0), (IMX249, 2050.0, K_MAX),     # partly clipped at the white level
    (FW_FIRST, 32900.0, 1.0), (FW_FIRST, 33000.0, 1.0),  # partly clipped at the full well
], ids=lambda v: getattr(v, 'name', None) or f'{v:g}')
@pytest.mark.parametrize('exact', [False, True], ids=['fast', 'exact_poisson'])
def test_raw_statistics_match_the_exact_model(sensor, signal_e, gain, exact):
    t = 0.01
    lam = signal_e + sensor.dark_current_e_per_s * t
    mean, var, m4 = _exact_raw_moments(sensor, lam, gain)
    raw = S.capture(np.full((FLAT, FLAT), signal_e / t), t, gain, sensor,
                    np.random.default_rng(1), exact_poisson=exact)
    _assert_flat_field_matches(raw, mean, var, m4)
    # below saturation the analytic model agrees with the exact one
    a_mean, a_var = S.raw_mean_var(signal_e / t, t, gain, sensor)
    clipped = lam + 8 * math.sqrt(lam) > min(sensor.full_well_e, (
        sensor.white_level_dn - sensor.black_level_dn) / (sensor.g1_dn_per_e * gain))
    se_mean = math.sqrt(var / raw.size)
    if not clipped:
        assert abs(a_mean - mean) < 0.1 * se_mean
        assert abs(a_var - var) < 0.1 * math.sqrt((m4 - var ** 2) / raw.size)
    else:                          # truly in the clip region: the clip lowers the mean
        assert a_mean > mean + 100 * se_mean


# ---------------------------------------------------------------- fast capture vs exact Poisson
# The default capture draws exact Poisson counts below POISSON_EXACT_BELOW_E (20 e-) and in
# the band around the full well, and one skew-matched Gaussian elsewhere. Its whole raw
# distribution (not only mean and variance) is held to the exact pmf by a chi-square test
# on 512 x 512 pixels (cells with >= 20 expected counts, tails merged); the same test
# rejects a Gaussian that matches only mean and variance (test below), so it has power.

def _chi2_pvalue(raw, vals, pmf, min_expected=20.0):
    """p-value of a chi-square goodness-of-fit test of ``raw`` against ``(vals, pmf)``."""
    raw = raw.ravel().astype(np.int64)
    assert raw.min() >= vals[0] and raw.max() <= vals[-1], (raw.min(), raw.max())
    observed = np.bincount(raw - vals[0], minlength=vals.size).astype(np.float64)
    expected = pmf * raw.size
    # merge neighbouring cells (in order) until each holds min_expected counts
    edges, acc = [0], 0.0
    for i, e in enumerate(expected):
        acc += e
        if acc >= min_expected:
            edges.append(i + 1)
            acc = 0.0
    edges[-1] = vals.size
    obs = np.add.reduceat(observed, edges[:-1])
    exp = np.add.reduceat(expected, edges[:-1])
    chi2 = float(((obs - exp) ** 2 / exp).sum())
    return float(stats.chi2.sf(chi2, obs.size - 1)), obs.size


@pytest.mark.parametrize('sensor, signal_e, gain', [
    (IMX249, 0.0, 1.0), (IMX249, 0.5, 1.0), (IMX249, 5.0, 1.0), (IMX249, 19.5, 1.0),
    (IMX249, 0.5, K_MAX), (IMX249, 3.0, K_MAX), (IMX249, 12.0, K_MAX), (IMX249, 19.5, K_MAX),
    (IMX249, 20.5, K_MAX), (IMX249, 30.0, K_MAX), (IMX249, 60.0, K_MAX), (IMX249, 150.0, K_MAX),
    (IMX249, 25.0, 1.0), (IMX249, 1000.0, 4.0),                       # Gaussian, above 20 e-
    (IMX249, 32400.0, 1.0), (IMX249, 2050.0, K_MAX),     # partly clipped at the white level
    (FW_FIRST, 31500.0, 1.0), (FW_FIRST, 32900.0, 1.0), (FW_FIRST, 33000.0, 1.0),
    (FW_FIRST, 34500.0, 1.0), (FW_FIRST, 1e6, 1.0),     # the full-well band and beyond
], ids=lambda v: getattr(v, 'name', None) or f'{v:g}')
def test_low_counts_and_clip_regions_follow_exact_poisson(sensor, signal_e, gain):
    t = 0.01
    lam = signal_e + sensor.dark_current_e_per_s * t
    vals, pmf = _exact_raw_pmf(sensor, lam, gain)
    raw = S.capture(np.full((FLAT, FLAT), signal_e / t), t, gain, sensor,
                    np.random.default_rng(11))
    p, cells = _chi2_pvalue(raw, vals, pmf)
    assert p > 1e-3, (p, cells)


def test_chi_square_check_rejects_a_gaussian_without_the_poisson_skew():
    # mean and variance exact, skew 0: what the fast capture would be without its
    # Cornish-Fisher term; at 150 e- and maximum gain the test sees it on 512 x 512 pixels
    t, gain, signal_e = 0.01, K_MAX, 150.0
    lam = signal_e + IMX249.dark_current_e_per_s * t
    vals, pmf = _exact_raw_pmf(IMX249, lam, gain)
    g = IMX249.g1_dn_per_e * gain
    std = math.sqrt(g * g * lam + g * g * IMX249.read_noise_pre_e ** 2
                    + IMX249.read_noise_post_dn ** 2)
    x = IMX249.black_level_dn + 0.5 + g * lam \
        + std * np.random.default_rng(11).standard_normal((FLAT, FLAT))
    raw = np.clip(np.floor(x), 0, IMX249.white_level_dn)
    assert _chi2_pvalue(raw, vals, pmf)[0] < 1e-6
    fast = S.capture(np.full((FLAT, FLAT), signal_e / t), t, gain, IMX249,
                     np.random.default_rng(11))
    assert _chi2_pvalue(fast, vals, pmf)[0] > 1e-3


def test_fast_capture_mixed_frame_is_deterministic_and_right_per_region(monkeypatch):
    # five regimes side by side across several row blocks: each column group follows its
    # exact pmf; the frame depends on the seed only (not on the thread count)
    levels_e = [0.3, 8.0, 500.0, 32900.0, 1e6]                    # low, mid, band, saturated
    width = 64
    rows = 3 * S.CAPTURE_BLOCK_ROWS + 5
    phi = np.repeat(np.array(levels_e) / 0.01, width)[None].repeat(rows, 0)
    sensor = FW_FIRST
    raw = S.capture(phi, 0.01, 1.0, sensor, np.random.default_rng(5))
    monkeypatch.setattr(S, 'CAPTURE_THREADS', 1)
    assert np.array_equal(raw, S.capture(phi, 0.01, 1.0, sensor, np.random.default_rng(5)))
    assert not np.array_equal(raw, S.capture(phi, 0.01, 1.0, sensor, np.random.default_rng(6)))
    for i, level in enumerate(levels_e):
        vals, pmf = _exact_raw_pmf(sensor, level + sensor.dark_current_e_per_s * 0.01, 1.0)
        p, cells = _chi2_pvalue(raw[:, i * width:(i + 1) * width], vals, pmf)
        assert p > 1e-3, (level, p, cells)


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
        # relative SE of the measured SNR: about 1 / sqrt(2 N) = 0.28 % (the std's)
        assert abs(measured - s) / s < Z_MAX / math.sqrt(2 * raw.size)
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


@pytest.mark.parametrize('signal_e, gain', [
    (60.0, 1.0), (6000.0, 1.0), (100.0, K_MAX), (1500.0, K_MAX)])
def test_torch_path_matches_theory_to_5_standard_errors(signal_e, gain):
    """The Gaussian stand-in has the Poisson mean and variance (unclipped here)."""
    t = S.T_MAX_S                  # so that Eq. 6 splits e = K t back into (t, K)
    n = 256 * 256
    phi = np.full((256, 256), signal_e / t)
    mean, var = S.raw_mean_var(signal_e / t, t, gain, IMX249)
    g = torch.Generator().manual_seed(0)
    e = torch.tensor(t * gain, dtype=torch.float64)
    raw = S.capture_torch(torch.from_numpy(phi)[None], e, IMX249, generator=g)
    assert abs(raw.mean().item() - mean) < Z_MAX * math.sqrt(var / n)
    assert abs(raw.var().item() - var) < Z_MAX * var * math.sqrt(2 / (n - 1))
    nonoise = S.capture_torch(torch.from_numpy(phi)[None], e, IMX249, noise=False)
    np_nonoise = S.capture(phi, t, gain, IMX249, noise=False)
    assert np.array_equal(nonoise[0].numpy(), np_nonoise.astype(np.float64))


def test_huge_finite_radiance_saturates_instead_of_raising():
    rng = np.random.default_rng(0)
    white = IMX249.white_level_dn
    for value in (1e19, 1e30, 1e300, np.finfo(np.float64).max):
        phi = np.full((8, 8), value)
        phi[0, 0] = 1e4                                 # an ordinary pixel beside them
        for kw in ({}, {'noise_scale': 1.2}, {'noise': False},
                   {'source_var_e': np.full((8, 8), 1e300)}):
            raw = S.capture(phi, 0.01, 1.0, IMX249, rng, **kw)
            assert (raw.ravel()[1:] == white).all(), (value, kw)
            assert raw[0, 0] < 200
        raw = S.capture(phi, 100.0, K_MAX, IMX249, rng, noise_scale=1.2)   # overflows to inf
        assert (raw.ravel()[1:] == white).all()
        out = S.capture_torch(torch.from_numpy(phi)[None], torch.tensor(0.01), IMX249)
        assert torch.isfinite(out).all() and (out.flatten()[1:] == white).all()
    # NaN in the adaptation variance removes nothing; non-finite phi stays 0 in both paths
    phi = np.full((64, 64), 1e5)
    nan_var = np.full((64, 64), np.nan)
    assert S.capture(phi, 0.01, 1.0, IMX249, rng, source_var_e=nan_var).std() > 2
    bad = torch.tensor([[[np.nan, np.inf], [-np.inf, 1e5]]])
    out = S.capture_torch(bad, torch.tensor(0.01), IMX249, noise=False)
    ref = S.capture(bad[0].numpy(), 0.01, 1.0, IMX249, noise=False)
    assert np.array_equal(out[0].numpy(), ref.astype(np.float32))
    with pytest.raises(SensorError, match='noise_scale'):
        S.capture(phi, 0.01, 1.0, IMX249, noise_scale=float('inf'))


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
    src = S.load_sensor('imx490', hdr_source=True)
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
