"""
The assessor at run time: model file, the under / well / over judge, the heat map.

``model.pt`` (written by :func:`calibrate_and_export`, read by :func:`load_assessor`):
``{'format': 'neural_ae.assessor/1', 'kind': 'model', 'model': state_dict,
'assessor_config': {...}, 'judge': {'under_threshold', 'over_threshold', 'share_level',
'validation_accuracy'}, 'baselines': {'mean_luma_mid', 'mean_luma_gain'}, 'image_size':
[H, W], 'metrics': {...}}``.

**Judge** (:class:`ExposureJudge`): the signed mean ``m`` of the predicted residual decides
(positive = under-exposed): ``'under'`` if ``m > under_threshold``, ``'over'`` if
``m < -over_threshold``, else ``'well'``. The thresholds are tuned on the validation
seeds (3,100,000..) to maximise the balanced accuracy against the truth "well when the
capture is within :data:`WELL_EV` = 0.5 EV of the ideal exposure ``e_base``, under /
over beyond by the sign"; :data:`DEFAULT_THRESHOLDS` (0.1, 0.1) when none are stored.
The score is ``10 * (1 - mean |r|)``; ``over_share`` / ``under_share`` are the fractions
of pixels with ``r < -share_level`` / ``r > share_level`` (default 0.25, about half an EV
on mid-grey).
"""
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

import cv2
from neural_ae.core.assessment.errors import AssessmentError
from neural_ae.core.assessment.labels import test_specs
from neural_ae.core.assessment.network import AssessorConfig, build_assessor
from neural_ae.core.checkpoints import read_checkpoint, resolve_model_path
from neural_ae.core.errors import ModelError
import numpy as np
import torch

__all__ = ['Assessment', 'DEFAULT_MODEL', 'DEFAULT_THRESHOLDS', 'ExposureJudge',
           'calibrate_and_export', 'heatmap_rgb', 'judge_label', 'load_assessor',
           'tune_thresholds', 'truth_label', 'WELL_EV']

DEFAULT_MODEL = 'assessor_demo.pt'
DEFAULT_THRESHOLDS = (0.1, 0.1)
WELL_EV = 0.5
SHARE_LEVEL = 0.25
LABELS = ('under', 'well', 'over')


def truth_label(shift_ev: float) -> str:
    """Ground-truth class of a capture ``shift_ev`` EV from the ideal exposure."""
    if abs(shift_ev) <= WELL_EV:
        return 'well'
    return 'under' if shift_ev < 0 else 'over'


def judge_label(mean_residual: float, under_threshold: float, over_threshold: float) -> str:
    """Apply the judge's rule to the signed mean residual (module docstring)."""
    if mean_residual > under_threshold:
        return 'under'
    if mean_residual < -over_threshold:
        return 'over'
    return 'well'


def tune_thresholds(mean_residuals, truths) -> Tuple[float, float, float]:
    """Grid search (0.01 .. 0.5) of ``(under, over)`` thresholds; returns them and the accuracy."""
    m = np.asarray(mean_residuals, np.float64)
    truths = list(truths)
    grid = np.round(np.arange(0.01, 0.501, 0.01), 3)
    best = (-1.0, DEFAULT_THRESHOLDS[0], DEFAULT_THRESHOLDS[1])
    for tu in grid:
        for to in grid:
            pred = [judge_label(v, tu, to) for v in m]
            accs = []
            for c in LABELS:
                idx = [i for i, t in enumerate(truths) if t == c]
                if idx:
                    accs.append(np.mean([pred[i] == c for i in idx]))
            bal = float(np.mean(accs)) if accs else 0.0
            if bal > best[0] + 1e-12:
                best = (bal, float(tu), float(to))
    return best[1], best[2], best[0]


