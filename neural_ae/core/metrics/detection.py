"""
Average precision at IoU 0.5 per class and mAP, computed by faster-coco-eval.

The paper reports AP at IoU 0.5 per class and their mean over the six classes (Sec. 6.1,
Table 1). The numbers come from a maintained COCO implementation (faster-coco-eval,
the C++ port of pycocotools), never from our own matching code: this module only builds
the COCO ground-truth and detection dictionaries in memory.

Usage::

    acc = DetectionAccumulator()
    for image in images:
        acc.add(gt_boxes, gt_labels, det_boxes, det_scores, det_labels)
    result = acc.compute()   # {'map50': ..., 'ap50': {'car_van': ...}, ...}

Boxes are ``(N, 4)`` xyxy in pixels (numpy or torch), labels ``1..num_classes``.
Conventions (those of COCO): a class without any ground-truth box in the whole set has
no AP (``nan``) and is left out of the mean; a class with ground truth and no
detections has AP 0. With no ground truth at all, ``map50`` is ``nan``.
"""
import contextlib
import io
import logging
import math
from typing import Any, Dict, List, Optional, Sequence

from neural_ae.core.classes import CLASSES
from neural_ae.core.errors import EvaluationError
import numpy as np

LOG = logging.getLogger(__name__)


def _as_array(x, shape_tail, dtype, name) -> np.ndarray:
    if x is None:
        return np.zeros((0,) + shape_tail, dtype)
    if hasattr(x, 'detach'):
        x = x.detach().cpu().numpy()
    arr = np.asarray(x, dtype=dtype)
    if arr.size == 0:
        return np.zeros((0,) + shape_tail, dtype)
    if arr.shape[1:] != shape_tail:
        raise EvaluationError(f'{name} must have shape (N, {", ".join(map(str, shape_tail))})'
                              f' got {arr.shape}' if shape_tail else
                              f'{name} must have shape (N,), got {arr.shape}')
    return arr


def _coco_box(b) -> list:
    x1, y1, x2, y2 = (float(v) for v in b)
    return [x1, y1, max(x2 - x1, 0.0), max(y2 - y1, 0.0)]


class DetectionAccumulator:
    """
    Collect ground truth and detections image by image; :meth:`compute` the AP.

    ``classes`` names the labels ``1..len(classes)``. ``max_dets``: detections kept per
    image (highest scores), as COCO's ``maxDets``.
    """

    def __init__(self, classes: Sequence[str] = CLASSES, max_dets: int = 100):
        if not classes:
            raise EvaluationError('DetectionAccumulator needs at least one class')
        self.classes = tuple(classes)
        self.max_dets = int(max_dets)
        self.images: List[Dict[str, Any]] = []
        self.gt: List[Dict[str, Any]] = []
        self.dt: List[Dict[str, Any]] = []

    def __len__(self) -> int:
        return len(self.images)

    def add(self, gt_boxes, gt_labels, det_boxes=None, det_scores=None, det_labels=None,
            width: int = 0, height: int = 0) -> int:
        """Add one image; returns its COCO image id (1-based)."""
        gb = _as_array(gt_boxes, (4,), np.float64, 'gt_boxes')
        gl = _as_array(gt_labels, (), np.int64, 'gt_labels')
        db = _as_array(det_boxes, (4,), np.float64, 'det_boxes')
        ds = _as_array(det_scores, (), np.float64, 'det_scores')
        dl = _as_array(det_labels, (), np.int64, 'det_labels')
        if len(gb) != len(gl):
            raise EvaluationError(f'{len(gb)} ground-truth boxes but {len(gl)} labels')
        if not len(db) == len(ds) == len(dl):
            raise EvaluationError(f'detections: {len(db)} boxes, {len(ds)} scores, '
                                  f'{len(dl)} labels')
        n = len(self.classes)
        for name, lab in (('gt_labels', gl), ('det_labels', dl)):
            if lab.size and (lab.min() < 1 or lab.max() > n):
                raise EvaluationError(f'{name} must lie in 1..{n}, got {sorted(set(lab))}')
        image_id = len(self.images) + 1
        w = int(width) or int(math.ceil(max([1.0] + [b[2] for b in gb] + [b[2] for b in db])))
        h = int(height) or int(math.ceil(max([1.0] + [b[3] for b in gb] + [b[3] for b in db])))
        self.images.append({'id': image_id, 'width': w, 'height': h})
        for b, lab in zip(gb, gl):
            box = _coco_box(b)
            self.gt.append({'id': len(self.gt) + 1, 'image_id': image_id,
                            'category_id': int(lab), 'bbox': box,
                            'area': box[2] * box[3], 'iscrowd': 0})
        order = np.argsort(-ds, kind='stable')[:self.max_dets]
        for k in order:
            self.dt.append({'image_id': image_id, 'category_id': int(dl[k]),
                            'bbox': _coco_box(db[k]), 'score': float(ds[k])})
        return image_id

    def compute(self) -> dict:
        """
        Return ``{'map50', 'ap50': {class: AP}, 'num_gt': {class: n}, 'num_images'}``.

        AP values are floats in [0, 1] (``nan`` for classes without ground truth).
        """
        return average_precision_50(self.images, self.gt, self.dt, self.classes,
                                    self.max_dets)


