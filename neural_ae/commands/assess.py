"""
``neural-ae assess``: the exposure assessor's held-out benchmark (issue 13).

Runs assessor model files (``NAME=PATH``, e.g. the full net and its ablations) and the
no-learning baselines on the test grid (scene seeds 3,200,000.., -4..+4 EV), prints the
overall table (MAE, SSIM, SRCC, PLCC, judge accuracy, ms per image) and writes
``assess.md`` (overall, per scenario, per shift), ``assess.json`` and
``residual_maps.png`` (input, true and predicted residual of eight test frames) under
``--out``.
"""
import json
from pathlib import Path

from neural_ae.commands._args import add_device, add_out, add_progress, apply_device_threads
from neural_ae.core.errors import ConfigError


def add_parser(sub) -> None:
    """Register ``assess``."""
    p = sub.add_parser('assess', help='benchmark exposure assessors (P-IEANet) and baselines')
    p.add_argument('models', nargs='*', metavar='NAME=PATH',
                   help='assessor model files (default: assessor=models/assessor_demo.pt)')
    add_out(p, default='out/assessor/report', text='output folder', metavar='DIR')
    p.add_argument('--scenes', type=int, default=96,
                   help='test scenes (x 9 shifts) from seed 3,200,000 (default: 96)')
    p.add_argument('--size', type=int, default=128, help='square test image side [px]')
    add_progress(p, text='no log line per model')
    add_device(p, 'cpu', 1, what='the assessors')
    p.set_defaults(func=run)


def _parse_models(items) -> dict:
    out = {}
    for item in items or ['assessor=']:
        name, sep, path = item.partition('=')
        if not sep or not name:
            raise ConfigError(f'assess: expected NAME=PATH, got {item!r}')
        if name in out:
            raise ConfigError(f'assess: model name {name!r} given twice')
        out[name] = path or None
    return out


def run(args) -> int:
    """Benchmark; print the overall table; write the report."""
    from neural_ae.core.assessment.benchmark import (benchmark_tables_md, plot_residuals,
                                                     run_benchmark)
    from neural_ae.core.assessment.judge import load_assessor

    apply_device_threads(args)
    if not 1 <= args.scenes <= 10000:
        raise ConfigError(f'assess: --scenes must be in [1, 10000], got {args.scenes}')
    if args.size < 64 or args.size % 2:
        raise ConfigError(f'assess: --size must be even and >= 64, got {args.size}')
    models = {name: load_assessor(path) for name, path in _parse_models(args.models).items()}
    res = run_benchmark(models, n_scenes=args.scenes, height=args.size, width=args.size,
                        keep_maps=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    first = next(iter(models))
    md = benchmark_tables_md(res, detail=list(res['methods']))
    fig = plot_residuals(res, first, out / 'residual_maps.png')
    (out / 'assess.md').write_text('# Exposure assessor benchmark\n\n' + md +
                                   f'\n![residual maps]({fig.name})\n')
    maps = res.pop('maps')
    del maps
    (out / 'assess.json').write_text(json.dumps(res, indent=1, default=float))
    print(md.split('\n\nPer ')[0])
    print(f'wrote {out / "assess.md"}, {out / "assess.json"}, {fig}')
    return 0
