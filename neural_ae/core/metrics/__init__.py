"""
Metrics shared by training and evaluation (both may import this package).

- :mod:`neural_ae.core.metrics.detection`: AP at IoU 0.5 per class and mAP
  (faster-coco-eval), :class:`~neural_ae.core.metrics.detection.DetectionAccumulator`;
- :mod:`neural_ae.core.metrics.temporal`: convergence, overshoot, oscillation and
  flicker of a closed-loop exposure sequence.
"""
