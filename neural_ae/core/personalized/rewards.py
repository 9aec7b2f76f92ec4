"""
Feedback labels and the policy-gradient reward (Yang et al. 2018, Sec. 5.2-5.3, Fig. 6).

A user (or a simulated expert, or an automatic judge) labels one *original* frame
``'under'``, ``'well'`` or ``'over'``; for an ideal correction ``y`` [EV] the label is
``well`` when ``|y| <= delta``, ``under`` when ``y > delta``, ``over`` when ``y < -delta``
(``delta`` = 0.1 EV). A variant ``t`` of that frame (another exposure of it) carries
``Y_t``, the action that brings it back to the original [EV]. For a sampled action ``a``
on variant ``t`` (Fig. 6):

- original ``well``: ``+1`` if ``|a - Y_t| <= delta``, else ``-1``;
- original ``under``: ``-1`` if ``a <= Y_t`` (the result is at most as bright as an
  under-exposed frame), otherwise unknown (ignored, weight 0);
- original ``over``: ``-1`` if ``a >= Y_t``, otherwise unknown.

The policy is Gaussian, ``a ~ N(F(s), sigma^2)`` with ``sigma`` = 0.1 EV (the paper's
constant 0.1). REINFORCE (Eq. 11) descends the surrogate
``mean(A (F(s) - a)^2 / (2 sigma^2))`` whose gradient is ``-A sigma^-2 (a - F(s)) grad F``
per sample (:func:`reinforce_loss`), with the advantage ``A = r`` (the paper: no
baseline) or ``A = r - b`` with ``b`` the mean reward of the *other* actions sampled for
the same state (leave-one-out baseline, :func:`advantage`; ``samples`` actions per
state). The baseline is unbiased and removes the noise of states where every action gets
the same reward (e.g. all ``-1`` far from a "well" target): without it those states push
the mean at random and Adam turns that noise into a drift of the weights.
"""
from typing import Protocol, Sequence

from neural_ae.core.errors import ConfigError
import numpy as np
import torch

__all__ = ['advantage', 'FeedbackSource', 'LABELS', 'label_code', 'labels_of', 'reinforce_loss',
           'reward']

LABELS = ('under', 'well', 'over')
"""Feedback labels; codes -1 (under), 0 (well), +1 (over)."""
_CODES = {'under': -1, 'well': 0, 'over': 1}


class FeedbackSource(Protocol):
    """
    Anything that labels a processed frame: a simulated expert, a person, an assessor.

    ``label(rgb_uint8 (H, W, 3)) -> 'under' | 'well' | 'over'``; issue 13's
    ``ExposureJudge`` has this method and plugs in as is.
    """

    def label(self, rgb_uint8: np.ndarray) -> str:
        """Label one frame."""


def label_code(label: str) -> int:
    """``-1`` / ``0`` / ``+1`` for ``'under'`` / ``'well'`` / ``'over'``; ConfigError else."""
    try:
        return _CODES[label]
    except (KeyError, TypeError):
        raise ConfigError(f'feedback label must be one of {LABELS}, got {label!r}') from None


def labels_of(ideal_ev, delta: float = 0.1) -> np.ndarray:
    """Label codes (int8) of ideal corrections ``ideal_ev`` [EV]."""
    y = np.asarray(ideal_ev, np.float64)
    return np.where(y > delta, -1, np.where(y < -delta, 1, 0)).astype(np.int8)


def reward(code: torch.Tensor, action: torch.Tensor, back: torch.Tensor,
           delta: float = 0.1) -> torch.Tensor:
    """
    Fig. 6 reward per sample: ``+1``, ``-1`` or ``0`` (unknown).

    ``code`` label codes of the originals, ``action`` sampled actions ``a`` [EV], ``back``
    ``Y_t`` [EV]; all the same shape.
    """
    well = torch.where((action - back).abs() <= delta, 1.0, -1.0)
    under = torch.where(action <= back, -1.0, 0.0)
    over = torch.where(action >= back, -1.0, 0.0)
    return torch.where(code == 0, well, torch.where(code < 0, under, over))


def advantage(r: torch.Tensor, baseline: str = 'leave_one_out') -> torch.Tensor:
    """
    Advantage of rewards ``r`` ``(B, K)`` (``K`` actions per state) [-].

    ``'none'``: ``r`` (the paper); ``'leave_one_out'``: ``r - mean of the state's other
    K - 1 rewards`` (unbiased; needs ``K >= 2``, else ``r``).
    """
    if r.dim() != 2:
        raise ValueError(f'rewards must be (B, K), got {tuple(r.shape)}')
    k = r.shape[1]
    if baseline == 'none' or k < 2:
        return r
    if baseline != 'leave_one_out':
        raise ValueError(f"baseline must be 'leave_one_out' or 'none', got {baseline!r}")
    return r - (r.sum(dim=1, keepdim=True) - r) / (k - 1)


def reinforce_loss(mean: torch.Tensor, action: torch.Tensor, r: torch.Tensor,
                   sigma: float = 0.1) -> torch.Tensor:
    """
    REINFORCE surrogate of Eq. 11; ``r`` rewards or advantages, same shape as ``action``.

    ``mean`` broadcasts against ``action`` (``(B, 1)`` for ``(B, K)`` actions). Without
    a baseline the mean runs over the samples with a known reward (``r != 0``); an
    advantage array is averaged over all its samples.
    """
    known = (r != 0).to(mean.dtype)
    n = known.sum().clamp_min(1.0)
    return (r * (mean - action.detach()) ** 2 / (2.0 * sigma ** 2)).sum() / n


def check_labels(labels: Sequence[str]) -> list:
    """Codes of a sequence of label strings (ConfigError naming the first bad one)."""
    return [label_code(lab) for lab in labels]
