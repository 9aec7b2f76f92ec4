"""
``neural-ae train``: end-to-end training of the exposure network with the detector.

Runs alone or under ``torchrun`` (``python -m torch.distributed.run --nproc_per_node N
-m neural_ae.cli train ...``): with ``WORLD_SIZE > 1`` it trains with
DistributedDataParallel (gloo on CPU, nccl on GPU). See
:mod:`neural_ae.core.training.engine` for what it writes.
"""
import json

from neural_ae.commands._args import add_device, add_out, add_progress, apply_device_threads
from neural_ae.core.errors import ConfigError
from neural_ae.core.training.config import load_config


def add_parser(sub) -> None:
    """Register ``train``."""
    p = sub.add_parser('train', help='train AE network + ISP + detector end to end')
    p.add_argument('--config', help='training YAML (config/train_*.yaml)')
    p.add_argument('--resume', default=None, help='checkpoint to continue from (final.pt, '
                   'checkpoint_epochNNN.pt)')
    add_out(p, text='output folder (default: out/train/<name>)', aliases=('--output',),
            metavar='DIR')
    p.add_argument('--epochs', type=int, default=None, help='override the number of epochs')
    p.add_argument('--max-minutes', type=float, default=None,
                   help='stop (with checkpoint and evaluation) after this wall time [min]')
    p.add_argument('--export', default=None, help='also write the slim model.pt here')
    add_progress(p, text='no tqdm bar')
    add_device(p, None, what='the networks (training, --evaluate, --verify)',
               default_help="the config's device; cpu for --evaluate / --verify",
               threads_help="the config's num_threads")
    p.add_argument('--evaluate', metavar='CKPT', default=None,
                   help='only evaluate this checkpoint on held-out pairs (mAP@0.5 at e_base, '
                   '10x over/under, closed loop) and exit')
    p.add_argument('--verify', metavar='CKPT', default=None,
                   help='reload a model.pt in this process, regenerate its probe scenes and '
                   'compare its outputs with the fingerprint recorded at the end of '
                   'training; "verified" (exit 0) when every entry is within the stated '
                   'floating-point tolerance (printed), exit 1 otherwise')
    p.add_argument('--val-size', type=int, default=None, help='with --evaluate: pairs')
    p.add_argument('--val-seed-start', type=int, default=None,
                   help='with --evaluate: first scene seed of the held-out pairs')
    p.set_defaults(func=run)


def run(args) -> int:
    """Train (or evaluate); print a JSON summary (rank 0)."""
    from neural_ae.core.training.engine import evaluate_checkpoint, train

    device = apply_device_threads(args)
    if args.verify:
        from neural_ae.core.training.checkpoints import compare_fingerprint

        res = compare_fingerprint(args.verify, device or 'cpu')
        now = res['now']
        print(json.dumps({'checkpoint': args.verify, 'verified': res['within_tolerance'],
                          'identical': res['identical'], 'max_abs_diff': res['max_abs_diff'],
                          'diffs': res['diffs'], 'tolerance': res['tolerance'],
                          'u': now['u'].tolist(), 'stored_u': res['stored']['u'].tolist(),
                          'top_scores': now['scores'][:5].tolist(),
                          'layer2_mean': float(now['layer2_mean'])}, indent=1))
        return 0 if res['within_tolerance'] else 1
    if args.evaluate:
        res = evaluate_checkpoint(args.evaluate, args.val_size, args.val_seed_start,
                                  device=device or 'cpu', progress=not args.no_progress)
        cfg = res.pop('config')
        print(json.dumps({'checkpoint': args.evaluate, 'pairs': cfg['val_size'],
                          'seeds': f'{cfg["val_seed_start"]}..'
                                   f'{cfg["val_seed_start"] + cfg["val_size"] - 1}',
                          'map50': res.pop('summary'),
                          'ap50': {k: v['ap50'] for k, v in res.items()}},
                         indent=1, default=float))
        return 0
    if not args.config:
        raise ConfigError('train: --config is required (unless --evaluate)')
    from neural_ae.core.personalized.config import is_personalized_config
    if is_personalized_config(args.config):     # task: personalized_stage1|2 (issue 12)
        return _run_personalized(args)
    from neural_ae.core.correction.train import is_correction_config
    if is_correction_config(args.config):     # task: correction (issue 14)
        return _run_correction(args, device)
    from neural_ae.core.assessment.training import is_assessor_config
    if is_assessor_config(args.config):       # task: assessor (issue 13)
        return _run_assessor(args)
    cfg = load_config(args.config, epochs=args.epochs, device=args.device,
                      num_threads=args.threads)
    output = args.out or f'out/train/{cfg.name}'
    summary = train(cfg, output, resume=args.resume, max_minutes=args.max_minutes,
                    progress=not args.no_progress, export=args.export)
    if summary is not None and summary.get('curve'):      # rank 0 only
        short = dict(summary)
        last = short.pop('last_eval', None) or {}
        short['val_map50'] = last.get('summary')
        print(json.dumps(short, indent=1, default=float))
    return 0


def _run_correction(args, device) -> int:
    """Train an exposure-correction network (``task: correction`` configs, issue 14)."""
    from neural_ae.core.correction.train import load_correction_config, train_correction

    if args.epochs is not None:
        raise ConfigError('train: a correction config counts steps; --epochs does not apply')
    cfg = load_correction_config(args.config, device=args.device, num_threads=args.threads)
    output = args.out or f'out/train/{cfg.name}'
    summary = train_correction(cfg, output, resume=args.resume, max_minutes=args.max_minutes,
                               progress=not args.no_progress, export=args.export)
    print(json.dumps(summary, indent=1, default=float))
    return 0


def _run_assessor(args) -> int:
    """Train the exposure assessor (``task: assessor`` configs, issue 13)."""
    from neural_ae.core.assessment.training import load_assessor_config, train_assessor

    cfg = load_assessor_config(args.config, epochs=args.epochs, device=args.device,
                               num_threads=args.threads)
    output = args.out or f'out/assessor/{cfg.name}'
    summary = train_assessor(cfg, output, resume=args.resume, max_minutes=args.max_minutes,
                             export=args.export)
    print(json.dumps(summary, indent=1, default=float))
    return 0


def _run_personalized(args) -> int:
    """Train the personalized policy (``task: personalized_stage1|2`` configs, issue 12)."""
    from neural_ae.core.personalized.config import load_personalized_config
    from neural_ae.core.personalized.training import run_config

    if args.device not in (None, 'cpu'):
        raise ConfigError('train: the personalized policy trains on the CPU (--device cpu)')
    cfg = load_personalized_config(args.config, epochs=args.epochs,
                                   num_threads=args.threads,
                                   max_minutes=args.max_minutes)
    output = args.out or f'out/personalized/{cfg.name}'
    summary = run_config(cfg, output, resume=args.resume, progress=not args.no_progress)
    short = {k: v for k, v in summary.items() if k != 'curve'}
    short['last'] = summary['curve'][-1] if summary['curve'] else None
    print(json.dumps(short, indent=1, default=float))
    return 0
