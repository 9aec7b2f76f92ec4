"""
``neural-ae demo``: the embedded default; needs no data, no ROS daemon and no GPU.

Part 1, the camera: one synthetic tunnel-exit scene captured at three exposures by the
simulated LDR sensor, as a contact sheet plus a table of the scene's dynamic range and
the raw frames' saturation and noise.

Part 2, the closed loop: a synthetic drive out of a tunnel, run closed loop with the
shipped Hybrid NN model (``models/``) and with the Average and Gradient AE baselines,
each with the detector trained for it; a table of mAP@0.5 over all frames, convergence
and flicker per method, a Markdown report with plots, and an output rosbag2 (MCAP) with
the input radiance, the labels, and per method the raw frames, settings and detections,
ready for ``neural-ae replay``.
"""
from pathlib import Path
import time

import cv2
from neural_ae.commands._args import add_device, add_out, add_progress, apply_device_threads
from neural_ae.core import hdr
from neural_ae.core import scenes as SC
from neural_ae.core import sensor as S
from neural_ae.core.preview import render_raw
import numpy as np


def add_parser(sub) -> None:
    """Register ``demo``."""
    p = sub.add_parser('demo', help='the embedded demo: synthetic drive, no data needed')
    add_out(p, 'out/demo', 'output folder', metavar='DIR')
    p.add_argument('--seed', type=int, default=2, help='scene seed')
    p.add_argument('--scenario', default='tunnel_exit', choices=SC.SCENARIOS,
                   help='scenario of the camera part (default: tunnel_exit)')
    p.add_argument('--height', type=int, default=384, help='scene height [px]')
    p.add_argument('--width', type=int, default=640, help='scene width [px]')
    p.add_argument('--frames', type=int, default=120, help='closed-loop drive length [frames]')
    p.add_argument('--drive-seed', type=int, default=3_000_000,
                   help='drive seed (held out: training uses seeds below 2,000,000)')
    p.add_argument('--models', default=None, help='folder of trained checkpoints '
                   '(default: the shipped models/)')
    p.add_argument('--smoothing', default='stable', choices=('ema', 'adaptive', 'stable'),
                   help='smoothing of the neural controller (ema = paper Eq. 5; adaptive '
                   'with the 0.5 EV scale chosen on validation drives; stable = adaptive + '
                   'damping of sign-alternating corrections, the default)')
    p.add_argument('--camera-only', action='store_true', help='part 1 only')
    add_progress(p, text='no progress bars')
    add_device(p, 'cpu', what='the networks of the closed-loop part')
    p.set_defaults(func=run)


