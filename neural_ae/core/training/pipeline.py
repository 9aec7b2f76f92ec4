"""
The end-to-end training pipeline of Fig. 4: AE network -> sensor -> ISP -> detector.

One two-frame example (paper Sec. 5):

1. frame 1 is captured at ``e1 = kappa * e_base`` (no gradient needed);
2. the exposure policy predicts ``u`` from frame 1: the AE network from the multi-scale
   histogram of the raw frame and/or the detector backbone's ``layer2`` map of
   ``ISP(frame 1)`` (the backbone's stem..layer2 run once on frame 1), or a classical
   law (Average, Gradient) on the raw frame, or ``u = 1`` (fixed);
3. frame 2 is captured at ``e2 = e1_delivered * u`` through :func:`capture_torch`
   (Gaussian stand-in for Poisson noise, straight-through rounding), so ``d e2 / d u``
   and ``d raw2 / d e2`` exist. For a two-frame example the temporal filter (Eq. 5) is
   not applied: ``e2`` uses ``u`` itself (``mu = 0``), as the paper's training pairs do;
   the controllers apply Eq. 5 at run time;
4. the ISP (learnable white balance, CCM and gamma) renders RGB;
5. the detector (Faster R-CNN) computes its losses on frame 2 with the boxes of frame 2;
6. loss = sum of the detector losses + ``ae_l2`` * sum of squared AE weights.

Everything from ``u`` to the loss is differentiable; only the histogram and the
classical laws are not (they read frame 1, which carries no gradient).
"""
import math
from typing import cast, Dict, Optional

from neural_ae.core import sensor as S
from neural_ae.core.histograms import multiscale_histogram_torch
from neural_ae.core.isp import ISP
from neural_ae.core.models.detector import build_detector
from neural_ae.core.models.exposure_nets import ExposureNet
import numpy as np
import torch
from torch import nn


def classical_u(raw1: torch.Tensor, sensor: S.SensorConfig, law: str) -> torch.Tensor:
    """
    Exposure change of the Average or Gradient AE for each raw frame ``(B, 1, H, W)``.

    Uses the update laws of :mod:`neural_ae.core.controllers.classical` (the controllers'
    own functions) on the rounded raw frames; returns ``(B,)`` float64, no gradient.
    """
    from neural_ae.core.controllers.base import average_ae_factor
    from neural_ae.core.controllers.classical import (
        gradient_information, green_image, shim_gamma_star, shim_update_factor)

    frames = raw1.detach().round().clamp(0, sensor.white_level_dn).to(torch.float32)
    out = []
    gammas = np.geomspace(1 / 1.9, 1.9, 11)
    for raw in frames.reshape(-1, *frames.shape[-2:]).cpu().numpy():
        raw = raw.astype(np.uint16)
        if law == 'average':
            factor, _ = average_ae_factor(raw, sensor)
        else:
            img = green_image(raw, sensor, 256)
            info = gradient_information(img, gammas)
            factor = shim_update_factor(shim_gamma_star(gammas, info, float(img.mean())))
        out.append(factor)
    return torch.tensor(out, dtype=torch.float64, device=raw1.device)


