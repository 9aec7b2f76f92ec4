"""Bracketed 8-bit JPEG exports of a scene with a JSON sidecar, and reading them back."""
import json
import math
from pathlib import Path

import cv2
from neural_ae.core import hdr
from neural_ae.core.errors import HDRError
from neural_ae.core.scenes.generate import Scene
import numpy as np


def export_brackets(scene: Scene, out_dir, stem: str, exposures_s=None, gains=None,
                    full_well_e: float = 1e4, ratio: float = 16.0,
                    jpeg_quality: int = 95) -> dict:
    """
    Write three bracketed 8-bit JPEGs of ``scene`` and a JSON sidecar; return the sidecar.

    Each bracket is :func:`neural_ae.core.hdr.render_ldr` of the radiance at its
    exposure time and gain with ``full_scale = full_well_e`` (the bracketing camera
    saturates at ``full_well_e`` electrons). Default exposures are
    ``e_mid / ratio, e_mid, e_mid * ratio`` with ``e_mid`` the base exposure
    :func:`neural_ae.core.hdr.e_base_s` of that camera (mean linear value at half
    scale). ``exposures_s='cover'`` instead spans the scene: the shortest bracket puts
    the 99.9th luminance percentile at 90 % of full scale, the longest puts the 1st
    percentile at 5 % (linear), the middle one is their geometric mean; use it for
    scenes whose mean is ruled by the sun or headlights, where brackets around
    ``e_base`` leave the shadows black. Files: ``{stem}_b{i}.jpg`` and ``{stem}.json``
    (``exposure_times_s``, ``gains``, ``full_well_e``, ``files``, ``scenario``,
    ``seed``, ``response``).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rad = np.asarray(scene.radiance, np.float32)
    if exposures_s is None:
        e_mid = hdr.e_base_s(rad, g1_dn_per_e=1.0 / full_well_e, white_level=1.0)
        exposures_s = (e_mid / ratio, e_mid, e_mid * ratio)
    elif isinstance(exposures_s, str):
        if exposures_s != 'cover':
            raise HDRError(f"exposures_s must be None, 'cover' or three times; got "
                           f'{exposures_s!r}')
        lo, hi = np.percentile(hdr.luminance(rad), [1.0, 99.9])
        t_short = 0.9 * full_well_e / max(float(hi), 1e-30)
        t_long = max(0.05 * full_well_e / max(float(lo), 1e-30), t_short)
        exposures_s = (t_short, math.sqrt(t_short * t_long), t_long)
    exposures_s = [float(t) for t in exposures_s]
    gains = [1.0] * len(exposures_s) if gains is None else [float(g) for g in gains]
    if len(gains) != len(exposures_s):
        raise HDRError(f'{len(exposures_s)} exposures but {len(gains)} gains')
    files = []
    for i, (t, g) in enumerate(zip(exposures_s, gains)):
        ldr = hdr.render_ldr(rad, t, g, full_scale=full_well_e)
        name = f'{stem}_b{i}.jpg'
        ok = cv2.imwrite(str(out / name), cv2.cvtColor(ldr, cv2.COLOR_RGB2BGR),
                         [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)])
        if not ok:
            raise HDRError(f'cannot write bracket {out / name}')
        files.append(name)
    side = {'stem': stem, 'files': files, 'exposure_times_s': exposures_s,
            'gains': gains, 'full_well_e': float(full_well_e), 'response': 'srgb',
            'scenario': scene.scenario, 'seed': int(scene.seed),
            'height': int(rad.shape[0]), 'width': int(rad.shape[1])}
    (out / f'{stem}.json').write_text(json.dumps(side, indent=1))
    return side


def load_brackets(directory, stem: str):
    """
    Read brackets written by :func:`export_brackets`.

    Returns ``(images, exposure_times_s, gains, sidecar)`` with RGB uint8 images, ready
    for ``hdr.merge_brackets(images, times, gains, full_scale=sidecar['full_well_e'])``.
    """
    d = Path(directory)
    side_path = d / f'{stem}.json'
    if not side_path.is_file():
        raise FileNotFoundError(f'bracket sidecar not found: {side_path}')
    try:
        side = json.loads(side_path.read_text())
        names = side['files']
        times = np.asarray(side['exposure_times_s'], np.float64)
        gains = np.asarray(side['gains'], np.float64)
    except (ValueError, KeyError, TypeError) as err:
        raise HDRError(f'malformed bracket sidecar {side_path}: {err!r}') from err
    images = []
    for name in names:
        p = d / name
        if not p.is_file():
            raise FileNotFoundError(f'bracket image not found: {p}')
        img = cv2.imread(str(p), cv2.IMREAD_COLOR)
        if img is None:
            raise HDRError(f'cannot decode bracket image {p}')
        images.append(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
    return images, times, gains, side
