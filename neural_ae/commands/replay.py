"""
``neural-ae replay BAG --controller NAME``: closed-loop replay of an HDR bag, no ROS needed.

Every radiance frame of the bag is captured by the simulated sensor at the setting in
force, the controller decides the next setting, and the command takes effect
``latency_frames`` frames later (:func:`neural_ae.core.closed_loop.run_closed_loop`).
Outputs:

- an output rosbag2 (``--output``, default ``out/replay/<bag>_<controller>``) with the raw
  frames (``/camera/image_raw``, ``bayer_*16``) written as they are produced, and after the
  run one JSON ``std_msgs/String`` per frame on ``/replay/settings`` (setting in force,
  command, target, flags, raw statistics) and on ``/replay/detections`` (detector boxes
  when ``--detector`` is given; ``{"detector": null, "detections": []}`` otherwise);
- a metrics JSON (``--metrics``, default ``<output>.metrics.json``): temporal metrics of
  :func:`neural_ae.core.metrics_temporal.temporal_metrics`, timing and run settings.

A corrupt or truncated input bag ends the replay at the last readable frame: everything
replayed so far is written (bag and metrics, ``"error"`` set), then the command fails with
one line and exit code 2.

For other tools (e.g. a demo), :func:`replay_frames` runs the same loop over any iterable
of ``(t_ns, radiance)`` frames, and :func:`replay_bag` is the whole command as a function.
"""
import json
from pathlib import Path
import sys
from typing import Iterable, Optional

from neural_ae.core.errors import BagFormatError, ConfigError
from neural_ae.core.jsonsafe import json_safe

RAW_TOPIC = '/camera/image_raw'
SETTINGS_TOPIC = '/replay/settings'
DETECTIONS_TOPIC = '/replay/detections'
NEURAL = ('histogram_nn', 'semantic_nn', 'hybrid_nn')
NEEDS_FEATURES = ('semantic_nn', 'hybrid_nn')


def add_parser(sub) -> None:
    """Register ``replay``."""
    p = sub.add_parser('replay', help='closed-loop replay of an HDR bag with one controller',
                       description='Closed-loop replay of an HDR bag: raw frames, settings '
                       'and detections to an output bag, temporal metrics to JSON.')
    p.add_argument('bag', help='HDR rosbag2 (directory or .mcap/.db3)')
    p.add_argument('--controller', required=True,
                   help='fixed, average, gradient, histogram_nn, semantic_nn, hybrid_nn or '
                   'oracle')
    p.add_argument('--output', '-o', help='output bag directory (must not exist; default '
                   'out/replay/<bag>_<controller>)')
    p.add_argument('--metrics', help='metrics JSON (default: <output>.metrics.json)')
    p.add_argument('--sensor', default='imx249', help='sensor preset or YAML')
    p.add_argument('--latency-frames', type=int, help='actuation latency [frames] '
                   '(default: the controller option latency_frames)')
    p.add_argument('--seed', type=int, default=0, help='sensor-noise seed')
    p.add_argument('--model', help='exposure network checkpoint (*_nn; default '
                   'models/<controller>.pt)')
    p.add_argument('--detector', help='detector checkpoint: detections, and the features of '
                   'semantic_nn / hybrid_nn')
    p.add_argument('--option', action='append', default=[], metavar='KEY=VALUE',
                   help='a ControllerOptions field, value in YAML (repeatable)')
    p.add_argument('--topic', default='/hdr/image', help='radiance topic of the input bag')
    p.add_argument('--max-frames', type=int, help='replay at most this many frames')
    p.add_argument('--storage', choices=('mcap', 'sqlite3'), default='mcap')
    p.add_argument('--no-noise', action='store_true', help='capture the expected image')
    p.add_argument('--no-progress', action='store_true', help='no progress bar')
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


def build_controller(name: str, options: Optional[dict] = None, sensor=None,
                     model: Optional[str] = None):
    """Build a controller by name; neural ones need ``model`` or ``models/<name>.pt``."""
    from neural_ae.core.controllers import ControllerOptions, make_controller
    from neural_ae.core.errors import ModelError
    from neural_ae.core.paths import models_dir

    opts = ControllerOptions.from_dict(options or {})
    kw = {}
    if name in NEURAL:
        path = Path(model) if model else None
        if path is None:
            try:
                path = models_dir() / f'{name}.pt'
            except FileNotFoundError:
                path = Path('models') / f'{name}.pt'
        if not path.is_file():
            raise ModelError(f'model file for {name} not found: {path} (give --model)')
        kw['model'] = str(path)
    return make_controller(name, opts, sensor=sensor, **kw)