def calibrate_and_export(model: torch.nn.Module, cfg, path: Path, history, sensor) -> Path:
    """Tune the judge and the ``mean_luma`` baseline on validation seeds; write model.pt."""
    from neural_ae.core.assessment.metrics import fit_mean_luma
    from neural_ae.core.assessment.training import _batch, predict_maps

    shifts = sorted(set(cfg.val_shifts) | {-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0})
    specs = test_specs(cfg.val_seed_start, cfg.val_size, shifts)
    _, _, exs = _batch(specs, cfg, sensor)
    pred = predict_maps(model, [e.rgb for e in exs])
    tu, to, acc = tune_thresholds(pred.mean(axis=(1, 2)), [truth_label(s.shift_ev)
                                                           for s in specs])
    mid, gain = fit_mean_luma([e.rgb for e in exs], [e.residual for e in exs])
    ck = {'format': 'neural_ae.assessor/1', 'kind': 'model', 'model': model.state_dict(),
          'assessor_config': cfg.net.to_dict(),
          'judge': {'under_threshold': tu, 'over_threshold': to, 'share_level': SHARE_LEVEL,
                    'validation_accuracy': acc, 'well_ev': WELL_EV,
                    'validation_seeds': [cfg.val_seed_start, cfg.val_seed_start +
                                         cfg.val_size - 1]},
          'baselines': {'mean_luma_mid': mid, 'mean_luma_gain': gain},
          'image_size': [cfg.height, cfg.width], 'sensor': cfg.sensor,
          'history': list(history), 'config': cfg.to_dict(),
          'torch_version': str(torch.__version__)}
    path = Path(path)
    tmp = path.with_name(path.name + '.tmp')
    torch.save(ck, tmp)
    tmp.replace(path)
    return path


def load_assessor(path: Optional[Union[str, Path]] = None
                  ) -> Tuple[torch.nn.Module, Dict[str, Any]]:
    """
    Load an assessor ``model.pt`` (default ``models/assessor_demo.pt``) in eval mode.

    Returns ``(model, meta)`` (``meta`` = the file without the weights). One-line
    :class:`~neural_ae.core.errors.ModelError` for a missing, foreign or broken file.
    """
    p = resolve_model_path(path, DEFAULT_MODEL)
    ck = read_checkpoint(p, 'assessor model')
    if ck.get('format') != 'neural_ae.assessor/1' or 'model' not in ck:
        raise ModelError(f'assessor model {p}: not an assessor file (format '
                         f'{ck.get("format")!r}); train one with neural-ae train --config '
                         f'config/train_assessor.yaml')
    try:
        cfg = AssessorConfig.from_dict(ck.get('assessor_config'))
        model = build_assessor(cfg)
        model.load_state_dict(ck['model'])
    except (AssessmentError, RuntimeError, TypeError) as err:
        raise ModelError(f'assessor model {p}: {str(err).splitlines()[0]}') from err
    if not all(torch.isfinite(t).all() for t in model.state_dict().values()):
        raise ModelError(f'assessor model {p}: non-finite weights')
    meta = {k: v for k, v in ck.items() if k != 'model'}
    meta['path'] = str(p)
    return model.eval(), meta


@dataclass
class Assessment:
    """
    One judged frame.

    ``label`` 'under' | 'well' | 'over'; ``score`` in [0, 10]; ``mean_residual`` signed
    (positive = under-exposed); ``over_share`` / ``under_share`` in [0, 1];
    ``residual`` float32 ``(h, w)`` at the working size.
    """

    label: str
    score: float
    mean_residual: float
    over_share: float
    under_share: float
    residual: np.ndarray


