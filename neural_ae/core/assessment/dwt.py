"""
One-level 2-D Haar wavelet transform and its inverse as fixed stride-2 convolutions.

Orthonormal Haar pair (P-IEANet, Fig. 4 (d), with the 1/2 normalisation that makes the
four 2 x 2 filters an orthonormal basis of every 2 x 2 block): for a block
``[[a, b], [c, d]]``

- approximation ``LL = (a + b + c + d) / 2``
- horizontal detail ``LH = (a + b - c - d) / 2`` (rows differ: horizontal edges)
- vertical detail ``HL = (a - b + c - d) / 2`` (columns differ: vertical edges)
- diagonal detail ``HH = (a - b - c + d) / 2``

The forward transform is a grouped ``conv2d`` (stride 2, kernel 2, one group per input
channel); the inverse is the transposed convolution with the same kernels, which is the
exact inverse because the kernel matrix is orthogonal: ``idwt(dwt(x)) == x`` and
``sum(x**2) == sum(dwt(x)**2)`` (energy preserved). Every input channel is transformed
(unlike the authors' released code, which uses one channel's weights and drops the low
band).

Shapes: ``x`` ``(B, C, H, W)`` with even ``H, W`` -> ``low`` ``(B, C, H/2, W/2)`` and
``high`` ``(B, 3C, H/2, W/2)`` ordered ``[LH, HL, HH]`` per channel
(``high[:, 3c:3c+3]`` belong to channel ``c``). Any real range, any float dtype.
"""
from typing import Tuple

from neural_ae.core.assessment.errors import AssessmentError
from neural_ae.core.checks import check_shape
import torch
from torch import nn
import torch.nn.functional as F

__all__ = ['HaarDWT', 'HaarIDWT', 'haar_dwt', 'haar_idwt', 'haar_kernels']


def haar_kernels(dtype: torch.dtype = torch.float32,
                 device=None) -> torch.Tensor:
    """Return the four orthonormal 2 x 2 Haar filters ``(4, 1, 2, 2)``: LL, LH, HL, HH."""
    k = torch.tensor([[[1., 1.], [1., 1.]],
                      [[1., 1.], [-1., -1.]],
                      [[1., -1.], [1., -1.]],
                      [[1., -1.], [-1., 1.]]], dtype=dtype, device=device) * 0.5
    return k.unsqueeze(1)


def _weights(channels: int, like: torch.Tensor) -> torch.Tensor:
    return haar_kernels(like.dtype, like.device).repeat(channels, 1, 1, 1)


def haar_dwt(x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Forward transform: ``(B, C, H, W)`` (even H, W) -> ``(low, high)`` (module docstring)."""
    b, c, h, w = check_shape(x, ('B', 'C', 'H', 'W'), name='haar_dwt input',
                             error=AssessmentError, kind='tensor')
    if h % 2 or w % 2 or h == 0 or w == 0:
        raise AssessmentError(f'haar_dwt input: height and width must be even and > 0, got '
                              f'{tuple(x.shape)}')
    y = F.conv2d(x, _weights(c, x), stride=2, groups=c)      # (B, 4C, H/2, W/2)
    y = y.view(b, c, 4, h // 2, w // 2)
    low = y[:, :, 0]
    high = y[:, :, 1:].reshape(b, 3 * c, h // 2, w // 2)
    return low, high


def haar_idwt(low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """Inverse transform: ``low (B, C, h, w)``, ``high (B, 3C, h, w)`` -> ``(B, C, 2h, 2w)``."""
    b, c, h, w = check_shape(low, ('B', 'C', 'H', 'W'), name='haar_idwt low band',
                             error=AssessmentError, kind='tensor')
    check_shape(high, (b, 3 * c, h, w), name='haar_idwt high bands', error=AssessmentError,
                kind='tensor')
    y = torch.cat([low.unsqueeze(2), high.view(b, c, 3, h, w)], dim=2).view(b, 4 * c, h, w)
    return F.conv_transpose2d(y, _weights(c, low), stride=2, groups=c)


class HaarDWT(nn.Module):
    """:func:`haar_dwt` as a module (no parameters): ``x -> (low, high)``."""

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        return haar_dwt(x)


class HaarIDWT(nn.Module):
    """:func:`haar_idwt` as a module (no parameters): ``(low, high) -> x``."""

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        return haar_idwt(low, high)
