"""
``neural-ae demo``: the embedded default; needs no data, no ROS daemon and no GPU.

Part 1, the camera: one synthetic tunnel-exit scene captured at three exposures by the
simulated LDR sensor, as a contact sheet plus a table of the scene's dynamic range and
the raw frames' saturation and noise.
"""
from pathlib import Path
import time

import cv2
from neural_ae.core import hdr
from neural_ae.core import scenes as SC
from neural_ae.core import sensor as S
from neural_ae.core.preview import render_raw
import numpy as np


def add_parser(sub) -> None:
    """Register ``demo``."""
    p = sub.add_parser('demo', help='the embedded demo: synthetic drive, no data needed')
    p.add_argument('--out', default='out/demo', help='output folder')
    p.add_argument('--seed', type=int, default=2, help='scene seed')
    p.add_argument('--scenario', default='tunnel_exit', choices=SC.SCENARIOS)
    p.add_argument('--height', type=int, default=384, help='scene height [px]')
    p.add_argument('--width', type=int, default=640, help='scene width [px]')
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


def run(args) -> int:
    """Run the demo and say where its outputs are."""
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
    print(f'done in {time.perf_counter() - t0:.1f} s; outputs in {out}/')
    return 0
