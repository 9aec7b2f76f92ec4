"""Stage 1 / stage 2 trainers: loss falls, checkpoints resume, non-finite loss stops."""
import json

from neural_ae.core.errors import ConfigError, TrainingError
from neural_ae.core.personalized.config import personalized_config
from neural_ae.core.personalized.policy import load_policy
from neural_ae.core.personalized.training import (features, feedback_originals, mae_ev,
                                                  personalize, predict, train_stage1)
import numpy as np
import pytest
import torch


def _cfg(**kw):
    base = {'size': 48, 'epochs': 3, 'batch_size': 16, 'variants_per_scene': 4, 'lr': 0.003,
            'num_threads': 1}
    base.update(kw)
    return personalized_config(base)


def test_stage1_learns_and_resumes(tmp_path, tiny_variants, make_variants):
    val = make_variants(6, seed=1)
    cfg = _cfg(epochs=4)
    s = train_stage1(cfg, tmp_path / 'a', train=tiny_variants, val=val)
    assert len(s['curve']) == 4
    assert all(np.isfinite([c['loss'] for c in s['curve']]))
    net = load_policy(tmp_path / 'a' / 'policy.pt')
    # a trained net beats predicting 0 on the mid-grey labels (mean |v| = 1.1 EV)
    assert mae_ev(predict(net, val.images), val.ideal('mid_grey')) < 1.0
    # resume: a 2-epoch run continued to 4 gives the same weights as the straight run
    cfg2 = _cfg(epochs=2)
    train_stage1(cfg2, tmp_path / 'b', train=tiny_variants, val=val)
    s2 = train_stage1(cfg, tmp_path / 'b2', resume=tmp_path / 'b' / 'checkpoint.pt',
                      train=tiny_variants, val=val)
    assert [c['epoch'] for c in s2['curve']] == [1, 2, 3, 4]
    a = load_policy(tmp_path / 'a' / 'policy.pt').state_dict()
    b = load_policy(tmp_path / 'b2' / 'policy.pt').state_dict()
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)
    with pytest.raises(TrainingError, match='finished run'):
        train_stage1(cfg, tmp_path / 'a', train=tiny_variants, val=val)
    assert json.loads((tmp_path / 'a' / 'summary.json').read_text())['epochs'] == 4


def test_stage1_stops_on_non_finite_loss(tmp_path, tiny_variants, make_variants):
    tiny_variants.offsets[:, 0] = np.nan          # a NaN label makes the loss NaN
    with pytest.raises(TrainingError, match='non-finite loss'):
        train_stage1(_cfg(epochs=1), tmp_path, train=tiny_variants,
                     val=make_variants(3, seed=2))


def test_feedback_originals_labels():
    ideal = np.array([[0.35, 0.05, -0.15, -0.35]] * 3 + [[1.0, 0.8, 0.6, 0.4]], np.float32)
    t0, code = feedback_originals(ideal, 1.0, np.random.default_rng(0))
    assert list(t0[:3]) == [1, 1, 1] and list(code[:3]) == [0, 0, 0]
    assert code[3] == -1                  # nearest is still 0.4 EV too dark: under


def test_stage2_rl_moves_towards_the_expert(tiny_variants):
    """REINFORCE from a net predicting ~0 towards an expert whose ideal is +1 EV off."""
    torch.manual_seed(0)
    net = load_policy(None)
    v = tiny_variants
    v.offsets[:, 1] = 1.0
    ideal = v.ideal('highlights')
    feats = features(net, v.images)
    before = mae_ev(predict(net, v.images), ideal)
    cfg = _cfg(task='personalized_stage2', steps=300, lr=3e-3, batch_size=64, p_well=1.0,
               eval_every=100)
    log = personalize(net, cfg, ideal, v.variants_ev, feats)
    after = mae_ev(predict(net, v.images), ideal)
    assert log['labels']['well'] == len(v)
    assert after < before - 0.2, (before, after)
    assert all(p.requires_grad for p in net.parameters())


def test_config_rejects_bad_values():
    with pytest.raises(ConfigError, match='unknown key'):
        personalized_config({'lrr': 1})
    with pytest.raises(ConfigError, match='expert must be one of'):
        personalized_config({'expert': 'nobody'})
    with pytest.raises(ConfigError, match='lr must be'):
        personalized_config({'lr': 0})
    with pytest.raises(ConfigError, match='size must be'):
        personalized_config({'size': 8})


def test_the_study_config_loads_and_comments_every_key():
    from pathlib import Path

    from neural_ae.core.personalized.config import load_personalized_config

    path = Path(__file__).resolve().parents[3] / 'config' / 'personalized_study.yaml'
    cfg = load_personalized_config(path, task='personalized_stage2')
    assert cfg.train_size == 1000 and cfg.n_labels == 1000 and cfg.expert == 'detector'
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith('#'):
            assert '#' in line and '[' in line.split('#', 1)[1], line
