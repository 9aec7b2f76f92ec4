"""
The held-out benchmark of the assessor (``neural-ae assess``): tables and a figure.

:func:`run_benchmark` renders the test grid (:func:`~.labels.test_specs`, seeds
3,200,000.., every scene at -4..+4 EV, gains drawn per example), runs every assessor model
and every baseline of :mod:`.metrics` on the same images, and returns per method the
pixel-level MAE / SSIM (mean over images), the holistic SRCC / PLCC over all images, the
same split per scenario and per exposure shift, and the judge's 3-class accuracy. The
``mean_luma`` baseline uses the ``(mid, gain)`` fitted on the validation seeds and stored
in the first model file (or fitted on validation here when none is stored).
"""
from pathlib import Path
import time
from typing import Dict, List, Optional, Sequence

from neural_ae.core import sensor as S
from neural_ae.core.assessment.errors import AssessmentError
from neural_ae.core.assessment.judge import judge_label, LABELS, truth_label
from neural_ae.core.assessment.labels import (render_example, TEST_SEED_START, TEST_SHIFTS_EV,
                                              test_specs, VAL_SEED_START)
from neural_ae.core.assessment.metrics import (baseline_map, BASELINES, fit_mean_luma,
                                               holistic_metrics, pixel_metrics, scores_of)
from neural_ae.core.assessment.network import parameter_count
from neural_ae.core.assessment.training import predict_maps
import numpy as np

__all__ = ['benchmark_tables_md', 'plot_residuals', 'run_benchmark']


def _metrics(pred: np.ndarray, true: np.ndarray, idx: np.ndarray) -> Dict[str, float]:
    pm = pixel_metrics(pred[idx], true[idx])
    out = {'mae': float(pm['mae'].mean()), 'ssim': float(pm['ssim'].mean()), 'n': int(idx.size)}
    if idx.size >= 3:
        out.update(holistic_metrics(scores_of(pred[idx]), scores_of(true[idx])))
    return out


def run_benchmark(models: Dict[str, tuple], n_scenes: int = 96,
                  seed_start: int = TEST_SEED_START, shifts: Sequence[float] = TEST_SHIFTS_EV,
                  height: int = 128, width: int = 128, sensor=None,
                  keep_maps: bool = False) -> dict:
    """
    Evaluate ``models`` ``{name: (model, meta)}`` and the baselines on the test grid.

    Returns ``{'n_images', 'seeds', 'shifts', 'methods': {name: {'overall', 'by_scenario',
    'by_shift', 'judge_accuracy', 'parameters', 'ms_per_image'}}, 'mean_luma_fit'}``
    (+ ``'maps'`` with the true and predicted residuals when ``keep_maps``).
    """
    if n_scenes < 1:
        raise AssessmentError(f'assess: need at least one test scene, got {n_scenes}')
    sensor = sensor or S.load_sensor('imx249')
    specs = test_specs(seed_start, n_scenes, shifts)
    exs = [render_example(s, height, width, sensor) for s in specs]
    rgbs = [e.rgb for e in exs]
    true = np.stack([e.residual for e in exs])
    scen = np.asarray([e.scenario for e in exs])
    shift = np.asarray([s.shift_ev for s in specs])
    fit = None
    for _, meta in models.values():
        b = (meta or {}).get('baselines') or {}
        if 'mean_luma_mid' in b:
            fit = (float(b['mean_luma_mid']), float(b['mean_luma_gain']))
            break
    if fit is None:
        val = [render_example(s, height, width, sensor)
               for s in test_specs(VAL_SEED_START, 24, (-3.0, -1.0, 0.0, 1.0, 3.0))]
        fit = fit_mean_luma([e.rgb for e in val], [e.residual for e in val])
    preds: Dict[str, np.ndarray] = {}
    info: Dict[str, dict] = {}
    for name, (model, meta) in models.items():
        t0 = time.perf_counter()
        preds[name] = predict_maps(model, rgbs)
        judge = (meta or {}).get('judge') or {}
        info[name] = {'parameters': parameter_count(model),
                      'ms_per_image': 1e3 * (time.perf_counter() - t0) / len(rgbs),
                      'thresholds': (float(judge.get('under_threshold', 0.1)),
                                     float(judge.get('over_threshold', 0.1)))}
    for b in BASELINES:
        t0 = time.perf_counter()
        preds[b] = np.stack([baseline_map(b, x, *fit) for x in rgbs])
        info[b] = {'parameters': 0, 'ms_per_image': 1e3 * (time.perf_counter() - t0) / len(rgbs),
                   'thresholds': None}
    truths = [truth_label(s) for s in shift]
    methods = {}
    everything = np.arange(len(exs))
    for name, pred in preds.items():
        res = {'overall': _metrics(pred, true, everything),
               'by_scenario': {sc: _metrics(pred, true, np.flatnonzero(scen == sc))
                               for sc in dict.fromkeys(scen.tolist())},
               'by_shift': {f'{s:+g}': _metrics(pred, true, np.flatnonzero(shift == s))
                            for s in shifts},
               'parameters': info[name]['parameters'],
               'ms_per_image': info[name]['ms_per_image']}
        if info[name]['thresholds'] is not None:
            tu, to = info[name]['thresholds']
            labels = [judge_label(float(v), tu, to) for v in pred.mean(axis=(1, 2))]
            res['judge_accuracy'] = float(np.mean([a == b for a, b in zip(labels, truths)]))
            res['judge_confusion'] = {t: {p: int(sum(1 for a, b in zip(labels, truths)
                                                     if b == t and a == p)) for p in LABELS}
                                      for t in LABELS}
        methods[name] = res
    out = {'n_images': len(exs), 'seeds': [seed_start, seed_start + n_scenes - 1],
           'shifts': list(shifts), 'size': [height, width], 'methods': methods,
           'mean_luma_fit': {'mid': fit[0], 'gain': fit[1]}}
    if keep_maps:
        out['maps'] = {'true': true, 'pred': preds, 'rgb': np.stack(rgbs),
                       'scenario': scen.tolist(), 'shift': shift.tolist()}
    return out


