"""
The shipped exportable kinds: ``exposure_net`` and ``detector``.

``exposure_net`` (histogram / semantic / hybrid :class:`~neural_ae.core.models.
exposure_nets.ExposureNet` of a checkpoint): inputs ``hist`` ``(1, 256, 59)`` float32
(histogram and hybrid) and ``features`` ``(1, 128, h, w)`` float32, the detector's
``layer2`` map for the export's frame size (semantic and hybrid); output ``u`` ``(1,)``
float32 in ``[1 / M_exp, M_exp]``.

``detector`` (the checkpoint's Faster R-CNN with its ``layer2`` tap): input ``image``
``(1, 3, H, W)`` float32 RGB in [0, 1] at the detector's input size for the export's frame
size (:func:`~neural_ae.core.models.perception.detector_input_size`, what
:class:`~neural_ae.core.models.perception.Perception` hands the detector after its
Bayer-domain shrink and ISP); outputs ``boxes`` ``(N, 4)`` xyxy [px of that input],
``scores`` ``(N,)``, ``labels`` ``(N,)`` int64, ``layer2`` ``(1, 128, h, w)``. The
ISP stays in torch (cheap, and the Bayer shrink is numpy). All shapes are fixed (batch 1,
one input size): torchvision's Faster R-CNN exports with a fixed image size, and a
dynamic batch is known to break in onnxruntime.
"""
from typing import Optional, Tuple

from neural_ae.core.deploy.registry import (DeployError, Exporter, ExportPlan, ExportRequest,
                                            register)
import numpy as np
import torch
from torch import nn

__all__ = ['DETECTOR', 'detector_input_for', 'EXPOSURE_NET', 'exposure_mode', 'scene_frame',
           'SCENE_SEED']

SCENE_SEED = 3_150_000
"""First procedural scene seed of the export checks and parity tests (issue 15 part 1:
3,150,000..3,159,999, disjoint from training, validation and evaluation seeds)."""
EXPOSURE_MODES = ('histogram', 'semantic', 'hybrid')


def scene_frame(seed: int, height: int, width: int, sensor, factor: float = 1.0) -> np.ndarray:
    """
    Raw Bayer frame ``(height, width)`` of procedural scene ``seed`` at ``factor`` x e_base.

    Noise drawn from ``seed`` (deterministic).
    """
    from neural_ae.core.scenes import generate_scene
    from neural_ae.core.sensor import capture, e_base_s, mosaic, split_exposure

    scene = generate_scene(seed, height=height, width=width)
    phi = mosaic(scene.radiance, sensor.bayer_pattern)
    split = split_exposure(e_base_s(phi, sensor) * factor, sensor)
    return capture(phi, split.t_exp_s, split.gain, sensor, np.random.default_rng(seed))


def detector_input_for(perception, frame_size: Tuple[int, int]) -> Tuple[int, int]:
    """``(h, w)`` the perception hands its detector for raw frames of ``frame_size``."""
    from neural_ae.core.models.perception import detector_input_size

    t = perception.detector.transform
    return detector_input_size(int(frame_size[0]), int(frame_size[1]), int(min(t.min_size)),
                               int(t.max_size))


def exposure_mode(ckpt: dict) -> Optional[str]:
    """Return the exposure net mode a checkpoint holds (``mode``, else ``config.ae``) or None."""
    config: dict = ckpt['config'] if isinstance(ckpt.get('config'), dict) else {}
    mode = ckpt.get('mode', config.get('ae', ckpt.get('ae')))
    return mode if mode in EXPOSURE_MODES else None


def _exposure_applies(ckpt: dict) -> Optional[str]:
    if exposure_mode(ckpt) is None:
        config: dict = ckpt['config'] if isinstance(ckpt.get('config'), dict) else {}
        ae = config.get('ae', ckpt.get('ae'))
        return (f'holds no exposure network (trained with ae={ae!r}; a network needs one of '
                f'{"|".join(EXPOSURE_MODES)})')
    return None


class _ExposureGraph(nn.Module):
    """``forward(*inputs) -> (u,)`` of an exposure net with the mode's inputs only."""

    def __init__(self, net: nn.Module, names: Tuple[str, ...]):
        super().__init__()
        self.net = net
        self.names = names

    def forward(self, *inputs):
        given = dict(zip(self.names, inputs))
        return (self.net(given.get('hist'), given.get('features')),)


def _perception(request: ExportRequest):
    from neural_ae.core.models.perception import load_perception

    return load_perception(request.checkpoint, request.sensor)


