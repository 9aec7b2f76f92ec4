"""Haar pair, gradient maps and the assessor network (issue 13)."""
from neural_ae.core.assessment.dwt import haar_dwt, haar_idwt, haar_kernels
from neural_ae.core.assessment.errors import AssessmentError
from neural_ae.core.assessment.network import (AssessorConfig, build_assessor, gradient_maps,
                                               parameter_count, PIEANet, score, VARIANTS)
import pytest
import torch


def test_haar_pair_is_orthonormal_and_exact():
    torch.manual_seed(0)
    x = torch.randn(2, 5, 12, 18, dtype=torch.float64)
    low, high = haar_dwt(x)
    assert low.shape == (2, 5, 6, 9) and high.shape == (2, 15, 6, 9)
    assert torch.allclose(haar_idwt(low, high), x, atol=1e-12)
    energy = (low ** 2).sum() + (high ** 2).sum()
    assert torch.allclose(energy, (x ** 2).sum(), rtol=1e-12)
    k = haar_kernels(torch.float64).reshape(4, 4)
    assert torch.allclose(k @ k.T, torch.eye(4, dtype=torch.float64))


def test_haar_bands_mean_what_they_say():
    # a constant image has only a low band (2 x the value per 2x2 block), every channel
    x = torch.full((1, 3, 4, 4), 0.5)
    low, high = haar_dwt(x)
    assert torch.allclose(low, torch.ones_like(low))
    assert high.abs().max() == 0
    # rows that differ: horizontal detail only (band 0 of each channel)
    y = torch.zeros(1, 1, 2, 2)
    y[0, 0, 0] = 1.0
    _, h = haar_dwt(y)
    assert h[0, :, 0, 0].tolist() == pytest.approx([1.0, 0.0, 0.0])


def test_haar_rejects_odd_and_wrong_rank():
    with pytest.raises(AssessmentError, match='even'):
        haar_dwt(torch.zeros(1, 3, 5, 4))
    with pytest.raises(AssessmentError, match='shape'):
        haar_dwt(torch.zeros(3, 4, 4))
    with pytest.raises(AssessmentError, match='high bands'):
        haar_idwt(torch.zeros(1, 2, 3, 3), torch.zeros(1, 5, 3, 3))


def test_haar_gradcheck_float64():
    x = torch.randn(1, 2, 4, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: haar_dwt(t)[1], (x,))
    lo = torch.randn(1, 1, 2, 2, dtype=torch.float64, requires_grad=True)
    hi = torch.randn(1, 3, 2, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(haar_idwt, (lo, hi))


def test_gradient_maps_eight_directions():
    z = torch.zeros(1, 1, 5, 5)
    z[0, 0, 2, 2] = 1.0
    g = gradient_maps(z)
    assert g.shape == (1, 8, 5, 5)
    # at the centre every difference is neighbour - centre = -1
    assert g[0, :, 2, 2].tolist() == [-1.0] * 8
    # +x: the pixel left of the centre sees the centre as its +x neighbour
    assert g[0, 0, 2, 1] == 1.0 and g[0, 1, 2, 3] == 1.0
    assert g[0, 4, 1, 1] == 1.0 and g[0, 7, 3, 3] == 1.0


@pytest.mark.parametrize('variant', VARIANTS)
def test_variants_shapes_range_and_gradients(variant):
    torch.manual_seed(0)
    net = build_assessor(AssessorConfig(channels=8, layers=1, heads=2, token_grid=4,
                                        variant=variant))
    x = torch.rand(2, 3, 16, 24)
    y = net(x)
    assert y.shape == (2, 1, 16, 24)
    assert y.abs().max() < 1
    y.abs().mean().backward()
    grads = [p.grad for p in net.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


def test_ablations_drop_their_module():
    cfg = {'channels': 16, 'layers': 2, 'heads': 4, 'token_grid': 8}
    full = parameter_count(build_assessor(AssessorConfig(**cfg)))
    no_l = parameter_count(build_assessor(AssessorConfig(**cfg, variant='no_lightness')))
    no_s = parameter_count(build_assessor(AssessorConfig(**cfg, variant='no_structure')))
    no_dwt = build_assessor(AssessorConfig(**cfg, variant='no_dwt'))
    assert no_l < full and no_s < no_l
    assert 0.5 < parameter_count(no_dwt) / full < 2.0       # similar size
    assert not isinstance(no_dwt, PIEANet)


def test_paper_size_is_about_2_7_million():
    n = parameter_count(build_assessor(AssessorConfig(channels=88, layers=4)))
    assert 2.5e6 < n < 3.0e6


def test_config_and_input_errors():
    with pytest.raises(AssessmentError, match='variant'):
        AssessorConfig(variant='wide')
    with pytest.raises(AssessmentError, match='divisible'):
        AssessorConfig(channels=10, heads=4)
    with pytest.raises(AssessmentError, match='unknown keys'):
        AssessorConfig.from_dict({'chanels': 8})
    net = build_assessor(AssessorConfig(channels=8, heads=2))
    with pytest.raises(AssessmentError, match=r'\(B, 3, H, W\)'):
        net(torch.zeros(1, 1, 8, 8))
    with pytest.raises(AssessmentError, match='even'):
        net(torch.zeros(1, 3, 9, 8))


def test_score_formula():
    r = torch.zeros(2, 1, 4, 4)
    r[1] = -0.5
    assert score(r).tolist() == pytest.approx([10.0, 5.0])
