"""``neural-ae hdr``: check the Eq. 7 bracket merge; describe an HDR file."""
from pathlib import Path

import cv2
from neural_ae.core import hdr
import numpy as np


def add_parser(sub) -> None:
    """Register ``hdr``."""
    p = sub.add_parser('hdr', help='bracket-merge accuracy (Eq. 7) and HDR file facts')
    p.add_argument('files', nargs='*', help='HDR files (.hdr/.exr/.npy/.npz) to describe')
    p.add_argument('--check', action='store_true',
                   help='merge three brackets of a known radiance map; compare with the '
                   'truth and with OpenCV Debevec given the same linear response')
    p.set_defaults(func=run)


def known_radiance(h: int = 96, w: int = 192, lo: float = 1e-4, hi: float = 3.0) -> np.ndarray:
    """Smooth coloured radiance spanning ``hi / lo`` (90 dB by default) left to right."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ramp = np.exp(np.log(lo) + (np.log(hi) - np.log(lo)) * xx / (w - 1))
    colour = np.array([1.0, 0.8, 0.6], np.float32)
    return (ramp[..., None] * colour * (1 + 0.2 * np.sin(yy / 5))[..., None]).astype(
        np.float32)


def merge_check() -> dict:
    """Merge error on pixels unsaturated somewhere and above the 8-bit noise floor."""
    rad = known_radiance()
    times = np.array([1 / 8, 1.0, 8.0], np.float32)
    imgs = [hdr.render_ldr(rad, float(t)) for t in times]
    ours = hdr.merge_brackets(imgs, times)
    peak = np.stack(imgs).max(axis=3)
    mask = (peak < 250).any(axis=0) & (peak[2] >= 80)
    rel = np.abs(ours - rad) / rad
    codes = np.maximum(np.arange(256, dtype=np.float32), 0.5) / 255.0
    response = np.repeat(hdr.inverse_tone_curve(codes)[:, None, None], 3, axis=2)
    theirs = cv2.createMergeDebevec().process([im.copy() for im in imgs], times,
                                              response.astype(np.float32))
    well = (peak[1] >= 51) & (peak[1] <= 204)
    dev = np.abs(theirs[well] / ours[well] - 1)
    return {'dynamic_range_db': hdr.dynamic_range_db(rad), 'pixels_checked': float(mask.mean()),
            'max_err_pct': 100 * float(rel[mask].max()),
            'mean_err_pct': 100 * float(rel[mask].mean()),
            'debevec_median_dev_pct': 100 * float(np.median(dev)),
            'debevec_p99_dev_pct': 100 * float(np.percentile(dev, 99)),
            'ours_median_err_pct': 100 * float(np.median(np.abs(ours[well] / rad[well] - 1))),
            'debevec_median_err_pct': 100 * float(np.median(np.abs(theirs[well] / rad[well]
                                                                   - 1)))}


def run(args) -> int:
    """Print the merge check and/or facts about the given files."""
    if args.check:
        r = merge_check()
        print(f'known radiance map, {r["dynamic_range_db"]:.0f} dB, brackets 1/8, 1, 8 '
              f'(8-bit sRGB-like response)')
        print(f'merge vs truth on {100 * r["pixels_checked"]:.0f}% of pixels (unsaturated in '
              f'a bracket, longest bracket >= code 80): max {r["max_err_pct"]:.2f}%, '
              f'mean {r["mean_err_pct"]:.2f}%')
        print(f'OpenCV Debevec vs ours (middle bracket well exposed): median '
              f'{r["debevec_median_dev_pct"]:.2f}%, p99 {r["debevec_p99_dev_pct"]:.2f}%; '
              f'median error to truth: ours {r["ours_median_err_pct"]:.2f}%, Debevec '
              f'{r["debevec_median_err_pct"]:.2f}%')
    for f in args.files:
        rad = hdr.read_hdr(Path(f))
        lum = hdr.luminance(rad)
        print(f'{f}: {rad.shape[1]}x{rad.shape[0]}, dynamic range '
              f'{hdr.dynamic_range_db(rad):.1f} dB, luminance min {lum.min():.4g} '
              f'median {np.median(lum):.4g} max {lum.max():.4g}')
    if not args.check and not args.files:
        print('nothing to do: give --check and/or HDR files')
        return 1
    return 0
