"""
The detector's object classes: one tuple of names and the label <-> name mapping.

The paper's six classes (Sec. 6.1) in label order: label ``i + 1`` is ``CLASSES[i]``,
label 0 is the detector's background. Scenes, the detector, the detection metrics and
the ROS detection messages all read them from here.
"""
from typing import Dict, Sequence

CLASSES = ('bike', 'bus_truck', 'car_van', 'person', 'traffic_light', 'traffic_sign')
"""Class names in label order (label ``i + 1`` is ``CLASSES[i]``, 0 is background)."""

CATEGORY_IDS: Dict[str, int] = {name: i + 1 for i, name in enumerate(CLASSES)}
"""Label (COCO category id, 1..6) of each class name."""


def class_name(label: int, classes: Sequence[str] = CLASSES) -> str:
    """Name of the 1-based ``label`` in ``classes``; ``str(label)`` outside ``1..len``."""
    idx = int(label) - 1
    return classes[idx] if 0 <= idx < len(classes) else str(int(label))
