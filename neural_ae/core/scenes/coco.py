"""COCO detection dictionaries of scenes, and back to boxes and labels per image."""
from neural_ae.core.classes import CLASSES
from neural_ae.core.errors import SceneError
import numpy as np


def to_coco(scenes, file_names=None) -> dict:
    """
    COCO detection dictionary for ``scenes`` (image ids 1.., annotation ids 1..).

    ``bbox`` is ``[x, y, w, h]`` in pixels from the xyxy boxes, ``area = w * h``,
    ``iscrowd = 0``; categories are :data:`CLASSES` with ids 1..6. ``file_names``
    defaults to ``scene_{i:06d}.png``. Image sizes come from the radiance, or from
    ``meta['height']`` / ``meta['width']`` where present (so a caller may drop the
    radiance of long runs).
    """
    scenes = list(scenes)
    if file_names is None:
        file_names = [f'scene_{i:06d}.png' for i in range(len(scenes))]
    file_names = list(file_names)
    if len(file_names) != len(scenes):
        raise SceneError(f'{len(scenes)} scenes but {len(file_names)} file names')
    images, annotations = [], []
    ann_id = 1
    for i, (sc, name) in enumerate(zip(scenes, file_names)):
        h, w = (sc.meta['height'], sc.meta['width']) if 'height' in sc.meta else \
            sc.radiance.shape[:2]
        images.append({'id': i + 1, 'file_name': str(name), 'height': int(h),
                       'width': int(w), 'scenario': sc.scenario, 'seed': int(sc.seed)})
        for box, label in zip(np.asarray(sc.boxes).reshape(-1, 4), sc.labels):
            x1, y1, x2, y2 = (float(v) for v in box)
            bw, bh = x2 - x1, y2 - y1
            annotations.append({'id': ann_id, 'image_id': i + 1,
                                'category_id': int(label),
                                'bbox': [x1, y1, bw, bh], 'area': bw * bh,
                                'iscrowd': 0})
            ann_id += 1
    categories = [{'id': i + 1, 'name': n, 'supercategory': 'road'}
                  for i, n in enumerate(CLASSES)]
    return {'images': images, 'annotations': annotations, 'categories': categories}


def from_coco(coco: dict) -> list:
    """
    Inverse of :func:`to_coco` for annotations: one dict per image.

    Each has ``file_name``, ``height``, ``width``, ``boxes`` (float32 xyxy) and
    ``labels`` (int64), in the order of ``coco['images']``.
    """
    try:
        per_image = {img['id']: {'file_name': img['file_name'], 'height': img['height'],
                                 'width': img['width'], 'boxes': [], 'labels': []}
                     for img in coco['images']}
        for ann in coco['annotations']:
            x, y, w, h = ann['bbox']
            rec = per_image[ann['image_id']]
            rec['boxes'].append((x, y, x + w, y + h))
            rec['labels'].append(ann['category_id'])
    except (KeyError, TypeError, ValueError) as err:
        raise SceneError(f'malformed COCO dictionary: {err!r}') from err
    out = []
    for img in coco['images']:
        rec = per_image[img['id']]
        rec['boxes'] = np.asarray(rec['boxes'], np.float32).reshape(-1, 4)
        rec['labels'] = np.asarray(rec['labels'], np.int64)
        out.append(rec)
    return out
