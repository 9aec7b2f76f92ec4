"""``neural-ae train`` never overwrites a run: an existing run folder is refused unless resumed."""
from neural_ae import cli
from neural_ae.core.errors import TrainingError
from neural_ae.core.training import engine
from neural_ae.core.training.config import config_from_dict
import pytest


def _run_folder(tmp_path, names=('metrics.jsonl', 'final.pt')):
    out = tmp_path / 'run'
    out.mkdir()
    for name in names:
        (out / name).write_text(f'{name} of the earlier run\n')
    return out


def test_a_folder_holding_a_run_is_refused_with_the_ways_out(tmp_path):
    out = _run_folder(tmp_path)
    with pytest.raises(TrainingError, match=r'holds a training run already \(final.pt, '
                       r'metrics.jsonl\); resume it with --resume .*final.pt'):
        engine.check_output(out)
    engine.check_output(out, resume=str(out / 'final.pt'))  # continuing the run is fine
    engine.check_output(tmp_path / 'fresh')                  # a new folder is fine
    (tmp_path / 'empty').mkdir()
    engine.check_output(tmp_path / 'empty')                  # so is an empty one
    (tmp_path / 'x').mkdir()
    other = _run_folder(tmp_path / 'x', names=('checkpoint_epoch002.pt',))
    with pytest.raises(TrainingError, match='no final.pt to resume from'):
        engine.check_output(other)
    (tmp_path / 'file').write_text('x')
    with pytest.raises(TrainingError, match='not a folder'):
        engine.check_output(tmp_path / 'file')


def test_train_refuses_before_writing_anything(tmp_path, capsys):
    out = _run_folder(tmp_path)
    before = {p.name: p.read_text() for p in out.iterdir()}
    cfg = config_from_dict({'name': 'guard', 'epochs': 1, 'train_size': 2, 'val_size': 0,
                            'height': 64, 'width': 96})
    with pytest.raises(TrainingError, match='holds a training run already'):
        engine.train(cfg, out, progress=False)
    cfg_path = tmp_path / 'guard.yaml'
    cfg_path.write_text('name: guard\nepochs: 1\ntrain_size: 2\nval_size: 0\n')
    assert cli.main(['train', '--config', str(cfg_path), '-o', str(out), '--no-progress']) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err and 'holds a training run already' in err[-1]
    assert {p.name: p.read_text() for p in out.iterdir()} == before
