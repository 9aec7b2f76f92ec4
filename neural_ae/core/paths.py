"""
Locate the package's data: config files, sensor presets and shipped models.

Works from a source checkout (``pip install -e .``), from a colcon install (ament share
directory) and from a plain ``pip install`` (``<prefix>/share/neural_ae``).
"""
from pathlib import Path
import sys

PACKAGE = 'neural_ae'


def _candidates() -> list:
    here = Path(__file__).resolve().parents[2]
    cands = [here]
    try:  # ament_index_python is ROS-free pure Python, but optional
        from ament_index_python.packages import get_package_share_directory
        cands.append(Path(get_package_share_directory(PACKAGE)))
    except Exception:  # noqa: BLE001 - not installed or package not indexed
        pass
    cands.append(Path(sys.prefix) / 'share' / PACKAGE)
    return cands


def share_dir(sub: str) -> Path:
    """Return the first existing ``<root>/<sub>`` among the known install locations."""
    for root in _candidates():
        p = root / sub
        if p.exists():
            return p
    raise FileNotFoundError(f'neural_ae data folder {sub!r} not found in {_candidates()}')


def config_dir() -> Path:
    """Folder holding the YAML configs (``config/``)."""
    return share_dir('config')


def models_dir() -> Path:
    """Folder holding the shipped models (``models/``)."""
    return share_dir('models')
