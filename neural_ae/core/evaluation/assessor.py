"""
The exposure assessor as a no-reference metric of ``neural-ae evaluate`` (issue 13).

Every frame a method's detector sees (frame 2 of each shift pair, every frame of a drive)
is also scored by the P-IEANet assessor (:mod:`neural_ae.core.assessment`): the raw frame
goes through the sensor's default ISP (:func:`~neural_ae.core.assessment.labels.isp_for`,
the rendering the assessor was trained on), is quantized to 8 bits and judged at the
model's working width; the global score ``10 * (1 - mean |r|)`` [0-10] is recorded with
the frame's per-image AP@0.5 (:func:`~.oracle.image_score`; frames without ground truth
are left out of the correlation). Per method the report gives the mean score and the
rank and linear correlation (:func:`scipy.stats.spearmanr`, :func:`scipy.stats.pearsonr`)
between score and per-image AP.

Scoring only reads the captured frames: no random draw, no exposure and no detection
changes, so every other figure of the protocols is the same with or without it.

Config key ``assessor_model`` (:class:`~.config.EvalConfig`): the default
``assessor_demo.pt`` (the shipped model) is used when present and skipped with a
warning when not; an explicit path must load; ``''`` disables.
"""
import math
from pathlib import Path
from typing import Optional, Sequence, Tuple, Union

from neural_ae.core.errors import EvaluationError, NeuralAEError
import numpy as np

__all__ = ['correlation', 'DEFAULT_ASSESSOR', 'FrameAssessor', 'load_frame_assessor',
           'score_summary']

DEFAULT_ASSESSOR = 'assessor_demo.pt'
"""Shipped assessor (``models/``), the default of ``assessor_model``."""


class FrameAssessor:
    """Score raw sensor frames with an assessor model (module docstring)."""

    def __init__(self, judge, sensor):
        from neural_ae.core.assessment.labels import isp_for

        self.judge = judge
        self.sensor = sensor
        self.isp = isp_for(sensor)
        self.path = str(judge.meta.get('path', ''))

    def rgb(self, raw: np.ndarray) -> np.ndarray:
        """Render a raw Bayer frame [DN] through the ISP, 8-bit quantized, float RGB."""
        import torch

        with torch.no_grad():
            x = torch.from_numpy(np.asarray(raw, np.float32))[None, None]
            rgb = self.isp(x)[0].permute(1, 2, 0).numpy()
        return (np.round(np.clip(rgb, 0.0, 1.0) * 255.0) / 255.0).astype(np.float32)

    def score(self, raw: np.ndarray) -> float:
        """Global score [0-10] of one raw frame."""
        return float(self.judge.assess(self.rgb(raw)).score)

    def describe(self) -> dict:
        """Model file and working width (for the report's settings)."""
        return {'model': self.path, 'width_px': int(self.judge.width)}


def load_frame_assessor(name: Optional[str],
                        sensor) -> Tuple[Optional[FrameAssessor], Optional[str]]:
    """
    Return ``(assessor or None, warning or None)`` for the config value ``name``.

    ``''`` / None: off. The default :data:`DEFAULT_ASSESSOR` is skipped with a warning
    when the file is missing; any other name must load (:class:`EvaluationError`).
    """
    if not name:
        return None, None
    from neural_ae.core.assessment.judge import ExposureJudge
    from neural_ae.core.checkpoints import resolve_model_path

    path = resolve_model_path(name)
    if name == DEFAULT_ASSESSOR and not Path(path).is_file():
        return None, (f'assessor model {path} not found: no assessor score columns '
                      f"(set assessor_model: '' to silence this)")
    try:
        judge = ExposureJudge(path)
    except NeuralAEError as err:
        raise EvaluationError(f'assessor_model: {str(err).splitlines()[0]}') from err
    return FrameAssessor(judge, sensor), None


def correlation(scores: Union[Sequence[float], np.ndarray],
                aps: Union[Sequence[float], np.ndarray]) -> dict:
    """
    Spearman and Pearson correlation of assessor score and per-image AP.

    Pairs with a non-finite member are dropped; fewer than 3 pairs, or a constant side,
    give NaN. Returns ``{'srcc', 'srcc_p', 'plcc', 'plcc_p', 'n'}``.
    """
    import importlib

    stats = importlib.import_module('scipy.stats')   # no type stubs installed
    s = np.asarray(scores, np.float64).reshape(-1)
    a = np.asarray(aps, np.float64).reshape(-1)
    if s.shape != a.shape:
        raise EvaluationError(f'correlation: {s.size} scores vs {a.size} AP values')
    keep = np.isfinite(s) & np.isfinite(a)
    s, a = s[keep], a[keep]
    out = {'srcc': math.nan, 'srcc_p': math.nan, 'plcc': math.nan, 'plcc_p': math.nan,
           'n': int(s.size)}
    if s.size < 3 or np.ptp(s) == 0 or np.ptp(a) == 0:
        return out
    sr = stats.spearmanr(s, a)
    pr = stats.pearsonr(s, a)
    out.update(srcc=float(sr.statistic), srcc_p=float(sr.pvalue), plcc=float(pr.statistic),
               plcc_p=float(pr.pvalue))
    return out


def score_summary(pairs: Sequence[tuple]) -> dict:
    """
    Summary of ``(score, ap)`` pairs (``ap`` NaN for a frame without ground truth).

    ``{'score_mean', 'score_std', 'n_frames', **correlation}``; scores are averaged over
    every frame, the correlation uses the frames with ground truth.
    """
    arr = np.asarray(list(pairs), np.float64).reshape(-1, 2)
    sc = arr[np.isfinite(arr[:, 0]), 0]
    out = {'score_mean': float(sc.mean()) if sc.size else math.nan,
           'score_std': float(sc.std(ddof=1)) if sc.size > 1 else math.nan,
           'n_frames': int(sc.size)}
    out.update(correlation(arr[:, 0], arr[:, 1]))
    return out
