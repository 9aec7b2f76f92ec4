"""
``neural-ae replay BAG --controller NAME``: closed-loop replay of an HDR bag, no ROS needed.

Every radiance frame of the bag is captured by the simulated sensor at the setting in
force, the controller decides the next setting, and the command takes effect
``latency_frames`` frames later (:func:`neural_ae.core.closed_loop.run_closed_loop`).
Outputs:

- an output rosbag2 (``-o/--out``, default ``out/replay/<bag>_<controller>``) with the raw
  frames (``/camera/image_raw``, ``bayer_*16``) written as they are produced, and after the
  run one JSON ``std_msgs/String`` per frame on ``/replay/settings`` (setting in force,
  command, target, flags, raw statistics) and on ``/replay/detections`` (detector boxes
  when ``--detector`` is given; ``{"detector": null, "detections": []}`` otherwise);
- a metrics JSON (``--metrics``, default ``<out>.metrics.json``): temporal metrics of
  :func:`neural_ae.core.metrics.temporal.temporal_metrics`, timing and run settings.

A corrupt or truncated input bag ends the replay at the last readable frame: everything
replayed so far is written (bag and metrics, ``"error"`` set), then the command fails with
one line and exit code 2.

For other tools (e.g. a demo), :func:`neural_ae.core.replay.replay_frames` runs the same
loop over any iterable of ``(t_ns, radiance)`` frames, and :func:`replay_bag` is the whole
command as a function.
"""
import json
from pathlib import Path
import sys
from typing import Iterable, Optional

from neural_ae.commands._args import add_device, add_out, add_progress, apply_device_threads
from neural_ae.core.controllers import build_controller, controller_names
from neural_ae.core.errors import BagFormatError, ConfigError
from neural_ae.core.jsonsafe import json_safe
from neural_ae.core.replay import DETECTIONS_TOPIC, RAW_TOPIC, replay_frames, SETTINGS_TOPIC

__all__ = ['DETECTIONS_TOPIC', 'parse_options', 'RAW_TOPIC', 'replay_bag', 'replay_frames',
           'run', 'SETTINGS_TOPIC']


def add_parser(sub) -> None:
    """Register ``replay``."""
    p = sub.add_parser('replay', help='closed-loop replay of an HDR bag with one controller',
                       description='Closed-loop replay of an HDR bag: raw frames, settings '
                       'and detections to an output bag, temporal metrics to JSON.')
    p.add_argument('bag', help='HDR rosbag2 (directory or .mcap/.db3)')
    p.add_argument('--controller', required=True, metavar='NAME',
                   help=f'controller to run: {", ".join(controller_names())}')
    add_out(p, text='output bag directory (must not exist; default '
            'out/replay/<bag>_<controller>)', aliases=('--output',), metavar='BAG')
    p.add_argument('--metrics', help='metrics JSON (default: <out>.metrics.json)')
    p.add_argument('--sensor', default='imx249', help='sensor preset or YAML')
    p.add_argument('--latency-frames', type=int, help='actuation latency [frames] '
                   '(default: the controller option latency_frames)')
    p.add_argument('--seed', type=int, default=0, help='sensor-noise seed')
    p.add_argument('--model', help='model file of a trained controller (default: the '
                   "registry's shipped model in models/)")
    p.add_argument('--detector', help='detector checkpoint: detections, and the features of '
                   'semantic_nn / hybrid_nn')
    p.add_argument('--option', action='append', default=[], metavar='KEY=VALUE',
                   help='a ControllerOptions field, value in YAML (repeatable)')
    p.add_argument('--topic', default='/hdr/image', help='radiance topic of the input bag')
    p.add_argument('--max-frames', type=int, help='replay at most this many frames')
    p.add_argument('--storage', choices=('mcap', 'sqlite3'), default='mcap',
                   help='rosbag2 storage of the output bag (default: mcap)')
    p.add_argument('--no-noise', action='store_true', help='capture the expected image')
    add_progress(p, text='no progress bar')
    add_device(p, 'cpu', what='the controller network and the detector')
    p.set_defaults(func=run)


