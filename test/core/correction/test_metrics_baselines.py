"""Correction metrics, baselines and 003's clipping (issue 14)."""
import math

from neural_ae.core.correction import baselines as B
from neural_ae.core.correction.data import gamma_clip, gamma_clip_inverse
from neural_ae.core.correction.metrics import psnr, similarities, ssim
from neural_ae.core.errors import EvaluationError
import pytest
import torch


def test_psnr_of_a_known_error_and_of_a_perfect_match():
    a = torch.full((1, 3, 16, 16), 0.5)
    b = a + 0.1
    assert float(psnr(b, a)[0]) == pytest.approx(20.0, abs=1e-4)   # MSE 0.01
    assert float(psnr(a, a)[0]) == 100.0
    with pytest.raises(EvaluationError, match='reference image'):
        psnr(a, torch.rand(1, 3, 8, 8))


def test_ssim_and_similarities():
    torch.manual_seed(0)
    a = torch.rand(2, 3, 32, 32)
    assert torch.allclose(ssim(a, a), torch.ones(2, dtype=torch.float64))
    sims = similarities(a, a)
    for v in sims.values():
        assert torch.allclose(v, torch.full((2,), 100.0, dtype=torch.float64))
    dark = similarities(a * 0.3, a)
    assert float(dark['luminance'][0]) < 90.0           # a darker image: luminance drops
    grey = a.mean(dim=1, keepdim=True).expand_as(a)
    assert float(similarities(grey, a)['saturation'][0]) < 50.0     # no colour left
    flat = torch.full_like(a, 0.5)
    assert float(similarities(flat, a)['contrast'][0]) < 20.0
    assert float(ssim(a * 0.3, a)[0]) < 0.9
    with pytest.raises(EvaluationError):
        similarities(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8))


def test_gamma_clip_and_its_trivial_inverse():
    x = torch.linspace(0, 1, 101).view(1, 1, 1, 101).expand(1, 3, 4, 101)
    clipped = gamma_clip(x, 0.5, 2.2)
    assert float(clipped.max()) == 1.0
    back = gamma_clip_inverse(clipped, 0.5, 2.2)
    keep = x < 0.5 ** (1 / 2.2) - 1e-3                  # not clipped: exact inverse
    assert torch.allclose(back[keep], x[keep], atol=1e-6)
    assert float(back[~keep].max()) == pytest.approx(0.5 ** (1 / 2.2))   # clipped: flat


def test_single_image_baselines():
    torch.manual_seed(0)
    ref = torch.rand(3, 16, 16) * 0.8
    gamma = 2.5
    dark = ((ref ** gamma) * 0.1) ** (1 / gamma)
    assert torch.allclose(B.trivial_inverse(dark, 0.1, gamma), ref, atol=1e-5)
    assert B.identity(dark) is dark
    assert float(B.global_gamma(dark).mean()) == pytest.approx(0.5, abs=1e-3)
    lin_in = dark ** gamma
    lin_out = B.global_gain(dark, gamma) ** gamma
    cap = torch.quantile(lin_in.flatten(), 0.99)
    gain = 0.5 / float(torch.minimum(lin_in, cap).mean())
    keep = lin_in * gain < 0.99                      # not clipped by the gain
    assert torch.allclose(lin_out[keep], lin_in[keep] * gain, rtol=1e-3, atol=1e-6)
    assert float(lin_out.max()) <= 1.0
    with pytest.raises(EvaluationError):
        B.trivial_inverse(dark, 0.0, gamma)


def test_debevec_reinhard_merges_brackets():
    torch.manual_seed(0)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 48), torch.linspace(0, 1, 64), indexing='ij')
    lin = torch.stack([xx * yy, xx, yy]) * 4.0 + 0.01
    times = [0.25, 1.0, 4.0]
    brackets = [(lin * t / 4.0).clamp(0, 1) ** (1 / 2.2) for t in times]
    out = B.debevec_reinhard(brackets, times)
    assert out.shape == (3, 48, 64)
    assert 0.0 <= float(out.min()) and float(out.max()) <= 1.0
    assert float(out.std()) > 0.02 and not math.isnan(float(out.mean()))
    # the merge keeps the order of brightness of the scene
    assert float(out[:, -1, -1].mean()) > float(out[:, 0, 0].mean())
    with pytest.raises(EvaluationError):
        B.debevec_reinhard(brackets[:1], times[:1])
