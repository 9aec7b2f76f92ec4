"""
The shift protocol of the paper (Sec. 6.1, Table 1): one controller step after a shift.

Held-out pairs of consecutive HDR frames. Frame 1 is captured at ``kappa * e_base(frame
1)`` with ``kappa`` drawn with equal probability from ``{1/k, k}`` (:func:`draw_kappa`),
``k`` in ``levels`` (1.5, 4, 10); the method's controller sees the raw frame 1 and the
setting that produced it and sets the exposure of frame 2, which is captured and detected
by the method's own detector (the one trained for it, Table 2 logic). The paper evaluates
pairs "in the same way as in the training pipeline", which applies the network's ``u``
directly; so the trained controllers run here with ``smoothing='none'`` (one full step,
``mu = 0``); Eq. 5's EMA is a run-time filter and is evaluated by the drive protocol
(:mod:`.drives`). Every pair is used as is and horizontally flipped (its own ``kappa``
draw); AP at IoU 0.5 per class and mAP come from :mod:`neural_ae.core.metrics.detection`
(faster-coco-eval) per repeat; ``repeats`` repeats draw new ``kappa`` values and new
sensor noise; the tables give the mean and the sample standard deviation (``ddof = 1``)
over the repeats.

Common random numbers: within a repeat every method sees the same ``kappa``, the same
frame-1 noise, and frame 2 is captured with the same noise seed whatever its exposure,
so differences between methods are differences of exposure (and detector), not of luck.

**Oracle** (:mod:`.oracle`): per frame 2, the sweep of :class:`~.oracle.OracleSpec` plus
the exposures chosen by the methods that share the oracle's detector (the sweep is then a
superset of what they could do), each captured with the frame's noise seed and scored by
:func:`~.oracle.image_score`.

**Causal ceiling** (:class:`OffsetSweep`, :func:`causal_ceiling`): the oracle picks per
image with hindsight, which no causal controller can do. What a causal controller can
reach at best is bounded by the best *single* exposure offset from the frame's own
mid-grey exposure: frame 2 at ``e_base(frame 2) * 2 ** offset_ev`` for every image, one
offset chosen on validation seeds (a controller that knew ``e_base`` exactly and the
detector's preferred offset). An :class:`OffsetSweep` captures frame 2 at each candidate
offset (same noise seed as the methods) and scores each offset's mAP per repeat; run on
validation pairs it chooses the offset, on the test pairs it gives the ceiling's
held-out figure (:func:`causal_ceiling`). The offsets join the oracle's candidates when
both use the same detector, so the oracle stays above the ceiling.

The result of :func:`run_shift_protocol` is a plain JSON-shaped dict (written to
``results.json`` as is; :mod:`.report` reads it).
"""
from dataclasses import dataclass
import math
import time
from typing import Any, Dict, List, Optional, Sequence, TYPE_CHECKING

from neural_ae.core import sensor as S
from neural_ae.core.controllers import ControllerOptions, ExposureSetting
from neural_ae.core.errors import EvaluationError, SensorError
from neural_ae.core.evaluation.common import Progress
from neural_ae.core.evaluation.config import SHIFT_LEVELS
from neural_ae.core.evaluation.methods import Method, method_label
from neural_ae.core.evaluation.oracle import image_score, OracleSpec
from neural_ae.core.metrics.detection import CLASSES, DetectionAccumulator
from neural_ae.core.models.perception import Perception
import numpy as np

if TYPE_CHECKING:
    from neural_ae.core.evaluation.assessor import FrameAssessor
    from neural_ae.core.evaluation.distributed import Shard

__all__ = ['causal_ceiling', 'correction_slope', 'draw_kappa', 'flip_record', 'OffsetSweep',
           'procedural_pairs', 'run_shift_protocol']