def replay_frames(frames: Iterable, controller, *, sensor=None, writer=None, perception=None,
                  latency_frames: Optional[int] = None, seed: int = 0, noise: bool = True,
                  max_frames: Optional[int] = None, progress=None) -> dict:
    """
    Run ``controller`` in closed loop over ``(t_ns, radiance)`` frames; write as it goes.

    ``writer`` (an open :class:`~neural_ae.core.bags.HDRBagWriter`, optional) receives the
    raw frames during the run and the per-frame settings and detections JSON after it.
    ``perception`` (``run(raw) -> (boxes, labels, scores, layer2)``, optional) detects on
    every raw frame and feeds ``layer2`` to semantic/hybrid controllers. A
    :class:`BagFormatError` raised by ``frames`` ends the run early; it is returned, not
    raised. ``progress`` is called once per frame.

    Returns ``{'result': ClosedLoopResult, 'metrics': dict, 't_ns': list,
    'detections': list, 'error': str or None}``.
    """
    from neural_ae.core.closed_loop import run_closed_loop
    from neural_ae.core.metrics_temporal import temporal_metrics
    from neural_ae.ros.detections import detections_to_dict

    sensor = sensor or controller.sensor
    stamps, detections = [], []
    state = {'error': None, 'k': 0}
    encoding = f'bayer_{sensor.bayer_pattern.lower()}16'
    needs_features = getattr(controller, 'needs_features', False)
    if needs_features and perception is None:
        raise ConfigError(f'{controller.name} needs backbone features: give a detector')

    def source():
        try:
            for t_ns, radiance in frames:
                stamps.append(int(t_ns))
                yield radiance
        except BagFormatError as err:
            state['error'] = str(err)

    def per_frame(raw):
        k = state['k']
        state['k'] = k + 1
        if writer is not None:
            writer.write_raw(RAW_TOPIC, stamps[k], raw, encoding)
        features = None
        if perception is not None:
            boxes, labels, scores, layer2 = perception.run(raw)
            detections.append(detections_to_dict(boxes, labels, scores))
            features = layer2 if needs_features else None
        else:
            detections.append(None)
        if progress is not None:
            progress()
        return features

    result = run_closed_loop(source(), controller, sensor=sensor, latency_frames=latency_frames,
                             seed=seed, noise=noise, features_fn=per_frame,
                             max_frames=max_frames)
    metrics = temporal_metrics(result) if result.n_frames else {}
    if writer is not None:
        for k in range(result.n_frames):
            writer.write_json(SETTINGS_TOPIC, stamps[k], json_safe({
                'frame_index': k, 'exposure_time_us': result.exposure_time_us[k],
                'gain_db': result.gain_db[k], 'e_s': result.e_s[k],
                'command_e_s': result.command_e_s[k], 'target_e_s': result.target_e_s[k],
                'clamped': result.clamped[k], 'converged': result.converged[k],
                'fallback': result.fallback[k], 'mean_raw_dn': result.mean_raw_dn[k],
                'saturated_fraction': result.saturated_fraction[k],
                'controller': result.controller}))
            dets = detections[k] if k < len(detections) else None
            writer.write_json(DETECTIONS_TOPIC, stamps[k], {
                'frame_index': k, 'detector': None if dets is None else 'detector',
                'detections': dets or []})
    return {'result': result, 'metrics': metrics, 't_ns': stamps[:result.n_frames],
            'detections': detections, 'error': state['error']}


def replay_bag(bag_path, controller: str, output=None, metrics_path=None, *,
               options: Optional[dict] = None, sensor: str = 'imx249',
               latency_frames: Optional[int] = None, seed: int = 0,
               model: Optional[str] = None, detector: Optional[str] = None,
               topic: str = '/hdr/image', max_frames: Optional[int] = None,
               storage: str = 'mcap', noise: bool = True, show_progress: bool = True) -> dict:
    """
    Run the ``replay`` command as a function; return the summary it prints.

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
    ctrl = build_controller(controller, options, sens, model)
    perception = None
    if detector:
        # The loader lives with the node for now (it needs no ROS itself).
        from neural_ae.core.models.perception import load_perception
        perception = load_perception(detector, sens)
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
    summary = replay_bag(args.bag, args.controller, args.output, args.metrics,
                         options=parse_options(args.option), sensor=args.sensor,
                         latency_frames=args.latency_frames, seed=args.seed,
                         model=args.model, detector=args.detector, topic=args.topic,
                         max_frames=args.max_frames, storage=args.storage,
                         noise=not args.no_noise, show_progress=not args.no_progress)
    print(json.dumps(summary))
    return 0
