"""``neural-ae controllers``: exposure controllers in closed loop on a synthetic sequence."""
import json
import math
from pathlib import Path
import sys

from neural_ae.commands._args import add_device, add_out, add_progress, apply_device_threads
from neural_ae.core.errors import ControllerError

CHOICES = ('fixed', 'average', 'gradient', 'histogram_nn', 'oracle')
COLUMNS = (
    ('controller', 'controller', '{:<13}', 13),
    ('frames_to_converge', 'conv [fr]', '{:>9}', 9),
    ('overshoot_ev', 'over [EV]', '{:>9.2f}', 9),
    ('oscillations', 'osc', '{:>4}', 4),
    ('flicker_ev', 'flick [EV]', '{:>10.3f}', 10),
    ('settled_offset_ev', 'offset [EV]', '{:>11.2f}', 11),
    ('saturated_time', 'sat time', '{:>8.1%}', 8),
    ('mean_saturated_fraction', 'sat mean', '{:>8.1%}', 8),
    ('fallback_frames', 'fallb', '{:>5}', 5),
    ('controller_ms_median', 'ms med', '{:>7.2f}', 7),
    ('controller_ms_p90', 'ms p90', '{:>7.2f}', 7),
)


def add_parser(sub) -> None:
    """Register ``controllers``."""
    p = sub.add_parser(
        'controllers', help='closed-loop exposure control on a synthetic sequence: '
        'temporal metrics table and exposure plot',
        description='Run exposure controllers in closed loop (simulated IMX249 capture) on a '
        'procedural HDR sequence; print convergence, overshoot, oscillation, flicker and '
        'saturation figures (definitions: neural_ae.core.metrics.temporal) and plot exposure '
        'over time.')
    p.add_argument('--sequence', default='tunnel_exit',
                   help='sequence scenario (see neural_ae.core.scenes.SEQUENCE_SCENARIOS)')
    p.add_argument('--frames', type=int, default=150, help='number of frames')
    p.add_argument('--controllers', default='fixed,average,gradient',
                   help=f'comma-separated subset of {",".join(CHOICES)} '
                   '(histogram_nn is untrained unless --model is given)')
    p.add_argument('--model', help='Histogram NN checkpoint (default: untrained weights)')
    p.add_argument('--height', type=int, default=192, help='frame height [px]')
    p.add_argument('--width', type=int, default=320, help='frame width [px]')
    p.add_argument('--latency', type=int, default=0, help='actuation latency [frames]')
    p.add_argument('--seed', type=int, default=0, help='scene and sensor-noise seed')
    p.add_argument('--no-noise', action='store_true', help='noiseless captures')
    p.add_argument('--sensor', default='imx249', help='sensor preset name or YAML path')
    add_out(p, 'out/controllers', 'output folder for the PNG and JSON', metavar='DIR')
    add_progress(p, text='no progress bar')
    add_device(p, 'cpu', threads=1, what='histogram_nn')
    p.set_defaults(func=run)


def format_table(rows: list) -> str:
    """Fixed-width text table of metric summaries (one dict per controller)."""
    head = ' '.join(f'{title:>{width}}' if i else f'{title:<{width}}'
                    for i, (_, title, _, width) in enumerate(COLUMNS))
    lines = [head, '-' * len(head)]
    for row in rows:
        cells = []
        for key, _, fmt, width in COLUMNS:
            v = row.get(key)
            if v is None or (isinstance(v, float) and not math.isfinite(v)):
                cells.append(f'{"n/a":>{width}}')
            else:
                cells.append(fmt.format(v))
        lines.append(' '.join(cells))
    return '\n'.join(lines)


