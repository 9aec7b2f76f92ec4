"""
Evaluation protocols (issue 5): the paper's shift protocol, closed-loop drives, HDR bags.

**Shift protocol** (paper Sec. 6.1, Table 1). Held-out pairs of consecutive HDR frames.
Frame 1 is captured at ``kappa * e_base(frame 1)`` with ``kappa`` drawn with equal
probability from ``{1/k, k}`` (:func:`draw_kappa`), ``k`` in ``levels`` (1.5, 4, 10); the
method's controller sees the raw frame 1 and the setting that produced it and sets the
exposure of frame 2, which is captured and detected by the method's own detector (the
one trained for it, Table 2 logic). The paper evaluates pairs "in the same way as in the
training pipeline", which applies the network's ``u`` directly; so the neural controllers
run here with ``smoothing='none'`` (one full step, ``mu = 0``); Eq. 5's EMA is a run-time
filter and is evaluated by the drive protocol. Every pair is used as is and
horizontally flipped (its own ``kappa`` draw); AP at IoU 0.5 per class and mAP come from
:mod:`neural_ae.core.metrics.detection` (faster-coco-eval) per repeat;
``repeats`` repeats draw new ``kappa`` values and new sensor noise; the tables give the
mean and the sample standard deviation (``ddof = 1``) over the repeats.

Common random numbers: within a repeat every method sees the same ``kappa``, the same
frame-1 noise, and frame 2 is captured with the same noise seed whatever its exposure,
so differences between methods are differences of exposure (and detector), not of luck.

**Oracle** (the ceiling). With hindsight, per frame 2: a dense log sweep of exposures
``e_base(frame 2) * 2 ** linspace(-range_ev, range_ev, n)``, plus the exposures chosen
by the methods that share the oracle's detector (the sweep is then a superset of what
they could do). Each candidate is captured with the frame's noise seed and detected by
the oracle's detector; the candidate with the best per-image score wins. Score
(:func:`image_score`): per-image AP at IoU 0.5 over the classes present in the image
(faster-coco-eval), ties broken by a soft count: the sum of the confidences of
detections matched to a ground-truth box (greedy by confidence, same class, IoU >= 0.5)
minus the sum of those of unmatched detections. An image without ground truth scores by
the soft count alone (fewest confident false positives). Because per-image scores do not
add up to the pooled AP exactly, the oracle's mAP is a ceiling in practice, not by proof
(it is by proof on a single image).

**Drive protocol** (beyond the paper). Held-out procedural sequences
(:func:`neural_ae.core.scenes.iter_sequence`: ``tunnel_exit``, ``tunnel_in_out``,
``low_sun``, ``night_headlights``) and a controlled ``step10x`` sequence (one static
held-out scene whose illumination steps x10 up and back down) run in closed loop
(:func:`neural_ae.core.closed_loop.run_closed_loop`); the method's detector runs on
every frame as captured (one backbone pass also feeds the semantic/hybrid controller),
giving mAP over all frames, and :func:`neural_ae.core.metrics.temporal.temporal_metrics`
gives convergence, overshoot, oscillation and flicker. Neural controllers run once per
smoothing (``'ema'``, Eq. 5 with ``mu = 0.9``, and ``'adaptive'``). The drive oracle sweeps
(noiseless renderings, :class:`DetectorOracle`) around each frame's ``e_base``.

**Bag protocol.** The same for a user's HDR rosbag2 with ``labels.json``
(:func:`load_bag_frames`): the closed loop over all its frames (AP over the labelled
ones) and the shift protocol over its consecutive pairs whose second frame is labelled.

Seeds: the test scenes start at ``test_seed_start`` (2,000,000, the training config's
documented test range); pairs use ``test_seed_start + i``, drives
``test_seed_start + DRIVE_SEED_OFFSET + j``. :func:`check_test_seeds` rejects overlap with
the train/validation ranges of the training configs in use.
"""
from dataclasses import dataclass, field
import logging
import math
from pathlib import Path
import time
from typing import Callable, Dict, List, Optional, Sequence

from neural_ae.core import sensor as S
from neural_ae.core.controllers import ControllerOptions, ExposureSetting, make_controller
from neural_ae.core.controllers.oracle import OracleController
from neural_ae.core.errors import EvaluationError, SensorError, TrainingError
from neural_ae.core.metrics.detection import CLASSES, DetectionAccumulator
from neural_ae.core.models.perception import Perception
import numpy as np
import torch

LOG = logging.getLogger(__name__)

TEST_SEED_START = 2_000_000
"""First test scene seed (``TrainConfig.test_seed_start``); never trained on."""
DRIVE_SEED_OFFSET = 100_000
"""Drive ``j`` uses scene seed ``test_seed_start + DRIVE_SEED_OFFSET + j``."""
SHIFT_LEVELS = (1.5, 4.0, 10.0)
METHODS = ('fixed', 'average', 'gradient', 'histogram_nn', 'semantic_nn', 'hybrid_nn')
"""Controllers evaluated (the oracle comes on top)."""
BASELINES = ('fixed', 'average', 'gradient')
NEURAL = ('histogram_nn', 'semantic_nn', 'hybrid_nn')
TRAIN_MODE = {'fixed': 'fixed', 'average': 'average', 'gradient': 'gradient',
              'histogram_nn': 'histogram', 'semantic_nn': 'semantic', 'hybrid_nn': 'hybrid'}
"""Controller name -> the ``ae`` of the training run whose detector belongs to it."""
LABELS = {'fixed': 'Fixed', 'average': 'Average AE', 'gradient': 'Gradient AE',
          'histogram_nn': 'Histogram NN', 'semantic_nn': 'Semantic NN',
          'hybrid_nn': 'Hybrid NN', 'oracle': 'Oracle'}
