"""
The oracle (the ceiling of both protocols): its sweep, its per-image score, its controller.

With hindsight, per frame: a dense log sweep of exposures
``e_base * 2 ** linspace(-range_ev, range_ev, n)`` (:class:`OracleSpec`), each candidate
detected by the oracle's detector; the candidate with the best per-image score wins.
Score (:func:`image_score`): per-image AP at IoU 0.5 over the classes present in the
image (faster-coco-eval), ties broken by a soft count (:func:`soft_score`): the sum of
the confidences of detections matched to a ground-truth box (greedy by confidence, same
class, IoU >= 0.5) minus the sum of those of unmatched detections. An image without
ground truth scores by the soft count alone (fewest confident false positives). Because
per-image scores do not add up to the pooled AP exactly, the oracle's mAP is a ceiling in
practice, not by proof (it is by proof on a single image).

The shift protocol (:mod:`.shift`) sweeps frame 2 itself; the drives (:mod:`.drives`)
run :class:`DetectorOracle` in closed loop.
"""
from dataclasses import dataclass
import math
from typing import Optional

from neural_ae.core import sensor as S
from neural_ae.core.controllers import ControllerOptions
from neural_ae.core.controllers.oracle import OracleController
from neural_ae.core.errors import EvaluationError
from neural_ae.core.metrics.detection import DetectionAccumulator
from neural_ae.core.models.perception import Perception
import numpy as np
import torch

__all__ = ['DetectorOracle', 'image_score', 'OracleSpec', 'soft_score']


@dataclass
class OracleSpec:
    """The oracle's detector and sweep: ``e_base * 2 ** linspace(-range_ev, range_ev, n)``."""

    perception: Perception
    detector_from: str = ''
    n_sweep: int = 9
    range_ev: float = 5.0

    def factors(self) -> np.ndarray:
        """Sweep factors relative to ``e_base`` of the frame."""
        if self.n_sweep < 1:
            raise EvaluationError(f'oracle sweep needs >= 1 point, got {self.n_sweep}')
        return 2.0 ** np.linspace(-self.range_ev, self.range_ev, self.n_sweep)


def soft_score(gt_boxes, gt_labels, dets: dict, iou: float = 0.5) -> float:
    """
    Sum of confidences of matched detections minus that of unmatched ones (one image).

    Greedy matching by decreasing confidence to an unmatched ground-truth box of the same
    class with IoU >= ``iou`` (the oracle's tie-break proxy; AP itself comes from the
    library).
    """
    from torchvision.ops import box_iou

    scores = np.asarray(dets['scores'], np.float64).reshape(-1)
    if scores.size == 0:
        return 0.0
    gb = torch.as_tensor(np.asarray(gt_boxes, np.float64).reshape(-1, 4))
    gl = np.asarray(gt_labels, np.int64).reshape(-1)
    db = torch.as_tensor(np.asarray(dets['boxes'], np.float64).reshape(-1, 4))
    dl = np.asarray(dets['labels'], np.int64).reshape(-1)
    ious = box_iou(db, gb).numpy() if len(gb) else np.zeros((len(db), 0))
    used = np.zeros(len(gl), bool)
    total = 0.0
    for k in np.argsort(-scores, kind='stable'):
        cand = np.nonzero((gl == dl[k]) & ~used & (ious[k] >= iou))[0] if len(gl) else \
            np.zeros(0, np.intp)
        if len(cand):
            used[cand[np.argmax(ious[k, cand])]] = True
            total += scores[k]
        else:
            total -= scores[k]
    return float(total)


def image_score(gt_boxes, gt_labels, dets: dict, width: int = 0, height: int = 0) -> tuple:
    """
    Oracle's per-image score ``(AP@0.5 of the image, soft score)``, compared as a tuple.

    The AP is faster-coco-eval's over the classes present in the image (0 for an image
    without ground truth, so the soft score decides).
    """
    gl = np.asarray(gt_labels).reshape(-1)
    ap = 0.0
    if gl.size:
        acc = DetectionAccumulator()
        acc.add(gt_boxes, gt_labels, dets['boxes'], dets['scores'], dets['labels'],
                width=width, height=height)
        ap = acc.compute()['map50']
        ap = 0.0 if not math.isfinite(ap) else ap
    return (float(ap), soft_score(gt_boxes, gt_labels, dets))


class DetectorOracle(OracleController):
    """
    Closed-loop oracle: per frame, the best exposure of a sweep by the detector's score.

    The closed loop hands it (``set_scene``) the Bayer irradiance of the frame its command
    will expose; the ground truth of that frame is looked up by identity in ``truth``
    (``id(phi) -> (boxes, labels)``; the drive frames hold their ``phi`` arrays). The
    sweep is ``e_base(frame) * factors`` through the bounds, each candidate rendered with
    sensor noise of one fixed seed (the detectors were trained on noisy frames; the
    frame then captured in the loop has its own noise draw).
    """

    def __init__(self, perception: Perception, truth: dict, factors, sensor=None,
                 options: Optional[ControllerOptions] = None):
        super().__init__(options, sensor, n_sweep=3, refine_iters=0, noise=True, seed=0)
        self.perception = perception
        self.truth = truth
        self.factors = np.asarray(factors, np.float64)
        self._gt = None

    def set_scene(self, radiance: np.ndarray) -> None:
        """Remember the frame to expose and its ground truth."""
        self._gt = self.truth.get(id(radiance))
        super().set_scene(radiance)

    def propose(self, raw, used, features, info) -> float:
        """Return the best exposure of the sweep for the next frame."""
        phi = self._phi
        if phi is None or self._gt is None:
            return math.nan
        eb = S.e_base_s(phi, self.sensor)
        h, w = phi.shape
        best = None
        for fac in self.factors:
            t, g, _ = self.limits.split(eb * fac)
            dets, _ = self.perception.detect(self.render(t * g))
            score = image_score(self._gt[0], self._gt[1], dets, w, h)
            if best is None or score > best[0]:
                best = (score, t * g)
        info['oracle_score'] = best[0]
        return best[1]
