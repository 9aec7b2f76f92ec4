"""
The layers of neural_ae import only downwards (read from the source, every import counts).

Layers, bottom to top: ``core`` (ROS-free logic) < ``ros`` (conversions, parameters, QoS,
actuator) < ``nodes`` (thin ROS nodes) and ``benchmarks`` < ``commands`` (one CLI
subcommand each) < ``cli``. Inside the core: ``models`` never import ``training``;
``training`` never imports ``evaluation`` (shared metrics live in ``core/metrics``);
``metrics`` import neither; ``controllers`` import neither training nor evaluation.
Function-level (lazy) imports count as much as module-level ones.
"""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / 'neural_ae'

RULES = [
    # (modules under this prefix, may not import modules under any of these prefixes)
    ('neural_ae.core', ('neural_ae.ros', 'neural_ae.nodes', 'neural_ae.commands',
                        'neural_ae.benchmarks', 'neural_ae.cli', 'rclpy')),
    ('neural_ae.ros', ('neural_ae.nodes', 'neural_ae.commands', 'neural_ae.benchmarks',
                       'neural_ae.cli')),
    ('neural_ae.nodes', ('neural_ae.commands', 'neural_ae.benchmarks', 'neural_ae.cli')),
    ('neural_ae.benchmarks', ('neural_ae.commands', 'neural_ae.cli')),
    ('neural_ae.commands', ('neural_ae.cli',)),
    ('neural_ae.core.models', ('neural_ae.core.training', 'neural_ae.core.evaluation')),
    ('neural_ae.core.training', ('neural_ae.core.evaluation',)),
    ('neural_ae.core.metrics', ('neural_ae.core.training', 'neural_ae.core.evaluation')),
    ('neural_ae.core.controllers', ('neural_ae.core.training', 'neural_ae.core.evaluation')),
]
"""What each layer may not import (prefixes of dotted module names)."""


def module_name(path: Path) -> str:
    """Dotted name of a file of the package (``__init__`` names its package)."""
    parts = list(path.relative_to(ROOT).with_suffix('').parts)
    if parts[-1] == '__init__':
        parts = parts[:-1]
    return '.'.join(parts)


def imported_modules(source: str, module: str, is_package: bool = False) -> set:
    """Every module ``source`` imports anywhere (relative imports resolved)."""
    out = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split('.')
                base = base[:len(base) - node.level + (1 if is_package else 0)]
                name = '.'.join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ''
            out.add(name)
            out.update(f'{name}.{a.name}' for a in node.names)
    return out


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + '.')


def violations(module: str, imports: set) -> list:
    """Return ``(module, imported, rule prefix)`` for every forbidden import."""
    out = []
    for layer, forbidden in RULES:
        if not _under(module, layer):
            continue
        for name in sorted(imports):
            for bad in forbidden:
                if _under(name, bad):
                    out.append((module, name, layer))
    return out


def package_files():
    """Every Python file of the package."""
    return sorted(PACKAGE.rglob('*.py'))


def test_no_import_runs_upward():
    found = []
    for path in package_files():
        module = module_name(path)
        imports = imported_modules(path.read_text(), module, path.name == '__init__.py')
        found += violations(module, imports)
    lines = [f'{m} imports {name} (layer {layer})' for m, name, layer in found]
    assert not lines, 'imports that run upward:\n' + '\n'.join(lines)


@pytest.mark.parametrize('module,source', [
    ('neural_ae.core.scenes', 'import rclpy\n'),
    ('neural_ae.core.bags', 'def f():\n    from neural_ae.ros.conversions import x\n'),
    ('neural_ae.nodes.vehicle', 'from neural_ae.commands import vehicle\n'),
    ('neural_ae.benchmarks.replay', 'from neural_ae.commands.replay import replay_frames\n'),
    ('neural_ae.core.models.perception', 'from neural_ae.core.training import engine\n'),
    ('neural_ae.core.training.engine',
     'from neural_ae.core.evaluation.detection_metrics import A\n'),
    ('neural_ae.core.training.engine', 'from ..evaluation import report\n'),
])
def test_the_checker_catches_each_kind_of_upward_import(module, source):
    assert violations(module, imported_modules(source, module))


def test_the_checker_allows_downward_imports():
    src = ('from neural_ae.core.controllers import make_controller\n'
           'from neural_ae.core.metrics.detection import DetectionAccumulator\n'
           'import numpy\n')
    assert not violations('neural_ae.core.training.engine',
                          imported_modules(src, 'neural_ae.core.training.engine'))
    assert not violations('neural_ae.commands.replay',
                          imported_modules('from neural_ae.nodes import vehicle_args\n',
                                           'neural_ae.commands.replay'))
