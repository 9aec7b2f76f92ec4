"""Correction pairs, training (checkpoints, resume, non-finite stop) and model loading."""
import json

from neural_ae.core.correction import train as T
from neural_ae.core.correction.data import (CorrectionPairs, draw_training_kappa, load_isp,
                                            make_example, SEEDS)
from neural_ae.core.correction.model import load_corrector
from neural_ae.core.errors import ConfigError, ModelError, TrainingError
from neural_ae.core.sensor import load_sensor
from neural_ae.core.training.data import ProceduralPairs
import numpy as np
import pytest
import torch

SENSOR = load_sensor('imx249')


def _tiny(tmp_path, **over):
    values = {'name': 'tiny', 'height': 64, 'width': 64, 'crop_height': 32,
              'crop_width': 32, 'widths': (4, 8, 8), 'isp_from': '',
              'cache_dir': str(tmp_path / 'cache'), 'train_size': 2, 'val_size': 1,
              'steps': 4, 'eval_every': 2, 'checkpoint_every': 2, 'batch_size': 2,
              'val_kappas': (0.25, 4.0)}
    values.update(over)
    return T.CorrectionConfig(**values)


def test_seed_ranges_are_disjoint_from_the_project_ranges():
    starts = sorted(SEEDS.values())
    assert starts == [3_400_000, 3_500_000, 3_600_000]
    assert min(starts) > 2_100_000 + 100_000        # evaluation tests and drives below


def test_make_example_reference_is_noise_free_and_kappa_moves_the_input():
    rad = np.random.default_rng(0).lognormal(14.0, 1.0, (32, 32, 3)).astype(np.float32)
    isp = load_isp('', SENSOR)
    a = make_example(rad, SENSOR, isp, 0.25, np.random.default_rng(1))
    b = make_example(rad, SENSOR, isp, 0.25, np.random.default_rng(2))
    assert torch.equal(a['target'], b['target'])          # noise-free reference
    assert not torch.equal(a['input'], b['input'])        # noisy input
    over = make_example(rad, SENSOR, isp, 4.0, np.random.default_rng(1))
    assert float(a['input'].mean()) < float(a['target'].mean()) < float(over['input'].mean())
    assert a['kappa'] == pytest.approx(0.25, rel=1e-6)
    assert a['input'].shape == (3, 32, 32) and a['raw'].dtype == np.uint16


def test_training_kappa_draws():
    rng = np.random.default_rng(0)
    k = np.array([draw_training_kappa(rng, 1.5, 12.0, 0.0) for _ in range(400)])
    assert np.all((np.abs(np.log(k)) >= np.log(1.5) - 1e-9) & (np.abs(np.log(k)) <= np.log(12)))
    assert 0.35 < np.mean(k > 1) < 0.65
    near = np.array([draw_training_kappa(rng, 1.5, 12.0, 1.0) for _ in range(50)])
    assert np.all(np.abs(np.log(near)) <= np.log(1.5))


def test_pairs_are_deterministic_per_epoch_and_cropped(tmp_path):
    src = ProceduralPairs(SEEDS['train'], 1, 64, 64, str(tmp_path))
    ds = CorrectionPairs(src, SENSOR, load_isp('', SENSOR), seed=3, crop=(32, 32))
    assert len(ds) == 2
    a, b = ds[1], ds[1]
    assert a['input'].shape == (3, 32, 32) and torch.equal(a['input'], b['input'])
    ds.set_epoch(1)
    assert not torch.equal(ds[1]['input'], a['input'])
    with pytest.raises(ConfigError):
        CorrectionPairs(src, SENSOR, None, crop=(128, 128))[0]


