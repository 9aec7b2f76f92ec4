"""AP@0.5 per class and mAP through faster-coco-eval on hand-made cases."""
import math

from neural_ae.core.errors import EvaluationError
from neural_ae.core.metrics.detection import (average_precision_50, CLASSES,
                                              DetectionAccumulator, format_ap)
import numpy as np
import pytest
import torch

GT = np.array([[10, 10, 30, 40], [50, 20, 90, 60], [5, 60, 20, 90]], np.float32)
LABELS = np.array([1, 3, 3])


def test_perfect_detections_give_ap_one():
    acc = DetectionAccumulator()
    for _ in range(3):
        acc.add(GT, LABELS, GT, [0.9, 0.8, 0.7], LABELS, width=100, height=100)
    res = acc.compute()
    assert res['map50'] == pytest.approx(1.0)
    assert res['ap50']['bike'] == pytest.approx(1.0) and res['ap50']['car_van'] == 1.0
    assert math.isnan(res['ap50']['person'])                 # no ground truth: no AP
    assert res['num_gt']['car_van'] == 6 and res['num_images'] == 3


def test_no_detections_give_ap_zero():
    acc = DetectionAccumulator()
    acc.add(GT, LABELS, width=100, height=100)
    acc.add(torch.from_numpy(GT), torch.from_numpy(LABELS), torch.zeros(0, 4), torch.zeros(0),
            torch.zeros(0, dtype=torch.int64))
    res = acc.compute()
    assert res['map50'] == 0.0 and res['ap50']['bike'] == 0.0


def test_iou_threshold_half_wrong_class_and_ranking():
    shifted = GT.copy()
    shifted[1] += [15, 0, 15, 0]      # IoU 25/55 < 0.5 with its box: a false positive
    acc = DetectionAccumulator()
    acc.add(GT, LABELS, shifted, [0.9, 0.8, 0.7], LABELS)
    res = acc.compute()
    assert res['ap50']['bike'] == pytest.approx(1.0)
    # car_van: the higher-scored detection misses (FP), the other hits: recall reaches
    # 0.5 at precision 0.5; COCO's 101-point interpolation gives 51 * 0.5 / 101
    assert res['ap50']['car_van'] == pytest.approx(51 * 0.5 / 101)
    wrong = DetectionAccumulator()
    wrong.add(GT, LABELS, GT, [0.9, 0.8, 0.7], [2, 2, 2])
    assert wrong.compute()['map50'] == 0.0
    assert 'mAP@0.5' in format_ap(res, 'val')


def test_empty_set_and_bad_input():
    assert math.isnan(average_precision_50([], [], [])['map50'])
    acc = DetectionAccumulator()
    with pytest.raises(EvaluationError, match='labels must lie in 1..6'):
        acc.add(GT, [0, 1, 2])
    with pytest.raises(EvaluationError, match='3 ground-truth boxes but 2 labels'):
        acc.add(GT, [1, 2])
    with pytest.raises(EvaluationError, match=r'gt_boxes must have shape \(N, 4\) got \(3, 3\)'):
        acc.add(GT[:, :3], LABELS)
    assert len(CLASSES) == 6
