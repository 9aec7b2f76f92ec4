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
  :func:`neural_ae.core.hdr.read_hdr`.

``--labels COCO.json`` attaches labels to bracket/HDR frames: each COCO image needs
``frame_index``, ``t_ns`` or a ``file_name`` whose stem is the frame's (sidecar or file)
stem. Frames are stamped ``k / rate_hz``. MCAP by default (``--storage sqlite3``).
"""
import json
from pathlib import Path
import sys
from types import SimpleNamespace

from neural_ae.commands._args import add_out, add_progress
from neural_ae.core.errors import ConfigError, HDRError
import numpy as np

HDR_SUFFIXES = ('.hdr', '.pic', '.exr', '.npy', '.npz')


def add_parser(sub) -> None:
    """Register ``make-bag``."""
    p = sub.add_parser('make-bag', help='synthetic scenes, LDR brackets or HDR files -> '
                       'HDR rosbag2 (+ COCO labels)',
                       description='Write an HDR rosbag2 (32FC3 radiance on --topic, COCO '
                       'labels in <bag>/labels.json) from synthetic scenes (default), '
                       'bracketed LDR images (--brackets) or HDR files (--hdr).')
    p.add_argument('output', nargs='?', metavar='BAG',
                   help='bag directory to create (must not exist); or give it as -o/--out')
    add_out(p, text='bag directory to create (must not exist); same as BAG', metavar='BAG')
    src = p.add_mutually_exclusive_group()
    src.add_argument('--brackets', metavar='DIR', help='folder of bracketed LDR images with '
                     'JSON sidecars')
    src.add_argument('--hdr', metavar='PATH', nargs='+', help='HDR files or folders')
    p.add_argument('--scenario', default='tunnel_exit', help='synthetic sequence scenario')
    p.add_argument('--frames', type=int, default=60, help='synthetic frames [frames]')
    p.add_argument('--seed', type=int, default=0, help='synthetic scene seed')
    p.add_argument('--height', type=int, default=256, help='synthetic height [px]')
    p.add_argument('--width', type=int, default=384, help='synthetic width [px]')
    p.add_argument('--rate-hz', type=float, default=30.0, help='frame rate of the stamps [Hz]')
    p.add_argument('--labels', metavar='COCO.json', help='COCO labels for bracket/HDR frames')
    p.add_argument('--full-scale', type=float, help='brackets: linear value of a saturated '
                   "pixel at K t = 1 (default: the sidecar's full_well_e, else 1)")
    p.add_argument('--storage', choices=('mcap', 'sqlite3'), default='mcap',
                   help='rosbag2 storage (default: mcap)')
    p.add_argument('--topic', default='/hdr/image', help='radiance topic')
    add_progress(p, text='no progress bar')
    p.set_defaults(func=run)


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


def _bracket_frames(directory: Path, full_scale):
    from neural_ae.core import hdr
    from neural_ae.core.scenes import load_brackets

    sidecars = []
    for path in sorted(directory.glob('*.json')):
        try:
            doc = json.loads(path.read_text())
        except ValueError:
            continue
        if isinstance(doc, dict) and 'files' in doc and 'exposure_times_s' in doc:
            sidecars.append(path)
    if not sidecars:
        raise HDRError(f'no bracket sidecars (*.json with "files" and "exposure_times_s") in '
                       f'{directory}')
    for path in sidecars:
        images, times, gains, side = load_brackets(directory, path.stem)
        scale = full_scale if full_scale else float(side.get('full_well_e', 1.0))
        yield path.stem, hdr.merge_brackets(images, times, gains, full_scale=scale)


def _hdr_files(paths):
    from neural_ae.core import hdr

    files = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(f for f in p.iterdir() if f.suffix.lower() in HDR_SUFFIXES)
        elif p.exists():
            files.append(p)
        else:
            raise FileNotFoundError(f'HDR input not found: {p}')
    if not files:
        raise HDRError(f'no HDR files ({", ".join(HDR_SUFFIXES)}) in {list(paths)}')
    for f in files:
        yield f.stem, hdr.read_hdr(f)


def count_sources(args) -> int:
    """Count the frames the chosen source will give (for the progress bar)."""
    if args.brackets:
        return len(list(Path(args.brackets).glob('*.json')))
    if args.hdr:
        return sum(len(list(Path(p).iterdir())) if Path(p).is_dir() else 1 for p in args.hdr)
    return args.frames


def resolve_labels(coco: dict, stems: list) -> dict:
    """Give every COCO image a ``frame_index`` (from ``file_name`` stems if needed)."""
    index = {s: i for i, s in enumerate(stems)}
    out = json.loads(json.dumps(coco))
    for img in out.get('images', []):
        if 'frame_index' in img or 't_ns' in img:
            continue
        stem = Path(str(img.get('file_name', ''))).stem
        if stem not in index:
            raise ConfigError(f'label image {img.get("id")} ({img.get("file_name")!r}) matches '
                              'no frame: give frame_index, t_ns or a file_name with a frame stem')
        img['frame_index'] = index[stem]
    return out


def output_path(args) -> str:
    """Return the bag directory: the positional ``BAG`` or ``-o/--out`` (one, once)."""
    if args.output and args.out and args.output != args.out:
        raise ConfigError(f'two output bags given ({args.output} and -o {args.out}); '
                          'give one')
    path = args.out or args.output
    if not path:
        raise ConfigError('give the bag directory to create (BAG or -o/--out)')
    return path


def run(args) -> int:
    """Write the bag; print a one-line JSON summary."""
    from neural_ae.core.bags import HDRBagWriter
    from neural_ae.core.scenes import to_coco
    from tqdm import tqdm

    if not args.rate_hz > 0:
        raise ConfigError(f'--rate-hz must be > 0, got {args.rate_hz}')
    out = Path(output_path(args))
    if out.exists():
        raise ConfigError(f'output {out} exists (bags are write-once)')
    labels = None
    if args.labels:
        if not (args.brackets or args.hdr):
            raise ConfigError('--labels is for --brackets/--hdr input; synthetic scenes come '
                              'with their own labels')
        labels = json.loads(Path(args.labels).read_text())
    if args.brackets:
        frames = _bracket_frames(Path(args.brackets), args.full_scale)
    elif args.hdr:
        frames = _hdr_files(args.hdr)
    else:
        frames = _synthetic(args)
    period_ns = int(round(1e9 / args.rate_hz))
    stems = []
    bar = tqdm(total=count_sources(args), unit='frame', desc='make-bag',
               disable=args.no_progress, file=sys.stderr)
    with HDRBagWriter(out, storage=args.storage, topic=args.topic) as writer:
        try:
            for stem, radiance in frames:
                writer.write_radiance(len(stems) * period_ns, radiance)
                stems.append(stem)
                bar.update(1)
        finally:
            bar.close()
        if not stems:
            raise HDRError('no frames to write')
        if labels is not None:
            writer.write_labels(resolve_labels(labels, stems))
        elif not (args.brackets or args.hdr):
            coco = to_coco(args._synthetic_scenes, [f'{s}.png' for s in stems])
            for k, img in enumerate(coco['images']):
                img['frame_index'] = k
            writer.write_labels(coco)
    print(json.dumps({'bag': str(out), 'frames': len(stems), 'storage': args.storage,
                      'topic': args.topic, 'labels': labels is not None or not (
                          args.brackets or args.hdr)}))
    return 0
