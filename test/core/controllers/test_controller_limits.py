"""
Controller limits under hostile configurations and frames (issue 10).

Flicker avoidance with a minimum exposure above one light period, exact bounds as sent,
frames with NaN / inf pixels, and arithmetic at the edges of the valid options.
"""
import logging
import math

from neural_ae.core.controllers import ControllerOptions, ExposureSetting, make_controller
from neural_ae.core.controllers.base import raw_mean_dn
from neural_ae.core.controllers.classical import green_image
from neural_ae.core.sensor import first_green_offset, load_sensor
import numpy as np
import pytest
import torch

SENSOR = load_sensor('imx249')
WHITE = SENSOR.white_level_dn
BLACK = SENSOR.black_level_dn
K_MAX = SENSOR.max_gain


def _average(**opts):
    return make_controller('average', ControllerOptions(**opts), sensor=SENSOR)


# --------------------------------------------------------------------------- flicker


def test_minimum_above_one_period_gives_whole_periods_inside_the_bounds():
    # min 12 ms, max 25 ms, 50 Hz: 20 ms is the only whole number of 10 ms periods.
    lim = ControllerOptions(min_exposure_us=12000.0, max_exposure_us=25000.0,
                            flicker='50hz').resolve(SENSOR)
    e_lo, e_hi = lim.e_bounds()
    assert e_lo == pytest.approx(0.020, rel=1e-12) and e_hi == pytest.approx(0.020 * K_MAX)
    # 15 ms is below the darkest whole-period setting: 20 ms at the lowest gain, flagged.
    t, g, clamped = lim.split(0.015)
    assert (t, g, clamped) == (pytest.approx(0.020, rel=1e-12), 1.0, True)
    for e in np.geomspace(e_lo, e_hi, 30):
        t, g, clamped = lim.split(float(e))
        assert t == pytest.approx(0.020, rel=1e-12) and 1.0 <= g <= K_MAX
        assert t * g == pytest.approx(e, rel=1e-12) and not clamped


@pytest.mark.parametrize('flicker, period', [('50hz', 0.010), ('60hz', 1 / 120)])
def test_whole_periods_deliver_exactly_what_was_asked_whenever_they_can(flicker, period):
    lim = ControllerOptions(min_exposure_us=1.37 * period * 1e6, max_exposure_us=50000.0,
                            flicker=flicker).resolve(SENSOR)
    e_lo, e_hi = lim.e_bounds()
    assert e_lo == pytest.approx(2 * period, rel=1e-9)
    for e in np.geomspace(e_lo, e_hi, 200):
        t, g, clamped = lim.split(float(e))
        k = t / period
        assert abs(k - round(k)) < 1e-9 and lim.t_lo_s <= t <= lim.t_hi_s
        assert lim.g_lo <= g <= lim.g_hi
        assert t * g == pytest.approx(e, rel=1e-12) and not clamped


def test_saturated_frames_with_a_step_limit_walk_down_and_never_ratchet_up():
    opts = ControllerOptions(min_exposure_us=12000.0, max_exposure_us=25000.0,
                             flicker='50hz', max_step_ev=0.05)
    c = make_controller('average', opts, sensor=SENSOR)
    prev = c.reset(ExposureSetting(20000.0, 6.0))
    white = np.full((32, 32), WHITE, np.uint16)
    steps = []
    for _ in range(40):
        d = c.step(white, prev)
        assert d.setting.exposure_time_us == 20000.0
        steps.append(math.log2(d.setting.e_s / prev.e_s))
        prev = d.setting
    assert max(steps) <= 1e-12 and min(steps) >= -0.05 - 1e-9
    assert steps[0] == pytest.approx(-0.05) and prev == ExposureSetting(20000.0, 0.0)


def test_a_gain_range_too_narrow_to_bridge_two_periods_never_delivers_more_than_asked():
    lim = ControllerOptions(min_exposure_us=12000.0, max_exposure_us=45000.0, max_gain_db=0.0,
                            flicker='50hz').resolve(SENSOR)
    assert lim.e_bounds() == (pytest.approx(0.020), pytest.approx(0.040))
    # Whole-period settings are 20, 30 and 40 ms at 0 dB: the largest not above the wish.
    for e, want in ((0.020, 0.020), (0.025, 0.020), (0.0299, 0.020), (0.030, 0.030),
                    (0.035, 0.030), (0.040, 0.040), (0.050, 0.040), (0.015, 0.020)):
        t, g, _ = lim.split(e)
        assert (t, g) == (pytest.approx(want, rel=1e-12), 1.0), e
    # A moderate range (0-3 dB): 10 ms reaches 14.1 ms, 20 ms starts at 20 ms; 15 ms asked.
    lim = ControllerOptions(max_gain_db=3.0, max_exposure_us=45000.0,
                            flicker='50hz').resolve(SENSOR)
    t, g, _ = lim.split(0.015)
    assert t == pytest.approx(0.010) and g == pytest.approx(10 ** (3 / 20))


