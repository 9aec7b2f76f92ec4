"""
Perception for the nodes and tools: the trained ISP and detector behind one call.

``Perception.run(raw)`` renders a raw Bayer frame with the (trained) ISP and runs the
detector once; the detector's ``layer2`` map from that same backbone pass is returned
for the semantic branch of the exposure networks.
"""
import math
from pathlib import Path
from typing import Any, Dict, NamedTuple, Optional, Sequence

from neural_ae.core.errors import ModelError, NeuralAEError
from neural_ae.core.sensor import SensorConfig
import numpy as np

__all__ = ['check_detector_values', 'check_isp_values', 'detection_records', 'load_perception',
           'MAX_FRAME_SIDE', 'Perception', 'PerceptionResult']


def detection_records(boxes, labels, scores, class_names: Optional[Sequence[str]] = None,
                      score_threshold: float = 0.0) -> list:
    """
    JSON-ready ``[{class_id, label, score, bbox_xyxy}]`` of the detections >= threshold.

    ``boxes`` ``(N, 4)`` xyxy [px], ``labels`` ``(N,)`` (``i + 1`` is ``class_names[i]``;
    default: the detector's classes; unknown labels are named by their number),
    ``scores`` ``(N,)`` in [0, 1]. Scores are rounded to 4 digits, boxes to 0.01 px.
    """
    if class_names is None:
        from neural_ae.core.models.detector import CLASSES

        class_names = CLASSES
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    labels = np.asarray(labels).reshape(-1)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    out = []
    for box, label, score in zip(boxes, labels, scores):
        if score < score_threshold:
            continue
        idx = int(label) - 1
        name = class_names[idx] if 0 <= idx < len(class_names) else str(int(label))
        out.append({'class_id': name, 'label': int(label), 'score': round(float(score), 4),
                    'bbox_xyxy': [round(float(v), 2) for v in box]})
    return out


class PerceptionResult(NamedTuple):
    """
    One :meth:`Perception.run`: detections on the input frame and the ``layer2`` map.

    ``boxes`` ``(N, 4)`` float32 xyxy [px of the input frame], ``labels`` ``(N,)`` int64
    (1-based class ids), ``scores`` ``(N,)`` float32 in [0, 1], ``layer2`` the backbone's
    ``(1, 128, h, w)`` torch map (the semantic branch's input). Unpacks as the 4-tuple
    ``boxes, labels, scores, layer2``.
    """

    boxes: np.ndarray
    labels: np.ndarray
    scores: np.ndarray
    layer2: Any

    def arrays(self) -> dict:
        """Return ``{'boxes' (N, 4), 'scores' (N,), 'labels' (N,)}`` as float64 / int64."""
        return {'boxes': self.boxes.astype(np.float64).reshape(-1, 4),
                'scores': self.scores.astype(np.float64).reshape(-1),
                'labels': self.labels.astype(np.int64).reshape(-1)}

    def records(self, score_threshold: float = 0.0) -> list:
        """Return :func:`detection_records` of these detections."""
        return detection_records(self.boxes, self.labels, self.scores,
                                 score_threshold=score_threshold)


def _tuples(value):
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    return value