@dataclass
class OffsetSweep:
    """Frame 2 at ``e_base * 2 ** offset_ev`` for each offset [EV], detected by ``perception``."""

    perception: Perception
    detector_from: str = ''
    offsets_ev: tuple = (-3.0, -2.5, -2.0, -1.5, -1.0, -0.5, 0.0, 0.5, 1.0)

    def __post_init__(self):
        self.offsets_ev = tuple(float(o) for o in self.offsets_ev)
        if not self.offsets_ev or not all(math.isfinite(o) and abs(o) <= 12
                                          for o in self.offsets_ev):
            raise EvaluationError(f'offset sweep: offsets_ev must be finite EV values in '
                                  f'[-12, 12], got {self.offsets_ev}')


def causal_ceiling(validation: dict, test: dict) -> dict:
    """
    Return the causal ceiling: the offset best on validation, scored on the test run.

    ``validation`` / ``test``: the ``'offsets'`` entries of two :func:`run_shift_protocol`
    results (same offsets). Returns ``{'offset_ev', 'val_map50', 'map50_mean',
    'map50_std', 'map50_repeats', 'test_best_offset_ev', 'test_best_map50', 'val_seeds',
    'detector_from'}`` (mAP as fractions; ``test_best_*``: the offset best in hindsight
    on the test pairs, for reference only).
    """
    if tuple(validation['offsets_ev']) != tuple(test['offsets_ev']):
        raise EvaluationError(f'causal ceiling: validation offsets {validation["offsets_ev"]} '
                              f'differ from the test offsets {test["offsets_ev"]}')
    val = np.asarray(validation['map50_mean'], np.float64)
    if not np.isfinite(val).any():
        raise EvaluationError('causal ceiling: no finite validation mAP')
    j = int(np.nanargmax(val))
    tst = np.asarray(test['map50_mean'], np.float64)
    jb = int(np.nanargmax(tst)) if np.isfinite(tst).any() else j
    return {'offset_ev': float(validation['offsets_ev'][j]), 'val_map50': float(val[j]),
            'map50_mean': float(tst[j]), 'map50_std': float(test['map50_std'][j]),
            'map50_repeats': list(test['map50_repeats'][j]),
            'test_best_offset_ev': float(test['offsets_ev'][jb]),
            'test_best_map50': float(tst[jb]), 'val_seeds': validation.get('seeds'),
            'detector_from': test.get('detector_from', '')}


def draw_kappa(rng: np.random.Generator, k: float) -> float:
    """Shift factor of frame 1: ``1 / k`` or ``k`` with equal probability (paper Sec. 6.1)."""
    if not (math.isfinite(k) and k >= 1):
        raise EvaluationError(f'shift level k must be a finite number >= 1, got {k!r}')
    return float(k) if rng.random() < 0.5 else 1.0 / float(k)


def flip_record(rad1, rad2, boxes, labels) -> tuple:
    """Horizontally flip both frames and the boxes of frame 2."""
    w = rad2.shape[1]
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4).copy()
    boxes[:, [0, 2]] = w - boxes[:, [2, 0]]
    return (np.ascontiguousarray(rad1[:, ::-1]), np.ascontiguousarray(rad2[:, ::-1]), boxes,
            np.asarray(labels, np.int64).reshape(-1))


def procedural_pairs(seed_start: int, n_pairs: int, height: int, width: int,
                     cache_dir: Optional[str] = 'out/cache/scenes'):
    """Held-out procedural pairs (:class:`~neural_ae.core.training.data.ProceduralPairs`)."""
    from neural_ae.core.training.data import ProceduralPairs

    return ProceduralPairs(seed_start, n_pairs, height, width, cache_dir)


def _capture(phi, setting: ExposureSetting, sensor, seed, var_rate=None) -> np.ndarray:
    src = None if var_rate is None else np.asarray(var_rate) * setting.t_exp_s ** 2
    return S.capture(phi, setting.t_exp_s, setting.gain, sensor, np.random.default_rng(seed),
                     source_var_e=src)


