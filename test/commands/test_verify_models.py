"""
``neural-ae train --verify`` on every shipped model: its probe scenes regenerate here.

Run in an empty folder, so the scene cache starts clean (as on a fresh clone). Models of
the other trainers (assessor, correction, personalized policy: another ``format``) are
refused with a one-line error naming their format.
"""
import json
from pathlib import Path
import subprocess
import sys

from neural_ae.core.checkpoints import checkpoint_format, TRAIN_FORMAT
import pytest

ALL = sorted((Path(__file__).resolve().parents[2] / 'models').glob('*.pt'))
KINDS = {p: checkpoint_format(p) for p in ALL}
EXPOSURE = [p for p in ALL if KINDS[p] == TRAIN_FORMAT]
OTHER = [p for p in ALL if KINDS[p] != TRAIN_FORMAT]


def _verify(model, cwd):
    return subprocess.run([sys.executable, '-m', 'neural_ae.cli', 'train', '--verify',
                           str(model), '--threads', '1'], capture_output=True, text=True,
                          cwd=cwd, timeout=600)


def test_models_folder_has_the_five_demo_models():
    assert {p.stem for p in EXPOSURE} >= {'average_demo', 'gradient_demo', 'histogram_demo',
                                          'semantic_demo', 'hybrid_demo'}


@pytest.mark.parametrize('model', EXPOSURE, ids=[m.stem for m in EXPOSURE])
def test_verify_passes_for_shipped_model(model, tmp_path):
    proc = _verify(model, tmp_path)
    out = json.loads(proc.stdout)
    assert out['verified'] is True, (out['diffs'], out['tolerance'])
    assert proc.returncode == 0
    assert all(out['diffs'][k] <= out['tolerance'][k] for k in out['diffs'])
    assert out['u'] == pytest.approx(out['stored_u'], abs=out['tolerance']['u'])
    assert (tmp_path / 'out' / 'cache' / 'scenes').is_dir()    # regenerated here


@pytest.mark.parametrize('model', OTHER, ids=[m.stem for m in OTHER])
def test_verify_refuses_other_trainers_models_in_one_line(model, tmp_path):
    proc = _verify(model, tmp_path)
    err = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(err) == 1 and str(KINDS[model]) in err[0]
