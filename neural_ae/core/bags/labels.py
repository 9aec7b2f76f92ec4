"""
COCO labels of an HDR bag: ``labels.json`` inside the bag directory.

Every COCO image carries ``frame_index`` (0-based position on the radiance topic) and
``t_ns`` (that frame's timestamp); :func:`resolve_label_frames` checks a COCO dict and
fills in whichever of the two is missing, :func:`write_coco_labels` attaches labels to a
closed bag.
"""
import json
from pathlib import Path

from neural_ae.core.bags.common import dumps, LABELS_FILENAME, RADIANCE_TOPIC
from neural_ae.core.errors import BagFormatError


def resolve_label_frames(coco, frame_t_ns, topic: str, where: str) -> dict:
    """
    Check a COCO dict and give every image both ``frame_index`` and ``t_ns``.

    ``frame_t_ns`` lists the radiance timestamps in bag order; None only validates shape.
    """
    try:
        out = json.loads(dumps(coco))
    except (TypeError, ValueError) as err:
        raise BagFormatError(f'labels for {where} are not JSON serializable: {err}') from err
    if not isinstance(out, dict) or not isinstance(out.get('images'), list):
        raise BagFormatError(f'labels for {where} must be a COCO dict with an "images" list')
    out.setdefault('annotations', [])
    out.setdefault('categories', [])
    ids = set()
    index_of = {} if frame_t_ns is None else {t: i for i, t in enumerate(frame_t_ns)}
    for img in out['images']:
        if not isinstance(img, dict) or 'id' not in img:
            raise BagFormatError(f'labels for {where}: COCO image without "id": {img!r}')
        ids.add(img['id'])
        if 'frame_index' not in img and 't_ns' not in img:
            raise BagFormatError(
                f'labels for {where}: image id {img["id"]} needs "frame_index" or "t_ns"')
        if frame_t_ns is None:
            continue
        if 'frame_index' in img:
            i = img['frame_index']
            if not isinstance(i, int) or not 0 <= i < len(frame_t_ns):
                raise BagFormatError(
                    f'labels for {where}: image id {img["id"]} frame_index {i!r} is outside'
                    f' the {len(frame_t_ns)} frames on {topic}')
            if img.get('t_ns', frame_t_ns[i]) != frame_t_ns[i]:
                raise BagFormatError(
                    f'labels for {where}: image id {img["id"]} t_ns {img["t_ns"]} != frame'
                    f' {i} at t_ns {frame_t_ns[i]} on {topic}')
            img['t_ns'] = frame_t_ns[i]
        else:
            if img['t_ns'] not in index_of:
                raise BagFormatError(
                    f'labels for {where}: image id {img["id"]} t_ns {img["t_ns"]} matches'
                    f' no frame on {topic}')
            img['frame_index'] = index_of[img['t_ns']]
    for ann in out['annotations']:
        if not isinstance(ann, dict) or ann.get('image_id') not in ids:
            raise BagFormatError(f'labels for {where}: annotation with unknown image_id: {ann!r}')
    if not isinstance(out.get('info'), dict):
        out['info'] = {}
    out['info']['radiance_topic'] = topic
    return out


def write_labels_file(bag_dir: Path, labels: dict) -> Path:
    """Write ``labels`` to ``<bag_dir>/labels.json`` atomically (temporary file, rename)."""
    path = bag_dir / LABELS_FILENAME
    tmp = path.with_suffix('.json.tmp')
    tmp.write_text(json.dumps(labels, allow_nan=False))
    tmp.replace(path)
    return path


def write_coco_labels(bag_path, coco_dict: dict, topic: str = RADIANCE_TOPIC) -> Path:
    """
    Write COCO labels to ``<bag_path>/labels.json`` (atomically) and return that path.

    Every image in ``coco_dict['images']`` needs ``frame_index`` (0-based position on
    ``topic``) or ``t_ns`` (that frame's timestamp); the other one is filled in from the
    bag, and a mismatch raises :class:`BagFormatError`.
    """
    from neural_ae.core.bags.reader import open_hdr_bag

    bag = open_hdr_bag(bag_path, topic=topic)
    if bag.path.is_file():
        raise BagFormatError(f'labels need a bag directory, got the file {bag.path}')
    labels = resolve_label_frames(coco_dict, bag.timestamps(topic), topic, str(bag.path))
    return write_labels_file(bag.path, labels)
