"""Labels from the HDR scenes, metrics and baselines of the assessor (issue 13)."""
from neural_ae.core.assessment import labels as L
from neural_ae.core.assessment.errors import AssessmentError
from neural_ae.core.assessment.judge import heatmap_rgb, judge_label, truth_label, \
    tune_thresholds
from neural_ae.core.assessment.metrics import (baseline_map, BASELINES, fit_mean_luma,
                                               holistic_metrics, pixel_metrics, scores_of)
from neural_ae.core.scenes import SCENARIOS
import numpy as np
import pytest


@pytest.fixture(scope='module')
def ladder():
    """One validation scene at -3 .. +3 EV, gain 0 dB."""
    return [L.render_example(L.ExampleSpec(L.VAL_SEED_START, s, 0.0, 1), 64, 64)
            for s in (-3.0, -1.0, 0.0, 1.0, 3.0)]


def test_residual_sign_and_ideal(ladder):
    means = [float(e.residual.mean()) for e in ladder]
    assert means[0] > means[1] > 0.05            # under-exposed: positive, grows with the error
    assert abs(means[2]) < 0.05                  # ideal: near 0 (noise only)
    assert means[4] < means[3] < -0.05           # over-exposed: negative
    assert ladder[2].score > max(e.score for e in ladder if e is not ladder[2])
    for e in ladder:
        assert e.rgb.shape == (64, 64, 3) and e.residual.shape == (64, 64)
        assert e.residual.min() >= -1 and e.residual.max() <= 1
        assert np.allclose(e.rgb * 255, np.round(e.rgb * 255), atol=1e-3)    # 8-bit


def test_noise_counts_as_under_exposure():
    lo = L.render_example(L.ExampleSpec(L.VAL_SEED_START + 2, -2.0, 0.0, 3), 64, 64)
    hi = L.render_example(L.ExampleSpec(L.VAL_SEED_START + 2, -2.0, 24.0, 3), 64, 64)
    # same exposure, 24 dB more gain (16x shorter time): noisier, so more positive
    assert hi.residual.mean() > lo.residual.mean()


def test_residual_map_definition():
    r = L.residual_map(np.array([[0.5, 0.5, 0.9]]), np.array([[0.3, 0.8, 0.1]]),
                       np.array([[0.0, 0.05, 0.0]]))
    assert r.tolist()[0] == pytest.approx([0.4, -0.5, 1.0])


def test_seed_ranges_and_scenarios():
    assert L.TRAIN_SEED_START < L.VAL_SEED_START < L.TEST_SEED_START
    assert L.TEST_SEED_START == 3_200_000
    assert {L.scenario_of(L.TEST_SEED_START + i) for i in range(8)} == set(SCENARIOS)
    specs = L.test_specs(L.TEST_SEED_START, 2)
    assert len(specs) == 2 * len(L.TEST_SHIFTS_EV)
    assert specs == L.test_specs(L.TEST_SEED_START, 2)       # deterministic
    with pytest.raises(AssessmentError, match='shift_ev'):
        L.render_example(L.ExampleSpec(1, float('nan'), 0.0, 0))


def test_pixel_and_holistic_metrics():
    rng = np.random.default_rng(0)
    true = np.clip(rng.normal(0, 0.3, (6, 32, 32)), -1, 1).astype(np.float32)
    m = pixel_metrics(true, true)
    assert np.allclose(m['mae'], 0) and np.allclose(m['ssim'], 1, atol=1e-6)
    worse = pixel_metrics(np.zeros_like(true), true)
    assert (worse['mae'] > 0.1).all() and (worse['ssim'] < 0.5).all()
    s = scores_of(true)
    h = holistic_metrics(s, 2 * s + 1)
    assert h['srcc'] > 0.9 and h['plcc'] > 0.9
    assert holistic_metrics(-s, s)['srcc'] < -0.9
    with pytest.raises(AssessmentError, match='11 x 11'):
        pixel_metrics(np.zeros((1, 8, 8)), np.zeros((1, 8, 8)))


def test_baselines(ladder):
    mid, gain = fit_mean_luma([e.rgb for e in ladder], [e.residual for e in ladder])
    assert 0 < mid < 1 and gain > 0
    for name in BASELINES:
        maps = [baseline_map(name, e.rgb, mid, gain) for e in ladder]
        assert all(m.shape == (64, 64) and np.abs(m).max() <= 1 for m in maps)
    dark = baseline_map('mean_luma', ladder[0].rgb, mid, gain)
    bright = baseline_map('mean_luma', ladder[4].rgb, mid, gain)
    assert dark.mean() > 0 > bright.mean()
    clipped = baseline_map('clipped_fraction', ladder[4].rgb)
    assert (clipped < 0).mean() > (baseline_map('clipped_fraction', ladder[2].rgb) < 0).mean()
    with pytest.raises(AssessmentError, match='unknown baseline'):
        baseline_map('histogram', ladder[0].rgb)


def test_judge_rule_and_threshold_tuning():
    assert truth_label(-1.0) == 'under' and truth_label(0.5) == 'well' and truth_label(2) == 'over'
    assert judge_label(0.2, 0.1, 0.1) == 'under'
    assert judge_label(-0.2, 0.1, 0.1) == 'over'
    assert judge_label(0.05, 0.1, 0.1) == 'well'
    m = [0.4, 0.3, 0.01, -0.02, -0.3, -0.5]
    tu, to, acc = tune_thresholds(m, ['under', 'under', 'well', 'well', 'over', 'over'])
    assert acc == 1.0 and 0.01 <= tu < 0.3 and 0.02 <= to < 0.3


def test_heatmap_colours():
    h = heatmap_rgb(np.array([[0.0, -1.0, 1.0]], np.float32))
    assert h.dtype == np.uint8 and h.shape == (1, 3, 3)
    assert h[0, 0].tolist() == [0, 0, 0]
    assert h[0, 1].tolist() == [255, 255, 0]         # over: yellow
    assert h[0, 2].tolist() == [0, 255, 255]         # under: cyan
