"""
Writing HDR rosbag2 bags (MCAP or SQLite3) through rosbags: :class:`HDRBagWriter`.

Crash safety: a writer never opens an existing path (bags are write-once, so a closed bag
stays intact), and leaving the ``with`` block through an exception still *closes* the bag
(index and ``metadata.yaml`` are written), so every message written before the exception
stays readable. COCO labels given with :meth:`HDRBagWriter.write_labels` are written to
``<bag>/labels.json`` when the bag closes.

Units: a bag that holds radiance declares its unit in ``metadata.yaml`` (``custom_data``
key :data:`~neural_ae.core.bags.units.UNIT_KEY`; ``e-/s`` of the sensor model by default,
:data:`~neural_ae.core.bags.units.RELATIVE` for an HDR camera's own units).

Atomic bags (``atomic=True``, what the commands use): the bag is written under a hidden
temporary folder beside the target and renamed to its name when it closes; leaving the
``with`` block through an exception removes the temporary bag, so a failed run leaves
nothing that blocks the next one (``replace=True`` also lets a closed atomic bag take the
place of an existing one, for ``--force``).
"""
import logging
import os
from pathlib import Path
import shutil
import tempfile
from typing import Dict, List, Literal, Optional, Tuple

from neural_ae.core.bags.common import (check_t_ns, default_typestore, dumps, IMAGE_MSGTYPE,
                                        RADIANCE_TOPIC, STORAGES, STRING_MSGTYPE)
from neural_ae.core.bags.labels import resolve_label_frames, write_labels_file
from neural_ae.core.bags.units import check_unit, E_PER_S, UNIT_KEY
from neural_ae.core.errors import BagFormatError, HDRError
import numpy as np
from rosbags.interfaces import Connection
from rosbags.rosbag2 import Writer

logger = logging.getLogger(__name__)

# raw encoding -> numpy base type of its single channel
_RAW = {'mono16': 'u2', '16UC1': 'u2', 'mono8': 'u1', '8UC1': 'u1'}
for _p in ('rggb', 'bggr', 'gbrg', 'grbg'):
    _RAW['bayer_%s16' % _p] = 'u2'
    _RAW['bayer_%s8' % _p] = 'u1'