def parse_options(pairs: Iterable[str]) -> dict:
    """``['mu=0.8', 'smoothing=ema']`` -> ``{'mu': 0.8, 'smoothing': 'ema'}`` (YAML values)."""
    import yaml

    out = {}
    for pair in pairs:
        key, sep, value = pair.partition('=')
        if not sep or not key:
            raise ConfigError(f'--option expects KEY=VALUE, got {pair!r}')
        out[key.strip()] = yaml.safe_load(value)
    return out


def replay_bag(bag_path, controller: str, output=None, metrics_path=None, *,
               options: Optional[dict] = None, sensor: str = 'imx249',
               latency_frames: Optional[int] = None, seed: int = 0,
               model: Optional[str] = None, detector: Optional[str] = None,
               topic: str = '/hdr/image', max_frames: Optional[int] = None,
               storage: str = 'mcap', noise: bool = True, show_progress: bool = True,
               device: str = 'cpu') -> dict:
    """
    Run the ``replay`` command as a function; return the summary it prints.

    ``device`` (``'cpu'`` or ``'cuda'``): where a trained controller and the detector run.
    Raises :class:`BagFormatError` (after writing everything replayed so far) when the
    input bag is damaged, :class:`ConfigError` / ``ModelError`` for bad arguments.
    """
    from neural_ae.core.bags import HDRBagWriter, open_hdr_bag
    from neural_ae.core.sensor import load_sensor
    from tqdm import tqdm

    bag = open_hdr_bag(bag_path, topic=topic)
    n_total = len(bag)
    if n_total == 0:
        raise BagFormatError(f'{bag_path} has no frames on {topic}; topics: '
                             f'{sorted(bag.topics())}')
    sens = load_sensor(sensor)
    ctrl = build_controller(controller, options, sens, model, device=device)
    perception = None
    if detector:
        from neural_ae.core.models.perception import load_perception
        perception = load_perception(detector, sens, device)
    out = Path(output) if output else (Path('out') / 'replay' /
                                       f'{Path(bag_path).name}_{controller}')
    metrics_file = Path(metrics_path) if metrics_path else Path(f'{out}.metrics.json')
    if out.exists():
        raise ConfigError(f'output {out} exists (bags are write-once)')
    out.parent.mkdir(parents=True, exist_ok=True)
    total = min(n_total, max_frames) if max_frames else n_total
    bar = tqdm(total=total, unit='frame', desc=f'replay {controller}',
               disable=not show_progress, file=sys.stderr)
    try:
        with HDRBagWriter(out, storage=storage, topic=RAW_TOPIC) as writer:
            run = replay_frames(bag.iter_radiance(topic), ctrl, sensor=sens, writer=writer,
                                perception=perception, latency_frames=latency_frames,
                                seed=seed, noise=noise, max_frames=max_frames,
                                progress=lambda: bar.update(1))
    finally:
        bar.close()
    result = run['result']
    error = run['error']
    if error is None and bag.salvaged:
        error = bag.salvage_note
    summary = {'bag': str(bag_path), 'output': str(out), 'metrics_file': str(metrics_file),
               'controller': controller, 'frames': result.n_frames,
               'frames_in_bag': n_total, 'error': error,
               'summary': run['metrics'].get('summary', {})}
    doc = {'run': {k: v for k, v in summary.items() if k != 'summary'},
           'options': ctrl.describe(), 'latency_frames': result.latency_frames,
           'seed': seed, 'noise': noise, 'timing': result.timing(),
           'metrics': run['metrics'], 'per_frame': result.to_dict(with_frames=True)}
    metrics_file.parent.mkdir(parents=True, exist_ok=True)
    metrics_file.write_text(json.dumps(json_safe(doc), indent=1, allow_nan=False))
    if error is not None:
        raise BagFormatError(f'{bag_path} is damaged: replayed {result.n_frames} readable '
                             f'frames into {out} and {metrics_file}; {error}')
    return json_safe(summary)


def run(args) -> int:
    """Replay, print a one-line JSON summary."""
    device = apply_device_threads(args)
    summary = replay_bag(args.bag, args.controller, args.out, args.metrics,
                         options=parse_options(args.option), sensor=args.sensor,
                         latency_frames=args.latency_frames, seed=args.seed,
                         model=args.model, detector=args.detector, topic=args.topic,
                         max_frames=args.max_frames, storage=args.storage,
                         noise=not args.no_noise, show_progress=not args.no_progress,
                         device=device)
    print(json.dumps(summary))
    return 0