def _exposure_plan(request: ExportRequest) -> ExportPlan:
    from neural_ae.core.controllers.neural import load_exposure_model
    from neural_ae.core.histograms import multiscale_histogram

    mode = exposure_mode(request.ckpt)
    if mode is None:
        raise DeployError(f'{request.checkpoint} {_exposure_applies(request.ckpt)}')
    net = load_exposure_model(str(request.checkpoint), mode)
    h, w = request.frame_size
    raw = scene_frame(SCENE_SEED, h, w, request.sensor)
    inputs = []
    meta = {'neural_ae.mode': mode, 'neural_ae.m_exp': repr(float(getattr(net, 'm_exp', 10.0)))}
    if mode in ('histogram', 'hybrid'):
        hist = multiscale_histogram(raw, bit_depth=request.sensor.bit_depth,
                                    pattern=request.sensor.bayer_pattern)
        inputs.append(('hist', torch.from_numpy(np.asarray(hist, np.float32))[None]))
    if mode in ('semantic', 'hybrid'):
        perception = _perception(request)
        meta['neural_ae.detector_input'] = '%dx%d' % detector_input_for(perception, (h, w))
        inputs.append(('features', perception.run(raw).layer2.detach().float()))
    names = tuple(n for n, _ in inputs)
    return ExportPlan(_ExposureGraph(net, names).eval(), tuple(inputs), ('u',), meta)


class OnnxExposureNet:
    """
    An exported exposure net behind the torch net's call: ``(hist, features) -> u (1,)``.

    ``session``: a :class:`~neural_ae.core.deploy.runtime.Session`; ``mode`` and
    ``m_exp`` as recorded at export. Inputs are checked against the session's fixed
    shapes (one-line :class:`DeployError` naming both shapes).
    """

    def __init__(self, session, meta: dict):
        self.session = session
        self.mode = meta.get('neural_ae.mode', '')
        self.m_exp = float(meta.get('neural_ae.m_exp', '10.0'))

    def __call__(self, hist=None, features=None) -> torch.Tensor:
        feeds = {}
        for name, value in (('hist', hist), ('features', features)):
            if name not in self.session.inputs:
                continue
            if value is None:
                raise DeployError(f'{self.session.path}: exposure net ({self.mode}) needs '
                                  f'{name} {self.session.inputs[name]}, got None')
            feeds[name] = value
        return self.session.run(feeds)['u'].reshape(-1)


def _exposure_adapt(session, meta: dict) -> OnnxExposureNet:
    return OnnxExposureNet(session, meta)


def _detector_applies(ckpt: dict) -> Optional[str]:
    from neural_ae.core.checkpoints import is_training_checkpoint

    model = ckpt.get('model')
    if is_training_checkpoint(ckpt):
        if isinstance(model, dict) and any(isinstance(k, str) and k.startswith('detector.')
                                           for k in model):
            return None
        return 'holds no detector weights (no "detector.*" keys in "model")'
    return None  # a plain detector checkpoint: load_perception says what is wrong with it


class _DetectorGraph(nn.Module):
    """``forward(image (1, 3, H, W)) -> (boxes, scores, labels, layer2)``."""

    def __init__(self, detector: nn.Module):
        super().__init__()
        self.detector = detector

    def forward(self, image):
        dets, layer2 = self.detector(image)
        d = dets[0]
        return d['boxes'], d['scores'], d['labels'], layer2


def _detector_plan(request: ExportRequest) -> ExportPlan:
    perception = _perception(request)
    h, w = request.frame_size
    raw = scene_frame(SCENE_SEED, h, w, request.sensor)
    rgb, shape = perception._rgb(raw)
    meta = {'neural_ae.detector_input': '%dx%d' % tuple(shape)}
    return ExportPlan(_DetectorGraph(perception.detector).eval(), (('image', rgb.float()),),
                      ('boxes', 'scores', 'labels', 'layer2'), meta)


class OnnxDetector:
    """
    An exported detector behind :func:`~neural_ae.core.models.detector.detector_inference`.

    ``__call__(rgb (1, 3, H, W)) -> ([{'boxes', 'scores', 'labels'}], layer2)``, torch
    tensors; ``rgb`` must have the export's input size.
    """

    def __init__(self, session, meta: dict):
        self.session = session
        self.input_shape = tuple(session.inputs['image'])

    def __call__(self, rgb: torch.Tensor):
        if tuple(rgb.shape) != self.input_shape:
            raise DeployError(f'{self.session.path}: exported for detector input '
                              f'{self.input_shape}, got {tuple(rgb.shape)} (export again '
                              f'with --frame-size for these frames)')
        out = self.session.run({'image': rgb})
        det = {'boxes': out['boxes'].reshape(-1, 4), 'scores': out['scores'].reshape(-1),
               'labels': out['labels'].reshape(-1).to(torch.int64)}
        return [det], out['layer2']


def _detector_adapt(session, meta: dict) -> OnnxDetector:
    return OnnxDetector(session, meta)


EXPOSURE_NET = register(Exporter(
    'exposure_net', 'histogram / semantic / hybrid exposure network -> u',
    _exposure_applies, _exposure_plan, _exposure_adapt))
DETECTOR = register(Exporter(
    'detector', 'Faster R-CNN with its layer2 feature tap (fixed input size)',
    _detector_applies, _detector_plan, _detector_adapt))
