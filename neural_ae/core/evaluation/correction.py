"""
The correction protocol (``neural-ae evaluate --protocol correction``, issue 14).

Held-out procedural scenes (seeds from 3,600,000, frame 2 of
:func:`neural_ae.core.scenes.generate_pair`; never trained or validated on). Per scene and
per level ``k`` both directions are run (``kappa = 1/k`` under, ``kappa = k`` over):

1. **Image quality** against the reference (:mod:`neural_ae.core.correction.data`: the
   noise-free capture at ``e_base`` through the correction models' ISP): the input
   (frame 2 captured with noise at ``kappa * e_base``, through the same ISP) corrected by
   every method: identity, the trivial inverse (knows ``kappa``), global gain, global
   gamma, each network, and 002's multi-exposure baseline (Debevec merge + Reinhard of
   three noisy brackets at ``e_base * {1/4, 1, 4}``, the same for every ``kappa``).
   PSNR, SSIM and 003's luminance / contrast / saturation similarities
   (:mod:`neural_ae.core.correction.metrics`), per direction and level and per lighting
   group (day / dusk / night).
2. **003's protocol**: the reference over-exposed by clipping in gamma space
   (:func:`~neural_ae.core.correction.data.gamma_clip`, gamma 2.2, tau 0.5); methods
   identity, its trivial inverse, global gain / gamma, each network.
3. **Detector mAP@0.5** (the shipped Hybrid model's detector, its own ISP): frame 2 at
   ``kappa * e_base``, uncorrected vs each correction (network output fed to the detector
   as its RGB input) vs the same frame 2 exposed by the Hybrid NN (the shift protocol's
   step from frame 1 at ``kappa * e_base(frame 1)``, ``smoothing='none'``) vs the
   well-exposed reference (frame 2 captured with noise at ``e_base``). Also counted:
   **false positives in clipped regions**: detections (score >= 0.5) that match no
   ground-truth box at IoU 0.5 and whose box lies at least half on pixels that are
   saturated in the input raw frame (over-exposed inputs only): detail a method invents
   where the input had none.

Common random numbers: every method sees the same captures (seeds ``[seed, scene,
level, direction, ...]``). The result is a JSON-shaped dict; :func:`tables` formats it.
"""
import math
import time
from typing import Any, Dict, List, Optional, Sequence

from neural_ae.core import sensor as S
from neural_ae.core.correction import baselines as B
from neural_ae.core.correction.data import gamma_clip, gamma_clip_inverse, render_raw, \
    scene_group
from neural_ae.core.correction.metrics import psnr, similarities, ssim
from neural_ae.core.errors import EvaluationError
from neural_ae.core.evaluation.common import Progress
from neural_ae.core.metrics.detection import DetectionAccumulator
import numpy as np
import torch

__all__ = ['clipped_false_positives', 'run_correction_protocol', 'tables', 'write_figure']

BRACKETS = (0.25, 1.0, 4.0)
"""Exposures of the multi-exposure baseline, as multiples of ``e_base``."""
FP_SCORE = 0.5
"""Score threshold of the false-positive count [-]."""


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Return the IoU matrix of xyxy boxes ``a (N, 4)`` and ``b (M, 4)``."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = lambda z: (z[:, 2] - z[:, 0]) * (z[:, 3] - z[:, 1])   # noqa: E731
    return inter / np.maximum(area(a)[:, None] + area(b)[None, :] - inter, 1e-9)


