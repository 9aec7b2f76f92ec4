"""
``neural-ae replay BAG --controller NAME``: closed-loop replay of an HDR bag, no ROS needed.

Every radiance frame of the bag is captured by the simulated sensor at the setting in
force, the controller decides the next setting, and the command takes effect
``latency_frames`` frames later (:func:`neural_ae.core.closed_loop.run_closed_loop`).
Outputs:

- an output rosbag2 (``-o/--out``, default ``out/replay/<bag>_<controller>``) with, as
  each frame is made, its raw frame (``/camera/image_raw``, ``bayer_*16``) and one JSON
  ``std_msgs/String`` on ``/replay/settings`` (setting in force, command, target, flags,
  raw statistics) and on ``/replay/detections`` (detector boxes when a detector runs;
  ``{"detector": null, "detections": []}`` otherwise); its ``metadata.yaml`` records the
  radiance scale (``custom_data``);
- a metrics JSON (``--metrics``, default ``<out>.metrics.json``): temporal metrics of
  :func:`neural_ae.core.metrics.temporal.temporal_metrics`, the radiance scale, timing and
  run settings; with a detector and a bag with ``labels.json``, the AP@0.5 over the
  labelled frames (COCO images matched by ``frame_index`` or by the nearest stamp,
  ``t_ns`` / ``stamp_ns``, within half the bag's frame period).

Inputs are checked before anything is written: the bag, the sensor, the controller and
its model file (trained controllers default to the registry's shipped model), the
detector (``--detector``, else, for a controller that needs backbone features, the one in
its model file), the options and the output paths. Outputs never overwrite an input
(not even with ``--force``) nor an existing file or bag (unless ``--force``); the bag is
written under a temporary name and renamed at the end, so a failed run leaves nothing
that blocks the rerun.

Radiance units: ``--radiance-scale auto`` (default) uses a bag that declares ``e-/s`` as
is and scales any other so that its median ``e_base`` lands at the geometric middle of
the sensor's exposure range (:mod:`neural_ae.core.calibration`); a number is used as the
factor. A run whose camera sits at an exposure bound for more than 20 % of the frames is
flagged (``at_bound`` in the metrics) and warned about.

A corrupt or truncated input bag ends the replay at the last readable frame: everything
replayed so far is written (bag and metrics, ``"error"`` set), then the command fails with
one line and exit code 2.

For other tools (e.g. a demo), :func:`neural_ae.core.replay.replay_frames` runs the same
loop over any iterable of ``(t_ns, radiance)`` frames, and :func:`replay_bag` is the whole
command as a function.
"""
import json
import logging
from pathlib import Path
import sys
from typing import Iterable, Optional

from neural_ae.commands._args import add_device, add_out, add_progress, apply_device_threads
from neural_ae.commands._outputs import add_force, check_output, write_text_atomic
from neural_ae.core.controllers import build_controller, controller_names, get_spec
from neural_ae.core.errors import BagFormatError, ConfigError, ModelError
from neural_ae.core.jsonsafe import json_safe
from neural_ae.core.replay import DETECTIONS_TOPIC, RAW_TOPIC, replay_frames, SETTINGS_TOPIC

__all__ = ['DETECTIONS_TOPIC', 'parse_options', 'RAW_TOPIC', 'replay_bag', 'replay_frames',
           'run', 'SETTINGS_TOPIC']

LOG = logging.getLogger(__name__)
BAG_SUFFIXES = ('.mcap', '.db3')
"""Files that are a rosbag2 on their own."""