def _working_size(h: int, w: int, width: int) -> Tuple[int, int]:
    ww = max(8, int(width) // 2 * 2)
    hh = max(8, int(round(ww * h / w / 2.0)) * 2)
    return hh, ww


class ExposureJudge:
    """
    Frames in, exposure verdicts out: ``label(rgb_uint8) -> 'under' | 'well' | 'over'``.

    ``width``: working width [px] (the frame is resized with OpenCV's area filter to it,
    aspect kept, even sizes); default the model's training width. Thresholds from the
    model file unless given. Usable as the feedback source of the personalized
    controller (issue 12).
    """

    def __init__(self, path: Optional[Union[str, Path]] = None, width: Optional[int] = None,
                 under_threshold: Optional[float] = None,
                 over_threshold: Optional[float] = None, model=None, meta=None):
        if model is None:
            model, meta = load_assessor(path)
        self.model = model.eval()
        self.meta = dict(meta or {})
        judge = self.meta.get('judge', {})
        self.under_threshold = float(under_threshold if under_threshold is not None
                                     else judge.get('under_threshold', DEFAULT_THRESHOLDS[0]))
        self.over_threshold = float(over_threshold if over_threshold is not None
                                    else judge.get('over_threshold', DEFAULT_THRESHOLDS[1]))
        self.share_level = float(judge.get('share_level', SHARE_LEVEL))
        size = self.meta.get('image_size', [128, 128])
        self.width = int(width) if width is not None else int(size[1])
        if self.width < 8:
            raise AssessmentError(f'ExposureJudge: width must be >= 8 px, got {self.width}')

    def residual(self, rgb) -> np.ndarray:
        """Predicted residual ``(h, w)`` of ``rgb`` (uint8 ``(H, W, 3)``, or float in [0, 1])."""
        img = np.asarray(rgb)
        if img.ndim != 3 or img.shape[2] != 3 or img.shape[0] < 2 or img.shape[1] < 2:
            raise AssessmentError(f'ExposureJudge: expected an RGB image (H, W, 3), got '
                                  f'shape {img.shape}')
        x: np.ndarray
        if img.dtype == np.uint8:
            x = img.astype(np.float32) / 255.0
        elif np.issubdtype(img.dtype, np.floating):
            x = np.clip(np.nan_to_num(img.astype(np.float32), nan=0.0), 0.0, 1.0)
        else:
            raise AssessmentError(f'ExposureJudge: expected uint8 or float RGB, got '
                                  f'{img.dtype}')
        hh, ww = _working_size(x.shape[0], x.shape[1], self.width)
        if (hh, ww) != x.shape[:2]:
            x = cv2.resize(x, (ww, hh), interpolation=cv2.INTER_AREA)
        with torch.no_grad():
            t = torch.from_numpy(np.ascontiguousarray(x)).permute(2, 0, 1)[None]
            return self.model(t)[0, 0].numpy()

    def assess(self, rgb) -> Assessment:
        """Residual, score, label and area shares of one frame."""
        r = self.residual(rgb)
        m = float(r.mean())
        return Assessment(judge_label(m, self.under_threshold, self.over_threshold),
                          float(10.0 * (1.0 - np.abs(r).mean())), m,
                          float((r < -self.share_level).mean()),
                          float((r > self.share_level).mean()), r)

    def label(self, rgb) -> str:
        """``'under'``, ``'well'`` or ``'over'`` for one RGB frame."""
        return self.assess(rgb).label

    def score(self, rgb) -> float:
        """Global score in [0, 10] of one RGB frame."""
        return self.assess(rgb).score


def heatmap_rgb(residual: np.ndarray) -> np.ndarray:
    """
    Colour a residual ``(H, W)`` as a viewer heat map ``uint8 (H, W, 3)``.

    Black at 0 (ideal), red to yellow for over-exposed (``r -> -1``), blue to cyan for
    under-exposed (``r -> +1``).
    """
    r = np.clip(np.nan_to_num(np.asarray(residual, np.float32)), -1.0, 1.0)
    if r.ndim != 2:
        raise AssessmentError(f'heatmap_rgb: expected (H, W), got shape {r.shape}')
    over = np.clip(-r, 0, 1)
    under = np.clip(r, 0, 1)
    out = np.zeros(r.shape + (3,), np.float32)
    out[..., 0] = np.minimum(2 * over, 1)
    out[..., 1] = np.maximum(2 * over - 1, 0) + np.maximum(2 * under - 1, 0)
    out[..., 2] = np.minimum(2 * under, 1)
    return (out * 255 + 0.5).astype(np.uint8)