def test_the_step_window_bounds_flicker_rounding_and_wins_when_no_period_is_inside():
    lim = ControllerOptions(min_exposure_us=12000.0, max_exposure_us=45000.0, max_gain_db=0.0,
                            flicker='50hz').resolve(SENSOR)
    # Next whole period down (20 ms) is outside the window, the next one up is inside.
    t, g, _ = lim.split(0.029, window=(0.0285, 0.0305))
    assert (t, g) == (pytest.approx(0.030), 1.0)
    # Neither 20 nor 30 ms is inside: the time is not rounded (step limit > whole periods).
    t, g, clamped = lim.split(0.025, window=(0.024, 0.026))
    assert (t, g, clamped) == (pytest.approx(0.025), 1.0, False)


def test_a_controller_between_two_whole_periods_holds_when_the_gap_exceeds_its_step():
    opts = ControllerOptions(min_exposure_us=12000.0, max_exposure_us=45000.0, max_gain_db=0.0,
                             flicker='50hz', max_step_ev=0.1)
    c = make_controller('average', opts, sensor=SENSOR)
    prev = c.reset(ExposureSetting(20000.0, 0.0))
    dark = np.full((32, 32), BLACK + 100, np.uint16)     # wants far more exposure
    for _ in range(5):
        d = c.step(dark, prev)
        # 30 ms is 0.58 EV away, more than the 0.1 EV step: 20 ms (whole) is held.
        assert d.setting == ExposureSetting(20000.0, 0.0) and d.info['step_limited']
        prev = d.setting
    # Downwards: 30 ms asked to go 0.1 EV darker; the whole period below (20 ms) is outside
    # the step, so the nearest whole-period setting inside it, 30 ms itself, is held.
    prev = c.reset(ExposureSetting(30000.0, 0.0))
    for _ in range(5):
        d = c.step(np.full((32, 32), WHITE, np.uint16), prev)
        assert d.setting == ExposureSetting(30000.0, 0.0) and d.info['step_limited']
        prev = d.setting


def test_no_whole_period_inside_the_bounds_is_warned_and_the_bounds_hold(caplog):
    opts = ControllerOptions(min_exposure_us=12000.0, max_exposure_us=19000.0, flicker='50hz')
    with caplog.at_level(logging.WARNING, logger='neural_ae'):
        lim = opts.resolve(SENSOR)
    assert 'no whole 10 ms light period' in caplog.text and 'the bounds win' in caplog.text
    assert lim.e_bounds() == (pytest.approx(0.012), pytest.approx(0.019 * K_MAX))
    t, g, clamped = lim.split(0.015)
    assert (t, g, clamped) == (pytest.approx(0.015), 1.0, False)
    c = make_controller('average', opts, sensor=SENSOR)
    used = c.reset(ExposureSetting(15000.0, 0.0))
    for level in (WHITE, BLACK):
        s = c.step(np.full((32, 32), level, np.uint16), used).setting
        assert 12000.0 <= s.exposure_time_us <= 19000.0 and 0.0 <= s.gain_db <= 24.0


# --------------------------------------------------------------------------- exact bounds