DRIVE_SCENARIOS = ('tunnel_exit', 'tunnel_in_out', 'low_sun', 'night_headlights', 'step10x')
SMOOTHINGS = ('ema', 'adaptive')


def method_label(key: str) -> str:
    """Human name of a method key such as ``'hybrid_nn'`` or ``'hybrid_nn+adaptive'``."""
    base, _, smoothing = key.partition('+')
    label = LABELS.get(base, base)
    return f'{label} ({smoothing})' if smoothing else label


# --------------------------------------------------------------------------- seeds, kappa


def draw_kappa(rng: np.random.Generator, k: float) -> float:
    """Shift factor of frame 1: ``1 / k`` or ``k`` with equal probability (paper Sec. 6.1)."""
    if not (math.isfinite(k) and k >= 1):
        raise EvaluationError(f'shift level k must be a finite number >= 1, got {k!r}')
    return float(k) if rng.random() < 0.5 else 1.0 / float(k)


def seed_ranges(cfg) -> dict:
    """``{'train': (first, last), 'val': (first, last)}`` seed ranges of a training config."""
    return {'train': (int(cfg.train_seed_start), int(cfg.train_seed_start + cfg.train_size - 1)),
            'val': (int(cfg.val_seed_start), int(cfg.val_seed_start + max(cfg.val_size, 1) - 1))}


def check_test_seeds(seeds: Sequence[int], configs: Sequence, where: str = 'test',
                     splits: Sequence[str] = ('train', 'val')) -> None:
    """
    Raise :class:`EvaluationError` if a seed lies in a ``splits`` range of ``configs``.

    ``configs`` are :class:`~neural_ae.core.training.config.TrainConfig` objects (of the
    checkpoints evaluated, or of the shipped training YAMLs); ``splits`` ``('train',)``
    checks a validation run (tuning), which may use validation seeds.
    """
    seeds = [int(s) for s in seeds]
    if not seeds:
        return
    lo, hi = min(seeds), max(seeds)
    for cfg in configs:
        for split, (a, b) in seed_ranges(cfg).items():
            if split not in splits:
                continue
            if lo <= b and a <= hi and any(a <= s <= b for s in seeds):
                raise EvaluationError(
                    f'{where} seeds {lo}..{hi} overlap the {split} seeds {a}..{b} of training '
                    f'run {getattr(cfg, "name", "?")!r}; choose seeds >= {TEST_SEED_START}')


# --------------------------------------------------------------------------- perception


# --------------------------------------------------------------------------- methods


@dataclass
class Method:
    """
    One evaluated exposure controller with the detector that belongs to it.

    ``name``: a controller name (:data:`METHODS`); ``perception``: its ISP + detector;
    ``detector_from``: the training run / checkpoint of that detector (for the tables);
    ``model``: the AE network (neural controllers); ``notes``: fallbacks and caveats
    (shown loudly in the report); ``untrained``: the AE network has random weights.
    """

    name: str
    perception: Perception
    detector_from: str
    model: Optional[torch.nn.Module] = None
    notes: List[str] = field(default_factory=list)
    untrained: bool = False
    device: str = 'cpu'

    @property
    def needs_features(self) -> bool:
        """Whether the controller reads the backbone's ``layer2`` map."""
        return self.name in ('semantic_nn', 'hybrid_nn')

    def controller(self, sensor, smoothing: Optional[str] = None, **options):
        """Build a fresh controller; ``smoothing`` and ``options`` go to ControllerOptions."""
        opts = ControllerOptions(smoothing=smoothing, **options)
        kw = {}
        if self.name in NEURAL:
            kw = {'model': self.model, 'device': self.device}
        return make_controller(self.name, opts, sensor=sensor, **kw)


@dataclass
class CheckpointInfo:
    """A training checkpoint found on disk: its path, ``ae`` mode, config, model card."""

    path: Path
    ae: str
    config: object
    card: Optional[Path] = None
    metrics: dict = field(default_factory=dict)


def discover_checkpoints(models_dir, explicit: Optional[Dict[str, str]] = None) -> dict:
    """
    Map training ``ae`` mode -> :class:`CheckpointInfo` for the checkpoints in a folder.

    Reads every ``*.pt`` under ``models_dir`` with the training checkpoint loader (files
    that are not training checkpoints are skipped with a log line); ``explicit`` maps a
    controller name to a checkpoint path and wins. Several checkpoints of one mode: the
    first by file name is used and the others are listed in ``'_ignored'``.
    """
    from neural_ae.core.training.config import config_from_dict
    from neural_ae.core.training.checkpoints import load_checkpoint

    found, ignored, unreadable = {}, [], []

    def read(path: Path) -> Optional[CheckpointInfo]:
        try:
            with _safe_globals():
                ck = load_checkpoint(path)
        except TrainingError as err:
            LOG.warning('skipping %s: %s', path, err)
            unreadable.append(f'{path}: {err}')
            return None
        cfg = config_from_dict(ck['config'], source=f'{path} (embedded config)')
        card = path.with_suffix('.md')
        return CheckpointInfo(path, str(ck.get('ae', cfg.ae)), cfg,
                              card if card.is_file() else None, ck.get('metrics') or {})

    for name, p in (explicit or {}).items():
        path = Path(p)
        if not path.is_file():
            raise EvaluationError(f'checkpoint for {name} not found: {path}')
        info = read(path)
        if info is None:
            raise EvaluationError(f'{path} (given for {name}) is not a neural_ae training '
                                  f'checkpoint')
        found[TRAIN_MODE.get(name, name)] = info
    folder = Path(models_dir)
    if folder.is_dir():
        for path in sorted(folder.glob('*.pt')):
            if any(path == i.path for i in found.values()):
                continue
            info = read(path)
            if info is None:
                continue
            if info.ae in found:
                ignored.append(str(path))
                continue
            found[info.ae] = info
    found['_ignored'] = ignored
    found['_unreadable'] = unreadable
    return found


