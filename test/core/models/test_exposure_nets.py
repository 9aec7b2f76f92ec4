"""Exposure networks (paper Sec. 4): Eq. 4 range, modes, gradients, input checks."""
import math

from hypothesis import given, settings
from hypothesis import strategies as st
from neural_ae.core.errors import ModelError
from neural_ae.core.models.exposure_nets import (
    exposure_output, ExposureNet, ExposureNetError, HistogramBranch, SemanticBranch)
import pytest
import torch


def _hist(batch=2):
    h = torch.rand(batch, 256, 59)
    return h / h.sum(dim=1, keepdim=True)


def _fmap(batch=2, h=5, w=7):
    return torch.rand(batch, 128, h, w)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(allow_nan=False, width=32), min_size=1, max_size=8),
       st.floats(min_value=1.01, max_value=1e3))
def test_exposure_output_range_for_any_logit(xs, m_exp):
    u = exposure_output(torch.tensor(xs, dtype=torch.float32), m_exp)
    assert torch.isfinite(u).all()
    assert (u >= 1.0 / m_exp).all() and (u <= m_exp).all()


def test_exposure_output_matches_eq4_and_is_monotone():
    x = torch.linspace(-8, 8, 33, dtype=torch.float64)
    eq4 = torch.exp(2 * (torch.sigmoid(x) - 0.5) * math.log(10.0))
    torch.testing.assert_close(exposure_output(x), eq4)
    assert exposure_output(torch.zeros(1)).item() == 1.0
    assert (exposure_output(x).diff() > 0).all()
    extremes = exposure_output(torch.tensor([-1e30, 1e30, -math.inf, math.inf]))
    assert extremes.tolist() == pytest.approx([0.1, 10.0, 0.1, 10.0])
    with pytest.raises(ExposureNetError, match='m_exp'):
        exposure_output(x, m_exp=1.0)


@settings(max_examples=15, deadline=None)
@given(st.floats(min_value=-1e4, max_value=1e4),
       st.sampled_from(['hybrid', 'histogram', 'semantic']))
def test_network_output_range_for_arbitrary_inputs(scale, mode):
    torch.manual_seed(0)
    net = ExposureNet(mode, feature_dim=8, m_exp=10.0)
    u = net(hist=scale * torch.randn(3, 256, 59), features=scale * torch.randn(3, 128, 4, 6))
    assert u.shape == (3,)
    assert (u >= 0.1).all() and (u <= 10.0).all()


def test_modes_need_their_inputs_and_ignore_others():
    hist, fmap = _hist(), _fmap()
    h, s, y = ExposureNet('histogram'), ExposureNet('semantic'), ExposureNet('hybrid')
    assert h.uses_histogram and not h.uses_semantic
    assert s.uses_semantic and not s.uses_histogram
    assert y.uses_histogram and y.uses_semantic
    assert h(hist=hist).shape == (2,) and s(features=fmap).shape == (2,)
    torch.testing.assert_close(h(hist=hist, features=fmap), h(hist=hist))
    torch.testing.assert_close(s(hist=hist, features=fmap), s(features=fmap))
    for net, kwargs, missing in ((h, {'features': fmap}, 'hist'),
                                 (s, {'hist': hist}, 'features'),
                                 (y, {'hist': hist}, 'features'),
                                 (y, {'features': fmap}, 'hist')):
        with pytest.raises(ExposureNetError, match=f'needs {missing}'):
            net(**kwargs)


def test_hybrid_sums_both_branches():
    net = ExposureNet('hybrid', feature_dim=16)
    hist, fmap = _hist(), _fmap()
    both = net.histogram.features(hist) + net.semantic.features(fmap)
    torch.testing.assert_close(net.feature_vector(hist, fmap), both)
    torch.testing.assert_close(net.logits(hist, fmap), net.head(both).squeeze(-1))
    torch.testing.assert_close(net(hist, fmap), exposure_output(net.logits(hist, fmap)))


def test_single_branch_net_is_the_six_layer_branch():
    net = ExposureNet('histogram', feature_dim=16)
    branch = HistogramBranch(feature_dim=16)
    branch.convs.load_state_dict(net.histogram.convs.state_dict())
    branch.dense.load_state_dict(net.histogram.dense.state_dict())
    branch.head.load_state_dict(net.head.state_dict())
    hist = _hist()
    torch.testing.assert_close(net.logits(hist=hist), branch(hist))
    assert net.num_parameters == sum(p.numel() for p in branch.parameters())
    assert ExposureNet('hybrid').num_parameters < 500_000


def test_gradients_reach_both_branches_and_the_inputs():
    net = ExposureNet('hybrid', feature_dim=16)
    hist = _hist().requires_grad_()
    fmap = _fmap().requires_grad_()
    (net(hist, fmap).log().sum() + 1e-3 * net.weight_l2()).backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert net.histogram.convs[0].weight.grad.abs().sum() > 0
    assert net.semantic.compress[0].weight.grad.abs().sum() > 0
    assert hist.grad.abs().sum() > 0 and fmap.grad.abs().sum() > 0


def test_branch_logits_and_small_maps():
    assert HistogramBranch(feature_dim=8)(_hist(3)).shape == (3,)
    assert SemanticBranch(feature_dim=8)(_fmap(3, 1, 1)).shape == (3,)
    assert SemanticBranch(feature_dim=8).features(_fmap(1, 32, 48)).shape == (1, 8)
    with pytest.raises(ExposureNetError, match='with_head=False'):
        HistogramBranch(with_head=False)(_hist())


@pytest.mark.parametrize('kwargs, match', [
    ({'hist': torch.rand(2, 59, 256)}, r'\(2, 59, 256\)'),
    ({'hist': torch.rand(256, 59)}, r'\(256, 59\)'),
    ({'hist': torch.ones(2, 256, 59, dtype=torch.int64)}, 'int64'),
    ({'hist': [[0.0]]}, 'list'),
    ({'features': torch.rand(2, 64, 4, 4)}, r'\(2, 64, 4, 4\)'),
    ({'features': torch.rand(128, 4, 4)}, r'\(128, 4, 4\)'),
])
def test_shape_errors_name_the_actual_shape(kwargs, match):
    full = {'hist': _hist(), 'features': _fmap()}
    full.update(kwargs)
    with pytest.raises(ExposureNetError, match=match) as info:
        ExposureNet('hybrid')(**full)
    assert isinstance(info.value, ModelError) and isinstance(info.value, ValueError)


def test_batch_mismatch_and_bad_construction():
    with pytest.raises(ExposureNetError, match=r'\(3, 256, 59\).*\(2, 128, 5, 7\)'):
        ExposureNet('hybrid')(_hist(3), _fmap(2))
    with pytest.raises(ExposureNetError, match='fancy'):
        ExposureNet('fancy')
    with pytest.raises(ExposureNetError, match='m_exp'):
        ExposureNet(m_exp=0.5)