def average_precision_50(images: list, gt_annotations: list, detections: list,
                         classes: Sequence[str] = CLASSES, max_dets: int = 100) -> dict:
    """
    AP at IoU 0.5 per class and their mean, from in-memory COCO lists.

    ``images``: COCO image dicts (``id``, ``width``, ``height``); ``gt_annotations``: COCO
    annotations (``bbox`` xywh); ``detections``: COCO results (``image_id``,
    ``category_id``, ``bbox`` xywh, ``score``). See :class:`DetectionAccumulator`.
    """
    from faster_coco_eval import COCO, COCOeval_faster

    n_gt = dict.fromkeys(classes, 0)
    for ann in gt_annotations:
        n_gt[classes[ann['category_id'] - 1]] += 1
    ap = {name: float('nan') for name in classes}
    result = {'map50': float('nan'), 'ap50': ap, 'num_gt': n_gt, 'num_images': len(images),
              'num_detections': len(detections)}
    if not images or not gt_annotations:
        return result
    gt = {'images': list(images), 'annotations': list(gt_annotations),
          'categories': [{'id': k + 1, 'name': name} for k, name in enumerate(classes)]}
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink):
        coco_gt = COCO(gt)
        if detections:
            coco_dt = coco_gt.loadRes(list(detections))
        else:
            coco_dt = COCO({'images': list(images), 'annotations': [],
                            'categories': gt['categories']})
        ev = COCOeval_faster(coco_gt, coco_dt, 'bbox', print_function=lambda *a, **k: None)
        ev.params.iouThrs = np.array([0.5])
        ev.params.maxDets = [max_dets]
        ev.params.areaRng = [[0.0, 1e10]]
        ev.params.areaRngLbl = ['all']
        ev.evaluate()
        ev.accumulate()
    precision = np.asarray(ev.eval['precision'])       # [T=1, R, K, A=1, M=1]
    cat_ids = list(ev.params.catIds)
    for k, cat in enumerate(cat_ids):
        name = classes[int(cat) - 1]
        p = precision[0, :, k, 0, -1]
        if n_gt[name] == 0:
            continue
        valid = p[p > -1]
        ap[name] = float(valid.mean()) if valid.size else 0.0
    values = [v for v in ap.values() if not math.isnan(v)]
    result['map50'] = float(np.mean(values)) if values else float('nan')
    return result


def format_ap(result: dict, prefix: Optional[str] = None) -> str:
    """One line: ``mAP@0.5 0.312 | bike 0.10 bus_truck 0.40 ...``."""
    head = f'{prefix} ' if prefix else ''
    parts = ' '.join(f'{k} {v:.3f}' for k, v in result['ap50'].items())
    return f'{head}mAP@0.5 {result["map50"]:.3f} | {parts}'
