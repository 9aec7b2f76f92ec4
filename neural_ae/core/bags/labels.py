"""
COCO labels of an HDR bag: ``labels.json`` inside the bag directory (and user label files).

A COCO image is keyed by ``frame_index`` (0-based position on the radiance topic), by a
stamp (``t_ns`` or ``stamp_ns``, that frame's timestamp [ns]), or by both. Reading and
checking:

- :func:`validate_coco` checks the structure of a COCO dict and returns a normalised
  copy (one-line :class:`BagFormatError` or the caller's error otherwise: a list at the
  top level, ``images`` not a list, an image without ``id`` or key, an annotation
  without ``bbox``, a ``bbox`` that is not 4 finite numbers, a ``category_id`` that is
  not an integer...). A ``stamp_ns`` key is copied to ``t_ns``, the canonical key.
- :func:`read_labels_file` reads and validates a ``labels.json`` (one line for
  unreadable or malformed JSON).
- Box geometry is cleaned, not refused: a box with negative or zero size, or outside its
  image, is dropped; a box partly outside is clipped. :func:`drop_bad_boxes` (on a COCO
  dict) and :func:`clean_boxes_xyxy` (on arrays) log one warning naming how many boxes
  were dropped and why.
- :func:`label_index` returns, for a label file, the mapping ``frame_index ->``
  :class:`ImageLabels` and ``stamp_ns -> ImageLabels`` (boxes xyxy [px], labels), with
  :meth:`LabelIndex.lookup` finding a frame's labels by index or nearest stamp.
- :func:`match_stamp` is the nearest-stamp matcher: the default tolerance
  (:data:`DEFAULT_STAMP_TOLERANCE_NS`) is half a frame period at 30 Hz, 16,666,667 ns;
  :func:`stamp_tolerance_ns` narrows it to half the median frame period of a faster
  stream.

Writing: :func:`resolve_label_frames` gives every image both ``frame_index`` and
``t_ns`` against a bag's radiance stamps; :func:`write_coco_labels` attaches labels to a
closed bag.
"""
from bisect import bisect_left
from dataclasses import dataclass, field
import json
import logging
import math
from pathlib import Path
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple, Type

from neural_ae.core.bags.common import dumps, LABELS_FILENAME, RADIANCE_TOPIC
from neural_ae.core.errors import BagFormatError, ConfigError, NeuralAEError
import numpy as np

__all__ = ['clean_boxes_xyxy', 'DEFAULT_STAMP_TOLERANCE_NS', 'drop_bad_boxes', 'ImageLabels',
           'label_index', 'LabelIndex', 'match_stamp', 'read_labels_file',
           'resolve_label_frames', 'stamp_tolerance_ns', 'STAMP_KEYS', 'validate_coco',
           'write_coco_labels', 'write_labels_file']

LOG = logging.getLogger(__name__)

STAMP_KEYS = ('t_ns', 'stamp_ns')
"""Keys a COCO image may carry its frame's timestamp [ns] under (``t_ns`` canonical)."""
DEFAULT_STAMP_TOLERANCE_NS = 16_666_667
"""Nearest-stamp tolerance [ns]: half a frame period at 30 Hz (1e9 / 30 / 2, rounded)."""
MAX_STAMP_NS = 2 ** 63 - 1
"""Largest stamp (rosbag2 timestamps are signed 64-bit ns)."""

_REASONS = {'negative': 'with negative or zero size', 'outside': 'outside the image',
            'small': 'smaller than {min_size:g} px after clipping to the image'}


# ----------------------------------------------------------------------- structure