def detector_input_size(height: int, width: int, min_size: int, max_size: int) -> tuple:
    """
    Even ``(h, w)`` the detector's transform would resize a frame to (never larger).

    torchvision scales the short side to ``min_size`` unless the long side would exceed
    ``max_size``; we only ever shrink.
    """
    scale = min(1.0, min_size / min(height, width), max_size / max(height, width))
    h = max(2, int(round(height * scale / 2)) * 2)
    w = max(2, int(round(width * scale / 2)) * 2)
    return min(h, height // 2 * 2), min(w, width // 2 * 2)


class Perception:
    """
    ISP + detector: ``run(raw) ->`` :class:`PerceptionResult`, one backbone pass.

    A frame larger than the detector's input is first shrunk in the Bayer domain
    (:func:`neural_ae.core.preview.resize_bayer`) to the size the detector would resize it
    to anyway, so the ISP runs at detector resolution (at 1936x1216 about 30x fewer pixels);
    boxes are scaled back to the input frame.
    """

    def __init__(self, detector, isp, device='cpu', source: str = ''):
        import torch

        self.device = torch.device(device)
        self.detector = detector.to(self.device).eval()
        self.isp = isp.to(self.device).eval()
        self.source = source
        self.infer = None  # rgb -> (detections, layer2) of a non-torch backend (core.deploy)
        self.backend = 'torch'

    def _rgb(self, raw: np.ndarray):
        """Bin ``raw`` to detector resolution if larger, then run the ISP (no grad)."""
        import torch
        from neural_ae.core.preview import resize_bayer

        t = getattr(self.detector, 'transform', None)
        h, w = raw.shape
        if t is not None:
            sh, sw = detector_input_size(h, w, int(min(t.min_size)), int(t.max_size))
            if (sh, sw) != (h, w):
                raw = resize_bayer(raw, sh, sw)
        x = torch.from_numpy(np.ascontiguousarray(raw, dtype=np.float32))[None, None]
        with torch.no_grad():
            return self.isp(x.to(self.device)), raw.shape

    def features(self, raw: np.ndarray):
        """Return only the backbone's ``layer2`` map (semantic branch input, frame 1)."""
        import torch

        rgb, _ = self._rgb(raw)
        with torch.no_grad():
            return self.detector.semantic_features(rgb)

    def detect(self, raw: np.ndarray) -> tuple:
        """Return ``({'boxes', 'scores', 'labels'} numpy, layer2)`` for a raw frame."""
        result = self.run(raw)
        return result.arrays(), result.layer2

    def run(self, raw: np.ndarray) -> PerceptionResult:
        """Detect on a raw frame; ``layer2`` is the semantic branch's input (1, 128, h, w)."""
        from neural_ae.core.models.detector import detector_inference

        h, w = raw.shape
        rgb, shape = self._rgb(raw)
        dets, layer2 = (self.infer(rgb) if self.infer is not None
                        else detector_inference(self.detector, rgb))
        det = dets[0]
        boxes = det['boxes'].cpu().numpy()
        if shape != (h, w):
            boxes = boxes * np.array([w / shape[1], h / shape[0]] * 2, np.float32)
        return PerceptionResult(boxes, det['labels'].cpu().numpy(), det['scores'].cpu().numpy(),
                                layer2)


MAX_FRAME_SIDE = 8192
"""Largest training frame side [px] a checkpoint may declare (``TrainConfig`` bound too)."""

_DETECTOR_INT_LIMITS = {
    'num_classes': (2, 1000), 'min_size': (1, MAX_FRAME_SIDE),
    'max_size': (1, MAX_FRAME_SIDE), 'widths': (1, 4096), 'gn_groups': (1, 4096),
    'fpn_layers': (1, 4), 'fpn_channels': (1, 4096), 'anchor_sizes': (1, MAX_FRAME_SIDE),
    'rpn_pre_nms_top_n_train': (1, 100_000), 'rpn_post_nms_top_n_train': (1, 100_000),
    'rpn_pre_nms_top_n_test': (1, 100_000), 'rpn_post_nms_top_n_test': (1, 100_000),
    'rpn_batch_size_per_image': (1, 100_000), 'box_batch_size_per_image': (1, 100_000),
    'box_detections_per_img': (1, 10_000), 'representation_size': (1, 16_384)}
_DETECTOR_FLOAT_LIMITS = {
    'aspect_ratios': (1e-3, 1e3), 'image_mean': (-1e3, 1e3), 'image_std': (1e-6, 1e3),
    'box_score_thresh': (0.0, 1.0)}
_ISP_FLOAT_LIMITS = {
    'black_level_dn': (0.0, 2.0 ** 32), 'white_level_dn': (1.0, 2.0 ** 32),
    'wb_gains': (1e-3, 1e3), 'ccm': (-1e3, 1e3), 'gamma': (1e-2, 1e2), 'eps': (1e-9, 1.0),
    'clamp_leak': (0.0, 1.0)}
MAX_CONFIG_LEAVES = 64
"""Most numbers one detector / ISP setting may hold (tuples of tuples included)."""


def _leaves(value, key: str, where: str, error) -> list:
    """Return the numbers of a number or (nested) list/tuple; raise ``error`` otherwise."""
    out: list = []
    todo = [value]
    while todo:
        v = todo.pop()
        if isinstance(v, (list, tuple)):
            todo.extend(v)
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out.append(v)
        else:
            raise error(f'{where}: {key} must be a number or a list of numbers, got '
                        f'{type(v).__name__} {str(v)[:40]!r}')
        if len(out) + len(todo) > MAX_CONFIG_LEAVES:
            raise error(f'{where}: {key} holds more than {MAX_CONFIG_LEAVES} numbers')
    return out


def check_detector_values(values, where: str, error=ModelError) -> dict:
    """
    Check ``DetectorConfig`` overrides (a training config's ``detector:``, a checkpoint's).

    Known keys only; integer settings are integers within generous bounds (channels
    <= 4096, sizes <= ``MAX_FRAME_SIDE``, box counts <= 100,000), float settings finite
    and bounded, ``norm`` a string. Raises ``error`` (one line naming ``where`` and the
    key) so that a model file or config cannot make the detector allocate without limit.
    Returns ``values``.
    """
    from dataclasses import fields

    from neural_ae.core.models.detector import DetectorConfig

    if not isinstance(values, dict):
        raise error(f'{where}: detector must be a mapping, got {type(values).__name__}')
    allowed = {f.name for f in fields(DetectorConfig)}
    unknown = sorted(str(k) for k in set(values) - allowed)
    if unknown:
        raise error(f'{where}: unknown detector key(s) {unknown}; allowed: {sorted(allowed)}')
    for key, value in values.items():
        if key == 'norm':
            if not isinstance(value, str):
                raise error(f'{where}: detector.norm must be a string, got '
                            f'{type(value).__name__}')
            continue
        leaves = _leaves(value, f'detector.{key}', where, error)
        lo: float  # int bounds for the integer settings, float bounds for the others
        hi: float
        if key in _DETECTOR_INT_LIMITS:
            lo, hi = _DETECTOR_INT_LIMITS[key]
            bad = [v for v in leaves if not isinstance(v, int) or not lo <= v <= hi]
            if bad:
                raise error(f'{where}: detector.{key} must hold integers in [{lo}, {hi}], '
                            f'got {bad[0]!r}')
        else:
            lo, hi = _DETECTOR_FLOAT_LIMITS[key]
            bad = [v for v in leaves if not (math.isfinite(v) and lo <= v <= hi)]
            if bad:
                raise error(f'{where}: detector.{key} must hold finite numbers in '
                            f'[{lo:g}, {hi:g}], got {bad[0]!r}')
    return values


def check_isp_values(values, where: str, error=ModelError) -> dict:
    """
    Check ``ISPConfig`` overrides (a training config's ``isp:``, a checkpoint's).

    Known keys only, ``pattern`` a string, ``learnable`` a bool, the rest finite numbers
    (or lists of them) within bounds; raises ``error`` naming ``where`` and the key.
    """
    from dataclasses import fields

    from neural_ae.core.isp import ISPConfig

    if not isinstance(values, dict):
        raise error(f'{where}: isp must be a mapping, got {type(values).__name__}')
    allowed = {f.name for f in fields(ISPConfig)}
    unknown = sorted(str(k) for k in set(values) - allowed)
    if unknown:
        raise error(f'{where}: unknown isp key(s) {unknown}; allowed: {sorted(allowed)}')
    for key, value in values.items():
        if key in ('pattern', 'learnable'):
            kind = str if key == 'pattern' else bool
            if not isinstance(value, kind):
                raise error(f'{where}: isp.{key} must be {kind.__name__}, got '
                            f'{type(value).__name__}')
            continue
        lo, hi = _ISP_FLOAT_LIMITS[key]
        bad = [v for v in _leaves(value, f'isp.{key}', where, error)
               if not (math.isfinite(v) and lo <= v <= hi)]
        if bad:
            raise error(f'{where}: isp.{key} must hold finite numbers in [{lo:g}, {hi:g}], '
                        f'got {bad[0]!r}')
    return values


def _training_parts(ckpt: dict, path: Path, sensor: SensorConfig) -> tuple:
    """
    Detector + ISP of a ``neural-ae train`` checkpoint, without the training code.

    The embedded ``config`` is required and checked (``height`` / ``width`` even integers
    in [64, ``MAX_FRAME_SIDE``], ``detector`` / ``isp`` overrides as in
    :func:`check_detector_values` / :func:`check_isp_values`, ``isp_learnable`` a bool),
    as is the ``model`` state (both parts' keys present).
    """
    from neural_ae.core.checkpoints import load_state, meta_int, meta_mapping
    from neural_ae.core.isp import ISP, ISPConfig
    from neural_ae.core.models.detector import build_detector, detector_config_for
    from neural_ae.core.sensor import sensor_from_dict

    where = f'training checkpoint {path}'
    if 'config' not in ckpt:
        raise ModelError(f'{where}: no "config" (neural-ae train always writes it): damaged '
                         f'or not written by neural-ae train; cannot rebuild its detector')
    cfg: Dict[str, Any] = meta_mapping(ckpt['config'], 'config', where)
    state = ckpt.get('model')
    if not isinstance(state, dict):
        raise ModelError(f'{where} holds no model state ("model" is '
                         f'{type(state).__name__})')
    train_sensor = sensor
    if 'sensor' in ckpt:
        train_sensor = sensor_from_dict(meta_mapping(ckpt['sensor'], 'sensor', where),
                                        source=str(path))
    height = meta_int(cfg.get('height', 192), 'config.height', where, 64, MAX_FRAME_SIDE)
    width = meta_int(cfg.get('width', 320), 'config.width', where, 64, MAX_FRAME_SIDE)
    if height % 2 or width % 2:
        raise ModelError(f'{where}: config.height and config.width must be even, got '
                         f'{height} x {width}')
    det_values = check_detector_values(cfg.get('detector') or {}, where)
    isp_over = check_isp_values(cfg.get('isp') or {}, where)
    learnable = cfg.get('isp_learnable', True)
    if not isinstance(learnable, bool):
        raise ModelError(f'{where}: config.isp_learnable must be a bool, got '
                         f'{type(learnable).__name__}')
    config = detector_config_for(height, width, det_values)
    isp_values: Dict[str, Any] = {'learnable': learnable}
    isp_values.update({k: _tuples(v) for k, v in isp_over.items()})
    detector = build_detector(config)
    isp = ISP(ISPConfig.from_sensor(train_sensor, **isp_values))
    det_state = {k[len('detector.'):]: v for k, v in state.items()
                 if isinstance(k, str) and k.startswith('detector.')}
    if not det_state:
        raise ModelError(f'{where} holds no detector weights (no "detector.*" keys in '
                         f'"model")')
    load_state(detector, det_state, where, 'the detector')
    load_state(isp, {k[len('isp.'):]: v for k, v in state.items()
                     if isinstance(k, str) and k.startswith('isp.')}, where, 'the ISP')
    return detector, isp


def load_perception(path, sensor: SensorConfig, device: str = 'cpu', backend: str = 'torch',
                    deploy_dir=None, frame_size=None) -> Perception:
    """
    Load a detector checkpoint (and its ISP) for the node.

    ``backend``: ``'torch'``, or ``'onnxruntime'`` / ``'tensorrt'`` to run the detector
    from its exported file (in ``deploy_dir``, default beside ``path``), checked for
    ``frame_size`` ``(H, W)`` frames: :func:`neural_ae.core.deploy.attach_detector_backend`
    (a missing or stale file raises here, not at the first frame).

    Accepted layouts (read by :func:`neural_ae.core.checkpoints.read_checkpoint`): a
    training checkpoint of ``neural-ae train`` (format ``neural_ae.train/*``: its trained
    ISP and detector, rebuilt from the embedded config, which must be there); a plain
    detector state dict; or a dict with the state dict under ``'detector'``,
    ``'state_dict'`` or ``'model'``, an optional ``'detector_config'`` (``DetectorConfig``
    fields, checked by :func:`check_detector_values`) and an optional ``'isp'`` state
    dict. Every metadata value is checked before anything is built; raises a one-line
    :class:`ModelError` naming the file (and the key) for a missing, foreign or
    mismatching file.
    """
    import torch
    from neural_ae.core.checkpoints import is_training_checkpoint, load_state, read_checkpoint
    from neural_ae.core.isp import ISP, ISPConfig
    from neural_ae.core.models.detector import build_detector, DetectorConfig

    path = Path(path)
    ckpt = read_checkpoint(path, 'detector checkpoint')
    if is_training_checkpoint(ckpt):
        try:
            detector, isp = _training_parts(ckpt, path, sensor)
        except ModelError:
            raise
        except (NeuralAEError, RuntimeError, KeyError, TypeError, ValueError) as err:
            raise ModelError(f'cannot load the detector of training checkpoint {path}: '
                             f'{str(err).splitlines()[0]}') from err
        return _with_backend(Perception(detector, isp, device, str(path)), path, backend,
                             deploy_dir, frame_size)
    where = f'detector checkpoint {path}'
    state = ckpt.get('detector', ckpt.get('state_dict', ckpt.get('model', ckpt)))
    cfg = check_detector_values(ckpt.get('detector_config') or {}, where)
    try:
        detector = build_detector(DetectorConfig(**{k: _tuples(v) for k, v in cfg.items()}))
        isp = ISP(ISPConfig.from_sensor(sensor))
    except (TypeError, RuntimeError, KeyError, ValueError) as err:
        raise ModelError(f'{where}: its detector_config cannot build a detector: '
                         f'{str(err).splitlines()[0]}') from err
    load_state(detector, state, where, 'the detector')
    if 'isp' in ckpt:
        load_state(isp, ckpt['isp'], where, 'the ISP')
    dev = torch.device(device)
    return _with_backend(Perception(detector, isp, dev, str(path)), path, backend, deploy_dir,
                         frame_size)


def _with_backend(perception: Perception, path: Path, backend: str, deploy_dir,
                  frame_size) -> Perception:
    if backend == 'torch':
        return perception
    from neural_ae.core.deploy import attach_detector_backend

    return attach_detector_backend(perception, path, backend, str(perception.device),
                                   deploy_dir, frame_size)
