"""ament flake8 over the package, tests, launch files and setup.py."""
from pathlib import Path

from ament_flake8.main import main_with_errors
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.flake8
@pytest.mark.linter
def test_flake8():
    paths = [str(ROOT / p) for p in ('neural_ae', 'test', 'launch', 'setup.py')]
    rc, errors = main_with_errors(argv=paths)
    assert rc == 0, 'Found %d code style errors / warnings:\n' % len(errors) + '\n'.join(errors)