def _int_or_none(value) -> Optional[int]:
    """``value`` as an int if it is one (or an integral float below 2**53), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer() and \
            abs(value) < 2 ** 53:
        return int(value)
    return None


def _image_stamp(img: dict, where: str, error: Type[NeuralAEError]) -> Optional[int]:
    """Return the image's stamp from ``t_ns`` / ``stamp_ns`` (checked, consistent), or None."""
    stamps = {}
    for key in STAMP_KEYS:
        if key in img:
            t = _int_or_none(img[key])
            if t is None or not 0 <= t <= MAX_STAMP_NS:
                raise error(f'labels for {where}: image id {img["id"]!r} {key} must be an '
                            f'integer in [0, 2**63) ns, got {str(img[key])[:40]!r}')
            stamps[key] = t
    if len(set(stamps.values())) > 1:
        raise error(f'labels for {where}: image id {img["id"]!r} has t_ns {stamps["t_ns"]} '
                    f'and stamp_ns {stamps["stamp_ns"]}; give one stamp')
    return next(iter(stamps.values()), None)


def _check_bbox(ann: dict, where: str, error: Type[NeuralAEError]) -> List[float]:
    name = f'annotation id {ann["id"]!r}' if 'id' in ann else \
        f'an annotation of image id {ann.get("image_id")!r}'
    if 'bbox' not in ann:
        raise error(f'labels for {where}: {name} has no "bbox" ([x, y, width, height] px)')
    bbox = ann['bbox']
    if not isinstance(bbox, (list, tuple)) or len(bbox) != 4:
        got = f'{len(bbox)} values' if isinstance(bbox, (list, tuple)) else \
            type(bbox).__name__
        raise error(f'labels for {where}: {name} bbox must be 4 numbers [x, y, width, '
                    f'height], got {got}')
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in bbox):
        raise error(f'labels for {where}: {name} bbox must be 4 numbers, got {bbox!r}'[:200])
    if not all(math.isfinite(v) for v in bbox):
        raise error(f'labels for {where}: {name} bbox holds a non-finite number: {bbox!r}')
    return [float(v) for v in bbox]


def validate_coco(coco: Any, where: str, error: Type[NeuralAEError] = BagFormatError,
                  require_key: bool = True) -> dict:
    """
    Check the structure of a COCO label dict; return a normalised deep copy.

    Required: a dict with an ``images`` list; every image a dict with a unique ``id``
    (integer or string) and ``frame_index`` (integer >= 0) and/or a stamp (``t_ns`` or
    ``stamp_ns``, integer ns; both must agree), optional positive integer ``width`` /
    ``height``; ``annotations`` (optional) a list of dicts with a known ``image_id``, a
    ``bbox`` of 4 finite numbers and an integer ``category_id``; ``categories`` (optional)
    a list. Box geometry (negative size, outside the image) is not an error here: see
    :func:`drop_bad_boxes`. Raises ``error`` with one line naming ``where`` and the
    problem. The copy has ``t_ns`` set from ``stamp_ns`` and missing lists filled in.
    ``require_key=False`` accepts images with neither key (labels matched by
    ``file_name``, e.g. a bracket folder).
    """
    if not isinstance(coco, dict):
        raise error(f'labels for {where} must be a COCO object (a dict with an "images" '
                    f'list), got a JSON {_json_kind(coco)} at the top level')
    try:
        out = json.loads(dumps(coco))
    except (TypeError, ValueError) as err:
        raise error(f'labels for {where} are not JSON serializable (NaN, inf or a foreign '
                    f'object): {str(err).splitlines()[0] if str(err) else err!r}') from err
    if 'images' not in out:
        raise error(f'labels for {where} have no "images" list (keys: '
                    f'{sorted(out)[:6]})')
    for key in ('images', 'annotations', 'categories'):
        out.setdefault(key, [])
        if not isinstance(out[key], list):
            raise error(f'labels for {where}: "{key}" must be a list, got a JSON '
                        f'{_json_kind(out[key])}')
    ids = set()
    for img in out['images']:
        if not isinstance(img, dict) or 'id' not in img:
            raise error(f'labels for {where}: COCO image without "id": {str(img)[:80]}')
        if isinstance(img['id'], bool) or not isinstance(img['id'], (int, str)):
            raise error(f'labels for {where}: image id must be an integer or a string, got '
                        f'{img["id"]!r}')
        if img['id'] in ids:
            raise error(f'labels for {where}: image id {img["id"]!r} appears twice')
        ids.add(img['id'])
        if 'frame_index' in img:
            i = _int_or_none(img['frame_index'])
            if i is None or i < 0:
                raise error(f'labels for {where}: image id {img["id"]!r} frame_index must be '
                            f'an integer >= 0, got {str(img["frame_index"])[:40]!r}')
            img['frame_index'] = i
        stamp = _image_stamp(img, where, error)
        if stamp is not None:
            img['t_ns'] = stamp
        if require_key and 'frame_index' not in img and stamp is None:
            raise error(f'labels for {where}: image id {img["id"]!r} needs "frame_index" or '
                        f'a stamp ("t_ns" / "stamp_ns")')
        for key in ('width', 'height'):
            if key in img:
                v = _int_or_none(img[key])
                if v is None or v < 1:
                    raise error(f'labels for {where}: image id {img["id"]!r} {key} must be a '
                                f'positive integer, got {str(img[key])[:40]!r}')
                img[key] = v
    for ann in out['annotations']:
        iid = ann.get('image_id') if isinstance(ann, dict) else None
        if not isinstance(iid, (int, str)) or isinstance(iid, bool) or iid not in ids:
            raise error(f'labels for {where}: annotation with unknown image_id: '
                        f'{str(ann)[:80]}')
        ann['bbox'] = _check_bbox(ann, where, error)
        cat = ann.get('category_id')
        if isinstance(cat, bool) or not isinstance(cat, int):
            raise error(f'labels for {where}: annotation of image id {ann["image_id"]!r} '
                        f'category_id must be an integer, got {str(cat)[:40]!r}')
    return out


