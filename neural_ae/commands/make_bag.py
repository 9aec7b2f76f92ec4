"""
``neural-ae make-bag``: write an HDR rosbag2 (32FC3 radiance + COCO labels) for replay.

Sources (one per call):

- synthetic (default): a procedural sequence, ``--scenario --frames --seed --height
  --width``; labels come from the scene generator;
- ``--brackets DIR``: folders of bracketed 8-bit LDR images, one frame per JSON sidecar
  (``{"files": [...], "exposure_times_s": [...], "gains": [...], "full_well_e": ...}``, as
  :func:`neural_ae.core.scenes.export_brackets` writes them), merged with
  :func:`neural_ae.core.hdr.merge_brackets` (Eq. 7); frames in sorted sidecar order;
- ``--hdr PATH [PATH ...]``: HDR files (``.hdr``, ``.exr`` where OpenCV has OpenEXR,
  ``.npy``, ``.npz``) or folders of them, sorted by name, read with
  :func:`neural_ae.core.hdr.read_hdr`. The bag may follow the inputs
  (``make-bag --hdr DIR OUT``: the last word, when it does not exist and is not an HDR
  file name, is the bag to create).

Units (declared in the bag's ``metadata.yaml``, :mod:`neural_ae.core.bags.units`):
synthetic scenes are in e-/s of the sensor model; merged brackets too when the sidecars
give ``full_well_e`` (or ``--full-scale`` is given), else ``relative``; HDR files are in
unknown units and declared ``relative`` (``replay`` and the simulator then choose a scale
from the data). ``--radiance-scale FACTOR`` multiplies bracket/HDR radiance by FACTOR and
declares e-/s; ``--radiance-scale auto`` chooses FACTOR from the data
(:mod:`neural_ae.core.calibration`: the median ``e_base`` of every k-th frame at the
geometric middle of ``--sensor``'s exposure range); the factor is recorded in the bag.

``--labels COCO.json`` attaches labels to bracket/HDR frames: each COCO image needs
``frame_index``, a stamp (``t_ns`` / ``stamp_ns``, matched to the nearest frame) or a
``file_name`` whose stem is the frame's (sidecar or file) stem. Frames are stamped
``k / rate_hz``. MCAP by default (``--storage sqlite3``).

The bag is written under a temporary name beside the target and renamed when complete:
a failed run leaves nothing behind. An existing bag is replaced only with ``--force``,
and never when it is (or holds) an input.
"""
import json
import logging
from pathlib import Path
import sys
from types import SimpleNamespace
from typing import Callable, List, Optional, Tuple

from neural_ae.commands._args import add_out, add_progress
from neural_ae.commands._outputs import add_force, check_output, looks_like_bag
from neural_ae.core.errors import ConfigError, HDRError
import numpy as np

HDR_SUFFIXES = ('.hdr', '.pic', '.exr', '.npy', '.npz')
LOG = logging.getLogger(__name__)


def add_parser(sub) -> None:
    """Register ``make-bag``."""
    p = sub.add_parser('make-bag', help='synthetic scenes, LDR brackets or HDR files -> '
                       'HDR rosbag2 (+ COCO labels)',
                       description='Write an HDR rosbag2 (32FC3 radiance on --topic, COCO '
                       'labels in <bag>/labels.json) from synthetic scenes (default), '
                       'bracketed LDR images (--brackets) or HDR files (--hdr).')
    p.add_argument('output', nargs='?', metavar='BAG',
                   help='bag directory to create (must not exist unless --force); or give it '
                   'as -o/--out, or after the --hdr inputs')
    add_out(p, text='bag directory to create (must not exist unless --force); same as BAG',
            metavar='BAG')
    src = p.add_mutually_exclusive_group()
    src.add_argument('--brackets', metavar='DIR', help='folder of bracketed LDR images with '
                     'JSON sidecars')
    src.add_argument('--hdr', metavar='PATH', nargs='+', help='HDR files or folders (the bag '
                     'to create may follow them)')
    p.add_argument('--scenario', default='tunnel_exit', help='synthetic sequence scenario')
    p.add_argument('--frames', type=int, default=60, help='synthetic frames [frames]')
    p.add_argument('--seed', type=int, default=0, help='synthetic scene seed')
    p.add_argument('--height', type=int, default=256, help='synthetic height [px]')
    p.add_argument('--width', type=int, default=384, help='synthetic width [px]')
    p.add_argument('--rate-hz', type=float, default=30.0, help='frame rate of the stamps [Hz]')
    p.add_argument('--labels', metavar='COCO.json', help='COCO labels for bracket/HDR frames')
    p.add_argument('--full-scale', type=float, help='brackets: linear value of a saturated '
                   "pixel at K t = 1 (default: the sidecar's full_well_e, else 1)")
    p.add_argument('--radiance-scale', metavar='auto|FACTOR', help='bracket/HDR input: '
                   'multiply the radiance by FACTOR (auto: chosen from the data) and declare '
                   'e-/s (default: HDR files and brackets without full_well_e are declared '
                   'relative)')
    p.add_argument('--sensor', default='imx249', help='sensor preset for --radiance-scale '
                   'auto (default imx249)')
    p.add_argument('--storage', choices=('mcap', 'sqlite3'), default='mcap',
                   help='rosbag2 storage (default: mcap)')
    p.add_argument('--topic', default='/hdr/image', help='radiance topic')
    add_force(p, text='replace an existing bag (never one that is or holds an input)')
    add_progress(p, text='no progress bar')
    p.set_defaults(func=run)