def test_commands_land_exactly_on_the_configured_bounds(const_net):
    # Each of these bounds comes back a hair outside through SI units and back.
    assert 100.0 * 1e-6 * 1e6 < 100.0 and 3949.0 * 1e-6 * 1e6 > 3949.0
    assert 20 * math.log10(10 ** (3.3 / 20)) < 3.3 and 20 * math.log10(10 ** (3.8 / 20)) > 3.8
    opts = {'min_exposure_us': 100.0, 'max_exposure_us': 3949.0, 'min_gain_db': 3.3,
            'max_gain_db': 3.8, 'smoothing': 'none'}
    for name in ('average', 'gradient', 'histogram_nn'):
        kw = {'model': const_net(1e6)} if name == 'histogram_nn' else {}
        c = make_controller(name, ControllerOptions(**opts), sensor=SENSOR, **kw)
        assert c.reset(ExposureSetting(1.0, 0.0)) == ExposureSetting(100.0, 3.3)
        assert c.reset(ExposureSetting(1e6, 40.0)) == ExposureSetting(3949.0, 3.8)
        if name == 'histogram_nn':
            c.model.value = 1e-6
        used = c.reset(ExposureSetting(500.0, 3.5))
        for _ in range(40):
            used = c.step(np.full((32, 32), WHITE, np.uint16), used).setting
        assert used == ExposureSetting(100.0, 3.3), name
        if name == 'gradient':
            continue                       # climbs 4 % a frame on a black frame
        if name == 'histogram_nn':
            c.model.value = 1e6
        for _ in range(20):
            used = c.step(np.full((32, 32), BLACK, np.uint16), used).setting
        assert used == ExposureSetting(3949.0, 3.8), name


def test_reset_keeps_a_setting_inside_the_bounds_exactly_and_fixed_holds_its_setting():
    c = _average()
    inside = ExposureSetting(1234.5678, 1.2345)
    assert c.reset(inside) is inside
    held = ExposureSetting(3000.0, 2.0)
    f = make_controller('fixed', ControllerOptions(max_step_ev=0.1), sensor=SENSOR,
                        setting=held)
    # The camera is given the held setting at reset, so no command ever steps.
    assert f.reset(ExposureSetting(100.0, 0.0)) == held
    assert f.step(np.full((32, 32), WHITE, np.uint16)).setting == held


# --------------------------------------------------------------------------- frames


@pytest.mark.parametrize('dtype', [np.float32, np.float64])
@pytest.mark.parametrize('bad', [np.nan, np.inf, -np.inf])
def test_non_finite_pixels_are_left_out_of_the_mean(dtype, bad, const_net):
    clean = np.full((32, 32), 1000.0, dtype)
    clean[:, ::2] = 400.0
    dirty = clean.copy()
    dirty[3, 5] = dirty[10, 11] = bad         # two pixels at 400 DN ... one at 1000 DN
    dirty[0, :] = bad                         # ... and a whole row
    keep = np.isfinite(dirty)
    assert raw_mean_dn(dirty) == pytest.approx(clean[keep].astype(np.float64).mean(), rel=1e-12)
    assert raw_mean_dn(clean.astype(np.uint16)) == pytest.approx(700.0)
    used = ExposureSetting(1000.0, 0.0)
    ref = _average().step(np.where(keep, dirty, clean[keep].mean()).astype(dtype), used)
    d = _average().step(dirty, used)
    assert d.setting.e_s == pytest.approx(ref.setting.e_s, rel=1e-9) and not d.fallback
    # Mean ~700 DN: 1.7 EV more exposure (x 3.2), not the +8 EV of a zero mean.
    assert 2.5 < d.setting.e_s / used.e_s < 4.0
    # A network's fallback to Average AE measures the same way.
    nn_c = make_controller('histogram_nn', ControllerOptions(smoothing='none'), sensor=SENSOR,
                           model=const_net(math.nan))
    d = nn_c.step(dirty, used)
    assert d.fallback and d.setting.e_s == pytest.approx(ref.setting.e_s, rel=1e-9)


def test_gradient_ae_fills_non_finite_pixels_with_the_mean_of_the_finite_ones():
    rng = np.random.default_rng(0)
    raw = rng.uniform(200.0, 3000.0, (64, 80)).astype(np.float32)
    raw[rng.integers(0, 64, 40), rng.integers(0, 80, 40)] = np.nan
    raw[5, 7], raw[9, 9] = np.inf, -np.inf
    dy, dx = first_green_offset(SENSOR.bayer_pattern)
    green = raw[dy::2, dx::2].astype(np.float64)
    ok = np.isfinite(green)
    assert 0 < ok.sum() < ok.size
    filled = np.where(ok, green, green[ok].mean())
    expect = np.clip((filled - BLACK) / (WHITE - BLACK), 0.0, 1.0)
    # Not 0 (a black pixel and a false edge) nor 1: the mean of the finite green pixels.
    assert np.allclose(green_image(raw, SENSOR), expect, atol=1e-6)
    assert green_image(np.full((16, 16), np.nan, np.float32), SENSOR).max() == 0.0