def _np(x) -> np.ndarray:
    """Return a detection field as a numpy array (off the device, plain for pickling)."""
    if hasattr(x, 'detach'):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _summary(values: list) -> tuple:
    arr = np.asarray([v for v in values if v is not None and math.isfinite(v)], np.float64)
    if arr.size == 0:
        return math.nan, math.nan
    return float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else 0.0


def _ap_stats(results: list) -> dict:
    """Mean/std over repeats of mAP and per-class AP (``results``: compute() dicts)."""
    m, s = _summary([r['map50'] for r in results])
    ap_mean, ap_std = {}, {}
    for c in CLASSES:
        ap_mean[c], ap_std[c] = _summary([r['ap50'][c] for r in results])
    return {'map50_mean': m, 'map50_std': s, 'map50_repeats': [r['map50'] for r in results],
            'ap50_mean': ap_mean, 'ap50_std': ap_std,
            'num_gt': results[0]['num_gt'] if results else {},
            'num_images': results[0]['num_images'] if results else 0}


def run_shift_protocol(pairs, methods: Sequence[Method], sensor=None,
                       levels: Sequence[float] = SHIFT_LEVELS, repeats: int = 12,
                       flip: bool = True, oracle: Optional[OracleSpec] = None, seed: int = 0,
                       progress: bool = False, limits_options: Optional[dict] = None,
                       offsets: Optional[OffsetSweep] = None,
                       shard: Optional['Shard'] = None,
                       assessor: Optional['FrameAssessor'] = None) -> dict:
    """
    Run the shift protocol (module docstring) and return the figures.

    ``shard`` (:class:`~neural_ae.core.evaluation.distributed.Shard`): this process runs
    every ``world``-th pair from its ``rank`` and the ranks exchange their results, so
    every rank returns exactly the figures of a single-process run.

    ``pairs``: a sized, indexable source of records with ``rad1``, ``rad2`` ``(H, W, 3)``
    radiance [e-/s], ``boxes`` ``(N, 4)`` xyxy and ``labels`` ``(N,)`` of frame 2, optional
    ``var_rate1`` / ``var_rate2`` (source noise, see :mod:`neural_ae.core.training.data`)
    and ``key``. Returns ``{'levels', 'repeats', 'n_pairs', 'images_per_repeat', 'flip',
    'methods': {name: {'detector_from', 'notes', 'levels': {k: stats}}}, 'oracle':
    {...} or None, 'seconds'}``; stats hold ``map50_mean``, ``map50_std``,
    ``map50_repeats``, ``ap50_mean``/``ap50_std`` per class, ``ev_error_median`` (median
    ``|log2(e2 / e_base(frame 2))|``), and pooled over the repeats per direction of the
    shift (``under``: ``kappa = 1/k``, ``over``: ``kappa = k``) ``map50_under`` /
    ``map50_over`` and the median signed ``log2(e2 / e_base)``
    ``log2_e2_over_ebase_median_under`` / ``_over``. With ``offsets`` (an
    :class:`OffsetSweep`) also ``'offsets': {'offsets_ev', 'map50_mean', 'map50_std',
    'map50_repeats', 'detector_from', 'seeds'}`` (frame 2 at each fixed offset from its
    ``e_base``, independent of ``k``); methods and oracle may then be empty. With
    ``assessor`` (:class:`~.assessor.FrameAssessor`) also ``'assessor': {'model',
    'width_px', 'methods': {name: {'levels': {k: summary}, 'all': summary}}, 'all':
    summary}``: every method's frame 2 scored (:func:`~.assessor.score_summary`: mean
    score [0-10] and its Spearman / Pearson correlation with the per-image AP; pooled over
    repeats, flips and, for ``'all'``, levels); nothing else changes.
    """
    sensor = sensor or S.load_sensor('imx249')
    n_pairs = len(pairs)
    if n_pairs < 1:
        raise EvaluationError('shift protocol: no pairs to evaluate')
    if repeats < 1:
        raise EvaluationError(f'shift protocol: repeats must be >= 1, got {repeats}')
    levels = [float(k) for k in levels]
    for k in levels:
        draw_kappa(np.random.default_rng(0), k)          # validates k
    if not methods and oracle is None and offsets is None:
        raise EvaluationError('shift protocol: no methods to evaluate')
    limits = ControllerOptions(**(limits_options or {})).resolve(sensor)
    ctrls = {m.name: m.controller(sensor, smoothing='none' if m.spec.trained else None,
                                  **(limits_options or {}))
             for m in methods}
    flips = (False, True) if flip else (False,)
    names = [m.name for m in methods]
    shared = [m for m in methods if oracle is not None and m.perception is oracle.perception]
    n_off = len(offsets.offsets_ev) if offsets is not None else 0
    off_to_oracle = offsets is not None and oracle is not None and \
        offsets.perception is oracle.perception
    indices = shard.indices(n_pairs) if shard is not None else range(n_pairs)
    bar = Progress(progress, repeats * len(indices) * len(flips), 'shift protocol')
    t0 = time.perf_counter()
    # Every figure is built from a ledger of per-pair operations replayed in pair order,
    # so a sharded run (several processes) gives exactly what one process gives.
    ledger: Dict[int, list] = {}
    for i in indices:
        ops: list = []
        ledger[i] = ops
        rec = pairs[i]
        base = (rec['rad1'], rec['rad2'], rec['boxes'], rec['labels'])
        for f, flipped in enumerate(flips):
            rad1, rad2, boxes, labels = flip_record(*base) if flipped else (
                base[0], base[1], np.asarray(base[2], np.float32).reshape(-1, 4),
                np.asarray(base[3], np.int64).reshape(-1))
            v1, v2 = rec.get('var_rate1'), rec.get('var_rate2')
            if flipped:
                v1 = None if v1 is None else np.ascontiguousarray(np.asarray(v1)[..., ::-1])
                v2 = None if v2 is None else np.ascontiguousarray(np.asarray(v2)[..., ::-1])
            v1 = None if v1 is None else np.asarray(v1).reshape(rad1.shape[:2])
            v2 = None if v2 is None else np.asarray(v2).reshape(rad2.shape[:2])
            phi1 = S.mosaic(rad1, sensor.bayer_pattern)
            phi2 = S.mosaic(rad2, sensor.bayer_pattern)
            h, w = phi2.shape
            try:
                eb1, eb2 = S.e_base_s(phi1, sensor), S.e_base_s(phi2, sensor)
            except SensorError as err:
                raise EvaluationError(f'shift protocol: pair {rec.get("key", i)}: {err}') \
                    from err

            def image(dets) -> tuple:
                return (boxes, labels, _np(dets['boxes']), _np(dets['scores']),
                        _np(dets['labels']), w, h)

            for r in range(repeats):
                seed2 = [seed, r, i, f, 2]
                sweep = []
                if oracle is not None:
                    for fac in oracle.factors():
                        t, g, _ = limits.split(eb2 * fac)
                        st = ExposureSetting.from_linear(t, g)
                        dets, _ = oracle.perception.detect(_capture(phi2, st, sensor, seed2, v2))
                        sweep.append((st.e_s, dets, image_score(boxes, labels, dets, w, h)))
                for j in range(n_off):
                    assert offsets is not None
                    t, g, _ = limits.split(eb2 * 2.0 ** offsets.offsets_ev[j])
                    st = ExposureSetting.from_linear(t, g)
                    dets, _ = offsets.perception.detect(_capture(phi2, st, sensor, seed2, v2))
                    ops.append(('off_accs', (j, r), image(dets)))
                    if off_to_oracle:
                        sweep.append((st.e_s, dets, image_score(boxes, labels, dets, w, h)))
                for li, k in enumerate(levels):
                    kappa = draw_kappa(np.random.default_rng([seed, r, i, f, li, 0]), k)
                    t1, g1, _ = limits.split(kappa * eb1)
                    set1 = ExposureSetting.from_linear(t1, g1)
                    raw1 = _capture(phi1, set1, sensor, [seed, r, i, f, li, 1], v1)
                    side = 'under' if kappa < 1 else 'over'
                    cands = list(sweep)
                    for m in methods:
                        ctrl = ctrls[m.name]
                        ctrl.reset(set1)
                        feats = m.perception.features(raw1) if m.needs_features else None
                        set2 = ctrl.step(raw1, set1, features=feats).setting
                        raw2 = _capture(phi2, set2, sensor, seed2, v2)
                        dets, _ = m.perception.detect(raw2)
                        if assessor is not None:
                            ap2 = image_score(boxes, labels, dets, w, h)[0] if len(labels) \
                                else math.nan
                            ops.append(('assess', (m.name, li), (assessor.score(raw2), ap2)))
                        ops += [('accs', (m.name, li, r), image(dets)),
                                ('ev_err', (m.name, li), abs(math.log2(set2.e_s / eb2))),
                                ('by_dir', (m.name, li, side), image(dets)),
                                ('log_dir', (m.name, li, side), math.log2(set2.e_s / eb2)),
                                ('steps', m.name, (math.log2(set1.e_s / eb1),
                                                   math.log2(set2.e_s / set1.e_s)))]
                        if m in shared:
                            cands.append((set2.e_s, dets, image_score(boxes, labels, dets, w,
                                                                      h)))
                    if oracle is not None:
                        e_best, dets, _ = max(cands, key=lambda c: c[2])
                        ops += [('accs', ('oracle', li, r), image(dets)),
                                ('ev_err', ('oracle', li), abs(math.log2(e_best / eb2))),
                                ('by_dir', ('oracle', li, side), image(dets)),
                                ('log_dir', ('oracle', li, side), math.log2(e_best / eb2))]
                bar.update(1)
    bar.close()
    if shard is not None:
        ledger = shard.merge(ledger)
    accs = {(n, li, r): DetectionAccumulator() for n in names + ['oracle']
            for li in range(len(levels)) for r in range(repeats)}
    ev_err: Dict[tuple, List[float]] = {(n, li): [] for n in names + ['oracle']
                                        for li in range(len(levels))}
    # pooled over repeats, split by the direction of the shift (diagnostics)
    by_dir = {(n, li, d): DetectionAccumulator() for n in names + ['oracle']
              for li in range(len(levels)) for d in ('under', 'over')}
    log_dir: Dict[tuple, List[float]] = {(n, li, d): [] for n in names + ['oracle']
                                         for li in range(len(levels)) for d in ('under', 'over')}
    # (log2 kappa, log2 u) per method: how much of the shift one step undoes
    steps: Dict[str, List[tuple]] = {n: [] for n in names}
    off_accs = {(j, r): DetectionAccumulator() for j in range(n_off) for r in range(repeats)}
    # (assessor score, per-image AP) of every frame 2 per method and level
    assess: Dict[tuple, List[tuple]] = {(n, li): [] for n in names for li in range(len(levels))}
    stores: Dict[str, Any] = {'accs': accs, 'by_dir': by_dir, 'off_accs': off_accs,
                              'ev_err': ev_err, 'log_dir': log_dir, 'steps': steps,
                              'assess': assess}
    for i in sorted(ledger):
        for store, key, value in ledger[i]:
            target = stores[store][key]
            if isinstance(target, DetectionAccumulator):
                target.add(value[0], value[1], value[2], value[3], value[4], width=value[5],
                           height=value[6])
            else:
                target.append(value)
    out: dict = {'levels': levels, 'repeats': repeats, 'n_pairs': n_pairs,
                 'images_per_repeat': n_pairs * len(flips), 'flip': bool(flip), 'methods': {},
                 'oracle': None, 'seed': seed}
    rows = [(m.name, m.detector_from, list(m.notes), m.untrained) for m in methods]
    if oracle is not None:
        rows.append(('oracle', oracle.detector_from or oracle.perception.source,
                     [f'sweep {oracle.n_sweep} exposures over e_base x 2^[-{oracle.range_ev:g}, '
                      f'{oracle.range_ev:g}] EV + the exposures of the methods sharing its '
                      f'detector ({", ".join(method_label(m.name) for m in shared) or "none"})'],
                     False))
    for name, det_from, notes, untrained in rows:
        per_level = {}
        for li, k in enumerate(levels):
            stats = _ap_stats([accs[(name, li, r)].compute() for r in range(repeats)])
            errs = ev_err[(name, li)]
            stats['ev_error_median'] = float(np.median(errs)) if errs else math.nan
            for side in ('under', 'over'):
                stats[f'map50_{side}'] = by_dir[(name, li, side)].compute()['map50']
                logs = log_dir[(name, li, side)]
                median = float(np.median(logs)) if logs else math.nan
                stats[f'log2_e2_over_ebase_median_{side}'] = median
            per_level[f'{k:g}'] = stats
        entry = {'detector_from': det_from, 'notes': notes, 'untrained': untrained,
                 'levels': per_level}
        if name in steps:
            entry['correction_slope'] = correction_slope(steps[name])
        if name == 'oracle':
            out['oracle'] = entry
        else:
            out['methods'][name] = entry
    if offsets is not None:
        per = [[off_accs[(j, r)].compute()['map50'] for r in range(repeats)]
               for j in range(n_off)]
        summaries = [_summary(v) for v in per]
        out['offsets'] = {'offsets_ev': list(offsets.offsets_ev),
                          'map50_mean': [m for m, _ in summaries],
                          'map50_std': [sd for _, sd in summaries], 'map50_repeats': per,
                          'detector_from': offsets.detector_from or offsets.perception.source,
                          'seeds': _seed_range(pairs, n_pairs)}
    if assessor is not None:
        out['assessor'] = _assessor_figures(assessor, names, levels, assess)
    out['seconds'] = time.perf_counter() - t0
    return out