def _json_kind(value) -> str:
    kinds = {dict: 'object', list: 'array', str: 'string', bool: 'boolean', int: 'number',
             float: 'number', type(None): 'null'}
    return kinds.get(type(value), type(value).__name__)


def read_labels_file(path, error: Type[NeuralAEError] = ConfigError,
                     require_key: bool = True) -> dict:
    """
    Read and validate a COCO ``labels.json`` (:func:`validate_coco`); one-line ``error``.

    For user label files (``make-bag --labels``, bracket folders): a missing file,
    unreadable or malformed JSON and a malformed COCO structure all name the file.
    """
    path = Path(path)
    if not path.is_file():
        raise error(f'labels file not found: {path}')
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as err:
        raise error(f'cannot read labels {path}: {err}') from err
    except ValueError as err:
        raise error(f'labels {path} are not valid JSON: {str(err).splitlines()[0]}') from err
    return validate_coco(data, str(path), error, require_key)


# ----------------------------------------------------------------------- box geometry


def _classify(boxes: np.ndarray, height: Optional[float], width: Optional[float],
              min_size: float) -> Tuple[np.ndarray, np.ndarray, Dict[str, int]]:
    """Clip xyxy ``boxes`` to the image; return ``(clipped, keep, dropped per reason)``."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    negative = ~((boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1]))
    clipped = boxes.copy()
    outside = np.zeros(len(boxes), bool)
    if width is not None and height is not None:
        clipped[:, [0, 2]] = clipped[:, [0, 2]].clip(0, width)
        clipped[:, [1, 3]] = clipped[:, [1, 3]].clip(0, height)
        outside = ~negative & ~((clipped[:, 2] > clipped[:, 0]) &
                                (clipped[:, 3] > clipped[:, 1]))
    small = ~negative & ~outside & (((clipped[:, 2] - clipped[:, 0]) < min_size) |
                                    ((clipped[:, 3] - clipped[:, 1]) < min_size))
    keep = ~(negative | outside | small)
    dropped = {'negative': int(negative.sum()), 'outside': int(outside.sum()),
               'small': int(small.sum())}
    return clipped, keep, dropped


def _warn_dropped(where: str, dropped: Dict[str, int], total: int, min_size: float,
                  size: str = '') -> None:
    n = sum(dropped.values())
    if not n:
        return
    why = ', '.join(f'{c} {_REASONS[r].format(min_size=min_size)}' for r, c in dropped.items()
                    if c)
    LOG.warning('labels for %s: dropped %d of %d boxes: %s%s', where, n, total, why,
                f' ({size})' if size else '')


def clean_boxes_xyxy(boxes, labels, height: Optional[float], width: Optional[float],
                     where: str = '', min_size: float = 1.0, warn: bool = True) -> tuple:
    """
    Clip xyxy ``boxes`` [px] to a ``height x width`` image and drop the unusable ones.

    Dropped: boxes with negative or zero size (``x2 <= x1`` or ``y2 <= y1``), boxes
    entirely outside the image, boxes smaller than ``min_size`` px once clipped; boxes
    partly outside are clipped. ``height`` / ``width`` None: no image bounds (only the
    size checks). Returns ``(boxes float32 (M, 4), labels int64 (M,), dropped)`` with
    ``dropped`` the count per reason (``'negative'``, ``'outside'``, ``'small'``); with
    ``warn`` one warning names how many were dropped and why.
    """
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    labels = np.asarray(labels, np.int64).reshape(-1)
    clipped, keep, dropped = _classify(boxes, height, width, min_size)
    if warn:
        size = f'image {width:g} x {height:g} px' if width is not None and \
            height is not None else ''
        _warn_dropped(where or 'boxes', dropped, len(boxes), min_size, size)
    return clipped.astype(np.float32)[keep], labels[keep], dropped


def drop_bad_boxes(coco: dict, where: str, frame_size: Optional[Tuple[int, int]] = None,
                   min_size: float = 0.0) -> Tuple[dict, Dict[str, int]]:
    """
    Drop the annotations of a validated COCO dict whose box cannot be used; warn once.

    A box (``[x, y, w, h]``) with negative or zero width or height is dropped; with a
    known image size (``frame_size`` ``(height, width)``, else the image's own
    ``height`` / ``width``) a box entirely outside the image is dropped too. Boxes
    partly outside are kept as they are (consumers clip). Returns ``(coco, dropped per
    reason)``; ``coco`` is modified in place.
    """
    images = {img['id']: img for img in coco.get('images', [])}
    keep, dropped = [], {'negative': 0, 'outside': 0, 'small': 0}
    for ann in coco.get('annotations', []):
        img = images.get(ann['image_id'], {})
        h, w = frame_size if frame_size is not None else (img.get('height'),
                                                          img.get('width'))
        x, y, bw, bh = ann['bbox']
        _, ok, why = _classify(np.array([[x, y, x + bw, y + bh]]), h, w, min_size)
        for reason, c in why.items():
            dropped[reason] += c
        if ok[0]:
            keep.append(ann)
    total = len(coco.get('annotations', []))
    coco['annotations'] = keep
    _warn_dropped(where, dropped, total, min_size)
    return coco, dropped


# ----------------------------------------------------------------------- stamps


def match_stamp(stamps_ns: Sequence[int], t_ns: int,
                tolerance_ns: int = DEFAULT_STAMP_TOLERANCE_NS) -> Optional[int]:
    """
    Index of the stamp in ``stamps_ns`` nearest to ``t_ns``, or None if none is close.

    ``stamps_ns`` must be sorted ascending (as bag stamps and :attr:`LabelIndex.stamps_ns`
    are); a stamp matches when ``|stamp - t_ns| <= tolerance_ns`` (default
    :data:`DEFAULT_STAMP_TOLERANCE_NS`, half a frame period at 30 Hz). On a tie the
    earlier stamp wins. O(log n).
    """
    if not (isinstance(tolerance_ns, (int, float)) and tolerance_ns >= 0):
        raise ConfigError(f'stamp tolerance must be a number >= 0 ns, got {tolerance_ns!r}')
    n = len(stamps_ns)
    if n == 0:
        return None
    i = bisect_left(stamps_ns, t_ns)
    best = None
    for j in (i - 1, i):
        if 0 <= j < n and (best is None or abs(stamps_ns[j] - t_ns) < abs(
                stamps_ns[best] - t_ns)):
            best = j
    assert best is not None
    return best if abs(stamps_ns[best] - t_ns) <= tolerance_ns else None


def stamp_tolerance_ns(stamps_ns: Sequence[int],
                       default: int = DEFAULT_STAMP_TOLERANCE_NS) -> int:
    """
    Return the matching tolerance for a stream with these (sorted) stamps: half a period.

    Half the median gap between consecutive stamps, capped at ``default`` (half a frame
    period at 30 Hz), so a label never matches a frame that is not its nearest
    neighbour by more than half a period. Fewer than 2 stamps: ``default``.
    """
    if len(stamps_ns) < 2:
        return int(default)
    gaps = np.diff(np.asarray(stamps_ns, dtype=np.int64))
    gaps = gaps[gaps > 0]
    if gaps.size == 0:
        return int(default)
    return int(min(default, int(np.median(gaps)) // 2))


# ----------------------------------------------------------------------- index


class ImageLabels(NamedTuple):
    """The labels of one COCO image: ``boxes`` float32 ``(N, 4)`` xyxy [px], ``labels``."""

    image_id: Any
    frame_index: Optional[int]
    stamp_ns: Optional[int]
    boxes: np.ndarray
    labels: np.ndarray


@dataclass
class LabelIndex:
    """
    Labels of a file by frame index and by stamp (:func:`label_index` builds it).

    ``by_frame``: ``frame_index -> ImageLabels`` (images that carry one); ``by_stamp``:
    ``stamp_ns -> ImageLabels`` (images that carry ``t_ns`` / ``stamp_ns``);
    ``stamps_ns``: the keys of ``by_stamp``, sorted; ``dropped``: boxes dropped per
    reason.
    """

    by_frame: Dict[int, ImageLabels] = field(default_factory=dict)
    by_stamp: Dict[int, ImageLabels] = field(default_factory=dict)
    stamps_ns: List[int] = field(default_factory=list)
    dropped: Dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        """Count the labelled images."""
        return len({id(v) for v in self.by_frame.values()} |
                   {id(v) for v in self.by_stamp.values()})

    def lookup(self, frame_index: Optional[int] = None, t_ns: Optional[int] = None,
               tolerance_ns: int = DEFAULT_STAMP_TOLERANCE_NS) -> Optional[ImageLabels]:
        """
        Labels of a frame: by ``frame_index`` first, else the nearest stamp to ``t_ns``.

        None: the frame is not labelled (no image with that index, no stamp within
        ``tolerance_ns`` of ``t_ns``).
        """
        if frame_index is not None and frame_index in self.by_frame:
            return self.by_frame[frame_index]
        if t_ns is not None:
            j = match_stamp(self.stamps_ns, t_ns, tolerance_ns)
            if j is not None:
                return self.by_stamp[self.stamps_ns[j]]
        return None


def label_index(coco: Any, where: str, frame_size: Optional[Tuple[int, int]] = None,
                error: Type[NeuralAEError] = BagFormatError, min_size: float = 1.0,
                validated: bool = False) -> LabelIndex:
    """
    Index a COCO label dict by ``frame_index`` and by stamp, boxes as xyxy arrays.

    The dict is checked with :func:`validate_coco` (skip with ``validated=True``); each
    image's boxes are cleaned with :func:`clean_boxes_xyxy` against ``frame_size``
    ``(height, width)`` (the frames' real size; default the image's own ``height`` /
    ``width``, else no bounds), with one warning for the whole file naming how many boxes
    were dropped and why. Images keep their annotation order.
    """
    coco = coco if validated else validate_coco(coco, where, error)
    anns: Dict[Any, list] = {}
    for ann in coco['annotations']:
        anns.setdefault(ann['image_id'], []).append(ann)
    index = LabelIndex(dropped={'negative': 0, 'outside': 0, 'small': 0})
    total = 0
    for img in coco['images']:
        items = anns.get(img['id'], [])
        xyxy = np.array([[a['bbox'][0], a['bbox'][1], a['bbox'][0] + a['bbox'][2],
                          a['bbox'][1] + a['bbox'][3]] for a in items],
                        np.float64).reshape(-1, 4)
        cats = np.array([a['category_id'] for a in items], np.int64)
        h, w = frame_size if frame_size is not None else (img.get('height'), img.get('width'))
        boxes, labels, dropped = clean_boxes_xyxy(xyxy, cats, h, w, where, min_size,
                                                  warn=False)
        total += len(items)
        for reason, c in dropped.items():
            index.dropped[reason] += c
        rec = ImageLabels(img['id'], img.get('frame_index'), img.get('t_ns'), boxes, labels)
        if rec.frame_index is not None:
            index.by_frame[rec.frame_index] = rec
        if rec.stamp_ns is not None:
            index.by_stamp[rec.stamp_ns] = rec
    index.stamps_ns = sorted(index.by_stamp)
    _warn_dropped(where, index.dropped, total, min_size,
                  f'image {frame_size[1]} x {frame_size[0]} px' if frame_size else '')
    return index


# ----------------------------------------------------------------------- writing


def resolve_label_frames(coco, frame_t_ns, topic: str, where: str) -> dict:
    """
    Check a COCO dict and give every image both ``frame_index`` and ``t_ns``.

    ``frame_t_ns`` lists the radiance timestamps in bag order; None only validates (and
    cleans, see below). An image keyed by stamp only is matched to the nearest frame
    within :func:`stamp_tolerance_ns` of the bag (half its frame period, at most
    :data:`DEFAULT_STAMP_TOLERANCE_NS`); its ``t_ns`` becomes that frame's stamp (a
    different label stamp is kept as ``label_t_ns``). A ``frame_index`` with a stamp must
    agree with the frame's stamp within the same tolerance. Boxes with negative size, or
    outside their image's ``width`` / ``height``, are dropped with a warning
    (:func:`drop_bad_boxes`).
    """
    out = validate_coco(coco, where, BagFormatError)
    if frame_t_ns is not None:
        frame_t_ns = list(frame_t_ns)
        tol = stamp_tolerance_ns(frame_t_ns)
        for img in out['images']:
            if 'frame_index' in img:
                i = img['frame_index']
                if not 0 <= i < len(frame_t_ns):
                    raise BagFormatError(
                        f'labels for {where}: image id {img["id"]} frame_index {i!r} is '
                        f'outside the {len(frame_t_ns)} frames on {topic}')
                if 't_ns' in img and abs(img['t_ns'] - frame_t_ns[i]) > tol:
                    raise BagFormatError(
                        f'labels for {where}: image id {img["id"]} t_ns {img["t_ns"]} != '
                        f'frame {i} at t_ns {frame_t_ns[i]} on {topic}')
            else:
                j = match_stamp(frame_t_ns, img['t_ns'], tol)
                if j is None:
                    raise BagFormatError(
                        f'labels for {where}: image id {img["id"]} t_ns {img["t_ns"]} '
                        f'matches no frame on {topic} (within {tol} ns)')
                img['frame_index'] = j
            i = img['frame_index']
            if img.get('t_ns', frame_t_ns[i]) != frame_t_ns[i]:
                img['label_t_ns'] = img['t_ns']
            img['t_ns'] = frame_t_ns[i]
    drop_bad_boxes(out, where)
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
    ``topic``) or a stamp (``t_ns`` / ``stamp_ns``, matched to the nearest frame); the
    other one is filled in from the bag, and a mismatch raises :class:`BagFormatError`.
    """
    from neural_ae.core.bags.reader import open_hdr_bag

    bag = open_hdr_bag(bag_path, topic=topic)
    if bag.path.is_file():
        raise BagFormatError(f'labels need a bag directory, got the file {bag.path}')
    labels = resolve_label_frames(coco_dict, bag.timestamps(topic), topic, str(bag.path))
    return write_labels_file(bag.path, labels)
