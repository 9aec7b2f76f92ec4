"""
Reading rosbag2 HDR bags through rosbags: :func:`open_hdr_bag` and :class:`HDRBag`.

A bag that rosbags cannot open (an MCAP file without index, footer or ``metadata.yaml``,
left by a process that died) is read by scanning it record by record
(:mod:`neural_ae.core.bags.salvage`): every complete chunk is recovered, the open chunk
is lost. :func:`decode_radiance` turns an Image message into linear RGB radiance.
:attr:`HDRBag.radiance_unit` is the unit the bag declares (``metadata.yaml``
``custom_data``, :mod:`neural_ae.core.bags.units`), ``None`` when it declares none.
"""
import json
import logging
import math
from pathlib import Path
from typing import Dict, Literal, Optional

from neural_ae.core.bags.common import (IMAGE_MSGTYPE, LABELS_FILENAME, RADIANCE_TOPIC,
                                        TYPESTORE)
from neural_ae.core.bags.salvage import is_mcap, iter_salvaged, salvage_index
from neural_ae.core.bags.units import UNIT_KEY, UNITS
from neural_ae.core.errors import BagFormatError
from neural_ae.core.image_encodings import decode_image, ImageLayoutError, srgb_to_linear
import numpy as np
from rosbags.rosbag2 import Reader
from rosbags.typesys import get_types_from_idl, get_types_from_msg, get_typestore

logger = logging.getLogger(__name__)

# encoding -> (numpy base type, channels, byte order of RGB: +1 RGB / -1 BGR, transfer)
_RADIANCE = {
    '32FC3': ('f4', 3, 1, 'linear'),
    '32FC1': ('f4', 1, 1, 'linear'),
    '16UC3': ('u2', 3, 1, 'linear16'),
    'rgb16': ('u2', 3, 1, 'linear16'),
    'bgr16': ('u2', 3, -1, 'linear16'),
    '8UC3': ('u1', 3, 1, 'srgb8'),
    'rgb8': ('u1', 3, 1, 'srgb8'),
    'bgr8': ('u1', 3, -1, 'srgb8'),
}
#: Image encodings :meth:`HDRBag.iter_radiance` decodes (see :func:`decode_radiance`).
RADIANCE_ENCODINGS = tuple(_RADIANCE)


def decode_radiance(msg, where: str = 'image') -> np.ndarray:
    """
    Decode an Image message (rosbags or rclpy) into linear radiance float32 ``(H, W, 3)``.

    ``32FC3`` is taken as RGB radiance, ``32FC1`` is replicated to three channels.
    Integer encodings are linearised: 16-bit (``16UC3``, ``rgb16``, ``bgr16``) is assumed
    linear and divided by 65535; 8-bit (``8UC3``, ``rgb8``, ``bgr8``) is assumed sRGB
    encoded and goes through the inverse sRGB curve. Generic ``8UC3``/``16UC3`` are read
    as RGB. ``step`` and ``is_bigendian`` are honoured
    (:func:`neural_ae.core.image_encodings.decode_image`). Non-finite values are kept (see
    :meth:`HDRBag.iter_radiance` for sanitizing). Raises :class:`BagFormatError`.
    """
    encoding = msg.encoding
    if encoding not in _RADIANCE:
        raise BagFormatError(
            f'{where}: {msg.height}x{msg.width} image with encoding {encoding!r} is not '
            f'radiance: expected one of {", ".join(RADIANCE_ENCODINGS)}')
    base, channels, order, transfer = _RADIANCE[encoding]
    try:
        arr = decode_image(msg.data, msg.height, msg.width, msg.step, msg.is_bigendian,
                           np.dtype(base), channels, encoding)
    except ImageLayoutError as err:
        raise BagFormatError(f'{where}: {err}') from err
    arr = arr.astype(np.float32, copy=False)
    if channels == 1:
        arr = np.repeat(arr[..., None], 3, axis=2)
    elif order < 0:
        arr = np.ascontiguousarray(arr[..., ::-1])
    if transfer == 'linear16':
        arr /= np.float32(65535.0)
    elif transfer == 'srgb8':
        arr = srgb_to_linear(arr / np.float32(255.0)).astype(np.float32)
    return arr