def add_parser(sub) -> None:
    """Register ``replay``."""
    p = sub.add_parser('replay', help='closed-loop replay of an HDR bag with one controller',
                       description='Closed-loop replay of an HDR bag: raw frames, settings '
                       'and detections to an output bag, temporal metrics to JSON.')
    p.add_argument('bag', help='HDR rosbag2 (directory or .mcap/.db3), or a folder of them '
                   '(each replayed into the output folder; under torchrun sharded by rank)')
    p.add_argument('--controller', required=True, metavar='NAME',
                   help=f'controller to run: {", ".join(controller_names())}')
    add_out(p, text='output bag directory (must not exist unless --force; default '
            'out/replay/<bag>_<controller>)', aliases=('--output',), metavar='BAG')
    p.add_argument('--metrics', help='metrics JSON (default: <out>.metrics.json; must not '
                   'exist unless --force, never inside the input bag)')
    p.add_argument('--sensor', default='imx249', help='sensor preset or YAML')
    p.add_argument('--latency-frames', type=int, help='actuation latency [frames] '
                   '(default: the controller option latency_frames)')
    p.add_argument('--seed', type=int, default=0, help='sensor-noise seed')
    p.add_argument('--model', help='model file of a trained controller (default: the '
                   "registry's shipped model in models/)")
    p.add_argument('--detector', help='detector checkpoint: detections, and the features of '
                   'semantic_nn / hybrid_nn (default for those: the detector in their model '
                   'file)')
    p.add_argument('--correction-model', default='', metavar='PATH',
                   help='correction model (issue 14): the detector sees its corrected image '
                   '(as the node parameter correction_model; default: off)')
    p.add_argument('--option', action='append', default=[], metavar='KEY=VALUE',
                   help='a ControllerOptions field, value in YAML (repeatable)')
    p.add_argument('--topic', default='/hdr/image', help='radiance topic of the input bag')
    p.add_argument('--radiance-scale', default='auto', metavar='auto|FACTOR',
                   help="factor from the bag's radiance to e-/s of the sensor model; auto "
                   '(default): 1 for a bag that declares e-/s, else chosen so the median '
                   'e_base lands at the geometric middle of the exposure range')
    p.add_argument('--max-frames', type=int, help='replay at most this many frames (>= 1)')
    p.add_argument('--storage', choices=('mcap', 'sqlite3'), default='mcap',
                   help='rosbag2 storage of the output bag (default: mcap)')
    p.add_argument('--no-noise', action='store_true', help='capture the expected image')
    add_force(p, text='replace an existing output bag / metrics file (never the input)')
    add_progress(p, text='no progress bar')
    add_device(p, 'cpu', what='the controller network and the detector')
    p.add_argument('--backend', choices=('torch', 'onnxruntime', 'tensorrt'), default='torch',
                   help='inference backend of the networks (default: torch); onnxruntime / '
                        'tensorrt run the files neural-ae export wrote')
    p.add_argument('--deploy-dir', metavar='DIR',
                   help='folder of the exported files (default: beside each model file)')
    p.set_defaults(func=run)


def parse_options(pairs: Iterable[str]) -> dict:
    """``['mu=0.8', 'smoothing=ema']`` -> ``{'mu': 0.8, 'smoothing': 'ema'}`` (YAML values)."""
    import yaml

    out = {}
    for pair in pairs:
        key, sep, value = pair.partition('=')
        if not sep or not key.strip():
            raise ConfigError(f'--option expects KEY=VALUE, got {pair!r}')
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as err:
            first = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise ConfigError(f'--option {pair[:60]!r}: the value is not YAML ({first})') \
                from None
    return out


