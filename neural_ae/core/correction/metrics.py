"""
Image-quality metrics of the correction protocol: PSNR, SSIM and 003's similarities.

Images: ``(B, 3, H, W)`` float tensors, RGB in [0, 1] (``data_range = 1``); every
function returns one value per image (``(B,)`` float64).

- :func:`psnr`: ``10 log10(1 / MSE)`` over all pixels and channels [dB] (002's Eq. 2 with
  ``M = 1``); a perfect match is capped at 100 dB.
- :func:`ssim`: pytorch-msssim's SSIM (Gaussian window 11, sigma 1.5, K = (0.01, 0.03),
  averaged over the RGB channels), the maintained implementation.
- :func:`similarities`: 003's luminance, contrast and saturation similarities [%]. We
  read them as the SSIM components (Wang et al. 2004) with the same Gaussian window:
  luminance ``(2 mu_x mu_y + C1) / (mu_x^2 + mu_y^2 + C1)`` and contrast ``(2 s_x s_y +
  C2) / (s_x^2 + s_y^2 + C2)`` on the luma (BT.601), and saturation the luminance form
  applied to the HSV saturation maps ``(max - min) / max``; each the mean over the
  image, times 100 (003 reports them in percent).
"""
import math

from neural_ae.core.checks import check_shape
from neural_ae.core.errors import EvaluationError
import torch
import torch.nn.functional as F

__all__ = ['psnr', 'similarities', 'ssim']

_C1 = 0.01 ** 2
_C2 = 0.03 ** 2


def _check(a: torch.Tensor, b: torch.Tensor) -> None:
    check_shape(a, ('B', 3, 'H', 'W'), name='corrected image', error=EvaluationError,
                kind='tensor')
    check_shape(b, a.shape, name='reference image', error=EvaluationError, kind='tensor')


def psnr(image: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """PSNR [dB] of each image against its reference, both in [0, 1]."""
    _check(image, reference)
    mse = ((image.double() - reference.double()) ** 2).mean(dim=(1, 2, 3))
    return torch.where(mse > 0, 10.0 * torch.log10(1.0 / mse.clamp_min(1e-30)),
                       torch.full_like(mse, 100.0))


def ssim(image: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """SSIM of each image against its reference (pytorch-msssim, data range 1)."""
    from pytorch_msssim import ssim as _ssim

    _check(image, reference)
    return _ssim(image.double(), reference.double(), data_range=1.0,
                 size_average=False).double()


def _gauss(x: torch.Tensor, size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Separable Gaussian filter of ``(B, C, H, W)`` (valid convolution, like SSIM)."""
    r = torch.arange(size, dtype=x.dtype, device=x.device) - (size - 1) / 2
    g = torch.exp(-(r ** 2) / (2 * sigma ** 2))
    g = g / g.sum()
    c = x.shape[1]
    x = F.conv2d(x, g.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(x, g.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def _luma(x: torch.Tensor) -> torch.Tensor:
    w = torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * w).sum(dim=1, keepdim=True)


def _saturation(x: torch.Tensor) -> torch.Tensor:
    mx = x.amax(dim=1, keepdim=True)
    mn = x.amin(dim=1, keepdim=True)
    return torch.where(mx > 1e-6, (mx - mn) / mx.clamp_min(1e-6), torch.zeros_like(mx))


def similarities(image: torch.Tensor, reference: torch.Tensor) -> dict:
    """``{'luminance', 'contrast', 'saturation'}`` similarities [%] per image (module doc)."""
    _check(image, reference)
    if min(image.shape[-2:]) < 11:
        raise EvaluationError(f'similarities need images of at least 11 x 11 px, got '
                              f'{tuple(image.shape[-2:])}')
    a, b = image.double(), reference.double()
    ya, yb = _luma(a), _luma(b)
    mu_a, mu_b = _gauss(ya), _gauss(yb)
    var_a = (_gauss(ya * ya) - mu_a ** 2).clamp_min(0.0)
    var_b = (_gauss(yb * yb) - mu_b ** 2).clamp_min(0.0)
    lum = (2 * mu_a * mu_b + _C1) / (mu_a ** 2 + mu_b ** 2 + _C1)
    con = (2 * var_a.sqrt() * var_b.sqrt() + _C2) / (var_a + var_b + _C2)
    sa, sb = _gauss(_saturation(a)), _gauss(_saturation(b))
    sat = (2 * sa * sb + _C1) / (sa ** 2 + sb ** 2 + _C1)
    return {name: 100.0 * v.mean(dim=(1, 2, 3)) for name, v in
            (('luminance', lum), ('contrast', con), ('saturation', sat))}


def finite_mean(values) -> float:
    """Mean of the finite values (NaN when none)."""
    vals = [float(v) for v in values if math.isfinite(float(v))]
    return sum(vals) / len(vals) if vals else math.nan