class _Conn:
    """What the reader needs of a connection: topic, type and its definition."""

    __slots__ = ('topic', 'msgtype', 'deffmt', 'defdata', 'count')

    def __init__(self, topic, msgtype, deffmt, defdata, count=0):
        self.topic, self.msgtype, self.deffmt, self.defdata = topic, msgtype, deffmt, defdata
        self.count = count


class HDRBag:
    """
    A rosbag2 opened for reading; get one from :func:`open_hdr_bag`.

    Each iteration opens the underlying file anew, so an ``HDRBag`` holds no file handle
    and iterators can run side by side. ``salvaged`` is True when the bag could only be
    read by scanning a damaged MCAP file (``salvage_note`` says why and how much).
    """

    def __init__(self, path: Path, topic: str = RADIANCE_TOPIC, strict: bool = False):
        self.path = path
        self.radiance_topic = topic
        self.salvaged = False
        self.salvage_note: Optional[str] = None
        self._typestore = get_typestore(TYPESTORE)
        self._source = path
        self._conns: Dict[str, _Conn] = {}
        self.custom_data: Dict[str, str] = {}
        self._open(strict)

    # opening -----------------------------------------------------------------------
    def _open(self, strict: bool) -> None:
        path = self.path
        if path.is_dir() and not (path / 'metadata.yaml').exists():
            files = sorted(path.glob('*.mcap')) + sorted(path.glob('*.db3'))
            if len(files) != 1:
                raise BagFormatError(
                    f'cannot read rosbag2 at {path}: no metadata.yaml and {len(files)}'
                    ' storage files (.mcap/.db3)')
            if strict:
                raise BagFormatError(f'cannot read rosbag2 at {path}: no metadata.yaml')
            logger.warning('%s has no metadata.yaml (writer did not finish?); reading %s',
                           path, files[0].name)
            self._source = files[0]
        try:
            with Reader(self._source) as reader:
                for conn in reader.connections:
                    self._add_conn(conn.topic, conn.msgtype, conn.msgdef.format.name,
                                   conn.msgdef.data, conn.msgcount)
                custom = getattr(getattr(reader.storage, 'metadata', None), 'custom', None)
            if isinstance(custom, dict):
                self.custom_data = {str(k): str(v) for k, v in custom.items()}
            return
        except Exception as err:
            mcap = self._mcap_file()
            if strict or mcap is None:
                raise BagFormatError(f'cannot read rosbag2 at {path}: {err}') from err
            self._salvage(mcap, err)

    def _add_conn(self, topic, msgtype, deffmt, defdata, count):
        have = self._conns.get(topic)
        if have is not None and have.msgtype == msgtype:
            have.count += count
        else:
            self._conns[topic] = _Conn(topic, msgtype, deffmt, defdata, count)

    def _mcap_file(self):
        src = self._source
        files = [src] if src.is_file() else sorted(src.glob('*.mcap'))
        if len(files) != 1 or files[0].suffix != '.mcap':
            return None
        return files[0] if is_mcap(files[0]) else None

    def _salvage(self, mcap: Path, err: Exception) -> None:
        index = salvage_index(mcap)
        self._conns = {topic: _Conn(topic, *conn) for topic, conn in index.connections.items()}
        self.salvaged = True
        self._source = mcap
        self.salvage_note = (f'rosbags cannot open {mcap} ({err}); scanned it record by record'
                             f' and recovered {index.messages} messages ({index.lost})')
        logger.warning('%s', self.salvage_note)

    # introspection -----------------------------------------------------------------
    def __enter__(self) -> 'HDRBag':
        """Return self (an HDRBag holds no open file)."""
        return self

    def __exit__(self, *exc) -> Literal[False]:
        """Nothing to release."""
        return False

    @property
    def radiance_unit(self) -> Optional[str]:
        """
        Return the declared radiance unit (``'e-/s'``, ``'relative'``) or None.

        None: the bag declares none (recorded by another tool, or salvaged: a damaged
        bag has no ``metadata.yaml``). A value outside the known units is logged and
        read as ``'relative'`` (scaled like an undeclared bag).
        """
        unit = self.custom_data.get(UNIT_KEY)
        if unit is None or unit in UNITS:
            return unit
        logger.warning('%s declares radiance unit %r (not one of %s): read as relative',
                       self.path, unit, ', '.join(UNITS))
        return 'relative'

    def topics(self) -> dict:
        """Map every topic to its message type."""
        return {t: c.msgtype for t, c in sorted(self._conns.items())}

    def message_counts(self) -> dict:
        """Map every topic to its number of messages."""
        return {t: c.count for t, c in sorted(self._conns.items())}

    def __len__(self) -> int:
        """Return the number of frames on the radiance topic (0 when it is absent)."""
        conn = self._conns.get(self.radiance_topic)
        return conn.count if conn is not None else 0

    def _conn(self, topic: str) -> _Conn:
        conn = self._conns.get(topic)
        if conn is None:
            raise BagFormatError(
                f'bag {self.path} has no topic {topic!r}; available: {sorted(self._conns)}')
        return conn

    def labels(self):
        """Return the COCO dict from ``<bag>/labels.json``, or None when there is none."""
        path = self.path / LABELS_FILENAME
        if not self.path.is_dir() or not path.exists():
            return None
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError) as err:
            raise BagFormatError(f'cannot read labels {path}: {err}') from err

    # iteration ---------------------------------------------------------------------
    def _raw(self, topic: str):
        """Yield ``(t_ns, rawdata)`` of ``topic``; damage raises BagFormatError at the end."""
        self._conn(topic)
        count = 0
        try:
            if self.salvaged:
                for t_ns, data in iter_salvaged(self._source, topic):
                    count += 1
                    yield t_ns, data
                return
            with Reader(self._source) as reader:
                conns = [c for c in reader.connections if c.topic == topic]
                if not conns:
                    return
                for _, t_ns, data in reader.messages(connections=conns):
                    count += 1
                    yield t_ns, data
        except BagFormatError:
            raise
        except Exception as err:
            raise BagFormatError(
                f'bag {self.path} is damaged: read {count} messages on {topic!r},'
                f' then: {err}') from err

    def _ensure_type(self, conn: _Conn) -> None:
        store = self._typestore
        if conn.msgtype in store.fielddefs:
            return
        try:
            if conn.deffmt == 'MSG':
                store.register(get_types_from_msg(conn.defdata, conn.msgtype))
            elif conn.deffmt == 'IDL':
                sep = '=' * 80 + '\n'
                parts = conn.defdata.split(sep)[1:] if conn.defdata.startswith(sep) else [
                    'IDL: \n' + conn.defdata]
                for part in parts:
                    store.register(get_types_from_idl(part.split('\n', 1)[1]))
            else:
                raise BagFormatError('the bag carries no definition for it')
        except Exception as err:
            raise BagFormatError(
                f'unknown message type {conn.msgtype!r} on {conn.topic!r}: {err}') from err

    def iter_messages(self, topic: str):
        """Yield ``(t_ns, msg)`` for ``topic``, ``msg`` deserialized by rosbags."""
        conn = self._conn(topic)
        self._ensure_type(conn)
        for t_ns, data in self._raw(topic):
            yield t_ns, self._deserialize(conn, topic, t_ns, data)

    def _deserialize(self, conn: _Conn, topic: str, t_ns: int, data):
        """Deserialize one CDR message of ``conn``; a one-line BagFormatError if it fails."""
        try:
            return self._typestore.deserialize_cdr(data, conn.msgtype)
        except Exception as err:
            raise BagFormatError(
                f'cannot deserialize {conn.msgtype} on {topic!r} at t_ns={t_ns}: {err}'
            ) from err

    def timestamps(self, topic: Optional[str] = None) -> list:
        """List the log times in ns of ``topic`` (default: radiance), in bag order."""
        return [t for t, _ in self._raw(topic or self.radiance_topic)]

    def iter_radiance(self, topic: Optional[str] = None):
        """
        Yield ``(t_ns, radiance)`` with radiance float32 ``(H, W, 3)``, linear RGB.

        Encodings are decoded by :func:`decode_radiance`. Non-finite values (NaN, inf)
        are replaced by 0 with a logged warning that counts them.
        """
        topic = topic or self.radiance_topic
        self._radiance_conn(topic)
        for t_ns, msg in self.iter_messages(topic):
            yield t_ns, self._radiance(msg, topic, t_ns)

    def _radiance_conn(self, topic: str) -> _Conn:
        conn = self._conn(topic)
        if conn.msgtype != IMAGE_MSGTYPE:
            raise BagFormatError(
                f'topic {topic!r} of {self.path} carries {conn.msgtype}, not {IMAGE_MSGTYPE}')
        return conn

    @staticmethod
    def _radiance(msg, topic: str, t_ns: int) -> np.ndarray:
        arr = decode_radiance(msg, where=f'{topic} at t_ns={t_ns}')
        finite = np.isfinite(arr)
        bad = arr.size - int(np.count_nonzero(finite))
        if bad:
            logger.warning('%s at t_ns=%d: replaced %d non-finite radiance values with 0',
                           topic, t_ns, bad)
            arr[~finite] = 0.0
        return arr

    def sample_radiance(self, n: int, topic: Optional[str] = None):
        """
        Yield ``(frame_index, t_ns, radiance)`` for about ``n`` frames spread over the bag.

        Every k-th frame from frame 0, ``k = ceil(len / n)`` (all frames when the bag has
        at most ``n``); only those messages are deserialized and decoded (as in
        :meth:`iter_radiance`), so one pass costs about a read of the file.
        """
        topic = topic or self.radiance_topic
        conn = self._radiance_conn(topic)
        if n < 1:
            return
        every = max(1, math.ceil(conn.count / n)) if conn.count else 1
        self._ensure_type(conn)
        for k, (t_ns, data) in enumerate(self._raw(topic)):
            if k % every:
                continue
            msg = self._deserialize(conn, topic, t_ns, data)
            yield k, t_ns, self._radiance(msg, topic, t_ns)

    def iter_json(self, topic: str):
        """Yield ``(t_ns, obj)`` for a topic written with :meth:`HDRBagWriter.write_json`."""
        for t_ns, msg in self.iter_messages(topic):
            try:
                yield t_ns, json.loads(msg.data)
            except (AttributeError, TypeError, ValueError) as err:
                raise BagFormatError(f'{topic!r} at t_ns={t_ns} holds no JSON: {err}') from err


def open_hdr_bag(path, topic: str = RADIANCE_TOPIC, *, strict: bool = False) -> HDRBag:
    """
    Open a rosbag2 (directory, or a bare ``.mcap``/``.db3`` file) for reading.

    ``topic`` is the radiance topic used by ``len()`` and :meth:`HDRBag.iter_radiance`.
    A damaged MCAP (truncated, no footer, no ``metadata.yaml``) is scanned record by
    record and every complete chunk is recovered, with a logged warning; ``strict=True``
    raises :class:`BagFormatError` instead. Missing paths and unreadable files raise
    :class:`BagFormatError` chained from rosbags' error.
    """
    path = Path(path)
    if not path.exists():
        raise BagFormatError(f'cannot read rosbag2 at {path}: path does not exist')
    return HDRBag(path, topic, strict)
