"""
Two-frame training examples (paper Sec. 5) from procedural scenes, HDR bags or brackets.

An example is two consecutive HDR frames of one scene plus the boxes of the second.
Sources (one :class:`torch.utils.data.Dataset` each, all returning the same record:
``rad1``, ``rad2`` float32 ``(H, W, 3)`` radiance [e-/s], ``boxes`` ``(N, 4)`` xyxy
[px] and ``labels`` ``(N,)`` of frame 2, and the per-pixel source noise or ``None``):

- :class:`ProceduralPairs`: :func:`neural_ae.core.scenes.generate_pair` for a range of
  seeds, cached to ``<cache_dir>/<H>x<W>-<key>/<seed>.npz`` (float16 radiance scaled by
  a float64 per-frame factor, so 1e-2 .. 1e12 e-/s survive) so epochs do not regenerate;
  ``<key>`` is :func:`neural_ae.core.scenes.version.generator_key` (code, parameters and
  library versions of the generator), so a stale scene is regenerated, never served.
  Noise-free: the target sensor's full noise is added.
- :class:`HDRBagPairs`: consecutive frames of a rosbag2 HDR bag
  (:func:`neural_ae.core.bags.open_hdr_bag`), boxes from its ``labels.json``.
- :class:`BracketPairs`: a folder of bracket sets (:func:`neural_ae.core.scenes.
  export_brackets` layout) merged with Eq. 7 (:func:`neural_ae.core.hdr.merge_brackets`),
  boxes from a COCO ``labels.json`` in the folder.

Frames whose size differs from the configured one are resized (area interpolation) and
their boxes scaled. HDR data recorded by a real camera already carries noise; with a
``source_sensor`` the variance it carries (:func:`neural_ae.core.sensor.
source_noise_var_e`, as a rate per second squared so the capture can scale it by
``t_exp**2``) is subtracted from the noise the simulated capture adds (noise adaptation).

:class:`TwoFrameExamples` turns a source into training or validation examples: Bayer
sampling to ``phi`` ``(1, H, W)``, the base exposure ``e_base`` (mean raw at half the
white level, Sec. 5), the frame-1 exposure factor ``kappa`` (log-uniform in
``[kappa_min, kappa_max]``), the noise strength (augmentation, log-uniform in
``[noise_scale_min, noise_scale_max]``) and a horizontal flip, all drawn from a numpy
generator seeded by ``(seed, epoch, index)``: deterministic, independent of workers,
ranks and resumption.
"""
import logging
import math
import os
from pathlib import Path
from typing import Any, cast, Dict, Iterable, Optional, Sized

from neural_ae.core import sensor as S
from neural_ae.core.errors import ConfigError, HDRError
from neural_ae.core.imageops import resize_with_boxes
import numpy as np
import torch
from torch.utils.data import Dataset, Subset

LOG = logging.getLogger(__name__)

F16_TOP = 32768.0
"""Per-frame scale: the brightest value is stored as this float16 number."""