def _label(img: np.ndarray, text: str) -> np.ndarray:
    img = img.copy()
    cv2.rectangle(img, (0, 0), (img.shape[1], 22), (0, 0, 0), -1)
    cv2.putText(img, text, (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1,
                cv2.LINE_AA)
    return img


def _draw_boxes(img: np.ndarray, scene: SC.Scene) -> np.ndarray:
    img = img.copy()
    for (x1, y1, x2, y2), lab in zip(scene.boxes.astype(int), scene.labels):
        cv2.rectangle(img, (x1, y1), (x2 - 1, y2 - 1), (0, 255, 0), 1)
        cv2.putText(img, SC.CLASSES[lab - 1], (x1, max(y1 - 2, 8)), cv2.FONT_HERSHEY_SIMPLEX,
                    0.3, (0, 255, 0), 1, cv2.LINE_AA)
    return img


def frame_stats(raw_a: np.ndarray, raw_b: np.ndarray, phi: np.ndarray, split: S.ExposureSplit,
                sensor: S.SensorConfig) -> dict:
    """
    Saturation and noise figures of a raw frame (``raw_b`` is a second capture).

    Temporal noise is ``std(a - b) / sqrt(2)`` over unsaturated pixels; ``snr_ge_10_pct``
    is the share of pixels whose analytic SNR is at least 10 (well exposed).
    """
    white = sensor.white_level_dn
    sat = (raw_a >= white)
    ok = ~sat & (raw_b < white)
    diff = raw_a.astype(np.float64)[ok] - raw_b.astype(np.float64)[ok]
    mu_e = np.maximum(phi, 0) * split.t_exp_s
    snr = S.snr_theory(mu_e, split.t_exp_s, split.gain, sensor)
    return {
        'exposure_time_us': split.exposure_time_us,
        'gain_db': split.gain_db,
        'mean_dn': float(raw_a.mean()),
        'saturated_pct': 100.0 * float(sat.mean()),
        'noise_dn_rms': float(diff.std() / np.sqrt(2)) if diff.size else float('nan'),
        'snr_ge_10_pct': 100.0 * float((snr >= 10).mean()),
    }


def camera_part(args, out: Path) -> dict:
    """Render one scene at three exposures; write the contact sheet; return the table."""
    sensor = S.load_sensor('imx249')
    scene = SC.generate_scene(args.seed, args.scenario, args.height, args.width)
    phi = S.mosaic(scene.radiance, sensor.bayer_pattern)
    e_base = S.e_base_s(phi, sensor)
    rng = np.random.default_rng(args.seed)
    tiles = [_label(_draw_boxes(hdr.tonemap(scene.radiance), scene),
                    f'HDR scene ({args.scenario}), tone-mapped, {len(scene.boxes)} objects')]
    rows = []
    for name, factor in (('short (e_base/8)', 1 / 8), ('base (e_base)', 1.0),
                         ('long (8 e_base)', 8.0)):
        split = S.split_exposure(e_base * factor, sensor)
        raw = S.capture(phi, split.t_exp_s, split.gain, sensor, rng)
        raw2 = S.capture(phi, split.t_exp_s, split.gain, sensor, rng)
        stats = frame_stats(raw, raw2, phi, split, sensor)
        stats['name'] = name
        rows.append(stats)
        img = render_raw(raw, sensor.black_level_dn, sensor.white_level_dn, sensor.bayer_pattern)
        tiles.append(_label(img, f'{name}: {split.exposure_time_us:.0f} us, '
                                 f'{split.gain_db:.1f} dB, {stats["saturated_pct"]:.1f}% sat'))
    top = np.concatenate(tiles[:2], axis=1)
    bottom = np.concatenate(tiles[2:], axis=1)
    sheet = np.concatenate([top, bottom], axis=0)
    path = out / 'camera_contact_sheet.png'
    cv2.imwrite(str(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    return {'scene_dr_db': hdr.dynamic_range_db(scene.radiance), 'e_base_s': e_base,
            'rows': rows, 'sheet': path, 'n_objects': len(scene.boxes)}


def _drive(args, sensor) -> tuple:
    """Build the held-out tunnel-exit drive: RGB scenes (bag) and Bayer frames (loop)."""
    from neural_ae.core.evaluation.drives import Drive, Frame

    scenes = list(SC.iter_sequence(args.drive_seed, args.frames, 'tunnel_exit', 192, 320))
    frames = [Frame(S.mosaic(sc.radiance, sensor.bayer_pattern), sc.boxes, sc.labels,
                    sc.meta) for sc in scenes]
    return scenes, Drive('tunnel_exit', 'tunnel_exit', args.drive_seed, frames)


def _write_bag(path: Path, scenes: list, drives: dict, sensor) -> Path:
    """Write input radiance + labels, and per method raw frames, settings, detections."""
    from neural_ae.core.bags import HDRBagWriter
    from neural_ae.core.jsonsafe import json_safe

    period_ns = 33_333_333
    coco = SC.to_coco(scenes)
    for k, img in enumerate(coco['images']):
        img['frame_index'] = k
    encoding = f'bayer_{sensor.bayer_pattern.lower()}16'
    with HDRBagWriter(path, storage='mcap', topic='/hdr/image') as writer:
        for k, sc in enumerate(scenes):
            writer.write_radiance(k * period_ns, sc.radiance)
        for key, run in drives['drives'][0]['runs'].items():
            ns = '/demo/' + key.replace('+', '_')
            r = run['result']
            for k in range(r.n_frames):
                t = k * period_ns
                if run.get('raws'):
                    writer.write_raw(ns + '/image_raw', t, run['raws'][k], encoding)
                writer.write_json(ns + '/settings', t, json_safe({
                    'frame_index': k, 'exposure_time_us': r.exposure_time_us[k],
                    'gain_db': r.gain_db[k], 'e_s': r.e_s[k], 'clamped': r.clamped[k],
                    'fallback': r.fallback[k], 'mean_raw_dn': r.mean_raw_dn[k]}))
                d = run['detections'][k]
                writer.write_json(ns + '/detections', t, json_safe({
                    'frame_index': k, 'boxes': d['boxes'], 'scores': d['scores'],
                    'labels': d['labels']}))
        writer.write_labels(coco)
    return path


def closed_loop_part(args, out: Path, device: str = 'cpu') -> dict:
    """Run the drive with the shipped model and the baselines; report, plots, bag."""
    import shutil

    from neural_ae.core.evaluation import report as R
    from neural_ae.core.evaluation.drives import run_drive_protocol
    from neural_ae.core.evaluation.methods import build_methods
    from neural_ae.core.metrics.temporal import bound_warning
    from neural_ae.core.paths import models_dir

    sensor = S.load_sensor('imx249')
    folder = Path(args.models) if args.models else models_dir()
    loaded = build_methods(folder, names=('hybrid_nn', 'average', 'gradient'),
                           sensor=sensor, device=device)
    scenes, drive = _drive(args, sensor)
    results = run_drive_protocol([drive], loaded['methods'], sensor=sensor,
                                 smoothings=(args.smoothing,),
                                 smoothing_options={'adaptive': {'adaptive_scale_ev': 0.5},
                                                    'stable': {'adaptive_scale_ev': 0.5}},
                                 keep_raw_for=(drive.name,), progress=not args.no_progress)
    d = results['drives'][0]
    warnings = list(loaded['warnings'])
    for key, run in d.runs.items():
        w = bound_warning(run.metrics.get('summary', {}), f'demo {d.name} / {key}')
        if w:
            warnings.append(w)
    exposure_png = R.plot_drive_exposure(d, out / 'exposure_tunnel_exit.png')
    grid_png = R.plot_frame_grid(d, drive.frames, sensor, out / 'frames_tunnel_exit.png')
    bag = out / 'drive_bag'
    if bag.exists():
        shutil.rmtree(bag)
    _write_bag(bag, scenes, results, sensor)
    detectors = {m.name: m.detector_from for m in loaded['methods']}
    return {'results': results, 'warnings': warnings, 'detectors': detectors,
            'exposure_png': exposure_png, 'grid_png': grid_png, 'bag': bag,
            'table': R.drive_table_text(results), 'table_md': R.drive_table_md(results)}


def _write_report(out: Path, args, cam: dict, loop: dict) -> Path:
    lines = ['# neural_ae demo', '',
             '## The simulated LDR camera', '',
             f'Scene `{args.scenario}` (seed {args.seed}), dynamic range '
             f'{cam["scene_dr_db"]:.0f} dB; IMX249 model, 12-bit.', '',
             '| exposure | t_exp [us] | gain [dB] | mean [DN] | saturated [%] | noise [DN] '
             '| SNR >= 10 [%] |', '|---|---:|---:|---:|---:|---:|---:|']
    for r in cam['rows']:
        lines.append(f'| {r["name"]} | {r["exposure_time_us"]:.0f} | {r["gain_db"]:.1f} | '
                     f'{r["mean_dn"]:.0f} | {r["saturated_pct"]:.1f} | '
                     f'{r["noise_dn_rms"]:.2f} | {r["snr_ge_10_pct"]:.1f} |')
    lines += ['', f'![contact sheet]({cam["sheet"].name})', '']
    if loop:
        lines += ['## Closed loop through a tunnel exit', '',
                  f'Held-out drive seed {args.drive_seed}, {args.frames} frames at 192x320; '
                  f'neural smoothing `{args.smoothing}`. Detectors: '
                  + ', '.join(f'{k}: {v}' for k, v in loop['detectors'].items()) + '.', '',
                  loop['table_md'], '',
                  f'![exposure over time]({loop["exposure_png"].name})', '']
        if loop['grid_png']:
            lines += [f'![frames]({loop["grid_png"].name})', '']
        for w in loop['warnings']:
            lines.append(f'> WARNING: {w}')
        lines += ['', f'Output bag: `{loop["bag"]}` (replay it with `neural-ae replay`).']
    path = out / 'report.md'
    path.write_text('\n'.join(lines) + '\n')
    return path


def run(args) -> int:
    """Run the demo and say where its outputs are."""
    from neural_ae.core.errors import ConfigError

    if args.frames < 2:
        raise ConfigError(f'--frames must be at least 2, got {args.frames}')
    device = apply_device_threads(args)
    t0 = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cam = camera_part(args, out)
    print('== neural_ae demo: the simulated LDR camera (IMX249, 12-bit) ==')
    print(f'scene: {args.scenario}, seed {args.seed}, {args.height}x{args.width}, '
          f'{cam["n_objects"]} labelled objects, dynamic range {cam["scene_dr_db"]:.0f} dB '
          f'(a 12-bit sensor holds at most 72 dB)')
    print(f'{"exposure":<18} {"t_exp us":>9} {"gain dB":>8} {"mean DN":>8} {"sat %":>6} '
          f'{"noise DN":>9} {"SNR>=10 %":>10}')
    for r in cam['rows']:
        print(f'{r["name"]:<18} {r["exposure_time_us"]:9.0f} {r["gain_db"]:8.1f} '
              f'{r["mean_dn"]:8.0f} {r["saturated_pct"]:6.1f} {r["noise_dn_rms"]:9.2f} '
              f'{r["snr_ge_10_pct"]:10.1f}')
    print(f'contact sheet: {cam["sheet"]}')
    loop = {}
    if not args.camera_only:
        print('\n== closed loop: tunnel exit, shipped Hybrid NN vs Average and Gradient AE ==')
        loop = closed_loop_part(args, out, device)
        for w in loop['warnings']:
            print(f'WARNING: {w}')
        print('detectors: ' + ', '.join(f'{k} <- {v}' for k, v in loop['detectors'].items()))
        print(loop['table'])
        print(f'exposure plot: {loop["exposure_png"]}')
        if loop['grid_png']:
            print(f'frame grid:    {loop["grid_png"]}')
        print(f'output bag:    {loop["bag"]}')
    report = _write_report(out, args, cam, loop)
    print(f'report:        {report}')
    print(f'done in {time.perf_counter() - t0:.1f} s; outputs in {out}/')
    return 0
