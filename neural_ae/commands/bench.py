"""``neural-ae bench``: run benchmark suites and print their figures as JSON."""
import importlib
import json
import pkgutil
import platform
import time

import neural_ae.benchmarks as suites_pkg


def available_suites() -> list:
    """Names of the benchmark modules in :mod:`neural_ae.benchmarks`."""
    return sorted(m.name for m in pkgutil.iter_modules(suites_pkg.__path__)
                  if not m.name.startswith('_'))


def add_parser(sub) -> None:
    """Register ``bench``."""
    p = sub.add_parser('bench', help='latency and throughput figures as JSON')
    p.add_argument('--suite', action='append', choices=available_suites(),
                   help='suite to run (repeatable; default: all)')
    p.add_argument('--quick', action='store_true', help='fewer repetitions')
    p.add_argument('--output', '-o', help='also write the JSON to this file')
    p.set_defaults(func=run)


def run(args) -> int:
    """Run the selected suites and print one JSON document."""
    import torch
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
        report['suites'][name] = module.run(quick=args.quick)
    text = json.dumps(report, indent=2)
    print(text)
    if args.output:
        with open(args.output, 'w') as f:
            f.write(text + '\n')
    return 0
