"""
Perception for the nodes and tools: the trained ISP and detector behind one call.

``Perception.run(raw)`` renders a raw Bayer frame with the (trained) ISP and runs the
detector once; the detector's ``layer2`` map from that same backbone pass is returned
for the semantic branch of the exposure networks.
"""
from pathlib import Path

from neural_ae.core.errors import ModelError, NeuralAEError
from neural_ae.core.sensor import SensorConfig
import numpy as np

__all__ = ['Perception', 'load_perception']


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
    ISP + detector: ``run(raw) -> (boxes, labels, scores, layer2)``, one backbone pass.

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
        boxes, labels, scores, layer2 = self.run(raw)
        return ({'boxes': boxes.astype(np.float64).reshape(-1, 4),
                 'scores': scores.astype(np.float64).reshape(-1),
                 'labels': labels.astype(np.int64).reshape(-1)}, layer2)

    def run(self, raw: np.ndarray) -> tuple:
        """Detect on a raw frame; ``layer2`` is the semantic branch's input (1, 128, h, w)."""
        from neural_ae.core.models.detector import detector_inference

        h, w = raw.shape
        rgb, shape = self._rgb(raw)
        dets, layer2 = detector_inference(self.detector, rgb)
        det = dets[0]
        boxes = det['boxes'].cpu().numpy()
        if shape != (h, w):
            boxes = boxes * np.array([w / shape[1], h / shape[0]] * 2, np.float32)
        return (boxes, det['labels'].cpu().numpy(), det['scores'].cpu().numpy(), layer2)


def load_perception(path, sensor: SensorConfig, device: str = 'cpu') -> Perception:
    """
    Load a detector checkpoint (and its ISP) for the node.

    Accepted layouts (read with ``weights_only=True``): a training checkpoint of
    ``neural-ae train`` (format ``neural_ae.train/*``: its trained ISP and detector, through
    :func:`neural_ae.core.training.engine.load_pipeline`); a plain detector state dict; or
    a dict with the state dict under ``'detector'``, ``'state_dict'`` or ``'model'``, an
    optional ``'detector_config'`` (``DetectorConfig`` fields) and an optional ``'isp'``
    state dict. Raises :class:`ModelError` for a missing or mismatching file.
    """
    import torch
    from neural_ae.core.isp import ISP, ISPConfig
    from neural_ae.core.models.detector import build_detector, DetectorConfig

    path = Path(path)
    if not path.is_file():
        raise ModelError(f'detector checkpoint not found: {path}')
    try:
        ckpt = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch raises many types for bad files
        raise ModelError(f'cannot read detector checkpoint {path}: '
                         f'{str(err).splitlines()[0]}') from err
    if not isinstance(ckpt, dict):
        raise ModelError(f'detector checkpoint {path} holds {type(ckpt).__name__}, not a dict')
    if str(ckpt.get('format', '')).startswith('neural_ae.train/'):
        try:
            from neural_ae.core.training.engine import load_pipeline
            pipe, _, _ = load_pipeline(path, device)
        except (ImportError, NeuralAEError, RuntimeError, KeyError) as err:
            raise ModelError(f'cannot load the detector of training checkpoint {path}: '
                             f'{str(err).splitlines()[0]}') from err
        return Perception(pipe.detector, pipe.isp, device, str(path))
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
