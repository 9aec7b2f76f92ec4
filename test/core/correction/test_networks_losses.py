"""Correction networks and losses (issue 14): shapes, ranges, receptive fields, gradients."""
from neural_ae.core.correction.losses import (lsgan_d_loss, lsgan_g_loss, PerceptualLoss,
                                              total_variation, TotalVariation)
from neural_ae.core.correction.networks import (CorrectionUNet, NoiseInjection,
                                                param_count, patch_receptive_field,
                                                PatchDiscriminator)
from neural_ae.core.errors import ModelError
from neural_ae.core.models.detector import ResNetTrunk
import pytest
import torch
from torch.autograd import gradcheck


@pytest.mark.parametrize('noise', [False, True])
def test_unet_keeps_shape_and_range_and_is_deterministic_in_eval(noise):
    torch.manual_seed(0)
    net = CorrectionUNet((4, 8, 8), noise=noise).eval()
    if noise:
        for m in net.modules():
            if isinstance(m, NoiseInjection):
                m.scale.data.fill_(0.5)
    x = torch.rand(2, 3, 32, 48)
    with torch.no_grad():
        y = net(x)
        assert y.shape == x.shape
        assert float(y.min()) > 0.0 and float(y.max()) < 1.0
        assert torch.equal(y, net(x))                 # eval noise is seeded
        net.train()
        if noise:                                     # training noise is fresh
            assert not torch.equal(net(x), net(x))


def test_unet_refuses_bad_shapes_with_the_shape_in_the_message():
    net = CorrectionUNet((4, 8, 8))
    with pytest.raises(ModelError, match='multiples of 4'):
        net(torch.rand(1, 3, 30, 32))
    with pytest.raises(ModelError, match=r'\(1, 1, 32, 32\)'):
        net(torch.rand(1, 1, 32, 32))
    with pytest.raises(ModelError):
        CorrectionUNet((4,))


def test_residual_unet_starts_at_the_identity():
    net = CorrectionUNet((4, 8), residual=True).eval()
    x = torch.rand(1, 3, 16, 16) * 0.9 + 0.05
    assert torch.allclose(net(x), x, atol=1e-5)


def test_input_skip_reaches_the_output():
    """The input image is fed to the decoder: a pixel change moves that output pixel."""
    torch.manual_seed(1)
    net = CorrectionUNet((4, 8, 8), global_context=False).eval()
    x = torch.rand(1, 3, 32, 32, requires_grad=True)
    net(x)[0, :, 5, 7].sum().backward()
    assert float(x.grad[0, :, 5, 7].abs().sum()) > 0


def test_patch_receptive_fields_and_discriminator_output():
    assert [patch_receptive_field(n) for n in (1, 2, 3, 4, 5)] == [16, 34, 70, 142, 286]
    d = PatchDiscriminator(3, 8, 32)
    assert d.receptive_field == 70
    out = d(torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64))
    assert out.shape[:2] == (2, 1) and out.shape[-1] >= 1
    assert any('parametrizations' in n for n, _ in d.named_parameters())   # spectral norm
    with pytest.raises(ModelError):
        PatchDiscriminator(0)
    assert param_count(d) > 0


def test_total_variation_values_and_gradcheck():
    flat = torch.full((1, 3, 8, 8), 0.3)
    assert float(total_variation(flat, eps=0.0)) == 0.0
    ramp = torch.arange(8.0).view(1, 1, 1, 8).expand(1, 1, 8, 8) * 0.1
    assert float(total_variation(ramp, beta=1.0, eps=0.0)) == pytest.approx(0.1)
    assert float(TotalVariation(beta=2.0, eps=0.0)(ramp)) == pytest.approx(0.01)
    x = torch.rand(1, 2, 5, 6, dtype=torch.float64, requires_grad=True)
    assert gradcheck(lambda t: total_variation(t, 1.0, 1e-3), (x,))
    with pytest.raises(ModelError):
        total_variation(torch.rand(4))


def test_lsgan_losses():
    ones, zeros = torch.ones(4), torch.zeros(4)
    assert float(lsgan_d_loss(ones, zeros)) == 0.0
    assert float(lsgan_d_loss(zeros, ones)) == pytest.approx(1.0)
    assert float(lsgan_g_loss(ones)) == 0.0
    assert float(lsgan_g_loss(zeros)) == pytest.approx(0.5)


def test_perceptual_loss_is_zero_on_equal_images_and_keeps_the_trunk_frozen():
    torch.manual_seed(0)
    trunk = ResNetTrunk((8, 8, 16, 16, 16))
    loss = PerceptualLoss(trunk, (1, 2))
    loss.train()
    assert not loss.trunk.training
    a = torch.rand(1, 3, 32, 32)
    assert float(loss(a, a)) == 0.0
    b = torch.rand(1, 3, 32, 32, requires_grad=True)
    value = loss(b, a)
    value.backward()
    assert float(value) > 0 and b.grad is not None
    assert all(p.grad is None and not p.requires_grad for p in loss.trunk.parameters())
    with pytest.raises(ModelError):
        PerceptualLoss(trunk, (5,))