def _assessor_figures(assessor, names: Sequence[str], levels: Sequence[float],
                      assess: Dict[tuple, List[tuple]]) -> dict:
    from neural_ae.core.evaluation.assessor import score_summary

    per: dict = {}
    pooled: list = []
    for n in names:
        rows = [p for li in range(len(levels)) for p in assess[(n, li)]]
        pooled += rows
        per[n] = {'levels': {f'{k:g}': score_summary(assess[(n, li)])
                             for li, k in enumerate(levels)}, 'all': score_summary(rows)}
    return {**assessor.describe(), 'methods': per, 'all': score_summary(pooled)}


def correction_slope(points: Sequence[tuple]) -> float:
    """
    Least-squares slope of ``log2 u`` on ``log2 kappa`` over ``(log2 kappa, log2 u)`` points.

    ``u = e2 / e1`` is the one-step correction and ``kappa = e1 / e_base(frame 1)`` the
    shift (as delivered by the sensor's bounds): -1 undoes the shift fully, 0 not at all
    (NaN with fewer than two distinct shifts).
    """
    arr = np.asarray(points, np.float64).reshape(-1, 2)
    arr = arr[np.all(np.isfinite(arr), axis=1)]
    if arr.shape[0] < 2 or np.ptp(arr[:, 0]) < 1e-9:
        return math.nan
    x, y = arr[:, 0] - arr[:, 0].mean(), arr[:, 1] - arr[:, 1].mean()
    return float((x * y).sum() / (x * x).sum())


def _seed_range(pairs, n_pairs: int) -> Optional[str]:
    """``'a..b'``: the scene seeds of a procedural pair source, else ``None``."""
    start = getattr(pairs, 'seed_start', None)
    return None if start is None else f'{start}..{start + n_pairs - 1}'