@pytest.mark.parametrize('name', ['fixed', 'average', 'gradient', 'histogram_nn',
                                  'semantic_nn', 'hybrid_nn', 'oracle'])
def test_a_frame_without_finite_pixels_holds_the_last_command(name, caplog, const_net):
    opts = ControllerOptions(ev_compensation=1.0, latency_frames=1, smoothing='none')
    kw = {'model': const_net(2.0)} if name.endswith('_nn') else {}
    c = make_controller(name, opts, sensor=SENSOR, **kw)
    if name == 'oracle':
        c.set_scene(np.full((8, 8, 3), 3e6, np.float32))
    feats = torch.zeros(1, 128, 4, 4)
    c.reset(ExposureSetting(1000.0, 0.0))
    first = c.step(np.full((32, 32), 500.0, np.float32), features=feats)
    with caplog.at_level(logging.WARNING, logger='neural_ae'):
        for bad in (np.nan, np.inf, -np.inf):
            d = c.step(np.full((32, 32), bad, np.float32), features=feats)
            assert d.setting == first.setting and d.fallback and not d.converged
            assert d.info['hold_reason'].startswith('no finite pixel')
    assert caplog.text.count('no finite pixel; the last command is held') == 1   # once


# --------------------------------------------------------------------------- arithmetic


@pytest.mark.parametrize('kwargs, word', [
    ({'m_exp': 1e300}, 'm_exp'), ({'m_exp': 1000.5}, 'm_exp'),
    ({'max_step_ev': 13.0}, 'max_step_ev'), ({'max_step_ev': math.inf}, 'max_step_ev'),
    ({'adaptive_scale_ev': 100.0}, 'adaptive_scale_ev'),
    ({'adaptive_scale_ev': 0.0}, 'adaptive_scale_ev'),
    ({'converged_ev': 7.0}, 'converged_ev'), ({'converged_ev': math.inf}, 'converged_ev'),
    ({'ev_compensation': 7.0}, 'ev_compensation')])
def test_options_get_upper_bounds(kwargs, word):
    with pytest.raises(ValueError, match=word) as info:
        ControllerOptions(**kwargs)
    assert '\n' not in str(info.value)
    edge = {k: {'m_exp': 1000.0, 'max_step_ev': 12.0, 'adaptive_scale_ev': 12.0,
                'converged_ev': 6.0, 'ev_compensation': 6.0}[k] for k in kwargs}
    ControllerOptions(**edge)


@pytest.mark.parametrize('ev', [-6.0, 0.0, 6.0])
def test_underflowing_exposure_values_and_tiny_scales_never_raise(ev, const_net):
    # A 1 us, -900 dB frame of 1e300 DN: Average AE's wish underflows to 0 (was a
    # ZeroDivisionError); its target is the darkest setting.
    c = _average(ev_compensation=ev)
    c.reset(ExposureSetting(1000.0, 0.0))
    d = c.step(np.full((16, 16), 1e300), ExposureSetting(1.0, -900.0))
    assert d.setting == ExposureSetting(SENSOR.min_exposure_us, 0.0) and d.clamped
    # Adaptive smoothing with a scale this small saturates mu to 0 (was an OverflowError).
    c = _average(smoothing='adaptive', adaptive_scale_ev=1e-300, ev_compensation=ev)
    used = c.reset(ExposureSetting(1000.0, 0.0))
    d = c.step(np.full((32, 32), BLACK + 100, np.uint16), used)
    assert d.info['mu'] == 0.0 and d.setting.e_s == pytest.approx(d.target_e_s, rel=1e-9)
    # A network at the widest m_exp proposing the smallest positive float.
    c = make_controller('histogram_nn', ControllerOptions(m_exp=1000.0, ev_compensation=ev,
                                                          smoothing='ema'),
                        sensor=SENSOR, model=const_net(5e-324))
    used = c.reset(ExposureSetting(1000.0, 0.0))
    d = c.step(np.full((32, 32), 1000, np.uint16), used)
    assert not d.fallback and d.info['u_clipped']
    target = max(1e-3 / 1000 * 2 ** ev, SENSOR.min_exposure_s)
    assert d.target_e_s == pytest.approx(target, rel=1e-12)
    assert d.setting.e_s == pytest.approx(1e-3 ** 0.9 * target ** 0.1, rel=1e-9)
