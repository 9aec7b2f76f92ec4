"""``mypy neural_ae/core`` passes (pinned mypy, settings in setup.cfg, no blanket ignores)."""
from pathlib import Path
import subprocess
import sys

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.linter
def test_mypy_core():
    proc = subprocess.run([sys.executable, '-m', 'mypy', '--config-file', 'setup.cfg',
                           '--no-incremental', 'neural_ae/core'], cwd=ROOT,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    assert 'Success' in proc.stdout


def test_no_blanket_ignores():
    cfg = (ROOT / 'setup.cfg').read_text()
    assert 'ignore_errors' not in cfg
    section = cfg.split('[mypy]', 1)[1]
    assert 'ignore_missing_imports = True' not in section.split('\n[', 1)[0]
    for path in (ROOT / 'neural_ae' / 'core').rglob('*.py'):
        text = path.read_text()
        assert '# type: ignore\n' not in text, f'{path}: bare type: ignore'
        assert '# mypy: ignore-errors' not in text, path