def plot_runs(results: list, events: list, path: Path, title: str) -> Path:
    """Exposure (log) and mean raw level over time for every run; events marked."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    import numpy as np

    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(8.0, 6.2), sharex=True,
                                  gridspec_kw={'height_ratios': [3, 2]})
    frames = np.arange(results[0].n_frames)
    ax.semilogy(frames, results[0].e_base_s * 1e3, color='0.6', ls='--', lw=1,
                label='scene mid-grey exposure')
    for r in results:
        ax.semilogy(frames, r.e_s * 1e3, lw=1.6, label=r.controller)
        ax2.plot(frames, r.mean_raw_dn, lw=1.2, label=r.controller)
    white = results[0].white_level_dn
    ax2.axhline(0.5 * white, color='0.6', ls='--', lw=1)
    ax2.axhline(white, color='0.3', ls=':', lw=1)
    labels = results[0].event_labels
    exiting = [k for k, lab in enumerate(labels) if lab == 'exiting']
    for a in (ax, ax2):
        for k, (first, _) in enumerate(events):
            a.axvline(first, color='red', ls='--', lw=1,
                      label=f'illumination step (frame {first})' if k == 0 and a is ax else None)
        if exiting:
            a.axvspan(exiting[0], exiting[-1] + 1, color='orange', alpha=0.12,
                      label="meta event 'exiting'" if a is ax else None)
    ax.set_ylabel('exposure e = K t [ms]')
    ax.set_title(title)
    ax.grid(True, which='both', alpha=0.3)
    ax.legend(fontsize=8, loc='best')
    ax2.set_ylabel('mean raw [DN]')
    ax2.set_xlabel('frame')
    ax2.set_ylim(0, white * 1.05)
    ax2.grid(True, alpha=0.3)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def run(args) -> int:
    """Run the controllers, print the table, write the PNG and JSON."""
    from neural_ae.core.closed_loop import run_closed_loop
    from neural_ae.core.controllers import ControllerOptions, make_controller
    from neural_ae.core.metrics.temporal import bound_warning, find_events, temporal_metrics
    from neural_ae.core.scenes import generate_sequence
    from neural_ae.core.sensor import load_sensor
    from tqdm import tqdm

    names = [n.strip() for n in args.controllers.split(',') if n.strip()]
    bad = [n for n in names if n not in CHOICES]
    if bad or not names:
        raise ControllerError(f'--controllers: unknown {bad or names}; choose from {CHOICES}')
    if args.frames < 2:
        raise ControllerError(f'--frames must be >= 2, got {args.frames}')
    device = apply_device_threads(args, error=ControllerError)
    sensor = load_sensor(args.sensor)
    frames = generate_sequence(args.seed, args.frames, args.sequence, args.height, args.width)
    options = ControllerOptions(latency_frames=args.latency)
    results, rows, report, warnings = [], [], {}, []
    bar = tqdm(total=len(names) * len(frames), unit='frame', desc='controllers',
               disable=args.no_progress, file=sys.stderr)
    try:
        for name in names:
            kw = {'model': args.model} if name == 'histogram_nn' and args.model else {}
            if name == 'histogram_nn':
                kw['device'] = device
            controller = make_controller(name, options, sensor=sensor, **kw)
            result = run_closed_loop(frames, controller, sensor=sensor, seed=args.seed,
                                     noise=not args.no_noise, on_step=lambda *_: bar.update(1))
            metrics = temporal_metrics(result)
            warning = bound_warning(metrics['summary'], f'controllers {name}')
            if warning:
                warnings.append(warning)
            results.append(result)
            rows.append({'controller': name, **metrics['summary']})
            report[name] = {'metrics': metrics, 'frames': result.to_dict()}
    finally:
        bar.close()
    events = find_events(results[0])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    title = (f'{args.sequence}, {args.frames} frames {args.height}x{args.width}, '
             f'{sensor.name}, latency {args.latency}, seed {args.seed}')
    png = plot_runs(results, events, out / f'exposure_{args.sequence}.png', title)
    js = out / f'metrics_{args.sequence}.json'
    js.write_text(json.dumps({'sequence': args.sequence, 'frames': args.frames,
                              'size': [args.height, args.width], 'seed': args.seed,
                              'latency_frames': args.latency, 'events': events,
                              'controllers': report}, indent=1, default=float) + '\n')
    print(title)
    print('illumination steps (first, last frame): '
          + (', '.join(f'{a}-{b}' for a, b in events) or 'none'))
    print(format_table(rows))
    print(f'plot: {png}')
    print(f'metrics and per-frame settings: {js}')
    for w in warnings:
        sys.stderr.write(f'WARNING: {w}\n')
    return 0