def _f(v) -> str:
    return 'n/a' if v is None or not np.isfinite(v) else f'{v:.3f}'


def benchmark_tables_md(res: dict, detail: Optional[Sequence[str]] = None) -> str:
    """Markdown tables: overall (every method), per scenario and per shift (``detail``)."""
    lines: List[str] = [f'Held-out test: {res["n_images"]} images, scene seeds '
                        f'{res["seeds"][0]}..{res["seeds"][1]}, shifts {res["shifts"]} EV, '
                        f'{res["size"][0]} x {res["size"][1]} px.', '',
                        '| method | params | MAE | SSIM | SRCC | PLCC | judge acc | ms/img |',
                        '|---|---|---|---|---|---|---|---|']
    for name, m in res['methods'].items():
        o = m['overall']
        lines.append(f'| {name} | {m["parameters"]} | {_f(o["mae"])} | {_f(o["ssim"])} | '
                     f'{_f(o.get("srcc"))} | {_f(o.get("plcc"))} | '
                     f'{_f(m.get("judge_accuracy"))} | {m["ms_per_image"]:.1f} |')
    names = list(detail or list(res['methods'])[:1])
    for key, title in (('by_scenario', 'scenario'), ('by_shift', 'shift [EV]')):
        lines += ['', f'Per {title} (MAE / SSIM / SRCC):', '',
                  '| ' + title + ' | ' + ' | '.join(names) + ' |',
                  '|---|' + '---|' * len(names)]
        for group in res['methods'][names[0]][key]:
            cells = []
            for n in names:
                g = res['methods'][n][key][group]
                cells.append(f'{_f(g["mae"])} / {_f(g["ssim"])} / {_f(g.get("srcc"))}')
            lines.append(f'| {group} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines) + '\n'


def plot_residuals(res: dict, method: str, path, n: int = 8) -> Path:
    """Figure: input, true and predicted residual of ``n`` test frames (one per scenario)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    maps = res.get('maps')
    if not maps:
        raise AssessmentError('plot_residuals: run_benchmark(keep_maps=True) first')
    scen, shift = maps['scenario'], maps['shift']
    chosen: List[int] = []
    seen = set()
    wanted = [-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0, 4.0, -4.0]
    for i, sc in enumerate(scen):
        k = len(chosen)
        if sc not in seen and shift[i] == wanted[k % len(wanted)]:
            chosen.append(i)
            seen.add(sc)
        if len(chosen) == n:
            break
    fig, axes = plt.subplots(3, len(chosen), figsize=(2.0 * len(chosen), 6.4), squeeze=False)
    for j, i in enumerate(chosen):
        axes[0, j].imshow(maps['rgb'][i])
        axes[0, j].set_title(f'{scen[i]}\n{shift[i]:+g} EV', fontsize=7)
        axes[1, j].imshow(maps['true'][i], cmap='coolwarm_r', vmin=-1, vmax=1)
        im = axes[2, j].imshow(maps['pred'][method][i], cmap='coolwarm_r', vmin=-1, vmax=1)
        for r in range(3):
            axes[r, j].axis('off')
    axes[1, 0].text(-0.1, 0.5, 'true', transform=axes[1, 0].transAxes, rotation=90,
                    va='center', ha='right')
    axes[2, 0].text(-0.1, 0.5, method, transform=axes[2, 0].transAxes, rotation=90,
                    va='center', ha='right')
    fig.colorbar(im, ax=axes[1:, :].ravel().tolist(), shrink=0.6,
                 label='residual (+ under, - over)')
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