def _safe_globals():
    """
    Allow ``torch.torch_version.TorchVersion`` (a ``str`` subclass) in weights-only loads.

    Checkpoints that store ``torch.__version__`` as is carry that class, which
    ``torch.load(weights_only=True)`` rejects by default.
    """
    return torch.serialization.safe_globals([torch.torch_version.TorchVersion])


DETECTOR_CHAIN = {
    'hybrid_nn': ('hybrid',),
    'histogram_nn': ('histogram',),
    'semantic_nn': ('semantic',),
    'average': ('average', 'fixed', 'hybrid', 'gradient', 'histogram', 'semantic'),
    'gradient': ('gradient', 'average', 'fixed', 'hybrid', 'histogram', 'semantic'),
}
"""Which training run's detector each method uses, in order of preference."""


def _describe(info: CheckpointInfo) -> str:
    return f'{info.path.name} (trained with ae={info.ae})'


def build_methods(models_dir, names: Sequence[str] = METHODS, sensor=None, device='cpu',
                  allow_untrained: bool = False, explicit: Optional[dict] = None,
                  fixed_detector: str = 'average', oracle_detector: str = 'hybrid_nn',
                  height: int = 192, width: int = 320) -> dict:
    """
    Load the methods to evaluate from the checkpoints in ``models_dir``.

    Returns ``{'methods': [Method], 'oracle': Perception or None, 'oracle_from': str,
    'warnings': [str], 'skipped': {name: reason}, 'checkpoints': {ae: CheckpointInfo},
    'configs': [TrainConfig], 'size': (h, w)}``.

    Table 2 logic: each neural controller uses the detector trained jointly with its AE
    network; Average and Gradient use the detector fine-tuned with them; Fixed uses the
    detector of ``fixed_detector`` (a method name, default the Average AE's). A missing
    detector falls back along :data:`DETECTOR_CHAIN` with a warning. A neural method
    without its checkpoint is skipped (warning) unless ``allow_untrained``: then an
    untrained network runs with the first available detector, flagged UNTRAINED. With no
    checkpoint at all: :class:`EvaluationError`, or (``allow_untrained``) one untrained
    pipeline for every method (mechanics runs only).
    """
    from neural_ae.core.training.config import TrainConfig
    from neural_ae.core.training.checkpoints import load_pipeline
    from neural_ae.core.training.pipeline import ExposurePipeline

    sensor = sensor or S.load_sensor('imx249')
    cks = discover_checkpoints(models_dir, explicit)
    ignored = cks.pop('_ignored')
    warnings = [f'checkpoint {p} ignored: another checkpoint of the same ae mode is used'
                for p in ignored]
    warnings += [f'not a usable training checkpoint, skipped: {u}'
                 for u in cks.pop('_unreadable')]
    if not cks and not allow_untrained:
        raise EvaluationError(
            f'no trained checkpoints found in {Path(models_dir)} (expected *.pt written by '
            f'`neural-ae train`, e.g. models/hybrid_demo.pt); train them first, point '
            f'--models at them, or pass --allow-untrained for a mechanics-only run')
    pipes = {}

    def pipeline(ae: str):
        if ae not in pipes:
            with _safe_globals():
                pipe, _, _ = load_pipeline(cks[ae].path, device='cpu')
            pipes[ae] = (pipe, Perception(pipe.detector, pipe.isp, device, _describe(cks[ae])))
        return pipes[ae]

    untrained_pipe = {}

    def fresh(mode: str):
        if mode not in untrained_pipe:
            cfg = TrainConfig(ae=mode, height=height, width=width)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                pipe = ExposurePipeline(cfg, sensor)
            untrained_pipe[mode] = (pipe.eval(), Perception(
                pipe.detector, pipe.isp, device, f'UNTRAINED (random weights, ae={mode})'))
        return untrained_pipe[mode]

    if not cks:
        warnings.append(f'NO TRAINED CHECKPOINTS in {models_dir}: every method runs with '
                        f'UNTRAINED random weights (mechanics only, the figures mean nothing)')
    available = [ae for ae in ('hybrid', 'average', 'fixed', 'gradient', 'histogram',
                               'semantic') if ae in cks]
    methods, skipped = [], {}
    for name in names:
        if name in NEURAL:
            mode = TRAIN_MODE[name]
            if mode in cks:
                pipe, perc = pipeline(mode)
                methods.append(Method(name, perc, perc.source, pipe.ae, device=str(device)))
                continue
            if not allow_untrained:
                reason = (f'no checkpoint trained with ae={mode} in {models_dir}; '
                          f'{method_label(name)} NOT EVALUATED (pass --allow-untrained to run '
                          f'an untrained network for mechanics)')
                skipped[name] = reason
                warnings.append(reason)
                continue
            net_pipe, _ = fresh(mode)
            if available:
                _, perc = pipeline(available[0])
                det_note = f'detector of {perc.source} (its own does not exist)'
            else:
                _, perc = fresh(mode)
                det_note = perc.source
            note = (f'{method_label(name)}: NO CHECKPOINT with ae={mode}: UNTRAINED AE network '
                    f'(random weights), {det_note}')
            warnings.append(note)
            methods.append(Method(name, perc, perc.source, net_pipe.ae, [note], True,
                                  str(device)))
            continue
        if name == 'fixed':
            first = TRAIN_MODE.get(fixed_detector, fixed_detector)
            chain = (first,) + tuple(a for a in ('average', 'hybrid', 'fixed', 'gradient',
                                                 'histogram', 'semantic') if a != first)
        else:
            chain = DETECTOR_CHAIN[name]
        use = next((a for a in chain if a in cks), None)
        notes = []
        if use is None:
            _, perc = fresh('fixed')
            notes.append(f'{method_label(name)}: no detector checkpoint at all: UNTRAINED '
                         f'detector')
        else:
            _, perc = pipeline(use)
            if use != chain[0]:
                notes.append(f'{method_label(name)}: FALLBACK detector: no checkpoint trained '
                             f'with ae={chain[0]}; using {perc.source}')
        warnings.extend(notes)
        methods.append(Method(name, perc, perc.source, None, notes, device=str(device)))
    oracle, oracle_from = None, ''
    by_name = {m.name: m for m in methods}
    if oracle_detector in by_name:
        oracle = by_name[oracle_detector].perception
        oracle_from = f'detector of {method_label(oracle_detector)}: {oracle.source}'
    elif methods:
        oracle = methods[-1].perception
        oracle_from = f'detector of {method_label(methods[-1].name)}: {oracle.source}'
        warnings.append(f'oracle: {method_label(oracle_detector)} is not evaluated; the '
                        f'oracle uses the {oracle_from}')
    return {'methods': methods, 'oracle': oracle, 'oracle_from': oracle_from,
            'warnings': warnings, 'skipped': skipped, 'checkpoints': cks,
            'configs': [c.config for c in cks.values()]}