def clipped_false_positives(dets: dict, gt_boxes: np.ndarray, clipped: np.ndarray,
                            score: float = FP_SCORE, iou: float = 0.5,
                            inside: float = 0.5) -> int:
    """
    Count the false positives that lie mostly on clipped pixels.

    ``dets``: ``{'boxes' (N, 4), 'scores' (N,)}``; ``gt_boxes`` ``(M, 4)`` xyxy [px];
    ``clipped`` ``(H, W)`` bool. Counts detections with ``score >= score`` whose best IoU
    with any ground-truth box is below ``iou`` and whose box area is at least ``inside``
    clipped.
    """
    boxes = np.asarray(dets['boxes'], np.float64).reshape(-1, 4)
    keep = np.asarray(dets['scores']).reshape(-1) >= score
    boxes = boxes[keep]
    if len(boxes) == 0:
        return 0
    gt = np.asarray(gt_boxes, np.float64).reshape(-1, 4)
    best = _iou(boxes, gt).max(axis=1) if len(gt) else np.zeros(len(boxes))
    h, w = clipped.shape
    count = 0
    for box, b in zip(boxes, best):
        if b >= iou:
            continue
        x1, y1 = int(max(0, math.floor(box[0]))), int(max(0, math.floor(box[1])))
        x2, y2 = int(min(w, math.ceil(box[2]))), int(min(h, math.ceil(box[3])))
        if x2 <= x1 or y2 <= y1:
            continue
        if clipped[y1:y2, x1:x2].mean() >= inside:
            count += 1
    return count


def _detect_rgb(perception, rgb: torch.Tensor) -> dict:
    from neural_ae.core.models.detector import detector_inference

    dets, _ = detector_inference(perception.detector, rgb[None].to(perception.device))
    d = dets[0]
    return {k: d[k].cpu().numpy() for k in ('boxes', 'scores', 'labels')}


def _stats(values: List[float]) -> dict:
    arr = np.asarray([v for v in values if math.isfinite(v)], np.float64)
    if arr.size == 0:
        return {'mean': math.nan, 'std': math.nan, 'n': 0}
    return {'mean': float(arr.mean()), 'std': float(arr.std(ddof=1)) if arr.size > 1 else 0.0,
            'n': int(arr.size)}


