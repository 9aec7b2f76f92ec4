"""
``neural-ae scenes``: write procedural HDR scenes, or print their dynamic-range table.

``-o/--out DIR`` writes N scenes (or ``--sequence NAME`` frames) as tone-mapped PNG
previews plus ``annotations.json`` (COCO), optionally the linear radiance
(``--save-hdr npy|hdr|npz``) and three bracketed JPEGs per scene (``--brackets``).
``--stats`` prints the per-scenario dynamic range (median and 95th percentile, dB).
"""
import json
from pathlib import Path
import sys

import cv2
from neural_ae.commands._args import add_out, add_progress
from neural_ae.core import hdr
from neural_ae.core import scenes as sc
from neural_ae.core.errors import SceneError
import numpy as np
from tqdm import tqdm

_COLOURS = ((255, 64, 64), (255, 160, 0), (64, 255, 64), (255, 64, 255), (0, 230, 255),
            (255, 255, 0))


def add_parser(sub) -> None:
    """Register ``scenes``."""
    p = sub.add_parser('scenes', help='procedural HDR driving scenes: previews, COCO, stats',
                       description=__doc__.strip().splitlines()[0])
    add_out(p, text='write scenes here', metavar='DIR')
    p.add_argument('--n', type=int, default=16, help='number of scenes or frames (16)')
    p.add_argument('--seed', type=int, default=0, help='first seed (0)')
    p.add_argument('--scenario', default=None, choices=sc.SCENARIOS,
                   help='scenario of every scene (default: the lighting mix)')
    p.add_argument('--sequence', default=None, choices=sc.SEQUENCE_SCENARIOS,
                   help='write one sequence of --n frames instead of independent scenes')
    p.add_argument('--height', type=int, default=sc.DEFAULT_HEIGHT,
                   help=f'scene height [px] ({sc.DEFAULT_HEIGHT})')
    p.add_argument('--width', type=int, default=sc.DEFAULT_WIDTH,
                   help=f'scene width [px] ({sc.DEFAULT_WIDTH})')
    p.add_argument('--brackets', action='store_true',
                   help='also write three bracketed JPEGs + JSON sidecar per scene')
    p.add_argument('--save-hdr', choices=('npy', 'npz', 'hdr'), default=None,
                   help='also write the linear radiance in this format')
    p.add_argument('--draw-boxes', action='store_true', help='draw boxes on the previews')
    p.add_argument('--stats', action='store_true',
                   help='print the per-scenario dynamic range table (median, p95 dB)')
    p.add_argument('--n-per-scenario', type=int, default=16,
                   help='scenes per scenario for --stats (16)')
    add_progress(p)
    p.set_defaults(func=run)


def _preview(scene, draw_boxes):
    img = hdr.tonemap(scene.radiance)
    if draw_boxes:
        img = img.copy()
        for box, label in zip(scene.boxes, scene.labels):
            x1, y1, x2, y2 = (int(round(v)) for v in box)
            col = _COLOURS[int(label) - 1]
            cv2.rectangle(img, (x1, y1), (x2 - 1, y2 - 1), col, 1)
            cv2.putText(img, sc.CLASSES[int(label) - 1], (x1, max(8, y1 - 2)),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.3, col, 1)
    return img


def _write(args, out: Path) -> int:
    out.mkdir(parents=True, exist_ok=True)
    if args.sequence:
        frames = sc.iter_sequence(args.seed, args.n, args.sequence, args.height, args.width)
    else:
        frames = (sc.generate_scene(args.seed + i, args.scenario, args.height, args.width)
                  for i in range(args.n))
    written, names, metas = [], [], []
    for i, scene in enumerate(tqdm(frames, total=args.n, desc='scenes', unit='scene',
                                   disable=args.no_progress, file=sys.stderr)):
        stem = f'{scene.scenario}_{scene.seed:06d}' if not args.sequence else \
            f'{args.sequence}_{args.seed:06d}_{i:05d}'
        name = f'{stem}.png'
        bgr = cv2.cvtColor(_preview(scene, args.draw_boxes), cv2.COLOR_RGB2BGR)
        if not cv2.imwrite(str(out / name), bgr):
            raise SceneError(f'cannot write preview {out / name}')
        if args.save_hdr:
            hdr.write_hdr(out / f'{stem}.{args.save_hdr}', scene.radiance)
        if args.brackets:
            sc.export_brackets(scene, out / 'brackets', stem)
        # keep only what to_coco needs, not the radiance
        h, w = scene.radiance.shape[:2]
        written.append(sc.Scene(np.zeros((1, 1, 3), np.float32), scene.boxes, scene.labels,
                                scene.scenario, scene.seed, {'height': h, 'width': w}))
        names.append(name)
        meta = dict(scene.meta)
        meta.update(file_name=name, height=int(scene.radiance.shape[0]),
                    width=int(scene.radiance.shape[1]),
                    dynamic_range_db=hdr.dynamic_range_db(scene.radiance))
        metas.append(meta)
    coco = sc.to_coco(written, names)
    (out / 'annotations.json').write_text(json.dumps(coco))
    (out / 'meta.json').write_text(json.dumps(metas, indent=1))
    n_ann = len(coco['annotations'])
    print(f'wrote {len(names)} scenes, {n_ann} boxes to {out} (annotations.json, meta.json)')
    return 0


def _stats(args) -> int:
    n = int(args.n_per_scenario)
    if n < 1:
        raise SceneError(f'--n-per-scenario must be >= 1; got {n}')
    bar = tqdm(total=n * len(sc.SCENARIOS), desc='stats', unit='scene',
               disable=args.no_progress, file=sys.stderr)
    table = sc.scenario_dynamic_range_table(n, args.seed, (args.height, args.width),
                                            progress=lambda: bar.update(1))
    bar.close()
    print(f'dynamic range over {n} scenes per scenario, {args.height}x{args.width}, '
          f'seeds {args.seed}..{args.seed + n - 1} (dB, 99.9th / 0.1th luminance pct)')
    print(f'{"scenario":<18} {"median":>7} {"p95":>7} {"min":>7} {"max":>7}')
    for name, row in table.items():
        print(f'{name:<18} {row["median_db"]:7.1f} {row["p95_db"]:7.1f} '
              f'{row["min_db"]:7.1f} {row["max_db"]:7.1f}')
    return 0


def run(args) -> int:
    """Write scenes and/or print the dynamic-range table."""
    if not args.out and not args.stats:
        raise SceneError('nothing to do: give --out DIR and/or --stats')
    if args.n < 1:
        raise SceneError(f'--n must be >= 1; got {args.n}')
    if args.out:
        _write(args, Path(args.out))
    if args.stats:
        _stats(args)
    return 0
