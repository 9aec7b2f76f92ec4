"""
Losses of the correction networks: L1 + total variation (002), LSGAN + L1 + perceptual (003).

Images are ``(B, 3, H, W)`` RGB in [0, 1]; every loss is a mean (per pixel and channel),
so weights do not depend on the crop size.

- :func:`total_variation` / :class:`TotalVariation`: 002's ``sum ((dy)^2 + (dx)^2) ^ (beta
  / 2)`` as a mean over pixels, forward differences, ``beta = 1`` (isotropic TV) by
  default, ``eps`` inside the root so the gradient is finite on flat regions.
- :func:`lsgan_d_loss`, :func:`lsgan_g_loss`: least-squares GAN (Mao et al.), real = 1,
  fake = 0, ``1/2`` factors as in 003's Eq. 3.
- :class:`PerceptualLoss`: 003's Eq. 5 with the project's own trained detector backbone
  in place of VGG-19 (a task-aware perceptual loss): frozen ``layer1`` (stride 4) and
  ``layer2`` (stride 8) maps of the detector's ResNet trunk, input normalized as the
  detector normalizes it, L1 per layer averaged over its ``C x H x W`` values, summed.
"""
from typing import cast, Sequence

from neural_ae.core.checks import check_shape
from neural_ae.core.errors import ModelError
import torch
from torch import nn

__all__ = ['lsgan_d_loss', 'lsgan_g_loss', 'PerceptualLoss', 'total_variation',
           'TotalVariation']


def total_variation(x: torch.Tensor, beta: float = 1.0, eps: float = 1e-6) -> torch.Tensor:
    """Return the mean of ``(dy^2 + dx^2 + eps) ^ (beta / 2)`` over ``(*, C, H, W)``."""
    check_shape(x, ('*', 'C', 'H', 'W'), name='total_variation input', error=ModelError,
                kind='tensor')
    dy = x[..., 1:, :-1] - x[..., :-1, :-1]
    dx = x[..., :-1, 1:] - x[..., :-1, :-1]
    return (dy * dy + dx * dx + eps).pow(beta / 2.0).mean()


class TotalVariation(nn.Module):
    """:func:`total_variation` as a module."""

    def __init__(self, beta: float = 1.0, eps: float = 1e-6):
        super().__init__()
        self.beta, self.eps = float(beta), float(eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return total_variation(x, self.beta, self.eps)


def lsgan_d_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """``1/2 E[(D(real) - 1)^2] + 1/2 E[D(fake)^2]``."""
    return 0.5 * ((real_scores - 1.0) ** 2).mean() + 0.5 * (fake_scores ** 2).mean()


def lsgan_g_loss(fake_scores: torch.Tensor) -> torch.Tensor:
    """``1/2 E[(D(G(x)) - 1)^2]``."""
    return 0.5 * ((fake_scores - 1.0) ** 2).mean()


class PerceptualLoss(nn.Module):
    """
    L1 between frozen detector-trunk features of two images (003 Eq. 5, task-aware).

    ``trunk``: a :class:`neural_ae.core.models.detector.ResNetTrunk` (copied, frozen, eval
    mode); ``layers``: which of ``layer1..layer4`` (default 1 and 2); ``mean``/``std``: the
    detector's input normalization (``GeneralizedRCNNTransform``'s).
    """

    def __init__(self, trunk: nn.Module, layers: Sequence[int] = (1, 2),
                 mean: Sequence[float] = (0.5, 0.5, 0.5),
                 std: Sequence[float] = (0.25, 0.25, 0.25)):
        super().__init__()
        import copy

        self.trunk = copy.deepcopy(trunk).eval()
        for p in self.trunk.parameters():
            p.requires_grad_(False)
        self.layers = tuple(int(v) for v in layers)
        if not self.layers or min(self.layers) < 1 or max(self.layers) > 4:
            raise ModelError(f'perceptual layers must be in 1..4, got {layers}')
        self.register_buffer('mean', torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer('std', torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

    def train(self, mode=True):
        """Keep the trunk in eval mode (its norms are frozen statistics)."""
        super().train(mode)
        self.trunk.eval()
        return self

    def features(self, x: torch.Tensor) -> list:
        """Return the chosen trunk maps of ``x`` ``(B, 3, H, W)`` in [0, 1]."""
        mean, std = cast(torch.Tensor, self.mean), cast(torch.Tensor, self.std)
        outs = self.trunk((x - mean) / std, upto=max(self.layers))
        return [outs[i - 1] for i in self.layers]

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            ref = self.features(target)
        got = self.features(output)
        return torch.stack([(a - b).abs().mean() for a, b in zip(got, ref)]).sum()