def _pack(rad: np.ndarray) -> tuple:
    rad = np.nan_to_num(np.asarray(rad, np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    rad = np.maximum(rad, 0.0)
    top = float(rad.max()) if rad.size else 0.0
    scale = top / F16_TOP if top > 0 else 1.0
    return (rad / scale).astype(np.float16), scale


def _unpack(arr: np.ndarray, scale: float) -> np.ndarray:
    return arr.astype(np.float32) * np.float32(scale)


def _clean_boxes(boxes, labels, height: int, width: int, min_size: float = 1.0) -> tuple:
    """Clip boxes to the frame, drop those under ``min_size`` px (silent: already warned)."""
    from neural_ae.core.bags.labels import clean_boxes_xyxy

    boxes, labels, _ = clean_boxes_xyxy(boxes, labels, height, width, min_size=min_size,
                                        warn=False)
    return boxes, labels


def _warn_dropped(where: str, dropped: dict, total: int) -> None:
    """One warning for a user data source: how many boxes were dropped and why."""
    n = sum(dropped.values())
    if n:
        LOG.warning('training labels of %s: dropped %d of %d boxes: %s', where, n, total,
                    ', '.join(f'{c} {_DROP_REASONS[r]}' for r, c in dropped.items() if c))


_DROP_REASONS = {'negative': 'with negative or zero size', 'outside': 'outside the image',
                 'small': 'smaller than 1 px after resizing and clipping'}


# --------------------------------------------------------------------------- sources


class PairSource(Dataset):
    """
    Base of the two-frame sources: a dataset of pair records with :meth:`prepare`.

    The training engine calls :meth:`prepare` (rank 0, before any other rank reads)
    on every source; a source that needs nothing prepared keeps this no-op.
    """

    def prepare(self, indices=None, progress: bool = False) -> int:
        """Make examples ``indices`` (default all) ready to read; return how many needed it."""
        return 0


class ProceduralPairs(PairSource):
    """
    Procedural two-frame scenes for seeds ``seed_start .. seed_start + size - 1``.

    Cached as ``.npz`` under ``cache_dir/<H>x<W>-<key>/`` with ``key`` the generator's
    :func:`~neural_ae.core.scenes.version.generator_key` (also stored in each file and
    checked on reading: a file of another generator is regenerated); :meth:`prepare`
    fills the cache (written atomically, so concurrent ranks or an interrupted run never
    leave a broken file); :meth:`__getitem__` generates a missing entry on the fly.
    """

    source_var = False

    def __init__(self, seed_start: int, size: int, height: int, width: int,
                 cache_dir: Optional[str] = 'out/cache/scenes'):
        self.seed_start = int(seed_start)
        self.size = int(size)
        self.height = int(height)
        self.width = int(width)
        from neural_ae.core.scenes.version import generator_key

        self.generator_key = generator_key(self.height, self.width)
        self.cache = (Path(cache_dir) / f'{self.height}x{self.width}-{self.generator_key}'
                      if cache_dir else None)

    def __len__(self) -> int:
        return self.size

    def seed(self, index: int) -> int:
        """Scene seed of example ``index``."""
        return self.seed_start + int(index)

    def _path(self, seed: int) -> Optional[Path]:
        return self.cache / f'{seed:07d}.npz' if self.cache is not None else None

    def _is_cached(self, seed: int) -> bool:
        path = self._path(seed)
        return path is not None and path.is_file()

    def _generate(self, seed: int) -> dict:
        from neural_ae.core.scenes import generate_pair

        first, second = generate_pair(seed, None, self.height, self.width)
        r1, s1 = _pack(first.radiance)
        r2, s2 = _pack(second.radiance)
        return {'rad1': r1, 'scale1': s1, 'rad2': r2, 'scale2': s2,
                'boxes': np.asarray(second.boxes, np.float32).reshape(-1, 4),
                'labels': np.asarray(second.labels, np.int64).reshape(-1),
                'generator_key': np.asarray(self.generator_key)}

    def _load(self, seed: int) -> dict:
        path = self._path(seed)
        if path is not None and path.is_file():
            try:
                with np.load(path) as z:
                    data = {k: z[k] for k in z.files}
                key = str(data.get('generator_key', ''))
                if key == self.generator_key:
                    return data
                LOG.warning('cache file %s was made by another scene generator (key %r, '
                            'now %r); regenerating', path, key, self.generator_key)
            except (OSError, ValueError, KeyError) as err:
                LOG.warning('cache file %s unreadable (%s); regenerating', path, err)
        data = self._generate(seed)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f'.{path.stem}.{os.getpid()}.tmp.npz')
            np.savez(tmp, **data)
            os.replace(tmp, path)
        return data

    def prepare(self, indices=None, progress: bool = False) -> int:
        """Generate the missing cache files of ``indices`` (default all); return the count."""
        if self.cache is None:
            return 0
        indices = range(self.size) if indices is None else indices
        missing = [i for i in indices if not self._is_cached(self.seed(i))]
        it: Iterable[int] = missing
        if progress and missing:
            from tqdm import tqdm
            it = tqdm(missing, desc=f'caching scenes {self.height}x{self.width}',
                      unit='pair', dynamic_ncols=True)
        for i in it:
            self._load(self.seed(i))
        return len(missing)

    def __getitem__(self, index: int) -> dict:
        data = self._load(self.seed(index))
        return {'rad1': _unpack(data['rad1'], float(data['scale1'])),
                'rad2': _unpack(data['rad2'], float(data['scale2'])),
                'boxes': data['boxes'], 'labels': data['labels'], 'var_rate1': None,
                'var_rate2': None, 'key': self.seed(index)}


class _FrameListPairs(PairSource):
    """
    Pairs of in-memory frames (float16-packed) with COCO labels, optional source noise.

    The frames are read when the source is built, so :meth:`prepare` has nothing to do.
    """

    def __init__(self, frames: list, pairs: list, labels: dict, height: int, width: int,
                 source_sensor=None, source_t_exp_s: float = 0.01, sensor=None):
        self.frames = frames          # list of (packed, scale)
        self.pairs = pairs            # list of (i, j): frame indices of frame 1 and 2
        self.labels = labels          # frame index -> (boxes, labels)
        self.height, self.width = height, width
        self.source_sensor = source_sensor
        self.source_t_exp_s = float(source_t_exp_s)
        self.sensor = sensor

    def __len__(self) -> int:
        return len(self.pairs)

    def _var_rate(self, rad: np.ndarray) -> Optional[np.ndarray]:
        if self.source_sensor is None:
            return None
        phi = S.mosaic(rad, self.sensor.bayer_pattern if self.sensor else 'RGGB')
        # variance for t_exp = 1 s equals the rate per s^2 the capture scales by t_exp**2
        return S.source_noise_var_e(phi, 1.0, self.source_sensor,
                                    self.source_t_exp_s).astype(np.float32)

    def __getitem__(self, index: int) -> dict:
        i, j = self.pairs[index]
        rad1 = _unpack(*self.frames[i])
        rad2 = _unpack(*self.frames[j])
        boxes, labels = self.labels.get(j, (np.zeros((0, 4), np.float32),
                                            np.zeros((0,), np.int64)))
        return {'rad1': rad1, 'rad2': rad2, 'boxes': boxes, 'labels': labels,
                'var_rate1': self._var_rate(rad1), 'var_rate2': self._var_rate(rad2),
                'key': index}


def _coco_boxes(coco: dict, image_id) -> tuple:
    anns = [a for a in coco.get('annotations', []) if a.get('image_id') == image_id]
    boxes = np.array([[a['bbox'][0], a['bbox'][1], a['bbox'][0] + a['bbox'][2],
                       a['bbox'][1] + a['bbox'][3]] for a in anns], np.float32).reshape(-1, 4)
    labels = np.array([a['category_id'] for a in anns], np.int64)
    return boxes, labels


def _frame_boxes(boxes, labels, rad: np.ndarray, height: int, width: int,
                 counts: dict) -> tuple:
    """
    Resize a frame and its boxes to ``height x width``; clip, drop unusable boxes.

    Boxes with negative or zero size or outside the source frame, and boxes under 1 px
    once resized and clipped, are dropped and counted in ``counts`` (per reason) for one
    warning per source; the kept boxes are exactly those of a plain resize + clip.
    """
    from neural_ae.core.bags.labels import clean_boxes_xyxy

    _, _, first = clean_boxes_xyxy(boxes, labels, rad.shape[0], rad.shape[1], min_size=0.0,
                                   warn=False)
    rad, boxes = resize_with_boxes(rad, boxes, height, width)
    kept = _clean_boxes(boxes, labels, height, width)
    counts['total'] += len(boxes)
    counts['negative'] += first['negative']
    counts['outside'] += first['outside']
    counts['small'] += len(boxes) - len(kept[0]) - first['negative'] - first['outside']
    return rad, kept


def _new_counts() -> dict:
    return {'total': 0, 'negative': 0, 'outside': 0, 'small': 0}


def _report_counts(where: str, counts: dict) -> None:
    _warn_dropped(where, {k: v for k, v in counts.items() if k != 'total'}, counts['total'])


class HDRBagPairs(_FrameListPairs):
    """
    Consecutive radiance frames ``(k, k + 1)`` of an HDR rosbag2, boxes of frame ``k + 1``.

    Labels come from the bag's ``labels.json`` (COCO, checked by
    :func:`neural_ae.core.bags.labels.validate_coco`; images carry ``frame_index`` or a
    stamp, ``t_ns`` / ``stamp_ns``, matched to the nearest frame within half a frame
    period). Boxes with negative size or outside the frame are dropped with one warning
    for the bag. The frames are read once and kept in memory as float16 (about 0.4 MB
    per 192 x 320 frame).
    """

    def __init__(self, path, height: int, width: int, source_sensor=None,
                 source_t_exp_s: float = 0.01, sensor=None, topic: Optional[str] = None):
        from neural_ae.core.bags import open_hdr_bag

        from neural_ae.core.bags.labels import match_stamp, stamp_tolerance_ns, validate_coco

        frames, stamps, labels = [], [], {}
        with open_hdr_bag(path) as bag:
            coco = bag.labels()
            if coco is None:
                raise ConfigError(f'HDR bag {path} has no labels.json: training needs boxes')
            coco = validate_coco(coco, f'HDR bag {path}', ConfigError)
            for t_ns, rad in bag.iter_radiance(topic):
                frames.append(rad)
                stamps.append(int(t_ns))
        # images keyed by frame_index; the others by the nearest frame stamp
        by_frame = {img['frame_index']: img['id'] for img in coco['images']
                    if 'frame_index' in img}
        order = sorted(range(len(stamps)), key=stamps.__getitem__)
        sorted_stamps = [stamps[i] for i in order]
        tol = stamp_tolerance_ns(sorted_stamps)
        for img in coco['images']:
            if 'frame_index' not in img:
                j = match_stamp(sorted_stamps, img['t_ns'], tol)
                if j is not None:
                    by_frame.setdefault(order[j], img['id'])
        packed, counts = [], _new_counts()
        for k, rad in enumerate(frames):
            boxes, labs = _coco_boxes(coco, by_frame[k]) if k in by_frame else (
                np.zeros((0, 4), np.float32), np.zeros((0,), np.int64))
            rad, labels[k] = _frame_boxes(boxes, labs, rad, height, width, counts)
            packed.append(_pack(rad))
        _report_counts(f'HDR bag {path}', counts)
        if len(packed) < 2:
            raise HDRError(f'HDR bag {path} has {len(packed)} radiance frame(s); pairs need 2')
        pairs = [(k, k + 1) for k in range(len(packed) - 1)]
        super().__init__(packed, pairs, labels, height, width, source_sensor, source_t_exp_s,
                         sensor)


def _bracket_labels(path: Path) -> dict:
    """
    Read a bracket folder's ``labels.json`` (COCO; one-line :class:`ConfigError`).

    Images name their bracket set by ``file_name`` (the stem), so ``frame_index`` and
    stamps are optional here.
    """
    from neural_ae.core.bags.labels import read_labels_file

    coco = read_labels_file(path, ConfigError, require_key=False)
    for img in coco['images']:
        if not isinstance(img.get('file_name'), str) or not img['file_name']:
            raise ConfigError(f'labels {path}: image id {img["id"]!r} needs a "file_name" '
                              f'(the stem of its bracket set)')
    return coco


class BracketPairs(_FrameListPairs):
    """
    Bracket sets in a folder (``<stem>.json`` sidecars + LDR images), merged with Eq. 7.

    ``labels.json`` (COCO) in the folder names each set by ``file_name`` (the stem, with
    or without extension). Images with the same ``sequence`` and consecutive
    ``frame_index`` form pairs; an image without them forms a static pair with itself
    (same radiance, independent noise in the two captures).
    """

    def __init__(self, folder, height: int, width: int, source_sensor=None,
                 source_t_exp_s: float = 0.01, sensor=None):
        from neural_ae.core import hdr
        from neural_ae.core.scenes import load_brackets

        folder = Path(folder)
        label_path = folder / 'labels.json'
        if not label_path.is_file():
            raise ConfigError(f'bracket folder {folder} has no labels.json (COCO): '
                              f'training needs boxes')
        coco = _bracket_labels(label_path)
        images = sorted(coco['images'],
                        key=lambda im: (str(im.get('sequence', '')), im.get('frame_index', 0),
                                        im['id']))
        frames, labels, index = [], {}, {}
        counts = _new_counts()
        for k, img in enumerate(images):
            stem = Path(img['file_name']).stem
            ldr, times, gains, side = load_brackets(folder, stem)
            rad = hdr.merge_brackets(ldr, times, gains,
                                     full_scale=float(side.get('full_well_e', 1.0)))
            boxes, labs = _coco_boxes(coco, img['id'])
            rad, labels[k] = _frame_boxes(boxes, labs, rad, height, width, counts)
            frames.append(_pack(rad))
            index[(img.get('sequence'), img.get('frame_index'))] = k
        _report_counts(f'bracket folder {folder}', counts)
        if not frames:
            raise HDRError(f'bracket folder {folder}: labels.json lists no images')
        pairs = []
        for k, img in enumerate(images):
            seq, fi = img.get('sequence'), img.get('frame_index')
            if seq is None or fi is None:
                pairs.append((k, k))
            elif (seq, fi - 1) in index:
                pairs.append((index[(seq, fi - 1)], k))
        super().__init__(frames, pairs, labels, height, width, source_sensor, source_t_exp_s,
                         sensor)


# --------------------------------------------------------------------------- examples


class TwoFrameExamples(Dataset):
    """
    Training/validation examples from a source: ``phi`` tensors, ``e_base``, draws.

    ``train=True``: ``kappa`` log-uniform in ``[kappa_min, kappa_max]``, noise strength
    log-uniform in ``[noise_scale_min, noise_scale_max]`` (when ``noise_augment``), random
    horizontal flip (when ``hflip``), all from ``rng(seed, epoch, index)``; call
    :meth:`set_epoch` each epoch. ``train=False``: ``kappa`` log-uniform from
    ``rng(seed, index)`` (used for the closed-loop figure), noise strength 1, no flip.
    """

    def __init__(self, source: Dataset, sensor: S.SensorConfig, cfg, train: bool):
        self.source = source
        self.sensor = sensor
        self.cfg = cfg
        self.train = train
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the random draws of ``epoch``."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        # torch's Dataset declares no __len__; every source here is a sized dataset
        return len(cast(Sized, self.source))

    def _rng(self, index: int) -> np.random.Generator:
        if self.train:
            return np.random.default_rng([self.cfg.seed, self.epoch, int(index), 17])
        return np.random.default_rng([self.cfg.seed, int(index), 23])

    def __getitem__(self, index: int) -> dict:
        rec = self.source[index]
        rng = self._rng(index)
        cfg = self.cfg
        kappa = math.exp(rng.uniform(math.log(cfg.kappa_min), math.log(cfg.kappa_max)))
        scale = 1.0
        if self.train and cfg.noise_augment:
            scale = S.sample_noise_scale(rng, cfg.noise_scale_min, cfg.noise_scale_max)
        flip = bool(self.train and cfg.hflip and rng.random() < 0.5)
        rad1, rad2 = rec['rad1'], rec['rad2']
        boxes = np.asarray(rec['boxes'], np.float32).reshape(-1, 4).copy()
        labels = np.asarray(rec['labels'], np.int64).reshape(-1)
        v1, v2 = rec.get('var_rate1'), rec.get('var_rate2')
        h, w = rad1.shape[:2]
        if flip:
            rad1, rad2 = rad1[:, ::-1], rad2[:, ::-1]
            boxes[:, [0, 2]] = w - boxes[:, [2, 0]]
            v1 = v1[:, ::-1] if v1 is not None else None
            v2 = v2[:, ::-1] if v2 is not None else None
        boxes, labels = _clean_boxes(boxes, labels, h, w)
        phi1 = S.mosaic(np.ascontiguousarray(rad1), self.sensor.bayer_pattern)
        phi2 = S.mosaic(np.ascontiguousarray(rad2), self.sensor.bayer_pattern)
        out = {
            'phi1': torch.from_numpy(np.ascontiguousarray(phi1, np.float32))[None],
            'phi2': torch.from_numpy(np.ascontiguousarray(phi2, np.float32))[None],
            'e_base1': S.e_base_s(phi1, self.sensor),
            'e_base2': S.e_base_s(phi2, self.sensor),
            'kappa': kappa,
            'noise_scale': scale,
            'boxes': torch.from_numpy(boxes),
            'labels': torch.from_numpy(labels),
            'key': rec.get('key', index),
        }
        for name, v in (('var_rate1', v1), ('var_rate2', v2)):
            out[name] = (torch.from_numpy(np.ascontiguousarray(v, np.float32))[None]
                         if v is not None else None)
        return out


def to_device(batch: dict, device) -> dict:
    """Move the tensors of a batch (:func:`collate`) to ``device``."""
    out: Dict[str, Any] = {}
    for k, v in batch.items():
        if isinstance(v, torch.Tensor):
            out[k] = v.to(device)
        elif isinstance(v, list) and v and isinstance(v[0], torch.Tensor):
            out[k] = [x.to(device) for x in v]
        else:
            out[k] = v
    return out


def collate(examples: list) -> dict:
    """Stack a list of :class:`TwoFrameExamples` items into a batch dict."""
    batch = {
        'phi1': torch.stack([e['phi1'] for e in examples]),
        'phi2': torch.stack([e['phi2'] for e in examples]),
        'e_base1': torch.tensor([e['e_base1'] for e in examples], dtype=torch.float64),
        'e_base2': torch.tensor([e['e_base2'] for e in examples], dtype=torch.float64),
        'kappa': torch.tensor([e['kappa'] for e in examples], dtype=torch.float64),
        'noise_scale': torch.tensor([e['noise_scale'] for e in examples], dtype=torch.float32),
        'boxes': [e['boxes'] for e in examples],
        'labels': [e['labels'] for e in examples],
        'key': [e['key'] for e in examples],
    }
    for name in ('var_rate1', 'var_rate2'):
        vals = [e[name] for e in examples]
        batch[name] = torch.stack(vals) if all(v is not None for v in vals) else None
    return batch


class SplitPairs(Subset, PairSource):
    """The pairs of a source that one split (train or val) uses, by index."""

    dataset: PairSource

    def prepare(self, indices=None, progress: bool = False) -> int:
        """Prepare the source's examples behind ``indices`` (default all of the split)."""
        picked = self.indices if indices is None else [self.indices[i] for i in indices]
        return self.dataset.prepare(picked, progress=progress)


def build_source(cfg, sensor: S.SensorConfig, split: str) -> PairSource:
    """Build the configured data source for ``split`` ('train' or 'val')."""
    source_sensor = (S.load_sensor(cfg.source_sensor, hdr_source=True)
                     if cfg.source_sensor else None)
    if cfg.data_source == 'procedural':
        start, size = ((cfg.train_seed_start, cfg.train_size) if split == 'train'
                       else (cfg.val_seed_start, cfg.val_size))
        return ProceduralPairs(start, size, cfg.height, cfg.width, cfg.cache_dir or None)
    src: _FrameListPairs
    if cfg.data_source == 'hdr_bag':
        src = HDRBagPairs(cfg.data_path, cfg.height, cfg.width, source_sensor,
                          cfg.source_t_exp_s, sensor)
    else:
        src = BracketPairs(cfg.data_path, cfg.height, cfg.width, source_sensor,
                           cfg.source_t_exp_s, sensor)
    # user data: the last val_size pairs validate, the rest train
    n_val = min(cfg.val_size, max(len(src) - 1, 0))
    idx = list(range(len(src) - n_val)) if split == 'train' else \
        list(range(len(src) - n_val, len(src)))
    return SplitPairs(src, idx)
