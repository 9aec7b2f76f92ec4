"""
Perception for the nodes and tools: the trained ISP and detector behind one call.

``Perception.run(raw)`` renders a raw Bayer frame with the (trained) ISP and runs the
detector once; the detector's ``layer2`` map from that same backbone pass is returned
for the semantic branch of the exposure networks.
"""
from pathlib import Path
from typing import Any, NamedTuple, Optional, Sequence

from neural_ae.core.errors import ModelError, NeuralAEError
from neural_ae.core.sensor import SensorConfig
import numpy as np

__all__ = ['detection_records', 'Perception', 'PerceptionResult', 'load_perception']


def detection_records(boxes, labels, scores, class_names: Optional[Sequence[str]] = None,
                      score_threshold: float = 0.0) -> list:
    """
    JSON-ready ``[{class_id, label, score, bbox_xyxy}]`` of the detections >= threshold.

    ``boxes`` ``(N, 4)`` xyxy [px], ``labels`` ``(N,)`` (``i + 1`` is ``class_names[i]``;
    default: the detector's classes; unknown labels are named by their number),
    ``scores`` ``(N,)`` in [0, 1]. Scores are rounded to 4 digits, boxes to 0.01 px.
    """
    if class_names is None:
        from neural_ae.core.models.detector import CLASSES as class_names
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
        dets, layer2 = detector_inference(self.detector, rgb)
        det = dets[0]
        boxes = det['boxes'].cpu().numpy()
        if shape != (h, w):
            boxes = boxes * np.array([w / shape[1], h / shape[0]] * 2, np.float32)
        return PerceptionResult(boxes, det['labels'].cpu().numpy(), det['scores'].cpu().numpy(),
                                layer2)


def _training_parts(ckpt: dict, path: Path, sensor: SensorConfig) -> tuple:
    """Detector + ISP of a ``neural-ae train`` checkpoint, without the training code."""
    from neural_ae.core.isp import ISP, ISPConfig
    from neural_ae.core.models.detector import build_detector, detector_config_for
    from neural_ae.core.sensor import sensor_from_dict

    cfg = ckpt.get('config') if isinstance(ckpt.get('config'), dict) else {}
    state = ckpt.get('model')
    if not isinstance(state, dict):
        raise ModelError(f'training checkpoint {path} holds no model state')
    train_sensor = (sensor_from_dict(ckpt['sensor'], source=str(path))
                    if isinstance(ckpt.get('sensor'), dict) else sensor)
    config = detector_config_for(int(cfg.get('height', 192)), int(cfg.get('width', 320)),
                                 cfg.get('detector') or {})
    isp_values = {'learnable': bool(cfg.get('isp_learnable', True))}
    isp_values.update({k: _tuples(v) for k, v in (cfg.get('isp') or {}).items()})
    detector = build_detector(config)
    isp = ISP(ISPConfig.from_sensor(train_sensor, **isp_values))
    detector.load_state_dict({k[len('detector.'):]: v for k, v in state.items()
                              if k.startswith('detector.')})
    isp.load_state_dict({k[len('isp.'):]: v for k, v in state.items() if k.startswith('isp.')})
    return detector, isp


def load_perception(path, sensor: SensorConfig, device: str = 'cpu') -> Perception:
    """
    Load a detector checkpoint (and its ISP) for the node.

    Accepted layouts (read by :func:`neural_ae.core.checkpoints.read_checkpoint`): a
    training checkpoint of ``neural-ae train`` (format ``neural_ae.train/*``: its trained
    ISP and detector, rebuilt from the embedded config); a plain detector state dict; or
    a dict with the state dict under ``'detector'``, ``'state_dict'`` or ``'model'``, an
    optional ``'detector_config'`` (``DetectorConfig`` fields) and an optional ``'isp'``
    state dict. Raises :class:`ModelError` for a missing or mismatching file.
    """
    import torch
    from neural_ae.core.checkpoints import is_training_checkpoint, read_checkpoint
    from neural_ae.core.isp import ISP, ISPConfig
    from neural_ae.core.models.detector import build_detector, DetectorConfig

    path = Path(path)
    ckpt = read_checkpoint(path, 'detector checkpoint')
    if is_training_checkpoint(ckpt):
        try:
            detector, isp = _training_parts(ckpt, path, sensor)
        except (NeuralAEError, RuntimeError, KeyError, TypeError, ValueError) as err:
            raise ModelError(f'cannot load the detector of training checkpoint {path}: '
                             f'{str(err).splitlines()[0]}') from err
        return Perception(detector, isp, device, str(path))
    state = ckpt.get('detector', ckpt.get('state_dict', ckpt.get('model', ckpt)))
    cfg = ckpt.get('detector_config') or {}
    try:
        config = DetectorConfig(**{k: _tuples(v) for k, v in cfg.items()})
        detector = build_detector(config)
        detector.load_state_dict(state)
        isp = ISP(ISPConfig.from_sensor(sensor))
        if isinstance(ckpt.get('isp'), dict):
            isp.load_state_dict(ckpt['isp'])
    except (TypeError, RuntimeError, KeyError, ValueError) as err:
        raise ModelError(f'detector checkpoint {path} does not match the detector: '
                         f'{str(err).splitlines()[0]}') from err
    dev = torch.device(device)
    return Perception(detector, isp, dev, str(path))