def run_correction_protocol(correctors: Dict[str, Any], perception, sensor=None,
                            hybrid=None, n_scenes: int = 24, seed_start: int = 3_600_000,
                            levels: Sequence[float] = (4.0, 10.0), seed: int = 0,
                            height: int = 192, width: int = 320,
                            cache_dir: Optional[str] = 'out/cache/scenes',
                            figure_frames: int = 8, progress: bool = False) -> dict:
    """
    Run the protocol (module docstring); return ``{'quality', 'gamma_clip', 'detection', ...}``.

    ``correctors``: name -> :class:`~neural_ae.core.correction.model.Corrector` (all must
    share one ISP: the first one's renders inputs and references); ``perception``: the
    detector (:class:`~neural_ae.core.models.perception.Perception`); ``hybrid``: the
    Hybrid NN controller factory ``() -> controller`` (None: that row is skipped).
    ``figure_frames`` images are kept for :func:`write_figure` (``'figure'``).
    """
    from neural_ae.core.controllers import ControllerOptions, ExposureSetting
    from neural_ae.core.training.data import ProceduralPairs

    if not correctors:
        raise EvaluationError('correction protocol: no correction model to evaluate')
    if n_scenes < 1:
        raise EvaluationError(f'correction protocol: n_scenes must be >= 1, got {n_scenes}')
    sensor = sensor or S.load_sensor('imx249')
    first = next(iter(correctors.values()))
    isp = first.isp.cpu()
    gamma = float(isp.tone.gamma)
    isp_diff = max(float((a - b).abs().max()) for a, b in
                   zip(isp.state_dict().values(), perception.isp.cpu().state_dict().values()))
    pairs = ProceduralPairs(seed_start, n_scenes, height, width, cache_dir)
    limits = ControllerOptions().resolve(sensor)
    names = ['identity', 'trivial_inverse', 'global_gain', 'global_gamma'] + list(correctors)
    quality_names = names + ['debevec_reinhard']
    q: Dict[tuple, List[float]] = {}
    gc: Dict[tuple, List[float]] = {}
    det_names = ['uncorrected'] + [n for n in names if n != 'identity'] + \
        (['hybrid_nn'] if hybrid is not None else []) + ['reference']
    accs = {(n, k, d): DetectionAccumulator() for n in det_names for k in levels
            for d in ('under', 'over')}
    fps = {(n, k): 0 for n in det_names for k in levels}
    clipped_px = dict.fromkeys(levels, 0.0)
    figure: List[dict] = []
    bar = Progress(progress, n_scenes, 'correction protocol')
    t0 = time.perf_counter()

    def add_q(store, key, out, ref):
        p, s = float(psnr(out[None], ref[None])[0]), float(ssim(out[None], ref[None])[0])
        sims = similarities(out[None], ref[None])
        store.setdefault(key + ('psnr',), []).append(p)
        store.setdefault(key + ('ssim',), []).append(s)
        for k, v in sims.items():
            store.setdefault(key + (k,), []).append(float(v[0]))

    for i in range(n_scenes):
        rec = pairs[i]
        scene_seed = seed_start + i
        group = scene_group(scene_seed)
        boxes = np.asarray(rec['boxes'], np.float32).reshape(-1, 4)
        labels = np.asarray(rec['labels'], np.int64).reshape(-1)
        phi1 = S.mosaic(rec['rad1'], sensor.bayer_pattern)
        phi2 = S.mosaic(rec['rad2'], sensor.bayer_pattern)
        eb1, eb2 = S.e_base_s(phi1, sensor), S.e_base_s(phi2, sensor)

        def cap(phi, e, key, noise=True):
            sp = S.split_exposure(e, sensor)
            return S.capture(phi, sp.t_exp_s, sp.gain, sensor,
                             np.random.default_rng([seed, i] + list(key)), noise=noise), sp
        ref_raw, ref_sp = cap(phi2, eb2, [0], noise=False)
        reference = render_raw(isp, ref_raw)
        well_raw, _ = cap(phi2, eb2, [1])
        brackets, times = [], []
        for j, f in enumerate(BRACKETS):
            raw_b, sp = cap(phi2, f * eb2, [2, j])
            brackets.append(render_raw(isp, raw_b))
            times.append(sp.e_s)
        debevec = B.debevec_reinhard(brackets, times)
        dets_ref = perception.run(well_raw).arrays()
        # 003's protocol on the reference
        clipped_in = gamma_clip(reference)
        g_outs = {'identity': clipped_in, 'trivial_inverse': gamma_clip_inverse(clipped_in),
                  'global_gain': B.global_gain(clipped_in, gamma),
                  'global_gamma': B.global_gamma(clipped_in)}
        for n, c in correctors.items():
            g_outs[n] = c.correct(clipped_in)
        for n, out in g_outs.items():
            add_q(gc, (n,), out, reference)
        for k in levels:
            for d, kappa in (('under', 1.0 / k), ('over', float(k))):
                raw, sp = cap(phi2, kappa * eb2, [3, int(k * 1000), int(d == 'over')])
                kap = sp.e_s / ref_sp.e_s
                x = render_raw(isp, raw)
                outs = {'identity': x, 'trivial_inverse': B.trivial_inverse(x, kap, gamma),
                        'global_gain': B.global_gain(x, gamma), 'global_gamma': B.global_gamma(x)}
                for n, c in correctors.items():
                    outs[n] = c.correct(x)
                for n, out in outs.items():
                    add_q(q, (n, k, d, 'all'), out, reference)
                    add_q(q, (n, k, d, group), out, reference)
                add_q(q, ('debevec_reinhard', k, d, 'all'), debevec, reference)
                add_q(q, ('debevec_reinhard', k, d, group), debevec, reference)
                # detection
                clipped = raw >= sensor.white_level_dn
                if d == 'over':
                    clipped_px[k] += float(clipped.mean()) / n_scenes
                dets = {'uncorrected': perception.run(raw).arrays(), 'reference': dets_ref}
                for n, out in outs.items():
                    if n != 'identity':
                        dets[n] = _detect_rgb(perception, out)
                if hybrid is not None:
                    t1, g1, _ = limits.split(kappa * eb1)
                    set1 = ExposureSetting.from_linear(t1, g1)
                    raw1 = S.capture(phi1, set1.t_exp_s, set1.gain, sensor,
                                     np.random.default_rng([seed, i, 4, int(k * 1000),
                                                            int(d == 'over')]))
                    ctrl = hybrid['controller']
                    ctrl.reset(set1)
                    feats = hybrid['perception'].features(raw1)
                    set2 = ctrl.step(raw1, set1, features=feats).setting
                    raw2 = S.capture(phi2, set2.t_exp_s, set2.gain, sensor,
                                     np.random.default_rng([seed, i, 5, int(k * 1000),
                                                            int(d == 'over')]))
                    dets['hybrid_nn'] = hybrid['perception'].run(raw2).arrays()
                for n, dd in dets.items():
                    accs[(n, k, d)].add(boxes, labels, dd['boxes'], dd['scores'], dd['labels'],
                                        width=width, height=height)
                    if d == 'over':
                        fps[(n, k)] += clipped_false_positives(dd, boxes, clipped)
                if len(figure) < figure_frames and k == levels[-1] and \
                        d == ('under', 'over')[len(figure) % 2]:
                    figure.append({'seed': scene_seed, 'kappa': kap, 'group': group,
                                   'images': {'input': x, **{n: outs[n] for n in outs
                                                             if n != 'identity'},
                                              'debevec_reinhard': debevec,
                                              'reference': reference}})
        bar.update(1)
    bar.close()
    groups = sorted({g for key in q for g in [key[3]]} - {'all'})
    quality = {n: {f'{k:g}': {d: {m: _stats(q.get((n, k, d, 'all', m), []))
                                  for m in ('psnr', 'ssim', 'luminance', 'contrast',
                                            'saturation')}
                              for d in ('under', 'over')} for k in levels}
               for n in quality_names}
    by_group = {n: {g: {f'{k:g}': {d: _stats(q.get((n, k, d, g, 'psnr'), []))
                                   for d in ('under', 'over')} for k in levels}
                    for g in groups} for n in quality_names}
    metric_names = ('psnr', 'ssim', 'luminance', 'contrast', 'saturation')
    gclip = {n: {m: _stats(gc.get((n, m), [])) for m in metric_names} for n in names}
    detection = {n: {f'{k:g}': {d: accs[(n, k, d)].compute()['map50']
                                for d in ('under', 'over')} for k in levels}
                 for n in det_names}
    fp = {n: {f'{k:g}': fps[(n, k)] for k in levels} for n in det_names}
    return {'n_scenes': n_scenes, 'seeds': [seed_start, seed_start + n_scenes - 1],
            'levels': [float(k) for k in levels], 'groups': groups,
            'models': {n: c.source for n, c in correctors.items()},
            'detector': perception.source, 'isp_gamma': gamma,
            'isp_max_abs_diff_vs_detector': isp_diff, 'brackets_x_ebase': list(BRACKETS),
            'quality': quality, 'quality_by_group': by_group, 'gamma_clip': gclip,
            'detection_map50': detection, 'clipped_false_positives': fp,
            'clipped_fraction_over': {f'{k:g}': v for k, v in clipped_px.items()},
            'fp_score_threshold': FP_SCORE, 'seconds': time.perf_counter() - t0,
            'figure': figure}