class HDRBagWriter:
    """
    Write an HDR rosbag2 (MCAP or SQLite3) through rosbags; use it as a context manager.

    ``path`` is the bag directory and must not exist yet. ``topic`` is the radiance
    topic, ``frame_id`` goes into every Image header. ``typestore`` (a rosbags
    ``Typestore``) is only needed for message types outside ROS 2 kilted's standard set.
    ``radiance_unit``: the unit declared for the radiance topic when the bag holds radiance
    (``'e-/s'`` default, ``'relative'``, ``None``: declare nothing). ``atomic`` /
    ``replace``: see the module docstring.
    """

    def __init__(self, path, storage: str = 'mcap', topic: str = RADIANCE_TOPIC,
                 frame_id: str = 'camera', typestore=None,
                 radiance_unit: Optional[str] = E_PER_S, atomic: bool = False,
                 replace: bool = False):
        if storage not in STORAGES:
            raise BagFormatError(f'storage must be one of {sorted(STORAGES)}, got {storage!r}')
        self.path = Path(path)
        self.storage = storage
        self.topic = topic
        self.frame_id = frame_id
        self.typestore = typestore if typestore is not None else default_typestore()
        self.radiance_unit = check_unit(radiance_unit)
        self.atomic = bool(atomic)
        self.replace = bool(replace) and self.atomic
        self._work = self.path
        self._tmp_parent: Optional[Path] = None
        self._custom: Dict[str, str] = {}
        self._writer: Optional[Writer] = None
        self._connections: Dict[str, Tuple[str, Connection]] = {}
        self._frame_t_ns: List[int] = []
        self._labels: Optional[dict] = None

    # lifecycle ---------------------------------------------------------------------
    def open(self) -> 'HDRBagWriter':  # noqa: A003 - mirrors rosbags' Writer.open
        """Create the bag directory and its storage file."""
        if self._writer is not None:
            raise BagFormatError(f'bag {self.path} is already open')
        if self.path.exists() and not self.replace:
            raise BagFormatError(
                f'refusing to write bag {self.path}: path exists (bags are write-once)')
        try:
            if self.atomic:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._tmp_parent = Path(tempfile.mkdtemp(prefix=f'.{self.path.name}.partial-',
                                                         dir=self.path.parent))
                self._work = self._tmp_parent / self.path.name
            writer = Writer(self._work, version=Writer.VERSION_LATEST,
                            storage_plugin=STORAGES[self.storage])
            writer.open()
        except Exception as err:
            self._remove_partial()
            raise BagFormatError(f'cannot create bag {self.path}: {err}') from err
        self._writer = writer
        return self

    def set_custom_data(self, key: str, value) -> None:
        """Record ``key: str(value)`` in the bag's ``metadata.yaml`` (``custom_data``)."""
        if not isinstance(key, str) or not key:
            raise BagFormatError(f'custom_data key must be a non-empty string, got {key!r}')
        self._custom[key] = str(value)

    def close(self) -> None:
        """Write index, ``metadata.yaml`` and pending labels (atomic: rename); safe twice."""
        writer, self._writer = self._writer, None
        if writer is None:
            return
        try:
            custom = dict(self._custom)
            if self._frame_t_ns and self.radiance_unit is not None:
                custom.setdefault(UNIT_KEY, self.radiance_unit)
            for key, value in custom.items():
                writer.set_custom_data(key, value)
            writer.close()
        except Exception as err:
            try:
                writer.abort()
            except Exception:  # noqa: BLE001 - already reporting the close failure
                pass
            self._remove_partial()
            raise BagFormatError(f'cannot close bag {self.path}: {err}') from err
        try:
            if self._labels is not None:
                labels = resolve_label_frames(self._labels, self._frame_t_ns, self.topic,
                                              str(self.path))
                write_labels_file(self._work, labels)
            self._commit()
        except Exception:
            self._remove_partial()
            raise

    def _commit(self) -> None:
        """Atomic bags: move the closed bag to its name (replacing an old one if allowed)."""
        if self._tmp_parent is None:
            return
        old = None
        try:
            if self.path.exists():
                if not self.replace:
                    raise BagFormatError(f'refusing to write bag {self.path}: path appeared '
                                         'while writing (bags are write-once)')
                old = self._tmp_parent / '.replaced'
                os.replace(self.path, old)
            os.replace(self._work, self.path)
        except OSError as err:
            raise BagFormatError(f'cannot move the finished bag to {self.path}: {err}') from err
        self._work = self.path
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        self._remove_partial()

    def _remove_partial(self) -> None:
        """Atomic bags: remove the temporary folder (and any partial bag in it)."""
        parent, self._tmp_parent = self._tmp_parent, None
        if parent is not None:
            shutil.rmtree(parent, ignore_errors=True)

    def discard(self) -> None:
        """Abandon the bag: close it, and for an atomic bag remove what was written."""
        writer, self._writer = self._writer, None
        if writer is not None:
            try:
                writer.close()
            except Exception:  # noqa: BLE001 - the bag is being thrown away
                logger.debug('closing discarded bag %s failed', self.path, exc_info=True)
        if self.atomic:
            self._remove_partial()

    def __enter__(self) -> 'HDRBagWriter':
        """Open the bag."""
        return self.open()

    def __exit__(self, exc_type, exc, tb) -> Literal[False]:
        """
        Close the bag, also when leaving through an exception (that one propagates).

        An atomic bag left through an exception is discarded instead (nothing remains).
        """
        if exc_type is None:
            self.close()
            return False
        if self.atomic:
            self.discard()
            return False
        try:
            self.close()
        except Exception:  # noqa: BLE001 - keep the original exception
            logger.exception('closing bag %s after %s failed', self.path, exc_type.__name__)
        return False

    @property
    def frames_written(self) -> int:
        """Return the number of radiance frames written so far."""
        return len(self._frame_t_ns)

    # writing -----------------------------------------------------------------------
    def write_message(self, topic: str, msgtype: str, t_ns: int, msg) -> None:
        """Serialize ``msg`` (a rosbags message of ``msgtype``) and write it on ``topic``."""
        if self._writer is None:
            raise BagFormatError(f'bag {self.path} is not open for writing')
        t_ns = check_t_ns(t_ns)
        known = self._connections.get(topic)
        if known is not None and known[0] != msgtype:
            raise BagFormatError(
                f'topic {topic!r} already carries {known[0]}, cannot write {msgtype}')
        if msgtype not in self.typestore.types:
            raise BagFormatError(f'message type {msgtype!r} is not in the typestore')
        try:
            data = self.typestore.serialize_cdr(msg, msgtype)
            if known is None:
                conn = self._writer.add_connection(topic, msgtype, typestore=self.typestore)
                known = self._connections[topic] = (msgtype, conn)
            self._writer.write(known[1], t_ns, data)
        except Exception as err:
            raise BagFormatError(
                f'cannot write {msgtype} on {topic!r} at t_ns={t_ns}: {err}') from err

    def _image(self, t_ns: int, arr: np.ndarray, encoding: str):
        types = self.typestore.types
        sec, nanosec = divmod(t_ns, 1_000_000_000)
        header = types['std_msgs/msg/Header'](
            stamp=types['builtin_interfaces/msg/Time'](sec=sec, nanosec=nanosec),
            frame_id=self.frame_id)
        height, width = arr.shape[:2]
        return types[IMAGE_MSGTYPE](
            header=header, height=height, width=width, encoding=encoding, is_bigendian=0,
            step=arr.nbytes // height, data=arr.reshape(-1).view(np.uint8))

    def write_radiance(self, t_ns: int, radiance) -> int:
        """
        Write one linear RGB radiance frame ``(H, W, 3)`` as a ``32FC3`` Image.

        Values are stored as float32 (exactly, when given as float32). Non-finite values
        raise :class:`HDRError`. Returns the frame index on the radiance topic.
        """
        arr = np.asarray(radiance)
        if arr.ndim != 3 or arr.shape[2] != 3 or 0 in arr.shape or arr.dtype.kind not in 'fiu':
            raise HDRError(
                f'radiance must be a non-empty numeric (H, W, 3) array,'
                f' got {arr.dtype} {arr.shape}')
        arr = np.ascontiguousarray(arr, dtype='<f4')
        bad = arr.size - int(np.count_nonzero(np.isfinite(arr)))
        if bad:
            raise HDRError(f'radiance {arr.shape} at t_ns={t_ns} has {bad} non-finite values')
        t_ns = check_t_ns(t_ns)
        self.write_message(self.topic, IMAGE_MSGTYPE, t_ns, self._image(t_ns, arr, '32FC3'))
        self._frame_t_ns.append(t_ns)
        return len(self._frame_t_ns) - 1

    def write_raw(self, topic: str, t_ns: int, raw, encoding: str = 'bayer_rggb16') -> None:
        """Write a single-channel raw frame ``(H, W)`` (uint16 or uint8 per ``encoding``)."""
        if encoding not in _RAW:
            raise BagFormatError(
                f'raw encoding must be one of {sorted(_RAW)}, got {encoding!r}')
        arr = np.asarray(raw)
        want = np.dtype(_RAW[encoding])
        if arr.ndim != 2 or 0 in arr.shape or arr.dtype.str[1:] != want.str[1:]:
            raise BagFormatError(
                f'encoding {encoding!r} needs a non-empty {want.name} (H, W) array,'
                f' got {arr.dtype} {arr.shape}')
        t_ns = check_t_ns(t_ns)
        arr = np.ascontiguousarray(arr, dtype=want.newbyteorder('<'))
        self.write_message(topic, IMAGE_MSGTYPE, t_ns, self._image(t_ns, arr, encoding))

    def write_json(self, topic: str, t_ns: int, obj) -> None:
        """
        Write ``obj`` as one JSON document in a ``std_msgs/msg/String``.

        numpy scalars and arrays are converted; NaN and infinity are rejected (strict
        JSON) with :class:`BagFormatError`.
        """
        try:
            text = dumps(obj)
        except (TypeError, ValueError) as err:
            raise BagFormatError(f'cannot write JSON on {topic!r} at t_ns={t_ns}: {err}') from err
        msg = self.typestore.types[STRING_MSGTYPE](data=text)
        self.write_message(topic, STRING_MSGTYPE, t_ns, msg)

    def write_labels(self, coco: dict) -> None:
        """Attach COCO labels; written to ``<bag>/labels.json`` when the bag closes."""
        resolve_label_frames(coco, None, self.topic, str(self.path))  # validate early
        self._labels = coco
