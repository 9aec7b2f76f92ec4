"""neural_ae.core must stay ROS-free: no rclpy, no message packages, statically or at run time."""
import ast
from pathlib import Path
import subprocess
import sys

CORE = Path(__file__).resolve().parents[1] / 'neural_ae' / 'core'
FORBIDDEN_PREFIXES = ('rclpy', 'rcl_interfaces', 'cv_bridge', 'launch', 'rosbag2_py')


def _forbidden(name: str) -> bool:
    top = name.split('.')[0]
    return top.startswith(FORBIDDEN_PREFIXES) or top.endswith('_msgs') or top.endswith('_srvs')


def test_core_sources_import_no_ros():
    offenders = []
    for path in CORE.rglob('*.py'):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            offenders += [f'{path.name}: {n}' for n in names if _forbidden(n)]
    assert not offenders, f'neural_ae.core imports ROS: {offenders}'


def test_importing_core_loads_no_ros_module():
    code = (
        'import sys, pkgutil, importlib, neural_ae.core as c\n'
        'for m in pkgutil.walk_packages(c.__path__, "neural_ae.core."):\n'
        '    importlib.import_module(m.name)\n'
        'bad = [m for m in sys.modules if m.split(".")[0].startswith(("rclpy", "rcl_"))'
        ' or m.split(".")[0].endswith("_msgs")]\n'
        'print(",".join(bad))\n'
    )
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == '', f'ROS modules loaded by neural_ae.core: {out.stdout}'


def test_forbidden_detector_catches_rclpy():
    assert _forbidden('rclpy.node') and _forbidden('sensor_msgs.msg')
    assert not _forbidden('numpy') and not _forbidden('torch')
