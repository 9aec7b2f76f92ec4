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
constant 0.1); REINFORCE without baseline (Eq. 11) descends the surrogate
``mean_known(r (F(s) - a)^2 / (2 sigma^2))`` whose gradient is
``-r sigma^-2 (F(s) - a) grad F`` per sample (:func:`reinforce_loss`).
"""
from typing import Protocol, Sequence

from neural_ae.core.errors import ConfigError
import numpy as np
import torch

__all__ = ['FeedbackSource', 'LABELS', 'label_code', 'labels_of', 'reinforce_loss', 'reward']

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


def reinforce_loss(mean: torch.Tensor, action: torch.Tensor, r: torch.Tensor,
                   sigma: float = 0.1) -> torch.Tensor:
    """REINFORCE surrogate of Eq. 11 (mean over the samples with a known reward)."""
    known = (r != 0).to(mean.dtype)
    n = known.sum().clamp_min(1.0)
    return (r * (mean - action.detach()) ** 2 / (2.0 * sigma ** 2)).sum() / n


def check_labels(labels: Sequence[str]) -> list:
    """Codes of a sequence of label strings (ConfigError naming the first bad one)."""
    return [label_code(lab) for lab in labels]
