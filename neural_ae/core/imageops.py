"""
Image operations that keep annotations in step with the pixels.

:func:`resize_with_boxes` resizes an image and scales its boxes with it: the one resize
of training data (:mod:`neural_ae.core.training.data`) and of the HDR-bag evaluation
protocol (:mod:`neural_ae.core.evaluation.bag`).
"""
import cv2
from neural_ae.core.checks import check_shape
from neural_ae.core.errors import HDRError
import numpy as np

__all__ = ['resize_with_boxes']


def resize_with_boxes(image: np.ndarray, boxes, height: int, width: int) -> tuple:
    """
    Resize ``image`` to ``height x width`` pixels and scale ``boxes`` with it.

    :param image: ``(H, W, C)`` array, e.g. linear RGB radiance [e-/s] (any dtype
        ``cv2.resize`` takes; float32 stays float32).
    :param boxes: ``(N, 4)`` boxes ``x1, y1, x2, y2`` in pixels of ``image`` (an empty
        array of any shape means no box).
    :param height: target height in pixels (> 0).
    :param width: target width in pixels (> 0).
    :return: ``(image, boxes)``: the image resized with area interpolation
        (``cv2.INTER_AREA``), or ``image`` itself when it already has that size, and the
        boxes as a new float32 ``(N, 4)`` array, x scaled by ``width / W`` and y by
        ``height / H`` (not clipped, not rounded).
    :raises HDRError: ``image`` is not a non-empty ``(H, W, C)`` array, ``boxes`` is not
        ``(N, 4)`` or the target size is not positive.
    """
    h, w, _ = check_shape(image, ('H', 'W', 'C'), 'resize_with_boxes: image', error=HDRError,
                          kind='array')
    if h == 0 or w == 0:
        raise HDRError(f'resize_with_boxes: image is empty, shape {image.shape}')
    if int(height) != height or int(width) != width or height <= 0 or width <= 0:
        raise HDRError(f'resize_with_boxes: target size must be positive integers, '
                       f'got {height} x {width}')
    boxes = np.asarray(boxes, np.float32)
    if boxes.size == 0:
        boxes = boxes.reshape(0, 4)
    check_shape(boxes, ('N', 4), 'resize_with_boxes: boxes', error=HDRError)
    boxes = boxes.copy()
    if (h, w) == (height, width):
        return image, boxes
    out = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    boxes[:, [0, 2]] *= width / w
    boxes[:, [1, 3]] *= height / h
    return out, boxes
