"""The study end to end on tiny synthetic variants, with a stand-in judge (issue 13's)."""
from neural_ae.core.personalized.config import personalized_config
from neural_ae.core.personalized.policy import load_policy
from neural_ae.core.personalized.study import run_study, tables_markdown
from neural_ae.core.personalized.training import features, personalize, predict_heads
import numpy as np
import torch


class _BrightnessJudge:
    """Labels by mean brightness: what a judge does, without a network."""

    under_threshold = over_threshold = 0.1
    meta = {'path': 'stand-in'}

    def label(self, rgb) -> str:
        m = float(np.mean(rgb)) / 255.0
        return 'under' if m < 0.35 else 'over' if m > 0.65 else 'well'


def _cfg(**kw):
    base = {'task': 'personalized_stage2', 'size': 48, 'steps': 40, 'batch_size': 32,
            'eval_every': 20, 'num_threads': 1, 'n_labels': 12}
    base.update(kw)
    return personalized_config(base)


def test_feedback_from_another_source_drives_the_policy(tiny_variants):
    torch.manual_seed(0)
    net = load_policy(None)
    v = tiny_variants
    feats = features(net, v.images)
    before = predict_heads(net, feats).mean()
    n = len(v)
    under = (np.zeros(n, np.int64), np.full(n, -1, np.int8))   # "too dark" everywhere
    personalize(net, _cfg(steps=200, lr=3e-3, p_well=1.0), v.ideal('mid_grey'),
                v.actual_ev, feats, feedback=under)
    assert predict_heads(net, feats).mean() > before + 0.2


def test_run_study_with_a_judge_reports_its_row(tiny_variants, make_variants):
    torch.manual_seed(0)
    base = load_policy(None)
    res = run_study(base, _cfg(), tiny_variants, make_variants(6, seed=1),
                    ['mid_grey', 'highlights'], [6], log=lambda s: None,
                    judge=_BrightnessJudge())
    j = res['judge']
    assert set(j['mae']) == set(tiny_variants.experts)
    assert sum(j['labels'].values()) == res['n_labels'] == 12
    assert all(0.0 <= a <= 100.0 for a in j['agreement'].values())
    text = tables_markdown(res)
    assert 'Judge-driven personalization' in text and 'stand-in' in text
    assert res['labels_sweep']['mid_grey'][6] >= 0
