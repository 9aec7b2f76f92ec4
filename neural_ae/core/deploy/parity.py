"""
Compare a backend's outputs with torch's: relative error of ``u``, matched detections.

:func:`match_detections` pairs each torch detection (highest score first) with the
unused backend detection of the same label and the highest IoU; the figures are what
the parity tests and ``neural-ae export``'s check report.
"""
from typing import Dict

import numpy as np
import torch

__all__ = ['box_iou', 'match_detections', 'relative_error']


def relative_error(ref, got, floor: float = 1e-12) -> float:
    """``max |got - ref| / max(|ref|, floor)`` elementwise (NaN if the shapes differ)."""
    a = torch.as_tensor(ref).detach().double().cpu().reshape(-1)
    b = torch.as_tensor(got).detach().double().cpu().reshape(-1)
    if a.shape != b.shape:
        return float('nan')
    if a.numel() == 0:
        return 0.0
    return float(((b - a).abs() / a.abs().clamp_min(floor)).max())


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Return the IoU matrix ``(len(a), len(b))`` of xyxy boxes."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(axis=2)
    area_a = (a[:, 2:] - a[:, :2]).clip(0).prod(axis=1)
    area_b = (b[:, 2:] - b[:, :2]).clip(0).prod(axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def match_detections(ref: Dict, got: Dict, iou_min: float = 0.9) -> dict:
    """
    Match detections ``{'boxes', 'scores', 'labels'}`` of a backend to torch's.

    Returns ``n_ref``, ``n_got``, ``matched`` (pairs with IoU >= ``iou_min`` and the same
    label), ``min_iou`` and ``max_score_diff`` over the matched pairs, and
    ``unmatched_max_score``: the highest score among torch detections left unmatched
    (detections near the score threshold may legitimately appear on one side only).
    """
    def arr(d, k):
        v = d[k]
        return v.detach().cpu().numpy() if torch.is_tensor(v) else np.asarray(v)

    rb, rs, rl = arr(ref, 'boxes').reshape(-1, 4), arr(ref, 'scores').reshape(-1), \
        arr(ref, 'labels').reshape(-1)
    gb, gs, gl = arr(got, 'boxes').reshape(-1, 4), arr(got, 'scores').reshape(-1), \
        arr(got, 'labels').reshape(-1)
    iou = box_iou(rb, gb)
    used = np.zeros(len(gb), bool)
    ious, diffs, unmatched = [], [], []
    for i in np.argsort(-rs, kind='stable'):
        cand = np.where((gl == rl[i]) & ~used)[0]
        if cand.size:
            j = cand[np.argmax(iou[i, cand])]
            if iou[i, j] >= iou_min:
                used[j] = True
                ious.append(float(iou[i, j]))
                diffs.append(abs(float(rs[i]) - float(gs[j])))
                continue
        unmatched.append(float(rs[i]))
    return {'n_ref': int(len(rb)), 'n_got': int(len(gb)), 'matched': len(ious),
            'min_iou': min(ious) if ious else float('nan'),
            'max_score_diff': max(diffs) if diffs else 0.0,
            'unmatched_max_score': max(unmatched) if unmatched else 0.0,
            'extra_max_score': float(gs[~used].max()) if (~used).any() else 0.0}
