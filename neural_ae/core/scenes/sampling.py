"""Random draws shared by the scene modules: uniform, log-uniform and smooth value noise."""
import math

import cv2
import numpy as np


def uniform(rng, lo, hi) -> float:
    """One draw from ``U(lo, hi)`` as a Python float."""
    return float(rng.uniform(lo, hi))


def log_uniform(rng, lo, hi) -> float:
    """One draw uniform in ``log`` between ``lo`` and ``hi`` (both > 0)."""
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def value_noise(rng, h, w, cells) -> np.ndarray:
    """Smooth noise in about [-1, 1]: random grids of ``cells`` columns, bilinear up."""
    out = np.zeros((h, w), np.float32)
    amp, total = 1.0, 0.0
    for c in cells:
        cw = max(2, int(c))
        ch = max(2, int(round(c * h / max(w, 1))))
        grid = rng.random((ch + 1, cw + 1), dtype=np.float32) * 2 - 1
        out += amp * cv2.resize(grid, (w, h), interpolation=cv2.INTER_LINEAR)
        total += amp
        amp *= 0.6
    return out / total
