"""
Single-image and multi-exposure baselines of the correction protocol (issue 14).

All take and return ``(3, H, W)`` float32 RGB in [0, 1] (the ISP's gamma-encoded output)
unless stated; ``gamma`` is the ISP's tone-curve exponent (linear = ``rgb ** gamma``).

- :func:`identity`: no correction.
- :func:`trivial_inverse`: the exact inverse of the exposure error when it is known
  (``kappa``): linear / ``kappa``, re-encoded. It knows what the networks must guess;
  clipped highlights stay flat (dimmed) and under-exposed noise is amplified.
- :func:`global_gain`: a linear gain that puts the mean linear value at the reference's
  rule (mean of the linear image, its brightest 1 % clipped, at ``target_mean``); no
  knowledge of ``kappa``.
- :func:`global_gamma`: a power ``rgb ** p`` that puts the mean encoded value at
  mid-grey (0.5), ``p`` found by bisection.
- :func:`debevec_reinhard`: 002's multi-exposure baseline: OpenCV
  ``createCalibrateDebevec`` (camera response from the brackets), ``createMergeDebevec``,
  ``createTonemapReinhard`` (gamma 2.2, defaults otherwise), from three 8-bit brackets of
  the same scene. It sees three exposures, so it is an upper reference for single-image
  methods, but its tone curve is Reinhard's, not the ISP's.
"""
from typing import Sequence

import cv2
from neural_ae.core.errors import EvaluationError
import numpy as np
import torch

__all__ = ['debevec_reinhard', 'global_gain', 'global_gamma', 'identity', 'trivial_inverse']


def identity(rgb: torch.Tensor) -> torch.Tensor:
    """No correction."""
    return rgb


def trivial_inverse(rgb: torch.Tensor, kappa: float, gamma: float) -> torch.Tensor:
    """Undo a known exposure factor ``kappa``: ``clip((rgb ** gamma / kappa) ** (1 / gamma))``."""
    if not kappa > 0:
        raise EvaluationError(f'trivial_inverse: kappa must be > 0, got {kappa}')
    lin = rgb.clamp(0, 1) ** gamma / kappa
    return lin.clamp(0, 1) ** (1.0 / gamma)


def global_gain(rgb: torch.Tensor, gamma: float, target_mean: float = 0.5,
                clip_percentile: float = 99.0) -> torch.Tensor:
    """Linear gain so the mean linear value (top 1 % clipped) is ``target_mean``."""
    lin = rgb.clamp(0, 1) ** gamma
    flat = lin.flatten()
    cap = torch.quantile(flat, clip_percentile / 100.0) if flat.numel() > 1 else flat.max()
    mean = float(torch.minimum(flat, cap).mean())
    gain = target_mean / max(mean, 1e-6)
    return (lin * gain).clamp(0, 1) ** (1.0 / gamma)


def global_gamma(rgb: torch.Tensor, target_mean: float = 0.5, iters: int = 40) -> torch.Tensor:
    """Power ``rgb ** p`` whose mean is ``target_mean`` (bisection on ``log p``)."""
    x = rgb.clamp(1e-4, 1)
    lo, hi = -4.0, 4.0      # p in [e^-4, e^4]
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        if float((x ** float(np.exp(mid))).mean()) > target_mean:
            lo = mid
        else:
            hi = mid
    return x ** float(np.exp(0.5 * (lo + hi)))


def to_uint8(rgb: torch.Tensor) -> np.ndarray:
    """``(3, H, W)`` in [0, 1] -> ``(H, W, 3)`` uint8."""
    return (rgb.clamp(0, 1) * 255.0 + 0.5).byte().permute(1, 2, 0).cpu().numpy()


def from_uint8(img: np.ndarray) -> torch.Tensor:
    """``(H, W, 3)`` uint8 -> ``(3, H, W)`` float32 in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float() / 255.0


def debevec_reinhard(brackets: Sequence[torch.Tensor], exposures_s: Sequence[float],
                     tonemap_gamma: float = 2.2) -> torch.Tensor:
    """
    Merge three (or more) RGB brackets with Debevec's method, tone map with Reinhard.

    ``brackets``: ``(3, H, W)`` RGB in [0, 1] (quantized to 8 bit, as 002's JPEGs);
    ``exposures_s``: their exposure values [s]. The response is calibrated from the
    brackets themselves (``createCalibrateDebevec``, as 002 computed it from all its
    captures). Returns ``(3, H, W)`` float32 RGB in [0, 1].
    """
    if len(brackets) < 2 or len(brackets) != len(exposures_s):
        raise EvaluationError(f'debevec_reinhard: need >= 2 brackets with one exposure each, '
                              f'got {len(brackets)} and {len(exposures_s)}')
    imgs = [cv2.cvtColor(to_uint8(b), cv2.COLOR_RGB2BGR) for b in brackets]
    times = np.asarray(exposures_s, np.float32)
    response = cv2.createCalibrateDebevec().process(imgs, times)
    hdr = cv2.createMergeDebevec().process(imgs, times, response)
    hdr = np.nan_to_num(hdr, nan=0.0, posinf=0.0, neginf=0.0)
    ldr = cv2.createTonemapReinhard(gamma=float(tonemap_gamma)).process(hdr)
    ldr = np.nan_to_num(np.clip(ldr, 0.0, 1.0))
    return torch.from_numpy(cv2.cvtColor(ldr, cv2.COLOR_BGR2RGB)).permute(2, 0, 1).float()
