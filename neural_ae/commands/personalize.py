"""
``neural-ae personalize``: the personalized policy's study, and offline personalization.

- ``neural-ae personalize study --stage1 P [--ablation P2] [--config Y] -o DIR``: the
  paper's Tables 3-6 on our held-out scenes (RL, RL+PT, FSL, PT per expert; cross-expert
  matrix; nearest-expert shares; MAE vs labelled scenes), printed as Markdown and
  written to ``DIR/tables.md`` / ``DIR/results.json``, with the ablation curve
  (``ablation.png``, stage-1 validation MAE per epoch with and without the importance
  map) and the exposure / importance maps of six test scenes (``maps.png``).
- ``neural-ae personalize frames --model P --frames DIR -o OUT.pt``: personalise a model
  from a folder of labelled frames (PNG/JPEG images and ``labels.json``, a mapping file
  name -> ``under`` / ``well`` / ``over``), the node's online update offline; the base
  model file is never overwritten.
"""
import json
from pathlib import Path

from neural_ae.commands._args import add_device, add_out, add_progress, apply_device_threads
from neural_ae.core.errors import ConfigError


def add_parser(sub) -> None:
    """Register ``personalize``."""
    p = sub.add_parser('personalize', help='personalized exposure policy: study tables, '
                       'offline personalization from labelled frames')
    p.add_argument('action', choices=('study', 'frames'),
                   help='study: Tables 3-6 + figures; frames: personalise from labelled frames')
    p.add_argument('--stage1', default='out/personalized/stage1/final.pt',
                   help='study: stage-1 model or run checkpoint')
    p.add_argument('--ablation', default='',
                   help='study: the exposure-map-only stage-1 run (its curve is plotted)')
    p.add_argument('--config', default='config/train_personalized_stage2.yaml',
                   help='study: stage-2 settings (steps, lr, sigma, delta, p_well, n_labels)')
    p.add_argument('--labels', default='50,100,300,1000',
                   help='study: labelled-scene counts N of the sweep (those above the '
                   'training scenes are skipped)')
    p.add_argument('--experts', default='', help='study: comma-separated experts (default all)')
    p.add_argument('--steps', type=int, default=None,
                   help="study: stage-2 steps per run (default: the config's)")
    p.add_argument('--model', default='personalized_demo.pt',
                   help='frames: base model file (never overwritten)')
    p.add_argument('--frames', default='', help='frames: folder with images + labels.json')
    p.add_argument('--judge', default='',
                   help='study: exposure assessor model whose under/well/over labels drive '
                        'one more RL+PT run (issue 13; empty: none)')
    p.add_argument('--passes', type=int, default=20,
                   help='frames: update passes over the labelled frames')
    add_out(p, text='study: output folder (default out/personalized/study); frames: the '
            'personalised model file', metavar='PATH')
    add_progress(p, text='no progress output')
    add_device(p, 'cpu', 1, what='the policy network')
    p.set_defaults(func=run)


def run(args) -> int:
    """Run the chosen action."""
    apply_device_threads(args)
    if args.action == 'study':
        return _study(args)
    return _frames(args)