class ExposurePipeline(nn.Module):
    """
    AE network (or classical law) + sensor + ISP + detector, trained jointly.

    ``forward(batch)`` in training mode returns ``(losses, info)``: ``losses`` the
    detector's four loss terms plus ``loss_ae_l2``, and ``info`` detached diagnostics
    (``u``, ``e1``, ``e2``). :meth:`detect` runs the same capture chain in eval mode.
    """

    def __init__(self, cfg, sensor: S.SensorConfig):
        super().__init__()
        self.mode = cfg.ae
        self.sensor = sensor
        self.ae_l2 = float(cfg.ae_l2)
        self.noise = bool(cfg.noise)
        self.ae = (ExposureNet(cfg.ae, feature_dim=cfg.ae_feature_dim, m_exp=cfg.m_exp)
                   if cfg.neural else None)
        self.isp = ISP(cfg.isp_config(sensor))
        self.detector = build_detector(cfg.detector_config())

    # ------------------------------------------------------------------ capture chain

    def delivered(self, e_s: torch.Tensor) -> torch.Tensor:
        """Exposure value the sensor delivers for a request (Eq. 6 clamps), differentiable."""
        t, g = S.split_exposure_torch(e_s, self.sensor)
        return t * g

    def capture(self, phi: torch.Tensor, e_s: torch.Tensor, noise_scale=1.0,
                var_rate: Optional[torch.Tensor] = None,
                generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Raw frame ``(B, 1, H, W)`` [DN] of ``phi`` at ``e_s`` (noise adaptation included)."""
        source_var = None
        if var_rate is not None:
            t, _ = S.split_exposure_torch(e_s, self.sensor)
            source_var = var_rate * t.reshape(-1, 1, 1, 1) ** 2
        if isinstance(noise_scale, torch.Tensor):
            noise_scale = noise_scale.to(phi.dtype)
        return S.capture_torch(phi, e_s.to(phi.dtype), self.sensor, noise=self.noise,
                               noise_scale=noise_scale, source_var_e=source_var,
                               generator=generator)

    def exposure_change(self, raw1: torch.Tensor) -> torch.Tensor:
        """``u`` ``(B,)`` from frame 1 (a live tensor for the AE network)."""
        b = raw1.shape[0]
        if self.mode == 'fixed':
            return raw1.new_ones(b)
        if self.mode in ('average', 'gradient'):
            return classical_u(raw1, self.sensor, self.mode).to(raw1.dtype)
        assert self.ae is not None, f'ae mode {self.mode!r}'  # cfg.neural: a network was built
        hist = feats = None
        if self.ae.uses_histogram:
            hist = multiscale_histogram_torch(raw1.detach().round(), self.sensor.bit_depth,
                                              self.sensor.bayer_pattern).to(raw1.dtype)
        if self.ae.uses_semantic:
            feats = self.detector.semantic_features(self.isp(raw1.detach()))
        return self.ae(hist, feats)

    def frame2(self, batch: dict, generator: Optional[torch.Generator] = None,
               scale_e2: Optional[torch.Tensor] = None) -> tuple:
        """
        Frames 1 -> u -> frame 2: returns ``(rgb2, info)``; ``rgb2`` carries the gradient.

        ``scale_e2`` (optional, ``(B,)`` or scalar) multiplies ``e2``; the gradient tests
        differentiate with respect to it.
        """
        phi1, phi2 = batch['phi1'], batch['phi2']
        dtype = phi1.dtype
        e1 = self.delivered((batch['kappa'] * batch['e_base1']).to(dtype))
        noise_scale = batch['noise_scale'].to(dtype)
        with torch.no_grad():
            raw1 = self.capture(phi1, e1, noise_scale, batch.get('var_rate1'), generator)
        u = self.exposure_change(raw1)
        e2 = e1 * u
        if scale_e2 is not None:
            e2 = e2 * scale_e2
        raw2 = self.capture(phi2, e2, noise_scale, batch.get('var_rate2'), generator)
        rgb2 = self.isp(raw2)
        info = {'u': u.detach(), 'e1': e1.detach(), 'e2': self.delivered(e2.detach()),
                'raw2_mean_dn': raw2.detach().mean(dim=(1, 2, 3))}
        return rgb2, info

    def targets(self, batch: dict) -> list:
        """Detector targets of frame 2."""
        return [{'boxes': b.to(batch['phi2'].dtype), 'labels': lab}
                for b, lab in zip(batch['boxes'], batch['labels'])]

    def forward(self, batch: dict, generator: Optional[torch.Generator] = None,
                scale_e2: Optional[torch.Tensor] = None) -> tuple:
        """Training losses of a batch: ``(losses dict, info dict)``."""
        rgb2, info = self.frame2(batch, generator, scale_e2)
        losses, _ = self.detector(rgb2, self.targets(batch))
        losses = dict(losses)
        if self.ae is not None and self.ae_l2 > 0:
            losses['loss_ae_l2'] = self.ae_l2 * self.ae.weight_l2()
        else:
            losses['loss_ae_l2'] = rgb2.new_zeros(())
        return losses, info

    @torch.no_grad()
    def detect(self, batch: dict, exposure_factor: Optional[float] = None,
               generator: Optional[torch.Generator] = None) -> tuple:
        """
        Detect on frame 2, in eval mode: returns ``(detections, info)``.

        ``exposure_factor=None``: closed loop (frame 1 at ``kappa * e_base``, the policy's
        ``u``, frame 2 at ``e1 * u``). A number ``f``: frame 2 at ``f * e_base(frame 2)``
        (no AE), to measure how much exposure matters to the detector.
        """
        if exposure_factor is None:
            rgb2, info = self.frame2(batch, generator)
        else:
            e2 = self.delivered((exposure_factor * batch['e_base2']).to(batch['phi2'].dtype))
            raw2 = self.capture(batch['phi2'], e2, 1.0, batch.get('var_rate2'), generator)
            rgb2 = self.isp(raw2)
            info = {'e2': e2}
        dets, _ = self.detector(rgb2)
        return dets, info

    def trainable_groups(self, cfg) -> list:
        """Optimizer parameter groups: detector + ISP at ``lr``, AE network at ``ae_lr``."""
        base = [p for n, p in self.named_parameters()
                if p.requires_grad and not n.startswith('ae.')]
        groups = [{'params': base, 'lr': cfg.lr, 'weight_decay': cfg.weight_decay,
                   'name': 'detector_isp'}]
        if self.ae is not None:
            # the AE net's L2 penalty is in the loss (paper); no extra decay
            groups.append({'params': list(self.ae.parameters()), 'lr': cfg.ae_lr,
                           'weight_decay': 0.0, 'name': 'ae'})
        return groups


def total_loss(losses: Dict[str, torch.Tensor]) -> torch.Tensor:
    """Sum of the loss terms."""
    # never empty (the detector's terms and loss_ae_l2), so the sum is a tensor, not 0
    return cast(torch.Tensor, sum(losses.values()))


def loss_terms(losses: Dict[str, torch.Tensor]) -> dict:
    """Detached float values of the loss terms (for logs and errors)."""
    return {k: float(v.detach()) for k, v in losses.items()}


def finite(x: float) -> bool:
    """Whether ``x`` is a finite float."""
    return math.isfinite(x)
