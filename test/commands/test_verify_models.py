"""``neural-ae train --verify`` on every shipped model: its probe scenes regenerate here."""
import json
from pathlib import Path
import subprocess
import sys

import pytest

MODELS = sorted((Path(__file__).resolve().parents[2] / 'models').glob('*.pt'))


def test_models_folder_has_models():
    assert len(MODELS) >= 5


@pytest.mark.parametrize('model', MODELS, ids=[m.stem for m in MODELS])
def test_verify_passes_for_shipped_model(model, tmp_path):
    proc = subprocess.run([sys.executable, '-m', 'neural_ae.cli', 'train', '--verify',
                           str(model), '--threads', '1'], capture_output=True, text=True,
                          cwd=tmp_path, timeout=600)
    out = json.loads(proc.stdout)
    assert out['verified'] is True, (out['diffs'], out['tolerance'])
    assert proc.returncode == 0
    assert max(out['diffs'].values()) <= max(out['tolerance'].values())
    assert out['u'] == pytest.approx(out['stored_u'], abs=out['tolerance']['u'])
