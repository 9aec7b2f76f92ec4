"""
The bag protocol: a user's labelled HDR rosbag2 as a drive and as shift pairs.

:func:`load_bag_frames` reads an HDR rosbag2 with ``labels.json`` as a
:class:`~.drives.Drive` (the closed loop runs over all its frames, AP over the labelled
ones); :class:`DrivePairs` gives its consecutive pairs whose second frame is labelled,
for the shift protocol (:func:`~.shift.run_shift_protocol`).
"""
from pathlib import Path
from typing import Any, Dict, List, Optional

from neural_ae.core import sensor as S
from neural_ae.core.errors import EvaluationError
from neural_ae.core.evaluation.drives import Drive, Frame
import numpy as np

__all__ = ['DrivePairs', 'load_bag_frames']


def load_bag_frames(path, height: int = 0, width: int = 0, sensor=None,
                    topic: Optional[str] = None, max_frames: Optional[int] = None) -> Drive:
    """
    Read an HDR rosbag2 with ``labels.json`` as a :class:`Drive`.

    Frames are resized to ``height x width`` when given (boxes scaled); frames without a
    COCO image are unlabelled (left out of the AP).
    """
    from neural_ae.core.bags import open_hdr_bag, RADIANCE_TOPIC
    from neural_ae.core.imageops import resize_with_boxes

    sensor = sensor or S.load_sensor('imx249')
    bag = open_hdr_bag(path, topic=topic or RADIANCE_TOPIC)
    coco = bag.labels()
    if coco is None:
        raise EvaluationError(f'HDR bag {path} has no labels.json: the bag protocol needs '
                              f'boxes (write them with neural_ae.core.bags.write_coco_labels)')
    by_frame = {}
    for img in coco.get('images', []):
        if 'frame_index' in img:
            by_frame[int(img['frame_index'])] = img['id']
    anns: Dict[Any, List[tuple]] = {}
    for a in coco.get('annotations', []):
        x, y, bw, bh = a['bbox']
        anns.setdefault(a['image_id'], []).append(([x, y, x + bw, y + bh], a['category_id']))
    frames = []
    for k, (_, rad) in enumerate(bag.iter_radiance(topic or bag.radiance_topic)):
        if max_frames is not None and k >= max_frames:
            break
        labelled = k in by_frame
        items = anns.get(by_frame.get(k), [])
        boxes = np.array([b for b, _ in items], np.float32).reshape(-1, 4)
        labels = np.array([c for _, c in items], np.int64)
        h, w = (height or rad.shape[0]), (width or rad.shape[1])
        rad, boxes = resize_with_boxes(rad, boxes, h, w)
        keep = (boxes[:, 2] - boxes[:, 0] >= 1) & (boxes[:, 3] - boxes[:, 1] >= 1)
        phi = S.mosaic(np.ascontiguousarray(rad, np.float32), sensor.bayer_pattern)
        frames.append(Frame(phi, boxes[keep], labels[keep], {'frame_index': k}, labelled))
    if len(frames) < 2:
        raise EvaluationError(f'HDR bag {path}: {len(frames)} radiance frame(s); the bag '
                              f'protocol needs at least 2')
    if not any(fr.labelled for fr in frames):
        raise EvaluationError(f'HDR bag {path}: labels.json names none of its frames '
                              f'(images need frame_index or t_ns)')
    return Drive(Path(path).name, 'bag', -1, frames)


class DrivePairs:
    """Consecutive frames ``(k, k + 1)`` of a drive whose second frame is labelled."""

    def __init__(self, drive: Drive, bayer_pattern: str = 'RGGB'):
        self.drive = drive
        self.pattern = bayer_pattern
        self.index = [k for k in range(len(drive.frames) - 1) if drive.frames[k + 1].labelled]

    def __len__(self) -> int:
        return len(self.index)

    def _rgb(self, phi: np.ndarray) -> np.ndarray:
        # The protocol mosaics radiance again; a Bayer frame replicated in 3 channels
        # mosaics back to itself exactly.
        return np.repeat(phi[:, :, None], 3, axis=2)

    def __getitem__(self, i: int) -> dict:
        k = self.index[i]
        f1, f2 = self.drive.frames[k], self.drive.frames[k + 1]
        return {'rad1': self._rgb(f1.radiance), 'rad2': self._rgb(f2.radiance),
                'boxes': f2.boxes, 'labels': f2.labels, 'key': k + 1}