def _check_int(name: str, value, low: int, high: Optional[int] = None) -> Optional[int]:
    """Return ``value`` (None passes) or a one-line :class:`ConfigError` naming ``name``."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (
            high is not None and value > high):
        rule = f'>= {low}' if high is None else f'in [{low}, {high}]'
        raise ConfigError(f'{name} must be an integer {rule}, got {value!r}')
    return value


def _perception(controller: str, model, detector, sensor, device: str, **backend):
    """
    Return ``(perception, source)``: ``detector``, else the model file's, else none.

    The model file's detector serves a controller that needs features. ``backend``:
    ``backend`` / ``deploy_dir`` / ``frame_size`` for ``load_perception``.
    """
    from neural_ae.core.checkpoints import resolve_model_path
    from neural_ae.core.deploy import DeployError
    from neural_ae.core.models.perception import load_perception

    if detector:
        return load_perception(detector, sensor, device, **backend), str(detector)
    spec = get_spec(controller)
    if not spec.needs_features:
        return None, None
    if not spec.trained:
        raise ConfigError(f'{controller} needs backbone features: give --detector')
    path = resolve_model_path(model, spec.default_model)
    try:  # a training checkpoint carries the detector its network was trained with
        return load_perception(path, sensor, device, **backend), str(path)
    except DeployError:
        raise
    except ModelError as err:
        raise ModelError(f'{controller} needs backbone features and its model file holds no '
                         f'usable detector; give --detector ({err})') from err


def _labels(bag, topic: str) -> tuple:
    """``(LabelIndex or None, stamp tolerance [ns])`` of the bag; bad labels: a warning."""
    from neural_ae.core.bags.labels import label_index, stamp_tolerance_ns

    try:
        coco = bag.labels()
        if coco is None:
            return None, 0
        index = label_index(coco, f'{bag.path}/labels.json')
    except BagFormatError as err:
        LOG.warning('%s; no AP for this replay', err)
        return None, 0
    return index, (stamp_tolerance_ns(bag.timestamps(topic)) if index.stamps_ns else 0)


def replay_bag(bag_path, controller: str, output=None, metrics_path=None, *,
               options: Optional[dict] = None, sensor: str = 'imx249',
               latency_frames: Optional[int] = None, seed: int = 0,
               model: Optional[str] = None, detector: Optional[str] = None,
               topic: str = '/hdr/image', max_frames: Optional[int] = None,
               storage: str = 'mcap', noise: bool = True, show_progress: bool = True,
               device: str = 'cpu', radiance_scale='auto', force: bool = False,
               backend: str = 'torch', deploy_dir=None, correction_model: str = '') -> dict:
    """
    Run the ``replay`` command as a function; return the summary it prints.

    ``device`` (``'cpu'`` or ``'cuda'``): where a trained controller and the detector run.
    ``radiance_scale``: ``'auto'`` or a factor (:mod:`neural_ae.core.calibration`).
    ``force``: replace an existing output bag / metrics file (never an input).
    ``backend`` / ``deploy_dir``: inference backend of the networks and the folder of the
    exported files (:mod:`neural_ae.core.deploy`; checked, with a trial run on a frame of
    the bag's size, before anything is written). ``correction_model``: the detector sees
    that correction network's output (:mod:`neural_ae.core.correction.perception`). Raises
    :class:`BagFormatError` (after writing everything replayed so far) when the input bag
    is damaged, :class:`ConfigError` / ``ModelError`` for bad arguments, before any output
    is created.
    """
    from neural_ae.core.bags import HDRBagWriter, open_hdr_bag
    from neural_ae.core.bags.units import SCALE_KEY, SCALE_METHOD_KEY
    from neural_ae.core.calibration import calibrate_bag, parse_radiance_scale, scaled
    from neural_ae.core.loop import FrameStep
    from neural_ae.core.metrics.temporal import bound_warning
    from neural_ae.core.sensor import load_sensor
    from tqdm import tqdm

    # every input first: nothing is created until all of them are good
    max_frames = _check_int('--max-frames', max_frames, 1)
    _check_int('--seed', seed, 0, 2 ** 32 - 1)
    _check_int('--latency-frames', latency_frames, 0, 30)
    radiance_scale = parse_radiance_scale(radiance_scale, '--radiance-scale')
    bag = open_hdr_bag(bag_path, topic=topic)
    n_total = len(bag)
    if n_total == 0:
        raise BagFormatError(f'{bag_path} has no frames on {topic}; topics: '
                             f'{sorted(bag.topics())}')
    sens = load_sensor(sensor)
    ctrl = build_controller(controller, options, sens, model, device=device, backend=backend,
                            deploy_dir=deploy_dir)
    frame_size = None
    if backend != 'torch':
        from neural_ae.core.deploy import warm_up

        first = next(bag.sample_radiance(1, topic))[2]
        frame_size = (first.shape[0] // 2 * 2, first.shape[1] // 2 * 2)
    perception, detector_from = _perception(controller, model, detector, sens, device,
                                            backend=backend, deploy_dir=deploy_dir,
                                            frame_size=frame_size)
    if correction_model:
        from neural_ae.core.correction.perception import with_correction

        perception, detector_from = with_correction(perception, detector_from,
                                                    correction_model, sens, device or 'cpu')
    step = FrameStep(ctrl, perception)
    if frame_size is not None:
        warm_up(step, frame_size, backend)
    out = Path(output) if output else (Path('out') / 'replay' /
                                       f'{Path(bag_path).name}_{controller}')
    metrics_file = Path(metrics_path) if metrics_path else Path(f'{out}.metrics.json')
    check_output(out, [bag.path], force, 'output bag', bag=True)
    check_output(metrics_file, [bag.path, out], force, 'metrics file')
    calib = calibrate_bag(bag, sens, radiance_scale, topic)
    labels, tol = _labels(bag, topic) if perception is not None else (None, 0)
    total = min(n_total, max_frames) if max_frames else n_total
    bar = tqdm(total=total, unit='frame', desc=f'replay {controller}',
               disable=not show_progress, file=sys.stderr)
    try:
        with HDRBagWriter(out, storage=storage, topic=RAW_TOPIC, atomic=True,
                          replace=force) as writer:
            writer.set_custom_data(SCALE_KEY, repr(calib.scale))
            writer.set_custom_data(SCALE_METHOD_KEY, calib.method)
            writer.set_custom_data('neural_ae.radiance_calibration',
                                   json.dumps(json_safe(calib.to_dict())))
            run = replay_frames(scaled(bag.iter_radiance(topic), calib), step, sensor=sens,
                                writer=writer, latency_frames=latency_frames, seed=seed,
                                noise=noise, max_frames=max_frames,
                                progress=lambda: bar.update(1), labels=labels,
                                label_tolerance_ns=tol)
    finally:
        bar.close()
    result = run['result']
    error = run['error']
    if error is None and bag.salvaged:
        error = bag.salvage_note
    summ = run['metrics'].get('summary', {})
    warning = bound_warning(summ, f'replay {controller} of {bag_path}')
    if warning:
        LOG.warning('%s', warning)
    summary = {'bag': str(bag_path), 'output': str(out), 'metrics_file': str(metrics_file),
               'controller': controller, 'frames': result.n_frames,
               'frames_in_bag': n_total, 'error': error, 'detector': detector_from,
               'radiance_scale': calib.scale, 'radiance': calib.to_dict(),
               'at_bound': bool(summ.get('at_bound')), 'warnings': [warning] if warning else [],
               'map50': None if run.ap is None else run.ap['map50'],
               'labelled_frames': None if run.ap is None else run.ap['labelled_frames'],
               'summary': summ}
    if correction_model:
        summary['correction_model'] = getattr(getattr(perception, 'corrector', None), 'source',
                                              correction_model)
    doc = {'run': {k: v for k, v in summary.items() if k != 'summary'},
           'options': ctrl.describe(), 'latency_frames': result.latency_frames,
           'seed': seed, 'noise': noise, 'timing': result.timing(),
           'radiance': calib.to_dict(), 'metrics': run['metrics'], 'detection': run.ap,
           'per_frame': result.to_dict(with_frames=True)}
    write_text_atomic(metrics_file, json.dumps(json_safe(doc), indent=1, allow_nan=False))
    if error is not None:
        raise BagFormatError(f'{bag_path} is damaged: replayed {result.n_frames} readable '
                             f'frames into {out} and {metrics_file}; {error}')
    return json_safe(summary)


def is_bag(path) -> bool:
    """Whether ``path`` is one rosbag2 (a bag file, or a folder with metadata or storage)."""
    path = Path(path)
    if path.is_file():
        return path.suffix in BAG_SUFFIXES
    # a bag folder has metadata.yaml, or at least its storage files (a salvaged copy)
    return (path / 'metadata.yaml').is_file() or any(
        p.suffix in BAG_SUFFIXES and p.is_file() for p in path.iterdir())


def bags_in(folder) -> list:
    """Return the bags directly inside ``folder``, by name (a bag folder is one bag)."""
    folder = Path(folder)
    return sorted(p for p in folder.iterdir() if is_bag(p))


def replay_folder(folder, controller: str, output=None, shard=None, **kw) -> dict:
    """
    Replay every bag of ``folder`` into ``output/<bag name>`` (+ ``.metrics.json``).

    ``shard`` (:class:`~neural_ae.core.evaluation.distributed.Shard`, torchrun): each rank
    replays every ``world``-th bag; every rank gets the summaries of all bags (one per
    bag, in name order, the same as in one process: the noise seed does not depend on the
    rank). ``kw``: :func:`replay_bag`'s options (``seed``, ``options``, ...). A damaged
    bag is reported in its summary (``error``) and the others go on.
    """
    from neural_ae.core.evaluation.distributed import single_process

    shard = shard or single_process()
    bags = bags_in(folder)
    if not bags:
        raise BagFormatError(f'{folder} holds no rosbag2 (a folder with metadata.yaml or '
                             f'a {"/".join(BAG_SUFFIXES)} file)')
    out = Path(output) if output else Path('out') / 'replay' / f'{Path(folder).name}_{controller}'
    if shard.main:
        out.mkdir(parents=True, exist_ok=True)
    done = {}
    for i in shard.indices(len(bags)):
        bag = bags[i]
        try:
            done[i] = replay_bag(bag, controller, out / bag.stem, None, **kw)
        except BagFormatError as err:
            done[i] = {'bag': str(bag), 'error': str(err)}
    merged = shard.merge(done)
    return {'folder': str(folder), 'output': str(out), 'processes': shard.world,
            'bags': [merged[i] for i in range(len(bags))]}


def run(args) -> int:
    """Replay, print a one-line JSON summary (a folder of bags: one line for all)."""
    device = apply_device_threads(args)
    if Path(args.bag).is_dir() and not is_bag(args.bag):
        from neural_ae.core.evaluation.distributed import join, leave

        if args.metrics:
            raise ConfigError('--metrics names one file: not with a folder of bags (each '
                              'bag gets <out>/<bag>.metrics.json)')
        shard = join(device or 'cpu')
        try:
            summary = replay_folder(
                args.bag, args.controller, args.out, shard,
                options=parse_options(args.option), sensor=args.sensor,
                latency_frames=args.latency_frames, seed=args.seed, model=args.model,
                detector=args.detector, topic=args.topic, max_frames=args.max_frames,
                storage=args.storage, noise=not args.no_noise,
                show_progress=not args.no_progress and shard.main, device=device,
                radiance_scale=args.radiance_scale, force=args.force, backend=args.backend,
                deploy_dir=args.deploy_dir, correction_model=args.correction_model)
        finally:
            leave(shard)
        if shard.main:
            write_text_atomic(Path(summary['output']) / 'summary.json',
                              json.dumps(json_safe(summary), indent=1, allow_nan=False))
            print(json.dumps(json_safe(summary)))
        return 0
    summary = replay_bag(args.bag, args.controller, args.out, args.metrics,
                         options=parse_options(args.option), sensor=args.sensor,
                         latency_frames=args.latency_frames, seed=args.seed,
                         model=args.model, detector=args.detector, topic=args.topic,
                         max_frames=args.max_frames, storage=args.storage,
                         noise=not args.no_noise, show_progress=not args.no_progress,
                         device=device, radiance_scale=args.radiance_scale,
                         force=args.force, backend=args.backend, deploy_dir=args.deploy_dir,
                         correction_model=args.correction_model)
    print(json.dumps(summary))
    return 0