Item = Tuple[str, Callable[[], np.ndarray]]
"""A frame source entry: ``(stem, load)``; ``load()`` returns the radiance."""


def _synthetic(args):
    from neural_ae.core.scenes import iter_sequence

    boxes = []
    it = iter_sequence(args.seed, args.frames, args.scenario, args.height, args.width)
    for k, scene in enumerate(it):
        h, w = scene.radiance.shape[:2]
        boxes.append(SimpleNamespace(  # labels only: the radiance is not kept
            radiance=np.broadcast_to(np.float32(0), scene.radiance.shape),
            meta={'height': h, 'width': w}, boxes=scene.boxes, labels=scene.labels,
            scenario=scene.scenario, seed=scene.seed))
        yield f'frame_{k:06d}', scene.radiance
    args._synthetic_scenes = boxes


def _bracket_items(directory: Path, full_scale) -> Tuple[List[Item], bool]:
    """``(items, in_e_per_s)``: one merge per sidecar; e-/s when every scale is known."""
    from neural_ae.core import hdr
    from neural_ae.core.scenes import load_brackets

    if not directory.is_dir():
        raise FileNotFoundError(f'bracket folder not found: {directory}')
    sidecars, known = [], True
    for path in sorted(directory.glob('*.json')):
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(doc, dict) and 'files' in doc and 'exposure_times_s' in doc:
            sidecars.append(path)
            known = known and (bool(full_scale) or 'full_well_e' in doc)
    if not sidecars:
        raise HDRError(f'no bracket sidecars (*.json with "files" and "exposure_times_s") in '
                       f'{directory}')

    def loader(stem: str):
        def load():
            images, times, gains, side = load_brackets(directory, stem)
            try:
                scale = full_scale if full_scale else float(side.get('full_well_e', 1.0))
            except (TypeError, ValueError) as err:
                raise HDRError(f'bracket sidecar {stem}.json: full_well_e '
                               f'{side.get("full_well_e")!r} is not a number') from err
            return hdr.merge_brackets(images, times, gains, full_scale=scale)
        return load

    return [(p.stem, loader(p.stem)) for p in sidecars], known