# --------------------------------------------------------------------------- scoring


def soft_score(gt_boxes, gt_labels, dets: dict, iou: float = 0.5) -> float:
    """
    Sum of confidences of matched detections minus that of unmatched ones (one image).

    Greedy matching by decreasing confidence to an unmatched ground-truth box of the same
    class with IoU >= ``iou`` (the oracle's tie-break proxy; AP itself comes from the
    library).
    """
    from torchvision.ops import box_iou

    scores = np.asarray(dets['scores'], np.float64).reshape(-1)
    if scores.size == 0:
        return 0.0
    gb = torch.as_tensor(np.asarray(gt_boxes, np.float64).reshape(-1, 4))
    gl = np.asarray(gt_labels, np.int64).reshape(-1)
    db = torch.as_tensor(np.asarray(dets['boxes'], np.float64).reshape(-1, 4))
    dl = np.asarray(dets['labels'], np.int64).reshape(-1)
    ious = box_iou(db, gb).numpy() if len(gb) else np.zeros((len(db), 0))
    used = np.zeros(len(gl), bool)
    total = 0.0
    for k in np.argsort(-scores, kind='stable'):
        cand = np.nonzero((gl == dl[k]) & ~used & (ious[k] >= iou))[0] if len(gl) else []
        if len(cand):
            used[cand[np.argmax(ious[k, cand])]] = True
            total += scores[k]
        else:
            total -= scores[k]
    return float(total)


def image_score(gt_boxes, gt_labels, dets: dict, width: int = 0, height: int = 0) -> tuple:
    """
    Oracle's per-image score ``(AP@0.5 of the image, soft score)``, compared as a tuple.

    The AP is faster-coco-eval's over the classes present in the image (0 for an image
    without ground truth, so the soft score decides).
    """
    gl = np.asarray(gt_labels).reshape(-1)
    ap = 0.0
    if gl.size:
        acc = DetectionAccumulator()
        acc.add(gt_boxes, gt_labels, dets['boxes'], dets['scores'], dets['labels'],
                width=width, height=height)
        ap = acc.compute()['map50']
        ap = 0.0 if not math.isfinite(ap) else ap
    return (float(ap), soft_score(gt_boxes, gt_labels, dets))


# --------------------------------------------------------------------------- helpers


def flip_record(rad1, rad2, boxes, labels) -> tuple:
    """Horizontally flip both frames and the boxes of frame 2."""
    w = rad2.shape[1]
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4).copy()
    boxes[:, [0, 2]] = w - boxes[:, [2, 0]]
    return (np.ascontiguousarray(rad1[:, ::-1]), np.ascontiguousarray(rad2[:, ::-1]), boxes,
            np.asarray(labels, np.int64).reshape(-1))


def _capture(phi, setting: ExposureSetting, sensor, seed, var_rate=None) -> np.ndarray:
    src = None if var_rate is None else np.asarray(var_rate) * setting.t_exp_s ** 2
    return S.capture(phi, setting.t_exp_s, setting.gain, sensor, np.random.default_rng(seed),
                     source_var_e=src)


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


