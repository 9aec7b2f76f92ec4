"""
``neural-ae bench``: run benchmark suites and print their figures as JSON.

A suite is a module of :mod:`neural_ae.benchmarks` with ``run(quick)``; a suite whose
``run`` also takes ``device`` and/or ``progress`` gets ``--device`` (resolved) and
``not --no-progress``. ``--threads`` sets torch's CPU threads for every suite.
"""
import importlib
import inspect
import json
import logging
import pkgutil
import platform
import time

import neural_ae.benchmarks as suites_pkg
from neural_ae.commands._args import add_device, add_out, add_progress, apply_device_threads

logger = logging.getLogger(__name__)


def available_suites() -> list:
    """Names of the benchmark modules in :mod:`neural_ae.benchmarks`."""
    return sorted(m.name for m in pkgutil.iter_modules(suites_pkg.__path__)
                  if not m.name.startswith('_'))


def _suite_options(name: str, run, device: str, progress: bool) -> dict:
    """``device`` / ``progress`` for a suite whose ``run`` takes them (others run on the CPU)."""
    params = inspect.signature(run).parameters
    options = {k: v for k, v in (('device', device), ('progress', progress)) if k in params}
    if device != 'cpu' and 'device' not in options:
        logger.warning('bench suite %s runs on the CPU only; --device %s ignored', name, device)
    return options


def add_parser(sub) -> None:
    """Register ``bench``."""
    p = sub.add_parser('bench', help='latency and throughput figures as JSON')
    p.add_argument('--suite', action='append', choices=available_suites(),
                   help='suite to run (repeatable; default: all)')
    p.add_argument('--quick', action='store_true', help='fewer repetitions')
    add_out(p, text='also write the JSON to this file', aliases=('--output',))
    add_progress(p, text='no progress bars (suites that have them)')
    add_device(p, what='the suites that take one')
    p.set_defaults(func=run)


def run(args) -> int:
    """Run the selected suites and print one JSON document."""
    import torch
    device = apply_device_threads(args)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    report = {
        'machine': {'platform': platform.platform(), 'processor': platform.machine(),
                    'torch_threads': torch.get_num_threads(),
                    'cuda': torch.cuda.is_available()},
        'date': time.strftime('%Y-%m-%dT%H:%M:%S%z'),
        'suites': {},
    }
    for name in args.suite or available_suites():
        module = importlib.import_module(f'neural_ae.benchmarks.{name}')
        report['suites'][name] = module.run(quick=args.quick, **_suite_options(
            name, module.run, device, not args.no_progress))
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        with open(args.out, 'w') as f:
            f.write(text + '\n')
    return 0