def _hdr_items(paths) -> List[Item]:
    from neural_ae.core import hdr

    files: List[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(f for f in p.iterdir() if f.suffix.lower() in HDR_SUFFIXES)
        elif p.exists():
            files.append(p)
        else:
            raise FileNotFoundError(f'HDR input not found: {p}')
    if not files:
        raise HDRError(f'no HDR files ({", ".join(HDR_SUFFIXES)}) in {list(paths)}')
    return [(f.stem, (lambda f=f: hdr.read_hdr(f))) for f in files]


def resolve_labels(coco: dict, stems: list) -> dict:
    """
    Give every COCO image a ``frame_index`` (from ``file_name`` stems if needed).

    ``coco``: as :func:`~neural_ae.core.bags.labels.read_labels_file` returns it (checked,
    a fresh copy); it is completed in place and returned.
    """
    index = {s: i for i, s in enumerate(stems)}
    for img in coco['images']:
        if 'frame_index' in img or 't_ns' in img:
            continue
        stem = Path(str(img.get('file_name', ''))).stem
        if stem not in index:
            raise ConfigError(f'label image {img.get("id")} ({img.get("file_name")!r}) matches '
                              'no frame: give frame_index, t_ns or a file_name with a frame stem')
        img['frame_index'] = index[stem]
    return coco


def output_path(args) -> str:
    """
    Return the bag directory: the positional ``BAG``, ``-o/--out`` or after ``--hdr``.

    ``make-bag --hdr IN... OUT``: argparse gives OUT to ``--hdr``; the last ``--hdr``
    word is the bag when no other is given and it is a rosbag2 (refused later unless
    ``--force``) or does not exist and is not named like an HDR file (it is taken off
    the inputs).
    """
    if args.output and args.out and args.output != args.out:
        raise ConfigError(f'two output bags given ({args.output} and -o {args.out}); '
                          'give one')
    path = args.out or args.output
    if not path and args.hdr and len(args.hdr) >= 2:
        last = Path(args.hdr[-1])
        if looks_like_bag(last) or (not last.exists()
                                    and last.suffix.lower() not in HDR_SUFFIXES):
            path = args.hdr.pop()
    if not path:
        raise ConfigError('give the bag directory to create (BAG, -o/--out, or after the '
                          '--hdr inputs)')
    return path


def _scale_sample(items: List[Item], n: int):
    every = max(1, -(-len(items) // n))
    for _, load in items[::every]:
        yield load()


def run(args) -> int:
    """Write the bag; print a one-line JSON summary."""
    from neural_ae.core.bags import HDRBagWriter
    from neural_ae.core.bags.labels import read_labels_file
    from neural_ae.core.bags.units import E_PER_S, RELATIVE, SCALE_KEY, SCALE_METHOD_KEY
    from neural_ae.core.calibration import (AUTO, AUTO_SAMPLE_FRAMES, calibrate_frames,
                                            parse_radiance_scale)
    from neural_ae.core.scenes import to_coco
    from tqdm import tqdm

    if not 1e-3 <= args.rate_hz <= 1e4:
        raise ConfigError(f'--rate-hz must be in [0.001, 10000] Hz, got {args.rate_hz}')
    out = Path(output_path(args))
    inputs = [args.brackets, args.labels] + list(args.hdr or [])
    check_output(out, [p for p in inputs if p], args.force, 'output bag', bag=True,
                 allow_inside=True)
    foreign = bool(args.brackets or args.hdr)
    option: Optional[object] = None
    if args.radiance_scale is not None:
        if not foreign:
            raise ConfigError('--radiance-scale is for --brackets/--hdr input; synthetic '
                              'scenes are in e-/s already')
        option = parse_radiance_scale(args.radiance_scale, '--radiance-scale')
    labels = None
    if args.labels:
        if not foreign:
            raise ConfigError('--labels is for --brackets/--hdr input; synthetic scenes come '
                              'with their own labels')
        labels = read_labels_file(args.labels, ConfigError, require_key=False)
    unit, calib = E_PER_S, None
    items: List[Item] = []
    if args.brackets:
        items, known = _bracket_items(Path(args.brackets), args.full_scale)
        unit = E_PER_S if known else RELATIVE
    elif args.hdr:
        items, unit = _hdr_items(args.hdr), RELATIVE
    if foreign and option is not None:
        from neural_ae.core.sensor import load_sensor

        sample = _scale_sample(items, AUTO_SAMPLE_FRAMES) if option == AUTO else iter(())
        calib = calibrate_frames(sample, load_sensor(args.sensor), option, None, 'make-bag')
        LOG.info('make-bag: %s', calib.describe())
        unit = E_PER_S
    frames = (((stem, load()) for stem, load in items) if foreign else _synthetic(args))
    period_ns = int(round(1e9 / args.rate_hz))
    stems: List[str] = []
    bar = tqdm(total=len(items) if foreign else args.frames, unit='frame', desc='make-bag',
               disable=args.no_progress, file=sys.stderr)
    with HDRBagWriter(out, storage=args.storage, topic=args.topic, radiance_unit=unit,
                      atomic=True, replace=args.force) as writer:
        if calib is not None:
            writer.set_custom_data(SCALE_KEY, repr(calib.scale))
            writer.set_custom_data(SCALE_METHOD_KEY, calib.method)
        try:
            for stem, radiance in frames:
                if calib is not None:
                    radiance = calib.apply(radiance)
                writer.write_radiance(len(stems) * period_ns, radiance)
                stems.append(stem)
                bar.update(1)
        finally:
            bar.close()
        if not stems:
            raise HDRError('no frames to write')
        if labels is not None:
            writer.write_labels(resolve_labels(labels, stems))
        elif not foreign:
            coco = to_coco(args._synthetic_scenes, [f'{s}.png' for s in stems])
            for k, img in enumerate(coco['images']):
                img['frame_index'] = k
            writer.write_labels(coco)
    print(json.dumps({'bag': str(out), 'frames': len(stems), 'storage': args.storage,
                      'topic': args.topic, 'labels': labels is not None or not foreign,
                      'radiance_unit': unit,
                      'radiance_scale': None if calib is None else calib.scale}))
    return 0