class _Progress:
    def __init__(self, progress, total: int, desc: str):
        self.bar = None
        if progress:
            from tqdm import tqdm
            self.bar = tqdm(total=total, desc=desc, unit='img', dynamic_ncols=True,
                            leave=False)

    def update(self, n: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# --------------------------------------------------------------------------- shift protocol


@dataclass
class OracleSpec:
    """The oracle's detector and sweep: ``e_base * 2 ** linspace(-range_ev, range_ev, n)``."""

    perception: Perception
    detector_from: str = ''
    n_sweep: int = 9
    range_ev: float = 5.0

    def factors(self) -> np.ndarray:
        """Sweep factors relative to ``e_base`` of the frame."""
        if self.n_sweep < 1:
            raise EvaluationError(f'oracle sweep needs >= 1 point, got {self.n_sweep}')
        return 2.0 ** np.linspace(-self.range_ev, self.range_ev, self.n_sweep)


def run_shift_protocol(pairs, methods: Sequence[Method], sensor=None,
                       levels: Sequence[float] = SHIFT_LEVELS, repeats: int = 12,
                       flip: bool = True, oracle: Optional[OracleSpec] = None, seed: int = 0,
                       progress: bool = False, limits_options: Optional[dict] = None) -> dict:
    """
    Run the shift protocol (module docstring) and return the figures.

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
    ``log2_e2_over_ebase_median_under`` / ``_over``.
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
    if not methods and oracle is None:
        raise EvaluationError('shift protocol: no methods to evaluate')
    limits = ControllerOptions(**(limits_options or {})).resolve(sensor)
    ctrls = {m.name: m.controller(sensor, smoothing='none' if m.name in NEURAL else None,
                                  **(limits_options or {}))
             for m in methods}
    flips = (False, True) if flip else (False,)
    names = [m.name for m in methods]
    accs = {(n, li, r): DetectionAccumulator() for n in names + ['oracle']
            for li in range(len(levels)) for r in range(repeats)}
    ev_err = {(n, li): [] for n in names + ['oracle'] for li in range(len(levels))}
    # pooled over repeats, split by the direction of the shift (diagnostics)
    by_dir = {(n, li, d): DetectionAccumulator() for n in names + ['oracle']
              for li in range(len(levels)) for d in ('under', 'over')}
    log_dir = {(n, li, d): [] for n in names + ['oracle'] for li in range(len(levels))
               for d in ('under', 'over')}
    shared = [m for m in methods if oracle is not None and m.perception is oracle.perception]
    bar = _Progress(progress, repeats * n_pairs * len(flips), 'shift protocol')
    t0 = time.perf_counter()
    for i in range(n_pairs):
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
            for r in range(repeats):
                seed2 = [seed, r, i, f, 2]
                sweep = []
                if oracle is not None:
                    for fac in oracle.factors():
                        t, g, _ = limits.split(eb2 * fac)
                        st = ExposureSetting.from_linear(t, g)
                        dets, _ = oracle.perception.detect(_capture(phi2, st, sensor, seed2, v2))
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
                        dets, _ = m.perception.detect(_capture(phi2, set2, sensor, seed2, v2))
                        accs[(m.name, li, r)].add(boxes, labels, dets['boxes'], dets['scores'],
                                                  dets['labels'], width=w, height=h)
                        ev_err[(m.name, li)].append(abs(math.log2(set2.e_s / eb2)))
                        by_dir[(m.name, li, side)].add(boxes, labels, dets['boxes'],
                                                       dets['scores'], dets['labels'],
                                                       width=w, height=h)
                        log_dir[(m.name, li, side)].append(math.log2(set2.e_s / eb2))
                        if m in shared:
                            cands.append((set2.e_s, dets, image_score(boxes, labels, dets, w,
                                                                      h)))
                    if oracle is not None:
                        e_best, dets, _ = max(cands, key=lambda c: c[2])
                        accs[('oracle', li, r)].add(boxes, labels, dets['boxes'],
                                                    dets['scores'], dets['labels'],
                                                    width=w, height=h)
                        ev_err[('oracle', li)].append(abs(math.log2(e_best / eb2)))
                        by_dir[('oracle', li, side)].add(boxes, labels, dets['boxes'],
                                                         dets['scores'], dets['labels'],
                                                         width=w, height=h)
                        log_dir[('oracle', li, side)].append(math.log2(e_best / eb2))
                bar.update(1)
    bar.close()
    out = {'levels': levels, 'repeats': repeats, 'n_pairs': n_pairs,
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
        if name == 'oracle':
            out['oracle'] = entry
        else:
            out['methods'][name] = entry
    out['seconds'] = time.perf_counter() - t0
    return out


# --------------------------------------------------------------------------- drives


@dataclass
class Frame:
    """
    One frame of a drive: ``radiance`` (``(H, W)`` Bayer irradiance or ``(H, W, 3)``), GT.

    ``labelled`` False: the frame has no annotation and is left out of the AP.
    """

    radiance: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray
    meta: dict = field(default_factory=dict)
    labelled: bool = True


@dataclass
class Drive:
    """A named sequence of :class:`Frame` objects (held-out seed, scenario)."""

    name: str
    scenario: str
    seed: int
    frames: List[Frame]


def step_drive(seed: int, n_frames: int = 60, factor: float = 10.0, height: int = 192,
               width: int = 320, sensor=None) -> Drive:
    """
    Build a static held-out scene whose illumination steps by ``factor`` up and back down.

    Frames ``[0, n/3)`` at the scene's light, ``[n/3, 2n/3)`` at ``factor`` times it,
    the rest back at 1x; ``meta['illumination_scale']`` carries the steps, so
    :func:`~neural_ae.core.metrics.temporal.find_events` finds two events of
    ``log2(factor)`` EV each.
    """
    from neural_ae.core.scenes import generate_scene

    sensor = sensor or S.load_sensor('imx249')
    scene = generate_scene(seed, 'day', height, width)
    phi = S.mosaic(scene.radiance, sensor.bayer_pattern)
    base = float(scene.meta.get('illumination_scale', 1.0))
    third = max(1, n_frames // 3)
    frames = []
    for k in range(n_frames):
        s = factor if third <= k < 2 * third else 1.0
        event = 'step_up' if k == third else 'step_down' if k == 2 * third else 'steady'
        frames.append(Frame(phi * np.float32(s), scene.boxes, scene.labels,
                            {'illumination_scale': base * s, 'event': event,
                             'frame_index': k}))
    return Drive('step10x' if factor == 10 else f'step{factor:g}x', 'day (static)', seed,
                 frames)


def sequence_drive(seed: int, scenario: str, n_frames: int, height: int = 192,
                   width: int = 320, sensor=None) -> Drive:
    """Build a drive from a procedural sequence (:func:`~neural_ae.core.scenes.iter_sequence`)."""
    from neural_ae.core.scenes import iter_sequence

    sensor = sensor or S.load_sensor('imx249')
    frames = [Frame(S.mosaic(sc.radiance, sensor.bayer_pattern), sc.boxes, sc.labels, sc.meta)
              for sc in iter_sequence(seed, n_frames, scenario, height, width)]
    return Drive(scenario, scenario, seed, frames)


def make_drives(scenarios: Sequence, seed_start: int = TEST_SEED_START + DRIVE_SEED_OFFSET,
                height: int = 192, width: int = 320, sensor=None) -> List[Drive]:
    """
    Drives for ``(scenario, n_frames)`` pairs; drive ``j`` uses seed ``seed_start + j``.

    ``'step10x'`` is :func:`step_drive`; the other names are sequence scenarios. A name
    used twice gets a suffix (``step10x_2``), so figures and tables stay apart.
    """
    drives, seen = [], {}
    for j, (scenario, n) in enumerate(scenarios):
        seed = seed_start + j
        if scenario.startswith('step'):
            try:
                factor = float(scenario[4:].rstrip('x'))
            except ValueError as err:
                raise EvaluationError(f'drive {scenario!r}: expected step<factor>x, e.g. '
                                      f'step10x') from err
            drives.append(step_drive(seed, int(n), factor, height, width, sensor))
        else:
            try:
                drives.append(sequence_drive(seed, scenario, int(n), height, width, sensor))
            except Exception as err:  # noqa: BLE001 - SceneError for a bad name
                raise EvaluationError(f'drive {scenario!r}: {err}') from err
        name = drives[-1].name
        seen[name] = seen.get(name, 0) + 1
        if seen[name] > 1:
            drives[-1].name = f'{name}_{seen[name]}'
    return drives


class DetectorOracle(OracleController):
    """
    Closed-loop oracle: per frame, the best exposure of a sweep by the detector's score.

    The closed loop hands it (``set_scene``) the Bayer irradiance of the frame its command
    will expose; the ground truth of that frame is looked up by identity in ``truth``
    (``id(phi) -> (boxes, labels)``; the drive frames hold their ``phi`` arrays). The
    sweep is ``e_base(frame) * factors`` through the bounds, each candidate rendered with
    sensor noise of one fixed seed (the detectors were trained on noisy frames; the
    frame then captured in the loop has its own noise draw).
    """

    def __init__(self, perception: Perception, truth: dict, factors, sensor=None,
                 options: Optional[ControllerOptions] = None):
        super().__init__(options, sensor, n_sweep=3, refine_iters=0, noise=True, seed=0)
        self.perception = perception
        self.truth = truth
        self.factors = np.asarray(factors, np.float64)
        self._gt = None

    def set_scene(self, radiance: np.ndarray) -> None:
        """Remember the frame to expose and its ground truth."""
        self._gt = self.truth.get(id(radiance))
        super().set_scene(radiance)

    def propose(self, raw, used, features, info) -> float:
        """Return the best exposure of the sweep for the next frame."""
        phi = self._phi
        if phi is None or self._gt is None:
            return math.nan
        eb = S.e_base_s(phi, self.sensor)
        h, w = phi.shape
        best = None
        for fac in self.factors:
            t, g, _ = self.limits.split(eb * fac)
            dets, _ = self.perception.detect(self.render(t * g))
            score = image_score(self._gt[0], self._gt[1], dets, w, h)
            if best is None or score > best[0]:
                best = (score, t * g)
        info['oracle_score'] = best[0]
        return best[1]


def run_drive(drive: Drive, method: Optional[Method], sensor=None,
              smoothing: Optional[str] = None, options: Optional[dict] = None, seed: int = 0,
              oracle: Optional[OracleSpec] = None, keep_raw: bool = False,
              progress: Optional[Callable] = None) -> dict:
    """
    One closed-loop run of ``method`` (or of the oracle when ``method`` is None).

    Returns ``{'key', 'ap': compute() dict, 'metrics': temporal_metrics(...),
    'result': ClosedLoopResult, 'detections': [dets per frame], 'raws': list or None}``.
    """
    from neural_ae.core.closed_loop import run_closed_loop
    from neural_ae.core.metrics.temporal import temporal_metrics

    sensor = sensor or S.load_sensor('imx249')
    frames = drive.frames
    opts = dict(options or {})
    if method is None:
        if oracle is None:
            raise EvaluationError('run_drive: give a method or an oracle')
        truth = {id(fr.radiance): (fr.boxes, fr.labels) for fr in frames}
        ctrl = DetectorOracle(oracle.perception, truth, oracle.factors(), sensor,
                              ControllerOptions(**opts))
        perception, key = oracle.perception, 'oracle'
    else:
        ctrl = method.controller(sensor, smoothing=smoothing, **opts)
        perception = method.perception
        key = method.name + (f'+{smoothing}' if smoothing and method.name in NEURAL else '')
    if any(fr.radiance.ndim != 2 for fr in frames):
        raise EvaluationError(f'drive {drive.name}: frames must hold Bayer irradiance (H, W)')
    acc = DetectionAccumulator()
    detections = []
    needs = method is not None and method.needs_features

    def features_fn(raw):
        k = len(detections)
        dets, layer2 = perception.detect(raw)
        detections.append(dets)
        fr = frames[k]
        if fr.labelled:
            acc.add(fr.boxes, fr.labels, dets['boxes'], dets['scores'], dets['labels'],
                    width=raw.shape[1], height=raw.shape[0])
        if progress is not None:
            progress()
        return layer2 if needs else None

    result = run_closed_loop(frames, ctrl, sensor=sensor, seed=seed, keep_raw=keep_raw,
                             features_fn=features_fn)
    return {'key': key, 'ap': acc.compute(), 'metrics': temporal_metrics(result),
            'result': result, 'detections': detections, 'raws': result.raws}


def run_drive_protocol(drives: Sequence[Drive], methods: Sequence[Method], sensor=None,
                       smoothings: Sequence[str] = SMOOTHINGS,
                       smoothing_options: Optional[dict] = None,
                       oracle: Optional[OracleSpec] = None, latency_frames: int = 0,
                       seed: int = 0, keep_raw_for: Sequence[str] = ('tunnel_exit',),
                       progress: bool = False) -> dict:
    """
    Run every method in closed loop (neural ones once per smoothing) over every drive.

    ``smoothing_options``: extra :class:`ControllerOptions` per smoothing name (e.g.
    ``{'adaptive': {'mu': 0.9, 'adaptive_scale_ev': 1.0}}``). Raw frames are kept for the
    drives named in ``keep_raw_for`` (the frame-grid figure). Returns ``{'drives': [{name,
    scenario, seed, n_frames, 'runs': {key: run}}], 'seconds'}`` (see :func:`run_drive`).
    """
    sensor = sensor or S.load_sensor('imx249')
    smoothing_options = smoothing_options or {}
    jobs = []
    for m in methods:
        if m.name in NEURAL:
            for sm in smoothings:
                jobs.append((m, sm))
        else:
            jobs.append((m, None))
    if oracle is not None:
        jobs.append((None, None))
    total = sum(len(d.frames) for d in drives) * len(jobs)
    bar = _Progress(progress, total, 'drive protocol')
    t0 = time.perf_counter()
    out = []
    for d in drives:
        runs = {}
        keep = d.name in keep_raw_for
        for m, sm in jobs:
            opts = {'latency_frames': latency_frames}
            if sm is not None:
                opts.update(smoothing_options.get(sm, {}))
            run = run_drive(d, m, sensor, sm, opts, seed=seed, oracle=oracle, keep_raw=keep,
                            progress=bar.update)
            runs[run['key']] = run
        out.append({'name': d.name, 'scenario': d.scenario, 'seed': d.seed,
                    'n_frames': len(d.frames), 'runs': runs})
    bar.close()
    return {'drives': out, 'seconds': time.perf_counter() - t0,
            'latency_frames': latency_frames, 'smoothings': list(smoothings),
            'smoothing_options': smoothing_options}


# --------------------------------------------------------------------------- bags


def load_bag_frames(path, height: int = 0, width: int = 0, sensor=None,
                    topic: Optional[str] = None, max_frames: Optional[int] = None) -> Drive:
    """
    Read an HDR rosbag2 with ``labels.json`` as a :class:`Drive`.

    Frames are resized to ``height x width`` when given (boxes scaled); frames without a
    COCO image are unlabelled (left out of the AP).
    """
    from neural_ae.core.bags import open_hdr_bag, RADIANCE_TOPIC
    from neural_ae.core.imageops import resize_with_boxes

    sensor = sensor or S.load_sensor('imx249')
    bag = open_hdr_bag(path, topic=topic or RADIANCE_TOPIC)
    coco = bag.labels()
    if coco is None:
        raise EvaluationError(f'HDR bag {path} has no labels.json: the bag protocol needs '
                              f'boxes (write them with neural_ae.core.bags.write_coco_labels)')
    by_frame = {}
    for img in coco.get('images', []):
        if 'frame_index' in img:
            by_frame[int(img['frame_index'])] = img['id']
    anns = {}
    for a in coco.get('annotations', []):
        x, y, bw, bh = a['bbox']
        anns.setdefault(a['image_id'], []).append(([x, y, x + bw, y + bh], a['category_id']))
    frames = []
    for k, (_, rad) in enumerate(bag.iter_radiance(topic)):
        if max_frames is not None and k >= max_frames:
            break
        labelled = k in by_frame
        items = anns.get(by_frame.get(k), [])
        boxes = np.array([b for b, _ in items], np.float32).reshape(-1, 4)
        labels = np.array([c for _, c in items], np.int64)
        h, w = (height or rad.shape[0]), (width or rad.shape[1])
        rad, boxes = resize_with_boxes(rad, boxes, h, w)
        keep = (boxes[:, 2] - boxes[:, 0] >= 1) & (boxes[:, 3] - boxes[:, 1] >= 1)
        phi = S.mosaic(np.ascontiguousarray(rad, np.float32), sensor.bayer_pattern)
        frames.append(Frame(phi, boxes[keep], labels[keep], {'frame_index': k}, labelled))
    if len(frames) < 2:
        raise EvaluationError(f'HDR bag {path}: {len(frames)} radiance frame(s); the bag '
                              f'protocol needs at least 2')
    if not any(fr.labelled for fr in frames):
        raise EvaluationError(f'HDR bag {path}: labels.json names none of its frames '
                              f'(images need frame_index or t_ns)')
    return Drive(Path(path).name, 'bag', -1, frames)


class DrivePairs:
    """Consecutive frames ``(k, k + 1)`` of a drive whose second frame is labelled."""

    def __init__(self, drive: Drive, bayer_pattern: str = 'RGGB'):
        self.drive = drive
        self.pattern = bayer_pattern
        self.index = [k for k in range(len(drive.frames) - 1) if drive.frames[k + 1].labelled]

    def __len__(self) -> int:
        return len(self.index)

    def _rgb(self, phi: np.ndarray) -> np.ndarray:
        # The protocol mosaics radiance again; a Bayer frame replicated in 3 channels
        # mosaics back to itself exactly.
        return np.repeat(phi[:, :, None], 3, axis=2)

    def __getitem__(self, i: int) -> dict:
        k = self.index[i]
        f1, f2 = self.drive.frames[k], self.drive.frames[k + 1]
        return {'rad1': self._rgb(f1.radiance), 'rad2': self._rgb(f2.radiance),
                'boxes': f2.boxes, 'labels': f2.labels, 'key': k + 1}


def procedural_pairs(seed_start: int, n_pairs: int, height: int, width: int,
                     cache_dir: Optional[str] = 'out/cache/scenes'):
    """Held-out procedural pairs (:class:`~neural_ae.core.training.data.ProceduralPairs`)."""
    from neural_ae.core.training.data import ProceduralPairs

    return ProceduralPairs(seed_start, n_pairs, height, width, cache_dir)


# --------------------------------------------------------------------------- settings


@dataclass
class EvalConfig:
    """
    Settings of ``neural-ae evaluate`` (``config/evaluate.yaml``; ``quick:`` overrides).

    Sizes: ``height`` / ``width`` 0 = the reference checkpoint's training size. Counts:
    ``shift_pairs`` held-out pairs, ``shift_repeats`` repeats; ``oracle_sweep`` points over
    ``e_base * 2 ** [-oracle_range_ev, oracle_range_ev]``. ``drives``: ``[scenario,
    frames]`` items. Smoothing of the neural controllers in the drives: ``ema`` with
    ``ema_mu`` (paper: 0.9) and ``adaptive`` with ``adaptive_mu`` / ``adaptive_scale_ev``.
    """

    models_dir: str = 'models'
    methods: tuple = METHODS
    oracle: bool = True
    fixed_detector: str = 'average'
    oracle_detector: str = 'hybrid_nn'
    height: int = 0
    width: int = 0
    test_seed_start: int = TEST_SEED_START
    cache_dir: str = 'out/cache/scenes'
    noise_seed: int = 0
    shift_pairs: int = 400
    shift_levels: tuple = SHIFT_LEVELS
    shift_repeats: int = 12
    shift_flip: bool = True
    oracle_sweep: int = 17
    oracle_range_ev: float = 5.0
    drives: tuple = (('tunnel_exit', 90), ('tunnel_in_out', 120), ('low_sun', 90),
                     ('night_headlights', 90), ('step10x', 90), ('step10x', 90),
                     ('step10x', 90))
    drive_smoothings: tuple = SMOOTHINGS
    ema_mu: float = 0.9
    adaptive_mu: float = 0.9
    adaptive_scale_ev: float = 1.0
    latency_frames: int = 0
    drive_oracle: bool = True
    drive_oracle_sweep: int = 11
    drive_oracle_range_ev: float = 5.0

    def __post_init__(self):
        def bad(msg):
            raise EvaluationError(f'evaluate config: {msg}')

        self.methods = tuple(self.methods)
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown:
            bad(f'unknown methods {unknown}; choose from {METHODS}')
        for name in ('shift_pairs', 'shift_repeats', 'oracle_sweep', 'drive_oracle_sweep'):
            if not (isinstance(getattr(self, name), int) and getattr(self, name) >= 1):
                bad(f'{name} must be an integer >= 1, got {getattr(self, name)!r}')
        self.shift_levels = tuple(float(k) for k in self.shift_levels)
        if not self.shift_levels or min(self.shift_levels) < 1:
            bad(f'shift_levels must be numbers >= 1, got {self.shift_levels}')
        self.drives = tuple((str(d[0]), int(d[1])) for d in self.drives)
        if any(n < 2 for _, n in self.drives):
            bad(f'every drive needs >= 2 frames, got {self.drives}')
        self.drive_smoothings = tuple(self.drive_smoothings)
        if any(s not in ('none', 'ema', 'adaptive') for s in self.drive_smoothings):
            bad(f'drive_smoothings must be none|ema|adaptive, got {self.drive_smoothings}')
        for name in ('ema_mu', 'adaptive_mu'):
            if not 0 <= getattr(self, name) < 1:
                bad(f'{name} must be in [0, 1), got {getattr(self, name)}')
        if self.adaptive_scale_ev <= 0 or self.oracle_range_ev <= 0 or \
                self.drive_oracle_range_ev <= 0:
            bad('adaptive_scale_ev and the oracle ranges must be > 0')
        if self.height < 0 or self.width < 0 or self.height % 2 or self.width % 2:
            bad(f'height and width must be even and >= 0, got {self.height} x {self.width}')
        if self.fixed_detector not in METHODS or self.oracle_detector not in METHODS:
            bad(f'fixed_detector and oracle_detector must name methods of {METHODS}')

    def smoothing_options(self) -> dict:
        """Return :class:`ControllerOptions` overrides per drive smoothing."""
        return {'ema': {'mu': self.ema_mu},
                'adaptive': {'mu': self.adaptive_mu,
                             'adaptive_scale_ev': self.adaptive_scale_ev},
                'none': {}}

    def to_dict(self) -> dict:
        """Plain dict (JSON/YAML)."""
        from dataclasses import asdict

        d = asdict(self)
        d['drives'] = [list(x) for x in self.drives]
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def load_eval_config(path=None, quick: bool = False, **overrides) -> EvalConfig:
    """
    Read ``config/evaluate.yaml`` (or ``path``); ``quick`` applies its ``quick:`` section.

    ``overrides`` (not None) win last. Unknown keys raise :class:`EvaluationError`.
    """
    from dataclasses import fields

    import yaml

    data = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise EvaluationError(f'evaluate config not found: {p}')
        try:
            data = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as err:
            raise EvaluationError(f'evaluate config {p} is not valid YAML: '
                                  f'{str(err).splitlines()[0]}') from err
        if not isinstance(data, dict):
            raise EvaluationError(f'evaluate config {p}: expected a mapping')
    quick_data = data.pop('quick', None) or {}
    names = {f.name for f in fields(EvalConfig)}
    for where, d in (('', data), ('quick.', quick_data), ('override ', overrides)):
        unknown = sorted(set(d) - names)
        if unknown:
            raise EvaluationError(f'evaluate config: unknown {where}key(s) {unknown}; '
                                  f'known: {sorted(names)}')
    values = dict(data)
    if quick:
        values.update(quick_data)
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return EvalConfig(**values)
    except TypeError as err:
        raise EvaluationError(f'evaluate config: {err}') from err
