"""
Publish detections as ``vision_msgs/Detection2DArray`` where installed, as JSON otherwise.

``vision_msgs`` is the ecosystem's standard but it is not on PyPI, so this module imports
it lazily. Without it, :class:`DetectionPublisher` says so once (a warning naming the
fallback topic) and publishes one ``std_msgs/String`` per frame on ``<topic>_json``
holding::

    {"stamp": {"sec": s, "nanosec": ns}, "frame_id": "...",
     "detections": [{"class_id": "car_van", "label": 3, "score": 0.9,
                     "bbox_xyxy": [x1, y1, x2, y2]}, ...]}

Boxes are in pixels of the input image (xyxy, pixel edges). The JSON encoding is the same
one ``neural-ae replay`` writes into its output bag (:func:`detections_to_dict`); message
packages are imported only by the publisher, so that function works without ROS.
"""
import json
from typing import Sequence

from neural_ae.core.classes import CLASSES as CLASS_NAMES
from neural_ae.core.models.perception import detection_records
import numpy as np

__all__ = [
    'CLASS_NAMES',
    'DetectionPublisher',
    'detections_to_dict',
    'empty_detections',
    'have_vision_msgs',
    'to_detection2d_array',
]


def _vision_msgs():
    try:
        from vision_msgs import msg
    except ImportError:
        return None
    return msg


def have_vision_msgs() -> bool:
    """Whether ``vision_msgs`` can be imported here."""
    return _vision_msgs() is not None


def detections_to_dict(boxes, labels, scores, class_names: Sequence[str] = CLASS_NAMES,
                       score_threshold: float = 0.0) -> list:
    """
    List of ``{class_id, label, score, bbox_xyxy}`` dicts (score >= threshold).

    The same records ``neural-ae replay`` writes:
    :func:`neural_ae.core.models.perception.detection_records`.
    """
    return detection_records(boxes, labels, scores, class_names, score_threshold)


def to_detection2d_array(header, detections: list):
    """Build a ``vision_msgs/Detection2DArray`` (vision_msgs 4.x layout; 3.x also handled)."""
    vm = _vision_msgs()
    if vm is None:
        raise ImportError('vision_msgs is not installed')
    array = vm.Detection2DArray()
    array.header = header
    for det in detections:
        x1, y1, x2, y2 = det['bbox_xyxy']
        d = vm.Detection2D()
        d.header = header
        center = d.bbox.center
        if hasattr(center, 'position'):  # vision_msgs >= 4: vision_msgs/Pose2D
            center.position.x, center.position.y = (x1 + x2) / 2.0, (y1 + y2) / 2.0
        else:  # vision_msgs 3: geometry_msgs/Pose2D
            center.x, center.y = (x1 + x2) / 2.0, (y1 + y2) / 2.0
        d.bbox.size_x, d.bbox.size_y = float(x2 - x1), float(y2 - y1)
        hyp = vm.ObjectHypothesisWithPose()
        if hasattr(hyp, 'hypothesis'):
            hyp.hypothesis.class_id = det['class_id']
            hyp.hypothesis.score = float(det['score'])
        else:
            hyp.id = det['class_id']
            hyp.score = float(det['score'])
        d.results.append(hyp)
        array.detections.append(d)
    return array


class DetectionPublisher:
    """
    Detections out of a node, in the best format available.

    ``create_publisher(msg_type, topic, qos)`` is the node's (lifecycle) publisher
    factory. With ``vision_msgs`` a ``Detection2DArray`` goes to ``topic``; without it a
    JSON ``std_msgs/String`` goes to ``<topic>_json`` and ``logger`` is told once.
    """

    def __init__(self, create_publisher, topic: str, qos, logger=None,
                 class_names: Sequence[str] = CLASS_NAMES, score_threshold: float = 0.3):
        self.class_names = tuple(class_names)
        self.score_threshold = float(score_threshold)
        self.standard = have_vision_msgs()
        if self.standard:
            vm = _vision_msgs()
            self.topic = topic
            self.publisher = create_publisher(vm.Detection2DArray, topic, qos)
        else:
            from std_msgs.msg import String

            self.topic = f'{topic}_json'
            self.publisher = create_publisher(String, self.topic, qos)
            if logger is not None:
                logger.warning(f'vision_msgs is not installed: detections are published as '
                               f'JSON (std_msgs/String) on {self.topic} instead of '
                               f'vision_msgs/Detection2DArray on {topic}')

    def publish(self, header, boxes, labels, scores) -> list:
        """Publish one frame's detections with ``header``; returns the detection dicts."""
        dets = detections_to_dict(boxes, labels, scores, self.class_names,
                                  self.score_threshold)
        if self.standard:
            self.publisher.publish(to_detection2d_array(header, dets))
        else:
            from std_msgs.msg import String

            doc = {'stamp': {'sec': int(header.stamp.sec), 'nanosec': int(header.stamp.nanosec)},
                   'frame_id': header.frame_id, 'detections': dets}
            self.publisher.publish(String(data=json.dumps(doc)))
        return dets


def empty_detections() -> tuple:
    """``(boxes (0, 4), labels (0,), scores (0,))`` for frames without a detector."""
    return np.zeros((0, 4), np.float32), np.zeros((0,), np.int64), np.zeros((0,), np.float32)
