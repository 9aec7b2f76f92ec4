"""
``neural-ae evaluate``: the paper's shift protocol, closed-loop drives, HDR bags; report.

``--protocol shift|drive|bag|all`` (``all`` = shift + drive, + bag with ``--bag``);
``--quick`` applies the ``quick:`` section of ``config/evaluate.yaml`` (fewer pairs,
repeats and frames, a coarser oracle sweep: about 20-30 minutes on 2 CPU cores). Writes
``report.md``, ``results.json`` and PNG figures to ``--out``; ``--benchmarks`` also
refreshes ``BENCHMARKS.md`` and ``docs/benchmarks/``. See
:mod:`neural_ae.core.evaluation` for the protocols and
:mod:`neural_ae.core.evaluation.report` for the report.

The bag's radiance is calibrated with ``--bag-radiance-scale`` (``auto``: a bag that
declares e-/s as is, any other scaled to the sensor's exposure range,
:mod:`neural_ae.core.calibration`); the factor is printed and recorded in the settings.
Every closed-loop run whose camera sat at an exposure bound for more than 20 % of its
frames is named in the warnings. The output folder never lies inside the bag, and a
folder holding a previous ``report.md`` / ``results.json`` is refused unless ``--force``
(checked before anything runs).
"""
import datetime
import math
import os
from pathlib import Path
import platform
import shlex
import subprocess
import sys
import time

from neural_ae.commands._args import add_device, add_out, add_progress, apply_device_threads
from neural_ae.commands._outputs import add_force, check_output, is_inside
from neural_ae.core.errors import EvaluationError

PROTOCOLS = ('shift', 'drive', 'bag', 'all', 'correction')


def add_parser(sub) -> None:
    """Register ``evaluate``."""
    p = sub.add_parser(
        'evaluate', help="benchmarks: the paper's shift protocol (Table 1), closed-loop drives, "
        'HDR bags; Markdown report with figures',
        description='Evaluate exposure controllers with their detectors: shift protocol '
        '(paper Sec. 6.1), closed-loop drives with illumination events (mAP + convergence, '
        'overshoot, flicker), or a labelled HDR bag. Writes report.md, results.json and PNGs.')
    p.add_argument('--protocol', choices=PROTOCOLS, default='all',
                   help='which protocol(s) to run (all = shift + drive, + bag with --bag)')
    p.add_argument('--quick', action='store_true',
                   help="the config's quick settings (CPU: about 20-30 min on 2 cores)")
    p.add_argument('--config', help='evaluation YAML (default config/evaluate.yaml)')
    p.add_argument('--models', help='folder of training checkpoints (default: config '
                   'models_dir, i.e. models/)')
    p.add_argument('--checkpoint', action='append', default=[], metavar='METHOD=PATH',
                   help='use this checkpoint for a method (e.g. hybrid_nn=out/x/model.pt); '
                   'repeatable')
    p.add_argument('--methods', help='comma-separated subset of fixed,average,gradient,'
                   'histogram_nn,semantic_nn,hybrid_nn')
    p.add_argument('--no-oracle', action='store_true',
                   help='skip the oracle and the causal ceiling (faster)')
    p.add_argument('--allow-untrained', action='store_true',
                   help='run methods without a checkpoint with random weights (mechanics '
                   'only; flagged UNTRAINED everywhere)')
    p.add_argument('--bag', help='HDR rosbag2 with labels.json for --protocol bag')
    p.add_argument('--bag-topic', default=None, help='radiance topic of the bag')
    p.add_argument('--bag-max-frames', type=int, default=None, help='use at most N frames')
    p.add_argument('--bag-radiance-scale', default='auto', metavar='auto|FACTOR',
                   help="factor from the bag's radiance to e-/s of the sensor model (auto: 1 "
                   'for a bag that declares e-/s, else its median e_base at the geometric '
                   'middle of the exposure range)')
    p.add_argument('--split', choices=('test', 'val'), default='test',
                   help='scene seeds: held-out test seeds (default) or validation seeds '
                   '(for tuning, e.g. the smoothing)')
    p.add_argument('--pairs', type=int, help='override the number of shift pairs')
    p.add_argument('--repeats', type=int, help='override the number of repeats')
    p.add_argument('--adaptive-mu', type=float, help='override adaptive_mu')
    p.add_argument('--adaptive-scale-ev', type=float, help='override adaptive_scale_ev')
    p.add_argument('--latency', metavar='L[,L...]',
                   help='actuation latencies of the drive protocol [frames], comma-separated, '
                   'each in [0, 30] (e.g. 0,1,2; default: config latency_frames, [0]); one '
                   'table per latency')
    p.add_argument('--assessor-model', metavar='PATH',
                   help='exposure assessor scoring every frame (mean score and its correlation '
                   "with per-image AP next to mAP); '' = off (default: config assessor_model, "
                   'the shipped models/assessor_demo.pt when present)')
    p.add_argument('--sensor', default='imx249', help='sensor preset or YAML')
    p.add_argument('--correction-model', action='append', default=[], metavar='NAME=PATH',
                   help='--protocol correction: a correction model to evaluate (repeatable; '
                   'default: models/correction_encdec.pt and models/correction_pix2pix.pt)')
    add_device(p, 'auto', threads=1, what='the detectors')
    p.add_argument('--backend', choices=('torch', 'onnxruntime', 'tensorrt'), default='torch',
                   help='inference backend of the trained detectors and networks (default: '
                        'torch); onnxruntime / tensorrt run the files neural-ae export wrote '
                        'for the protocol frame size')
    p.add_argument('--deploy-dir', metavar='DIR',
                   help='folder of the exported files (default: beside each model file)')
    add_out(p, text='output folder (default: out/evaluate, with --quick out/evaluate_quick)',
            metavar='DIR')
    p.add_argument('--benchmarks', action='store_true',
                   help='also write BENCHMARKS.md and docs/benchmarks/*.png (repository root)')
    p.add_argument('--notes', help='Markdown file appended to the report as "Discussion" '
                   '(e.g. docs/benchmarks/notes.md)')
    add_force(p, text='replace report.md / results.json of an earlier run in --out')
    add_progress(p)
    p.set_defaults(func=run)