def test_config_bounds_and_yaml(tmp_path):
    with pytest.raises(ConfigError, match='arch'):
        T.CorrectionConfig(arch='vgg')
    with pytest.raises(ConfigError, match='crop_height'):
        T.CorrectionConfig(crop_height=100)
    with pytest.raises(ConfigError, match='overlap'):
        T.CorrectionConfig(val_seed_start=T.CorrectionConfig().train_seed_start)
    path = tmp_path / 'c.yaml'
    path.write_text('task: correction\nsteps: 7\nbogus: 1\n')
    with pytest.raises(ConfigError, match='bogus'):
        T.load_correction_config(path)
    path.write_text('task: correction\nsteps: 7\n')
    assert T.is_correction_config(path) and T.load_correction_config(path).steps == 7
    path.write_text('task: correction\nsteps: seven\n')
    with pytest.raises(ConfigError, match='steps'):
        T.load_correction_config(path)
    path.write_text('name: hybrid\n')
    assert not T.is_correction_config(path)


def test_train_writes_checkpoints_and_resume_continues_bit_for_bit(tmp_path):
    torch.set_num_threads(1)
    cfg = _tiny(tmp_path)
    full = T.train_correction(cfg, tmp_path / 'full', progress=False)
    assert full['steps'] == 4 and full['params'] > 0
    for name in ('final.pt', 'model.pt', 'checkpoint_step000002.pt', 'curve.png',
                 'metrics.jsonl', 'config.json'):
        assert (tmp_path / 'full' / name).is_file(), name
    evals = [json.loads(x) for x in (tmp_path / 'full' / 'metrics.jsonl').read_text()
             .splitlines() if '"eval"' in x]
    assert [e['step'] for e in evals] == [2, 4]
    with pytest.raises(ConfigError, match='already holds'):
        T.train_correction(cfg, tmp_path / 'full', progress=False)
    # resuming the step-2 checkpoint in a new folder ends with the same weights
    T.train_correction(cfg, tmp_path / 'part', progress=False,
                       resume=str(tmp_path / 'full' / 'checkpoint_step000002.pt'))
    a = load_corrector(tmp_path / 'full' / 'model.pt', SENSOR)
    b = load_corrector(tmp_path / 'part' / 'model.pt', SENSOR)
    for (k, va), vb in zip(a.net.state_dict().items(), b.net.state_dict().values()):
        assert torch.equal(va, vb), k
    x = torch.rand(3, 30, 34)
    assert a.correct(x).shape == (3, 30, 34)                 # padded and cropped back
    assert a.correct_uint8(np.zeros((10, 12, 3), np.uint8)).shape == (10, 12, 3)


def test_pix2pix_trains_and_a_non_finite_loss_stops_naming_the_terms(tmp_path, monkeypatch):
    torch.set_num_threads(1)
    cfg = _tiny(tmp_path, arch='pix2pix', perceptual_weight=0.0, steps=1, d_layers=2)
    out = T.train_correction(cfg, tmp_path / 'gan', progress=False)
    assert out['d_receptive_field_px'] == 34 and out['d_params'] > 0
    monkeypatch.setattr(T, 'total_variation', lambda x, beta: x.sum() * float('nan'))
    with pytest.raises(TrainingError, match=r'non-finite loss at step 1 .*tv=nan'):
        T.train_correction(_tiny(tmp_path), tmp_path / 'nan', progress=False)


def test_load_corrector_refuses_foreign_files(tmp_path):
    (tmp_path / 'text.pt').write_text('hello')
    with pytest.raises(ModelError):
        load_corrector(tmp_path / 'text.pt', SENSOR)
    torch.save({'format': 'other'}, tmp_path / 'other.pt')
    with pytest.raises(ModelError, match='not a correction model'):
        load_corrector(tmp_path / 'other.pt', SENSOR)
    torch.save({'format': 'neural_ae.correction/1', 'arch': 'encdec',
                'net': {'widths': [4, 8], 'leak': 0.3, 'noise': False,
                        'global_context': True}, 'model': {}, 'isp': {}},
               tmp_path / 'empty.pt')
    with pytest.raises(ModelError, match='no state dict'):
        load_corrector(tmp_path / 'empty.pt', SENSOR)