def _study(args) -> int:
    import numpy as np
    from neural_ae.core.personalized.config import load_personalized_config
    from neural_ae.core.personalized.experts import EXPERTS
    from neural_ae.core.personalized.policy import load_policy
    from neural_ae.core.personalized.study import (ablation_plot, maps_figure, run_study,
                                                   tables_markdown)
    from neural_ae.core.personalized.training import load_split

    out = Path(args.out or 'out/personalized/study')
    out.mkdir(parents=True, exist_ok=True)
    cfg = load_personalized_config(args.config, task='personalized_stage2', steps=args.steps)
    experts = [e for e in args.experts.split(',') if e] or list(EXPERTS)
    try:
        counts = [int(c) for c in args.labels.split(',') if c]
    except ValueError:
        raise ConfigError(f'--labels must be comma-separated integers, got '
                          f'{args.labels!r}') from None
    base = load_policy(args.stage1)
    train = load_split(cfg, 'train')
    test = load_split(cfg, 'test')
    judge = None
    if args.judge:
        from neural_ae.core.assessment.judge import ExposureJudge

        judge = ExposureJudge(args.judge)
    res = run_study(base, cfg, train, test, experts, counts,
                    log=(lambda s: None) if args.no_progress else print, judge=judge)
    curves = {}
    runs = (('adaptive metering', args.stage1), ('exposure map only', args.ablation))
    for name, path in runs:
        curve = _curve(path)
        if curve:
            curves[name] = curve
    if curves:
        ablation_plot(curves, out / 'ablation.png')
        res['ablation'] = {k: [c['val_mae_ev'] for c in v] for k, v in curves.items()}
    pick = np.linspace(0, len(test) - 1, 6).astype(int)
    maps_figure(base, test.images[pick, len(test.variants_ev) // 2],
                [f'test seed {int(test.seeds[i])}' for i in pick], out / 'maps.png')
    text = tables_markdown(res)
    if 'ablation' in res:
        text += '\nStage-1 validation MAE [EV] per epoch (Fig. 8)\n\n' + '\n'.join(
            f'- {k}: ' + ', '.join(f'{v:.3f}' for v in vals)
            for k, vals in res['ablation'].items()) + '\n'
    (out / 'tables.md').write_text(text)
    (out / 'results.json').write_text(json.dumps(res, indent=1, default=float))
    print(text)
    print(f'wrote {out}/tables.md, results.json, maps.png' +
          (', ablation.png' if curves else ''))
    return 0


def _curve(path) -> list:
    if not path:
        return []
    p = Path(path)
    summary = p.parent / 'summary.json' if p.is_file() else p / 'summary.json'
    if not summary.is_file():
        return []
    return json.loads(summary.read_text()).get('curve', [])


def _frames(args) -> int:
    import cv2
    from neural_ae.core.checkpoints import resolve_model_path
    from neural_ae.core.controllers.personalized import PersonalizedController
    from neural_ae.core.personalized.online import OnlinePersonalizer

    if not args.frames or not args.out:
        raise ConfigError('personalize frames needs --frames DIR and -o OUT.pt')
    folder = Path(args.frames)
    labels_path = folder / 'labels.json'
    try:
        labels = json.loads(labels_path.read_text())
    except (OSError, ValueError) as err:
        raise ConfigError(f'cannot read {labels_path}: {err}') from err
    if not isinstance(labels, dict) or not labels:
        raise ConfigError(f'{labels_path} must map image file names to under/well/over')
    if not 1 <= args.passes <= 10_000:
        raise ConfigError(f'--passes must be in [1, 10000], got {args.passes}')
    model = resolve_model_path(args.model)
    ctrl = PersonalizedController(model=str(model))
    online = OnlinePersonalizer(ctrl, ring_size=max(len(labels), 1),
                                max_feedback_per_s=1e9, max_updates_per_s=0,
                                max_queue=max(len(labels), 1), base_model=str(model))
    frames = []
    for k, (name, label) in enumerate(sorted(labels.items())):
        img = cv2.imread(str(folder / name), cv2.IMREAD_COLOR)
        if img is None:
            raise ConfigError(f'{folder / name}: not a readable image')
        rgb = cv2.resize(cv2.cvtColor(img, cv2.COLOR_BGR2RGB), (ctrl.size, ctrl.size),
                         interpolation=cv2.INTER_AREA)
        frames.append((k, rgb, str(label)))
    for _ in range(args.passes):
        for k, rgb, label in frames:
            online.record(k, rgb, 0.0)
            problem = online.feedback(k, label)
            if problem:
                raise ConfigError(f'{label!r} for {k}: {problem}')
        online.update(force=True)
    path = online.save(args.out)
    print(json.dumps({'model': str(path), 'base_model': str(model), **online.stats()},
                     indent=1))
    return 0