def bound_warnings(protocol, where: str = '') -> list:
    """Warnings for the runs of a drive protocol result whose camera sat at a bound."""
    from neural_ae.core.metrics.temporal import bound_warning

    out = []
    if protocol is None:
        return out
    for d in protocol.drives:
        for key, run in d.runs.items():
            w = bound_warning(run.metrics.get('summary', {}), f'{where}{d.name} / {key}')
            if w:
                out.append(w)
    return out


def check_out_folder(out: Path, inputs, force: bool) -> None:
    """Refuse an output folder inside an input, or one with a report unless ``force``."""
    for src in inputs:
        if is_inside(out, src) or is_inside(src, out / 'report.md') or \
                is_inside(src, out / 'results.json'):
            raise EvaluationError(f'output folder {out} lies inside (or writes over) the '
                                  f'input {src}: choose another --out')
    for name in ('report.md', 'results.json'):
        check_output(out / name, [p for p in inputs if p], force, 'report file',
                     error=EvaluationError)


def _git(*args) -> str:
    try:
        return subprocess.run(['git', *args], capture_output=True, text=True, timeout=10,
                              check=False).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ''


def machine_line(device: str, threads: int) -> str:
    """CPU/GPU, core count, OS, torch version, threads (for the report)."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('model name'):
                cpu = line.split(':', 1)[1].strip()
                break
    except OSError:
        pass
    gpu = ''
    if device == 'cuda':
        gpu = f', GPU {torch.cuda.get_device_name(0)}'
    return (f'{cpu}, {os.cpu_count()} cores{gpu}; {platform.system()} {platform.release()}; '
            f'Python {platform.python_version()}, torch {torch.__version__}, '
            f'{threads} torch thread(s), device {device}')


def _train_yaml_configs() -> list:
    from neural_ae.core.paths import config_dir
    from neural_ae.core.training.config import config_task, EXPOSURE_TASK, load_config

    out = []
    try:
        folder = config_dir()
    except FileNotFoundError:
        return out
    for path in sorted(folder.glob('train_*.yaml')):
        if config_task(path) != EXPOSURE_TASK:   # another trainer's config (task: ...)
            continue
        try:
            out.append(load_config(path))
        except Exception:  # noqa: BLE001 - a broken YAML is the training command's problem
            continue
    return out


def _models_folder(name: str) -> Path:
    from neural_ae.core.paths import models_dir

    path = Path(name)
    if path.is_absolute() or path.exists():
        return path
    try:
        return models_dir()
    except FileNotFoundError:
        return path


def _own_model_lines(methods) -> list:
    """Model lines of the methods with their own model kind (e.g. the personalized policy)."""
    lines = []
    for m in methods:
        spec, path = m.spec, m.checkpoint
        if not (spec.detector_from and path):
            continue
        card = Path(path).with_suffix('.md')
        lines.append(f'`{path}`: {spec.label} ({m.name}), its own model file; detector '
                     f'from {m.detector_from}' + (f'; model card {card}' if card.is_file()
                                                  else '; no model card'))
    return lines


def _checkpoint_lines(cks: dict) -> list:
    lines = []
    for ae, info in cks.items():
        cfg = info.config
        last = (info.metrics or {}).get('last') or {}
        summ = last.get('summary') or {}
        val = ', '.join(f'{k} {100 * v:.1f}' for k, v in summ.items()
                        if isinstance(v, (int, float)) and math.isfinite(v))
        card = f'; model card {info.card}' if info.card else '; no model card'
        lines.append(f'`{info.path}`: ae={ae}, run {cfg.name!r}, {cfg.height}x{cfg.width}, '
                     f'train seeds {cfg.train_seed_start}..'
                     f'{cfg.train_seed_start + cfg.train_size - 1}, val seeds '
                     f'{cfg.val_seed_start}..{cfg.val_seed_start + cfg.val_size - 1}'
                     + (f'; val mAP@0.5 [%] {val}' if val else '') + card)
    return lines


def run(args) -> int:
    """Run the chosen protocols, print the tables, write the report."""
    from neural_ae.core.evaluation.distributed import join as join_shard, leave

    t_start = time.perf_counter()
    device = apply_device_threads(args, error=EvaluationError)
    if args.protocol == 'correction':      # issue 14: its own runner, one process
        return _run_correction(args, device)
    shard = join_shard(device or 'cpu')
    try:
        return _run_protocols(args, device, shard, t_start)
    finally:
        leave(shard)


def _run_protocols(args, device, shard, t_start) -> int:
    """Run the protocols on one rank (rank 0 alone prints and writes)."""
    import torch
    from neural_ae.core.evaluation import report as R
    from neural_ae.core.evaluation.bag import DrivePairs, load_bag_drive
    from neural_ae.core.evaluation.config import (check_test_seeds, DRIVE_SEED_OFFSET,
                                                  load_eval_config, parse_latencies)
    from neural_ae.core.evaluation.drives import make_drives, run_drive_latencies
    from neural_ae.core.evaluation.methods import build_methods, method_names
    from neural_ae.core.evaluation.oracle import OracleSpec
    from neural_ae.core.evaluation.shift import (causal_ceiling, OffsetSweep, procedural_pairs,
                                                 run_shift_protocol)
    from neural_ae.core.paths import config_dir
    from neural_ae.core.sensor import load_sensor

    if not shard.main:                     # one rank prints, writes and draws progress
        sys.stdout = open(os.devnull, 'w')
        args.no_progress = True
    config = args.config or str(config_dir() / 'evaluate.yaml')
    methods = None
    if args.methods:
        methods = tuple(m.strip() for m in args.methods.split(',') if m.strip())
    latency = None
    if getattr(args, 'latency', None) is not None:
        latency = parse_latencies(args.latency)
    cfg = load_eval_config(config, quick=args.quick, methods=methods, latency_frames=latency,
                           shift_pairs=args.pairs, shift_repeats=args.repeats,
                           adaptive_mu=args.adaptive_mu,
                           adaptive_scale_ev=args.adaptive_scale_ev,
                           models_dir=args.models,
                           assessor_model=getattr(args, 'assessor_model', None))
    protocols = {'shift', 'drive'} if args.protocol == 'all' else {args.protocol}
    if args.protocol == 'all' and args.bag:
        protocols.add('bag')
    if 'bag' in protocols and not args.bag:
        raise EvaluationError('--protocol bag needs --bag PATH (an HDR rosbag2 with '
                              'labels.json)')
    out = Path(args.out or ('out/evaluate_quick' if args.quick else 'out/evaluate'))
    check_out_folder(out, [p for p in (args.bag, args.notes, args.config) if p], args.force)
    if 'bag' in protocols:
        from neural_ae.core.calibration import parse_radiance_scale

        parse_radiance_scale(args.bag_radiance_scale, '--bag-radiance-scale')
    explicit = {}
    for pair in args.checkpoint:
        key, sep, value = pair.partition('=')
        if not sep or key not in method_names():
            raise EvaluationError(f'--checkpoint expects METHOD=PATH with METHOD in '
                                  f'{method_names()}, got {pair!r}')
        explicit[key] = value
    sensor = load_sensor(args.sensor)
    models = _models_folder(cfg.models_dir)
    h0, w0 = cfg.height or 192, cfg.width or 320
    built = build_methods(models, cfg.methods, sensor, device, args.allow_untrained,
                          explicit, cfg.fixed_detector, cfg.oracle_detector, h0, w0,
                          backend=args.backend, deploy_dir=args.deploy_dir)
    cks = built['checkpoints']
    ref = cks.get('hybrid') or next(iter(cks.values()), None)
    height = cfg.height or (ref.config.height if ref else 192)
    width = cfg.width or (ref.config.width if ref else 320)
    warnings = list(built['warnings'])
    if not built['methods']:
        raise EvaluationError('no method can be evaluated: ' + '; '.join(warnings))
    # seeds
    if args.split == 'test':
        pair_start = cfg.test_seed_start
        drive_start = cfg.test_seed_start + DRIVE_SEED_OFFSET
    else:
        val = ref.config.val_seed_start if ref else 1_000_000
        pair_start, drive_start = val, val
        warnings.append(f'--split val: VALIDATION seeds ({val}..), for tuning; these are not '
                        f'the held-out test figures')
    n_pairs = cfg.shift_pairs
    pair_seeds = list(range(pair_start, pair_start + n_pairs)) if 'shift' in protocols else []
    drive_seeds = list(range(drive_start, drive_start + len(cfg.drives))) \
        if 'drive' in protocols else []
    train_cfgs = list(built['configs']) + _train_yaml_configs()
    if args.split == 'test':
        check_test_seeds(pair_seeds + drive_seeds, train_cfgs)
    else:
        check_test_seeds(pair_seeds + drive_seeds, train_cfgs, where='validation',
                         splits=('train',))
    from neural_ae.core.evaluation.assessor import load_frame_assessor

    assessor, why = load_frame_assessor(cfg.assessor_model, sensor)
    if why:
        warnings.append(why)
    oracle = None
    if cfg.oracle and not args.no_oracle and built['oracle'] is not None:
        oracle = OracleSpec(built['oracle'], built['oracle_from'], cfg.oracle_sweep,
                            cfg.oracle_range_ev)
    for w in warnings:
        sys.stderr.write(f'WARNING: {w}\n')
    progress = not args.no_progress
    shift = drives = bag = None
    drive_frames = {}
    if 'shift' in protocols:
        pairs = procedural_pairs(pair_start, n_pairs, height, width, cfg.cache_dir)
        if hasattr(pairs, 'prepare'):
            pairs.prepare(progress=progress)
        offsets = val_offsets = None
        if cfg.causal_ceiling and not args.no_oracle and built['oracle'] is not None:
            # the causal ceiling's offset is chosen on validation seeds, never on the test
            offsets = OffsetSweep(built['oracle'], built['oracle_from'], cfg.ceiling_offsets_ev)
            val_start = ref.config.val_seed_start if ref else 1_000_000
            val_pairs = procedural_pairs(val_start, cfg.ceiling_val_pairs, height, width,
                                         cfg.cache_dir)
            check_test_seeds(list(range(val_start, val_start + cfg.ceiling_val_pairs)),
                             train_cfgs, where='validation', splits=('train',))
            val_pairs.prepare(progress=progress)
            val_offsets = run_shift_protocol(val_pairs, [], sensor, cfg.shift_levels[:1],
                                             cfg.ceiling_val_repeats, cfg.shift_flip, None,
                                             seed=cfg.noise_seed, progress=progress,
                                             offsets=offsets, shard=shard)['offsets']
        shift = run_shift_protocol(pairs, built['methods'], sensor, cfg.shift_levels,
                                   cfg.shift_repeats, cfg.shift_flip, oracle,
                                   seed=cfg.noise_seed, progress=progress, offsets=offsets,
                                   shard=shard, assessor=assessor)
        if val_offsets is not None:
            shift['offsets_val'] = val_offsets
            shift['causal_ceiling'] = causal_ceiling(val_offsets, shift['offsets'])
        print(f'\nShift protocol ({n_pairs} pairs, seeds {pair_start}..'
              f'{pair_start + n_pairs - 1}{", + flips" if cfg.shift_flip else ""}, '
              f'{cfg.shift_repeats} repeats; mAP@0.5 [%] mean +- std):')
        print(R.shift_table_text(shift))
        if shift.get('assessor'):
            print('\nAssessor score [0-10] of frame 2 (mean) and its correlation with '
                  'per-image AP:')
            print(R.assessor_shift_text(shift))
    if 'drive' in protocols:
        drive_list = make_drives(cfg.drives, drive_start, height, width, sensor)
        drive_frames = {d.name: d.frames for d in drive_list}
        d_oracle = None
        if oracle is not None and cfg.drive_oracle:
            d_oracle = OracleSpec(oracle.perception, oracle.detector_from,
                                  cfg.drive_oracle_sweep, cfg.drive_oracle_range_ev)
        drives = run_drive_latencies(drive_list, built['methods'], sensor,
                                     cfg.drive_smoothings, cfg.smoothing_options(), d_oracle,
                                     cfg.latency_frames, seed=cfg.noise_seed,
                                     progress=progress, repeats=cfg.drive_repeats,
                                     shard=shard, assessor=assessor)
        print('\nDrive protocol (closed loop):')
        print(R.drive_tables_text(drives))
        if assessor is not None:
            print('\nAssessor score [0-10] over the drive frames (mean) and its correlation '
                  'with per-image AP:')
            print(R.assessor_drive_text(drives))
        for res in drives:
            where = f'drive latency {res.latency_frames} ' if len(drives) > 1 else 'drive '
            warnings += bound_warnings(res, where)
    bag_radiance = None
    if 'bag' in protocols:
        bag_drive, calib = load_bag_drive(args.bag, height, width, sensor, args.bag_topic,
                                          args.bag_max_frames, args.bag_radiance_scale)
        bag_radiance = calib.to_dict()
        print(f'\nBag {bag_drive.name}: {calib.describe()}')
        bag_pairs = DrivePairs(bag_drive, sensor.bayer_pattern)
        bag = {'name': bag_drive.name, 'shift': None, 'drives': None}
        if len(bag_pairs):
            bag['shift'] = run_shift_protocol(bag_pairs, built['methods'], sensor,
                                              cfg.shift_levels, cfg.shift_repeats,
                                              cfg.shift_flip, oracle, seed=cfg.noise_seed,
                                              progress=progress, assessor=assessor)
            print(f'\nBag {bag_drive.name}: shift protocol over {len(bag_pairs)} pairs:')
            print(R.shift_table_text(bag['shift']))
        else:
            warnings.append(f'bag {args.bag}: no consecutive pair with a labelled second '
                            f'frame; shift protocol skipped')
        bag['drives'] = run_drive_latencies([bag_drive], built['methods'], sensor,
                                            cfg.drive_smoothings, cfg.smoothing_options(),
                                            None, cfg.latency_frames, seed=cfg.noise_seed,
                                            keep_raw_for=(), progress=progress,
                                            assessor=assessor)
        print(f'\nBag {bag_drive.name}: closed loop:')
        print(R.drive_tables_text(bag['drives']))
        for res in bag['drives']:
            where = f'bag latency {res.latency_frames} ' if len(bag['drives']) > 1 else 'bag '
            warnings += bound_warnings(res, where)
    commit = _git('rev-parse', '--short', 'HEAD') or 'unknown'
    dirty = _git('status', '--porcelain', '--untracked-files=no')
    argv = sys.argv[sys.argv.index('evaluate') + 1:] if 'evaluate' in sys.argv else []
    notes = None
    if args.notes:
        if not Path(args.notes).is_file():
            raise EvaluationError(f'--notes file not found: {args.notes}')
        notes = Path(args.notes).read_text()
    context = {
        'command': ' '.join(['neural-ae evaluate'] + [shlex.quote(a) for a in argv]),
        'notes': notes,
        'date': datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC'),
        'machine': machine_line(device, torch.get_num_threads()),
        'commit': commit + (' (working tree has uncommitted changes)' if dirty else ''),
        'warnings': warnings,
        'checkpoints': _checkpoint_lines(cks) + _own_model_lines(built['methods']),
        'seconds': time.perf_counter() - t_start,
        'settings': {**cfg.to_dict(), 'split': args.split, 'pair_seeds':
                     [pair_start, pair_start + n_pairs - 1] if pair_seeds else None,
                     'drive_seeds': [drive_start, drive_start + len(cfg.drives) - 1]
                     if drive_seeds else None, 'height': height, 'width': width,
                     'models_dir': str(models), 'protocols': sorted(protocols),
                     'quick': bool(args.quick), 'oracle_from': built['oracle_from'],
                     'bag_radiance': bag_radiance,
                     'assessor': assessor.describe() if assessor is not None else None}}
    if shard.world > 1:
        context['settings']['processes'] = shard.world
    if not shard.main:
        return 0
    written = R.write_report(out, context, shift, drives, bag, drive_frames, sensor)
    if written['targets']:
        print('\nTargets:')
        for t in written['targets']:
            met = {True: 'MET', False: 'MISSED', None: 'not measured'}[t['met']]
            print(f'  [{met}] {t["target"]}: {t["value"]}')
    if warnings:
        print('\nWARNINGS:')
        for w in warnings:
            print(f'  ! {w}')
    print(f'\nreport: {written["report"]}')
    print(f'results: {written["results"]}')
    for f in written['figures']:
        print(f'figure: {f}')
    if args.benchmarks:
        root = Path(__file__).resolve().parents[2]
        root = root if (root / 'setup.py').is_file() else Path.cwd()
        bench = R.write_benchmarks(root / 'BENCHMARKS.md', written, root / 'docs' / 'benchmarks',
                                   'docs/benchmarks')
        print(f'benchmarks: {bench}')
    print(f'wall time: {time.perf_counter() - t_start:.0f} s')
    return 0


def _run_correction(args, device) -> int:
    """``--protocol correction`` (issue 14): tables, results.json, report.md, figure.png."""
    import json

    from neural_ae.core.checkpoints import resolve_model_path
    from neural_ae.core.controllers import ControllerOptions, get_spec
    from neural_ae.core.correction.data import SEEDS
    from neural_ae.core.correction.model import load_corrector
    from neural_ae.core.evaluation.correction import (run_correction_protocol, tables,
                                                      write_figure)
    from neural_ae.core.models.perception import Perception
    from neural_ae.core.sensor import load_sensor
    from neural_ae.core.training.checkpoints import load_pipeline

    sensor = load_sensor(args.sensor)
    specs = args.correction_model or ['encdec=correction_encdec.pt',
                                      'pix2pix=correction_pix2pix.pt']
    out = Path(args.out or 'out/evaluate_correction')
    check_out_folder(out, [], args.force)
    correctors = {}
    for spec in specs:
        name, sep, path = spec.partition('=')
        if not sep or not name or not path:
            raise EvaluationError(f'--correction-model: expected NAME=PATH, got {spec!r}')
        correctors[name] = load_corrector(resolve_model_path(path), sensor, device or 'cpu')
    hybrid_path = resolve_model_path(None, get_spec('hybrid_nn').default_model)
    pipe, _, _ = load_pipeline(hybrid_path, device='cpu')
    perception = Perception(pipe.detector, pipe.isp, device or 'cpu', str(hybrid_path))
    ctrl = get_spec('hybrid_nn').build(ControllerOptions(smoothing='none'), sensor,
                                       model=pipe.ae, device=device or 'cpu')
    n = args.pairs or (8 if args.quick else 24)
    start = SEEDS['val'] if args.split == 'val' else SEEDS['test']
    res = run_correction_protocol(correctors, perception, sensor,
                                  {'controller': ctrl, 'perception': perception}, n, start,
                                  progress=not args.no_progress)
    text = tables(res)
    print(text)
    out.mkdir(parents=True, exist_ok=True)
    fig = write_figure(res, out / 'figure.png')
    res.pop('figure')
    (out / 'results.json').write_text(json.dumps(res, indent=1, default=float))
    argv = sys.argv[sys.argv.index('evaluate') + 1:] if 'evaluate' in sys.argv else []
    (out / 'report.md').write_text(
        '# Exposure correction (issue 14)\n\n`' +
        ' '.join(['neural-ae evaluate'] + [shlex.quote(a) for a in argv]) + '`, commit ' +
        (_git('rev-parse', '--short', 'HEAD') or 'unknown') + f', {res["seconds"]:.0f} s\n\n'
        + text + '\n\n![input / methods / reference](figure.png)\n')
    print(f'\nwrote {out / "report.md"}, {out / "results.json"}' + (f', {fig}' if fig else ''))
    return 0
