"""
Pixel-level and holistic metrics of exposure assessment, and the no-learning baselines.

Pixel level (paper Sec. 5.1): MAE and SSIM between predicted and true residual maps per
image, averaged over images. SSIM is :func:`pytorch_msssim.ssim` (Gaussian window 11,
sigma 1.5) on the maps mapped to [0, 1] (``(r + 1) / 2``, data range 1). Holistic: SRCC
(:func:`scipy.stats.spearmanr`) and PLCC (:func:`scipy.stats.pearsonr`) between the
predicted and the true global scores over all images.

Baselines (each returns a residual map ``(H, W)`` in [-1, 1] and hence a score
``10 * (1 - mean |r|)``; ``Y`` = luminance of the 8-bit RGB image):

- ``clipped_fraction``: -1 where ``Y >= 250/255`` (clipped highlights), +1 where
  ``Y <= 5/255`` (crushed shadows), 0 elsewhere (score = 10 x the unclipped share).
- ``mean_luma``: a flat map ``clip(a (m - mean Y), -1, 1)``, the distance of the mean luma
  from mid-grey ``m``; ``m`` and ``a`` fitted on the validation seeds (:func:`fit_mean_luma`).
- ``local_entropy``: per pixel, ``sign(m - local mean Y) * (1 - H / H_max)`` where ``H``
  is the Shannon entropy of the 16-bin luma histogram in a 15 x 15 window (OpenCV box
  filters of the bin indicators), ``m`` as for ``mean_luma``: flat, featureless (clipped or
  crushed) regions score badly, textured ones well.
"""
import importlib
from typing import Dict, Sequence, Tuple

import cv2
from neural_ae.core.assessment.errors import AssessmentError
from neural_ae.core.assessment.labels import luma
import numpy as np
import torch

# maintained implementations (no type information shipped: imported as modules)
_ssim = importlib.import_module('pytorch_msssim').ssim
stats = importlib.import_module('scipy.stats')

__all__ = ['BASELINES', 'baseline_map', 'fit_mean_luma', 'holistic_metrics',
           'pixel_metrics', 'scores_of']

BASELINES = ('clipped_fraction', 'mean_luma', 'local_entropy')
_BINS = 16
_WINDOW = 15


def _as_maps(x, name: str) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x, np.float32) if not torch.is_tensor(x) else x).float()
    if t.ndim == 3:
        t = t[:, None]
    if t.ndim != 4 or t.shape[1] != 1:
        raise AssessmentError(f'{name}: expected residual maps (N, H, W) or (N, 1, H, W), '
                              f'got shape {tuple(t.shape)}')
    return t


def pixel_metrics(pred, true) -> Dict[str, np.ndarray]:
    """Per-image ``mae`` and ``ssim`` of residual maps ``(N, [1,] H, W)`` in [-1, 1]."""
    p, t = _as_maps(pred, 'pixel_metrics pred'), _as_maps(true, 'pixel_metrics true')
    if p.shape != t.shape:
        raise AssessmentError(f'pixel_metrics: shapes differ, {tuple(p.shape)} vs '
                              f'{tuple(t.shape)}')
    if min(p.shape[-2:]) < 11:
        raise AssessmentError(f'pixel_metrics: maps must be at least 11 x 11 for SSIM, got '
                              f'{tuple(p.shape[-2:])}')
    mae = (p - t).abs().mean(dim=(1, 2, 3)).numpy()
    s = _ssim((p + 1) / 2, (t + 1) / 2, data_range=1.0, size_average=False).numpy()
    return {'mae': mae.astype(np.float64), 'ssim': s.astype(np.float64)}


def scores_of(maps) -> np.ndarray:
    """Global scores ``10 (1 - mean |r|)`` of maps ``(N, [1,] H, W)``."""
    m = _as_maps(maps, 'scores_of')
    return (10.0 * (1.0 - m.abs().mean(dim=(1, 2, 3)))).numpy().astype(np.float64)


def holistic_metrics(pred_scores, true_scores) -> Dict[str, float]:
    """``srcc`` and ``plcc`` (scipy) of predicted vs true scores; NaN for constant input."""
    p = np.asarray(pred_scores, np.float64)
    t = np.asarray(true_scores, np.float64)
    if p.shape != t.shape or p.ndim != 1 or p.size < 3:
        raise AssessmentError(f'holistic_metrics: need two equal 1-D score arrays of >= 3, '
                              f'got {p.shape} and {t.shape}')
    if np.ptp(p) == 0 or np.ptp(t) == 0:
        return {'srcc': float('nan'), 'plcc': float('nan')}
    return {'srcc': float(stats.spearmanr(p, t).statistic),
            'plcc': float(stats.pearsonr(p, t).statistic)}


def _local_entropy(y: np.ndarray) -> np.ndarray:
    idx = np.clip((y * _BINS).astype(np.int32), 0, _BINS - 1)
    ent = np.zeros(y.shape, np.float32)
    for b in range(_BINS):
        p = cv2.blur((idx == b).astype(np.float32), (_WINDOW, _WINDOW),
                     borderType=cv2.BORDER_REFLECT)
        ent -= p * np.log2(np.maximum(p, 1e-12))
    return ent / np.float32(np.log2(_BINS))


def baseline_map(name: str, rgb: np.ndarray, mid: float = 0.6, gain: float = 2.0) -> np.ndarray:
    """Residual map ``(H, W)`` of baseline ``name`` for RGB ``(H, W, 3)`` in [0, 1]."""
    y = luma(rgb)
    if name == 'clipped_fraction':
        r = np.zeros_like(y)
        r[y >= 250 / 255] = -1.0
        r[y <= 5 / 255] = 1.0
        return r
    if name == 'mean_luma':
        return np.full_like(y, float(np.clip(gain * (mid - y.mean()), -1, 1)))
    if name == 'local_entropy':
        local_mean = cv2.blur(y, (_WINDOW, _WINDOW), borderType=cv2.BORDER_REFLECT)
        return (np.sign(mid - local_mean) * (1.0 - _local_entropy(y))).astype(np.float32)
    raise AssessmentError(f'unknown baseline {name!r}; expected one of {BASELINES}')


def fit_mean_luma(rgbs: Sequence[np.ndarray],
                  residuals: Sequence[np.ndarray]) -> Tuple[float, float]:
    """
    Fit ``(mid, gain)`` of the ``mean_luma`` baseline on validation examples.

    Least squares of the true mean residual on the image's mean luma (``r ~ a (m - Y)``),
    the fairest flat map; returns ``(m, a)`` with ``a > 0``.
    """
    ys = np.asarray([luma(x).mean() for x in rgbs], np.float64)
    rs = np.asarray([np.mean(r) for r in residuals], np.float64)
    if ys.size < 2 or np.ptp(ys) == 0:
        raise AssessmentError('fit_mean_luma: need at least two images of different brightness')
    slope, intercept = np.polyfit(ys, rs, 1)
    a = max(-float(slope), 1e-3)
    return float(intercept / a), a
