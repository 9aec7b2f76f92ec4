"""
The bag protocol: a user's labelled HDR rosbag2 as a drive and as shift pairs.

:func:`load_bag_frames` reads an HDR rosbag2 with ``labels.json`` as a
:class:`~.drives.Drive` (the closed loop runs over all its frames, AP over the labelled
ones); :class:`DrivePairs` gives its consecutive pairs whose second frame is labelled,
for the shift protocol (:func:`~.shift.run_shift_protocol`). COCO images are matched to
frames by ``frame_index``, else by the nearest stamp (``t_ns`` / ``stamp_ns``) within half
the bag's frame period. The radiance is calibrated first
(:func:`neural_ae.core.calibration.calibrate_bag`: ``radiance_scale`` ``'auto'`` or a
factor); :func:`load_bag_drive` also returns the calibration.
"""
from pathlib import Path
from typing import Optional, Tuple

from neural_ae.core import sensor as S
from neural_ae.core.errors import EvaluationError
from neural_ae.core.evaluation.drives import Drive, Frame
import numpy as np

__all__ = ['DrivePairs', 'load_bag_drive', 'load_bag_frames']


def load_bag_frames(path, height: int = 0, width: int = 0, sensor=None,
                    topic: Optional[str] = None, max_frames: Optional[int] = None,
                    radiance_scale='auto') -> Drive:
    """
    Read an HDR rosbag2 with ``labels.json`` as a :class:`Drive` (see :func:`load_bag_drive`).

    Frames are resized to ``height x width`` when given (boxes scaled); frames without a
    COCO image are unlabelled (left out of the AP).
    """
    return load_bag_drive(path, height, width, sensor, topic, max_frames, radiance_scale)[0]


def load_bag_drive(path, height: int = 0, width: int = 0, sensor=None,
                   topic: Optional[str] = None, max_frames: Optional[int] = None,
                   radiance_scale='auto') -> Tuple[Drive, object]:
    """
    Read an HDR rosbag2 with ``labels.json``: ``(Drive, RadianceCalibration)``.

    The radiance is multiplied by the calibration's factor (``radiance_scale``: ``'auto'``
    or a number, :func:`neural_ae.core.calibration.calibrate_bag`). A frame is labelled
    when a COCO image names its ``frame_index`` or, failing that, carries a stamp within
    half the bag's frame period of the frame's (nearest stamp,
    :meth:`~neural_ae.core.bags.labels.LabelIndex.lookup`); boxes with negative size or
    outside the image are dropped with a warning.
    """
    from neural_ae.core.bags import open_hdr_bag, RADIANCE_TOPIC
    from neural_ae.core.bags.labels import label_index, stamp_tolerance_ns
    from neural_ae.core.calibration import calibrate_bag
    from neural_ae.core.imageops import resize_with_boxes

    sensor = sensor or S.load_sensor('imx249')
    topic = topic or RADIANCE_TOPIC
    bag = open_hdr_bag(path, topic=topic)
    coco = bag.labels()
    if coco is None:
        raise EvaluationError(f'HDR bag {path} has no labels.json: the bag protocol needs '
                              f'boxes (write them with neural_ae.core.bags.write_coco_labels)')
    index = label_index(coco, f'{path}/labels.json', error=EvaluationError)
    tol = stamp_tolerance_ns(bag.timestamps(topic)) if index.stamps_ns else 0
    calib = calibrate_bag(bag, sensor, radiance_scale, topic)
    frames = []
    for k, (t_ns, rad) in enumerate(bag.iter_radiance(topic)):
        if max_frames is not None and k >= max_frames:
            break
        found = index.lookup(k, int(t_ns), tol)
        labelled = found is not None
        boxes = np.zeros((0, 4), np.float32) if found is None else found.boxes
        labels = np.zeros(0, np.int64) if found is None else found.labels
        h, w = (height or rad.shape[0]), (width or rad.shape[1])
        rad, boxes = resize_with_boxes(calib.apply(rad), boxes, h, w)
        keep = (boxes[:, 2] - boxes[:, 0] >= 1) & (boxes[:, 3] - boxes[:, 1] >= 1)
        phi = S.mosaic(np.ascontiguousarray(rad, np.float32), sensor.bayer_pattern)
        frames.append(Frame(phi, boxes[keep], labels[keep],
                            {'frame_index': k, 't_ns': int(t_ns)}, labelled))
    if len(frames) < 2:
        raise EvaluationError(f'HDR bag {path}: {len(frames)} radiance frame(s); the bag '
                              f'protocol needs at least 2')
    if not any(fr.labelled for fr in frames):
        raise EvaluationError(f'HDR bag {path}: labels.json names none of its frames '
                              '(images need frame_index, or a t_ns / stamp_ns within '
                              'half a frame period of a frame stamp)')
    return Drive(Path(path).name, 'bag', -1, frames), calib


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
