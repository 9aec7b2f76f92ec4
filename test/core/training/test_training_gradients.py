"""
The detector loss reaches the AE network through the sensor model and the ISP.

Finite-difference check (float64, noise off) of the real pipeline: AE net -> ``u`` ->
``e2`` -> :func:`capture_torch` -> ISP -> Faster R-CNN losses. Two discrete parts of that
pipeline are not differentiable and are pinned so that the finite differences measure
the same function the gradient describes:

- quantisation: :func:`capture_torch` rounds with a straight-through gradient, so the
  forward is a staircase in ``e2`` (12 bit: a 1e-3 exposure change moves a 2000 DN pixel
  by 2 DN, +-0.5 DN of which is rounding). The check uses the same sensor with a 32-bit
  ADC (``g1``, black and post-gain noise scaled by ``2**20``: identical electrons and
  image after the ISP's normalisation, rounding 1e6 times finer);
- proposals: the RPN's top-k, NMS and the RoI heads' IoU-threshold matching flip
  discretely as the image changes (torchvision detaches proposals on purpose). The RPN
  is asked for 0 proposals, so the RoI heads see the ground-truth boxes torchvision
  always adds (fixed); the proposal sampler's ``randperm`` is seeded identically
  before every evaluation. All four loss terms still come from the real detector.

Step sizes: central differences with ``h`` = 1e-4 and 3e-4 (relative change of ``e2``
or absolute change of the head's bias). Larger steps average the slope over ReLU,
max-pool and clamp kinks; smaller ones reach the float rounding of the loss (~1e-7
relative). In between they agree with autograd to 0.2 % or better; the tolerance is 1 %.
"""
from neural_ae.core import sensor as S
from neural_ae.core.scenes import generate_pair
from neural_ae.core.training.config import config_from_dict
from neural_ae.core.training.pipeline import ExposurePipeline
import pytest
import torch

H, W = 64, 96
TINY_DET = {'widths': [8, 8, 128, 16, 16], 'fpn_channels': 16, 'representation_size': 32,
            'rpn_pre_nms_top_n_train': 2000, 'rpn_post_nms_top_n_train': 200,
            'rpn_pre_nms_top_n_test': 100, 'rpn_post_nms_top_n_test': 20,
            'box_batch_size_per_image': 32, 'anchor_sizes': [[8], [16], [32], [64]]}


def _batch(sensor, kappas=(0.3, 3.0), seeds=(3, 5), dtype=torch.float32):
    phi1, phi2, eb1, eb2, boxes, labels = [], [], [], [], [], []
    for seed in seeds:
        a, b = generate_pair(seed, 'day', H, W)
        p1 = S.mosaic(a.radiance, sensor.bayer_pattern)
        p2 = S.mosaic(b.radiance, sensor.bayer_pattern)
        phi1.append(torch.from_numpy(p1)[None])
        phi2.append(torch.from_numpy(p2)[None])
        eb1.append(S.e_base_s(p1, sensor))
        eb2.append(S.e_base_s(p2, sensor))
        boxes.append(torch.from_numpy(b.boxes).to(dtype))
        labels.append(torch.from_numpy(b.labels))
    return {'phi1': torch.stack(phi1).to(dtype), 'phi2': torch.stack(phi2).to(dtype),
            'e_base1': torch.tensor(eb1, dtype=torch.float64),
            'e_base2': torch.tensor(eb2, dtype=torch.float64),
            'kappa': torch.tensor(kappas, dtype=torch.float64),
            'noise_scale': torch.ones(len(seeds), dtype=dtype),
            'boxes': boxes, 'labels': labels, 'var_rate1': None, 'var_rate2': None}


def _pipeline(mode, sensor, noise=True, dtype=torch.float32):
    cfg = config_from_dict({'ae': mode, 'height': H, 'width': W, 'noise': noise,
                            'ae_l2': 0.0, 'detector': TINY_DET, 'train_size': 2,
                            'val_size': 0})
    torch.manual_seed(0)
    pipe = ExposurePipeline(cfg, sensor).to(dtype)
    pipe.train()
    return pipe


