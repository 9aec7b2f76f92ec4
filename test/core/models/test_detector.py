"""Faster R-CNN with a shared backbone: losses, detections, the live layer2 tap."""
from dataclasses import replace

from neural_ae.core.errors import ModelError
from neural_ae.core.models.detector import (
    build_detector, count_parameters, detector_inference, DetectorConfig, DetectorError,
    ResNetTrunk)
from neural_ae.core.models.exposure_nets import SemanticBranch
import pytest
import torch
import torchvision

H, W = 128, 160
TINY = DetectorConfig(min_size=H, max_size=W, rpn_pre_nms_top_n_train=100,
                      rpn_post_nms_top_n_train=50, rpn_pre_nms_top_n_test=50,
                      rpn_post_nms_top_n_test=20, box_batch_size_per_image=32,
                      representation_size=64)
LOSSES = {'loss_classifier', 'loss_box_reg', 'loss_objectness', 'loss_rpn_box_reg'}


@pytest.fixture(scope='module')
def model():
    torch.manual_seed(0)
    return build_detector(TINY)


def _targets(batch):
    boxes = torch.tensor([[10.0, 20.0, 50.0, 60.0], [80.0, 30.0, 120.0, 100.0]])
    return [{'boxes': boxes + k, 'labels': torch.tensor([1, 5])} for k in range(batch)]


def _count_calls(module):
    calls = []
    handle = module.register_forward_hook(lambda *_: calls.append(1))
    return calls, handle


def test_train_forward_returns_finite_losses_and_layer2(model):
    model.train()
    images = torch.rand(2, 3, H, W)
    losses, layer2 = model(images, _targets(2))
    assert set(losses) == LOSSES
    assert all(torch.isfinite(v) and v.dim() == 0 for v in losses.values())
    assert layer2.shape == (2, 128, H // 8, W // 8)
    assert model.layer2_channels == 128


def test_eval_forward_returns_detections(model):
    model.eval()
    with torch.no_grad():
        detections, layer2 = model([torch.rand(3, H, W)])
    assert layer2.shape == (1, 128, H // 8, W // 8)
    assert len(detections) == 1 and set(detections[0]) == {'boxes', 'scores', 'labels'}
    det = detections[0]
    assert det['boxes'].shape[1:] == (4,) and len(det['boxes']) <= TINY.box_detections_per_img
    if len(det['labels']):
        assert det['labels'].min() >= 1 and det['labels'].max() < TINY.num_classes
        assert (det['boxes'][:, 2] <= W).all() and (det['boxes'][:, 3] <= H).all()


def test_detector_inference_restores_mode(model):
    model.train()
    detections, layer2 = detector_inference(model, torch.rand(1, 3, H, W))
    assert model.training and isinstance(detections, list)
    assert not layer2.requires_grad


def test_layer2_is_live_and_feeds_the_semantic_branch(model):
    model.train()
    model.zero_grad()
    images = torch.rand(2, 3, H, W, requires_grad=True)
    _, layer2 = model(images, _targets(2))
    layer2.retain_grad()
    branch = SemanticBranch(feature_dim=8)
    branch(layer2).sum().backward()  # semantic loss alone, no detector loss
    assert layer2.grad is not None and layer2.grad.abs().sum() > 0
    body = model.backbone.body
    # residual branches start at zero (zero-init last norm): their gate gets the gradient
    assert body.layer2[0].bn2.weight.grad.abs().sum() > 0
    assert body.layer2[0].downsample[0].weight.grad.abs().sum() > 0
    assert body.conv1.weight.grad.abs().sum() > 0
    assert images.grad.abs().sum() > 0  # the ISP upstream can learn from it
    assert body.layer3[0].conv1.weight.grad is None  # not on the semantic path
    assert model.roi_heads.box_predictor.cls_score.weight.grad is None


def test_one_backbone_pass_per_forward(model):
    trunk_calls, h1 = _count_calls(model.backbone.body)
    stem_calls, h2 = _count_calls(model.backbone.body.conv1)
    try:
        model.train()
        model(torch.rand(2, 3, H, W), _targets(2))
        assert len(trunk_calls) == 1 and len(stem_calls) == 1
        detector_inference(model, torch.rand(2, 3, H, W))
        assert len(trunk_calls) == 2 and len(stem_calls) == 2
    finally:
        h1.remove()
        h2.remove()


def test_semantic_features_match_forward_and_stop_at_layer2(model):
    model.eval()
    images = torch.rand(1, 3, H, W)
    layer3_calls, handle = _count_calls(model.backbone.body.layer3)
    try:
        with torch.no_grad():
            only = model.semantic_features(images)
            assert not layer3_calls
            _, layer2 = model(images)
    finally:
        handle.remove()
    torch.testing.assert_close(only, layer2)


def test_full_width_trunk_matches_torchvision_resnet18():
    ours = ResNetTrunk((64, 64, 128, 256, 512)).state_dict()
    ref = torchvision.models.resnet18(weights=None).state_dict()
    ref = {k: v.shape for k, v in ref.items() if not k.startswith('fc.')}
    assert {k: v.shape for k, v in ours.items()} == ref


def test_defaults_and_batchnorm_option():
    cfg = DetectorConfig()
    assert cfg.num_classes == 7 and cfg.layer2_channels == 128
    assert (cfg.min_size, cfg.max_size) == (256, 384)
    small = replace(TINY, norm='batch', widths=(16, 16, 128, 32, 32), fpn_channels=32)
    net = build_detector(small)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
    assert count_parameters(net) < count_parameters(build_detector(TINY))
    net.train()
    losses, layer2 = net(torch.rand(2, 3, H, W), _targets(2))
    assert layer2.shape == (2, 128, H // 8, W // 8)


@pytest.mark.parametrize('images, targets, match', [
    (torch.rand(2, 1, H, W), None, r'\(2, 1, 128, 160\)'),
    (torch.rand(3, H, W), None, r'\(3, 128, 160\)'),
    ([torch.rand(1, H, W)], None, r'\(1, 128, 160\)'),
    ([torch.ones(3, H, W, dtype=torch.uint8)], None, 'uint8'),
    ([], None, 'non-empty'),
    (torch.rand(1, 3, H, W), None, 'targets are required'),
    (torch.rand(1, 3, H, W), [{'boxes': torch.rand(4), 'labels': torch.ones(1)}], r'\(4,\)'),
    (torch.rand(1, 3, H, W), [{'boxes': torch.tensor([[5.0, 5.0, 5.0, 9.0]]),
                               'labels': torch.tensor([1])}], 'positive width'),
])
def test_input_errors(model, images, targets, match):
    model.train()
    with pytest.raises(DetectorError, match=match) as info:
        model(images, targets)
    assert isinstance(info.value, ModelError) and isinstance(info.value, ValueError)


@pytest.mark.parametrize('kwargs, match', [
    ({'num_classes': 1}, 'num_classes'),
    ({'widths': (32, 32, 128)}, 'widths'),
    ({'fpn_layers': (3, 2)}, 'fpn_layers'),
    ({'anchor_sizes': ((16,), (32,))}, 'anchor'),
    ({'norm': 'instance'}, 'instance'),
    ({'min_size': 500}, 'min_size'),
])
def test_config_errors(kwargs, match):
    with pytest.raises(DetectorError, match=match):
        DetectorConfig(**kwargs)