def _f(v: float, nd: int = 2) -> str:
    return '-' if not (isinstance(v, (int, float)) and math.isfinite(v)) else f'{v:.{nd}f}'


def tables(res: dict) -> str:
    """Markdown tables of a :func:`run_correction_protocol` result."""
    lines = []
    levels = [f'{k:g}' for k in res['levels']]
    lines.append(f'### PSNR [dB] / SSIM against the reference ({res["n_scenes"]} test scenes, '
                 f'seeds {res["seeds"][0]}..{res["seeds"][1]})\n')
    head = ' | '.join(f'{d} x{k}' for k in levels for d in ('under', 'over'))
    lines.append(f'| method | {head} |')
    lines.append('|---' * (1 + 2 * len(levels)) + '|')
    for n, per in res['quality'].items():
        cells = [f'{_f(per[k][d]["psnr"]["mean"])} / {_f(per[k][d]["ssim"]["mean"], 3)}'
                 for k in levels for d in ('under', 'over')]
        lines.append(f'| {n} | ' + ' | '.join(cells) + ' |')
    lines.append('\n### 003 similarities [%] (luminance / contrast / saturation), '
                 f'x{levels[0]}\n')
    lines.append('| method | under | over |')
    lines.append('|---|---|---|')
    for n, per in res['quality'].items():
        cells = ['/'.join(_f(per[levels[0]][d][m]['mean'], 1)
                          for m in ('luminance', 'contrast', 'saturation'))
                 for d in ('under', 'over')]
        lines.append(f'| {n} | ' + ' | '.join(cells) + ' |')
    lines.append('\n### PSNR [dB] per lighting group (under / over)\n')
    groups = res['groups']
    lines.append('| method | ' + ' | '.join(f'{g} x{k}' for g in groups for k in levels) + ' |')
    lines.append('|---' * (1 + len(groups) * len(levels)) + '|')
    for n, per in res['quality_by_group'].items():
        cells = [f'{_f(per[g][k]["under"]["mean"])} / {_f(per[g][k]["over"]["mean"])}'
                 for g in groups for k in levels]
        lines.append(f'| {n} | ' + ' | '.join(cells) + ' |')
    lines.append("\n### 003's protocol: gamma-space clipping (gamma 2.2, tau 0.5) of the "
                 'reference\n')
    lines.append('| method | PSNR [dB] | SSIM | luminance | contrast | saturation [%] |')
    lines.append('|---|---|---|---|---|---|')
    for n, per in res['gamma_clip'].items():
        lines.append(f'| {n} | {_f(per["psnr"]["mean"])} | {_f(per["ssim"]["mean"], 3)} | '
                     f'{_f(per["luminance"]["mean"], 1)} | {_f(per["contrast"]["mean"], 1)} | '
                     f'{_f(per["saturation"]["mean"], 1)} |')
    lines.append(f'\n### Detector mAP@0.5 on frame 2 (detector {res["detector"]})\n')
    lines.append(f'| frame 2 | {head} | FP in clipped regions (over) ' +
                 ' '.join(f'x{k}' for k in levels) + ' |')
    lines.append('|---' * (2 + 2 * len(levels)) + '|')
    for n, per in res['detection_map50'].items():
        cells = [_f(per[k][d], 3) for k in levels for d in ('under', 'over')]
        fp = ' / '.join(str(res['clipped_false_positives'][n][k]) for k in levels)
        lines.append(f'| {n} | ' + ' | '.join(cells) + f' | {fp} |')
    lines.append('\nSaturated share of the over-exposed raw frames: ' + ', '.join(
        f'x{k}: {100 * v:.1f} %' for k, v in res['clipped_fraction_over'].items()) +
        f'; FP: score >= {res["fp_score_threshold"]}, IoU < 0.5 with every box, box >= 50 % '
        "on saturated pixels. ISP of the models vs the detector's: max |param diff| "
        f'{res["isp_max_abs_diff_vs_detector"]:.3g}.')
    return '\n'.join(lines)


def write_figure(res: dict, path) -> Optional[str]:
    """Grid: rows = test frames, columns = input, each method, Debevec, reference (PNG)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    rows = res.get('figure') or []
    if not rows:
        return None
    cols = list(rows[0]['images'])
    fig, axes = plt.subplots(len(rows), len(cols), figsize=(1.9 * len(cols), 1.25 * len(rows)),
                             squeeze=False)
    for r, row in enumerate(rows):
        for c, name in enumerate(cols):
            ax = axes[r][c]
            img = row['images'][name].clamp(0, 1).permute(1, 2, 0).cpu().numpy()
            ax.imshow(img)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(name, fontsize=7)
            if c == 0:
                ax.set_ylabel(f'{row["seed"]}\nx{row["kappa"]:.3g} {row["group"]}', fontsize=6)
    fig.tight_layout(pad=0.2)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return str(path)