@pytest.mark.parametrize('mode', ['hybrid', 'histogram', 'semantic'])
def test_detector_loss_reaches_ae_weights_through_sensor_and_isp(mode):
    sensor = S.load_sensor('imx249')
    pipe = _pipeline(mode, sensor, noise=True)
    batch = _batch(sensor)
    torch.manual_seed(1)
    losses, info = pipe(batch)
    assert losses['loss_ae_l2'].item() == 0.0          # only the detector's loss is used
    sum(losses.values()).backward()
    grads = {n: p.grad for n, p in pipe.ae.named_parameters()}
    assert all(g is not None and torch.isfinite(g).all() for g in grads.values())
    assert grads['head.weight'].abs().sum() > 0
    assert grads['head.bias'].abs().sum() > 0
    for branch in ('histogram', 'semantic'):
        if getattr(pipe.ae, branch) is not None:
            total = sum(g.abs().sum() for n, g in grads.items() if n.startswith(branch))
            assert total > 0, branch
    # the ISP's learnable parameters and the detector get gradients too (joint training)
    assert pipe.isp.tone.log_gamma.grad is not None
    assert pipe.isp.tone.log_gamma.grad.abs() > 0
    # the path AE -> loss goes through e2: with u detached the AE gets nothing
    pipe.zero_grad(set_to_none=True)
    real = pipe.exposure_change
    pipe.exposure_change = lambda raw1: real(raw1).detach()
    torch.manual_seed(1)
    losses, _ = pipe(batch)
    sum(losses.values()).backward()
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in pipe.ae.parameters())


def _fd_setup():
    base = S.load_sensor('imx249')
    k = 2 ** 20
    sensor = S.with_overrides(base, bit_depth=32, g1_dn_per_e=base.g1_dn_per_e * k,
                              black_level_dn=base.black_level_dn * k,
                              read_noise_post_dn=base.read_noise_post_dn * k)
    pipe = _pipeline('hybrid', sensor, noise=False, dtype=torch.float64)
    pipe.detector.rpn._post_nms_top_n = {'training': 0, 'testing': 0}
    batch = _batch(sensor, dtype=torch.float64)
    lo, hi = S.exposure_bounds_s(sensor)
    e1 = pipe.delivered(batch['kappa'] * batch['e_base1'])
    assert bool(((e1 > lo * 10) & (e1 < hi / 10)).all())   # no clamp near e1 or e2

    def loss_fn(**kw):
        torch.manual_seed(123)
        losses, info = pipe(batch, **kw)
        return sum(losses.values()), info
    return pipe, loss_fn


def test_finite_differences_of_loss_wrt_e2_and_ae_weight():
    pipe, loss_fn = _fd_setup()
    scale = torch.ones(2, dtype=torch.float64, requires_grad=True)
    loss, info = loss_fn(scale_e2=scale)
    grad_e2, = torch.autograd.grad(loss, scale)       # d loss / d log e2 per example
    assert torch.isfinite(grad_e2).all() and (grad_e2.abs() > 1e-4).all()
    for h in (1e-4, 3e-4):
        for k in range(2):
            d = torch.zeros(2, dtype=torch.float64)
            d[k] = h
            with torch.no_grad():
                fd = (loss_fn(scale_e2=1 + d)[0] - loss_fn(scale_e2=1 - d)[0]) / (2 * h)
            assert float(fd) == pytest.approx(float(grad_e2[k]), rel=0.01), (h, k)

    bias = pipe.ae.head.bias
    loss, _ = loss_fn()
    grad_b, = torch.autograd.grad(loss, bias)
    assert abs(float(grad_b)) > 1e-4
    for h in (1e-4, 3e-4):
        with torch.no_grad():
            bias += h
            lp = float(loss_fn()[0])
            bias -= 2 * h
            lm = float(loss_fn()[0])
            bias += h
        assert (lp - lm) / (2 * h) == pytest.approx(float(grad_b), rel=0.01), h
