"""
rosbag2 read/write through the ``rosbags`` library (ROS-free).

Message types come from rosbags' own typestore (ROS 2 kilted), never from the ROS message
packages, so this module works without a ROS install.

Layout of an HDR bag written by :class:`HDRBagWriter`:

- ``/hdr/image`` (configurable): ``sensor_msgs/msg/Image``, encoding ``32FC3``, linear
  scene radiance in RGB order, little endian, ``step = width * 12``; the bag timestamp and
  the header stamp are both ``t_ns``.
- any number of raw-frame topics (``sensor_msgs/msg/Image``, ``bayer_rggb16`` ...) and
  per-frame JSON topics (``std_msgs/msg/String`` holding one JSON document each: settings,
  detections, metrics).
- labels: a COCO JSON file ``labels.json`` *inside* the bag directory (next to
  ``metadata.yaml``), so it travels with the bag; rosbag2 tools ignore files not listed in
  ``metadata.yaml``. Every COCO image carries ``frame_index`` (0-based position on the
  radiance topic) and ``t_ns`` (that frame's timestamp).

Crash safety: a writer never opens an existing path (bags are write-once, so a closed bag
stays intact), and leaving the ``with`` block through an exception still *closes* the bag
(index and ``metadata.yaml`` are written), so every message written before the exception
stays readable. A process that dies without closing leaves an MCAP file without index or
footer and no ``metadata.yaml``: rosbags cannot open that, so :func:`open_hdr_bag` falls
back to scanning the file record by record and recovers every complete chunk (rosbags
buffers about 1 MiB of messages per chunk in memory; the open chunk is lost). SQLite3 bags
are written in one transaction and have no such recovery.
"""
from functools import lru_cache
import json
import logging
from pathlib import Path
import struct
import zlib

from neural_ae.core.errors import BagFormatError, HDRError
from neural_ae.core.image_encodings import decode_image, ImageLayoutError, srgb_to_linear
import numpy as np
from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.typesys import get_types_from_idl, get_types_from_msg, get_typestore, Stores

logger = logging.getLogger(__name__)

__all__ = [
    'HDRBag',
    'HDRBagWriter',
    'IMAGE_MSGTYPE',
    'LABELS_FILENAME',
    'RADIANCE_ENCODINGS',
    'RADIANCE_TOPIC',
    'STORAGES',
    'STRING_MSGTYPE',
    'decode_radiance',
    'open_hdr_bag',
    'write_coco_labels',
]

RADIANCE_TOPIC = '/hdr/image'
LABELS_FILENAME = 'labels.json'
IMAGE_MSGTYPE = 'sensor_msgs/msg/Image'
STRING_MSGTYPE = 'std_msgs/msg/String'
STORAGES = {'mcap': StoragePlugin.MCAP, 'sqlite3': StoragePlugin.SQLITE3}
TYPESTORE = Stores.ROS2_KILTED

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

_RAW = {'mono16': 'u2', '16UC1': 'u2', 'mono8': 'u1', '8UC1': 'u1'}
for _p in ('rggb', 'bggr', 'gbrg', 'grbg'):
    _RAW['bayer_%s16' % _p] = 'u2'
    _RAW['bayer_%s8' % _p] = 'u1'

_MCAP_MAGIC = b'\x89MCAP0\r\n'


@lru_cache(maxsize=1)
def _default_typestore():
    return get_typestore(TYPESTORE)


def _check_t_ns(t_ns) -> int:
    if isinstance(t_ns, bool) or not isinstance(t_ns, (int, np.integer)) or not (
            0 <= int(t_ns) < 2**63):
        raise BagFormatError(f'timestamp must be an int in [0, 2**63) ns, got {t_ns!r}')
    return int(t_ns)


def _json_default(obj):
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (np.integer, np.floating, np.bool_)):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f'{type(obj).__name__} is not JSON serializable')


def _dumps(obj) -> str:
    return json.dumps(obj, default=_json_default, allow_nan=False)


# --------------------------------------------------------------------------- writing


class HDRBagWriter:
    """
    Write an HDR rosbag2 (MCAP or SQLite3) through rosbags; use it as a context manager.

    ``path`` is the bag directory and must not exist yet. ``topic`` is the radiance
    topic, ``frame_id`` goes into every Image header. ``typestore`` (a rosbags
    ``Typestore``) is only needed for message types outside ROS 2 kilted's standard set.
    """

    def __init__(self, path, storage: str = 'mcap', topic: str = RADIANCE_TOPIC,
                 frame_id: str = 'camera', typestore=None):
        if storage not in STORAGES:
            raise BagFormatError(f'storage must be one of {sorted(STORAGES)}, got {storage!r}')
        self.path = Path(path)
        self.storage = storage
        self.topic = topic
        self.frame_id = frame_id
        self.typestore = typestore if typestore is not None else _default_typestore()
        self._writer = None
        self._connections = {}
        self._frame_t_ns = []
        self._labels = None

    # lifecycle ---------------------------------------------------------------------
    def open(self) -> 'HDRBagWriter':  # noqa: A003 - mirrors rosbags' Writer.open
        """Create the bag directory and its storage file."""
        if self._writer is not None:
            raise BagFormatError(f'bag {self.path} is already open')
        if self.path.exists():
            raise BagFormatError(
                f'refusing to write bag {self.path}: path exists (bags are write-once)')
        try:
            writer = Writer(self.path, version=Writer.VERSION_LATEST,
                            storage_plugin=STORAGES[self.storage])
            writer.open()
        except Exception as err:
            raise BagFormatError(f'cannot create bag {self.path}: {err}') from err
        self._writer = writer
        return self

    def close(self) -> None:
        """Write index, ``metadata.yaml`` and pending labels; safe to call twice."""
        writer, self._writer = self._writer, None
        if writer is None:
            return
        try:
            writer.close()
        except Exception as err:
            try:
                writer.abort()
            except Exception:  # noqa: BLE001 - already reporting the close failure
                pass
            raise BagFormatError(f'cannot close bag {self.path}: {err}') from err
        if self._labels is not None:
            labels = _resolve_label_frames(self._labels, self._frame_t_ns, self.topic,
                                           str(self.path))
            _write_labels_file(self.path, labels)

    def __enter__(self) -> 'HDRBagWriter':
        """Open the bag."""
        return self.open()

    def __exit__(self, exc_type, exc, tb) -> bool:
        """Close the bag, also when leaving through an exception (that one propagates)."""
        if exc_type is None:
            self.close()
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
        t_ns = _check_t_ns(t_ns)
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
        t_ns = _check_t_ns(t_ns)
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
        t_ns = _check_t_ns(t_ns)
        arr = np.ascontiguousarray(arr, dtype=want.newbyteorder('<'))
        self.write_message(topic, IMAGE_MSGTYPE, t_ns, self._image(t_ns, arr, encoding))

    def write_json(self, topic: str, t_ns: int, obj) -> None:
        """
        Write ``obj`` as one JSON document in a ``std_msgs/msg/String``.

        numpy scalars and arrays are converted; NaN and infinity are rejected (strict
        JSON) with :class:`BagFormatError`.
        """
        try:
            text = _dumps(obj)
        except (TypeError, ValueError) as err:
            raise BagFormatError(f'cannot write JSON on {topic!r} at t_ns={t_ns}: {err}') from err
        msg = self.typestore.types[STRING_MSGTYPE](data=text)
        self.write_message(topic, STRING_MSGTYPE, t_ns, msg)

    def write_labels(self, coco: dict) -> None:
        """Attach COCO labels; written to ``<bag>/labels.json`` when the bag closes."""
        _resolve_label_frames(coco, None, self.topic, str(self.path))  # validate early
        self._labels = coco


# --------------------------------------------------------------------------- labels


def _resolve_label_frames(coco, frame_t_ns, topic: str, where: str) -> dict:
    """
    Check a COCO dict and give every image both ``frame_index`` and ``t_ns``.

    ``frame_t_ns`` lists the radiance timestamps in bag order; None only validates shape.
    """
    try:
        out = json.loads(_dumps(coco))
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


def _write_labels_file(bag_dir: Path, labels: dict) -> Path:
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
    bag = open_hdr_bag(bag_path, topic=topic)
    if bag.path.is_file():
        raise BagFormatError(f'labels need a bag directory, got the file {bag.path}')
    labels = _resolve_label_frames(coco_dict, bag.timestamps(topic), topic, str(bag.path))
    return _write_labels_file(bag.path, labels)


# --------------------------------------------------------------------------- decoding


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


# --------------------------------------------------------------------------- reading


def _zstd_decompress(data: bytes) -> bytes:
    try:
        from compression import zstd
    except ImportError:
        from backports import zstd
    return zstd.decompress(data)


def _lz4_decompress(data: bytes) -> bytes:
    from lz4.frame import decompress
    return decompress(data)


class _Truncated(Exception):
    """Raised by the salvage scanner at the first incomplete or inconsistent record."""


def _take(buf: bytes, pos: int, n: int, what: str):
    if pos + n > len(buf):
        raise _Truncated(f'{what} runs past its record')
    return buf[pos:pos + n], pos + n


def _take_str(buf: bytes, pos: int, what: str):
    (n,), pos = struct.unpack('<I', _take(buf, pos, 4, what)[0]), pos + 4
    raw, pos = _take(buf, pos, n, what)
    return raw.decode('utf-8', 'replace'), pos


def _parse_records(buf: bytes):
    """Yield ``(op, body)`` for the records of an in-memory MCAP chunk."""
    pos = 0
    while pos < len(buf):
        if pos + 9 > len(buf):
            raise _Truncated('chunk ends inside a record header')
        op, (length,) = buf[pos], struct.unpack_from('<Q', buf, pos + 1)
        if pos + 9 + length > len(buf):
            raise _Truncated('chunk ends inside a record')
        yield op, buf[pos + 9:pos + 9 + length]
        pos += 9 + length


def _scan_mcap(path: Path):
    """
    Scan an MCAP file record by record, tolerating a missing index, footer or tail.

    Yields ``('schema', id, name, encoding, data)``, ``('channel', id, schema_id, topic)``
    and ``('message', channel_id, log_time, data)`` (messages of a chunk sorted by time),
    and finally ``('end', offset, reason)`` where ``reason`` is None for a clean end.
    """
    size = path.stat().st_size
    with path.open('rb') as f:
        if f.read(8) != _MCAP_MAGIC:
            yield ('end', 0, 'no MCAP magic')
            return
        pos = 8
        while True:
            head = f.read(9)
            if not head:
                yield ('end', pos, 'file ends without footer')
                return
            if len(head) < 9:
                yield ('end', pos, 'file ends inside a record header')
                return
            op, (length,) = head[0], struct.unpack('<Q', head[1:])
            if op in (0x02, 0x0F):  # footer, data end: the summary that follows is index
                yield ('end', pos, None)
                return
            if pos + 9 + length > size:
                yield ('end', pos, f'record 0x{op:02x} of {length} bytes runs past the end'
                                   f' of the file ({size} bytes)')
                return
            if op not in (0x03, 0x04, 0x05, 0x06):
                f.seek(length, 1)
                pos += 9 + length
                continue
            body = f.read(length)
            try:
                records = [(op, body)]
                if op == 0x06:
                    records = list(_parse_records(_chunk_payload(body)))
                events = [_record_event(o, b) for o, b in records]
            except (_Truncated, struct.error, ValueError, RuntimeError, OSError) as err:
                yield ('end', pos, f'unreadable record 0x{op:02x}: {err}')
                return
            msgs = sorted((e for e in events if e and e[0] == 'message'), key=lambda e: e[2])
            yield from (e for e in events if e and e[0] != 'message')
            yield from msgs
            pos += 9 + length


def _chunk_payload(body: bytes) -> bytes:
    (usize, crc), pos = struct.unpack_from('<QI', body, 16), 28
    compression, pos = _take_str(body, pos, 'chunk compression')
    (clen,), pos = struct.unpack('<Q', _take(body, pos, 8, 'chunk length')[0]), pos + 8
    data, _ = _take(body, pos, clen, 'chunk data')
    if compression == 'zstd':
        data = _zstd_decompress(data)
    elif compression == 'lz4':
        data = _lz4_decompress(data)
    elif compression:
        raise _Truncated(f'unsupported chunk compression {compression!r}')
    if len(data) != usize or (crc and zlib.crc32(data) != crc):
        raise _Truncated('chunk size or checksum mismatch')
    return data


def _record_event(op: int, body: bytes):
    if op == 0x03:
        (sid,) = struct.unpack_from('<H', body, 0)
        name, pos = _take_str(body, 2, 'schema name')
        encoding, pos = _take_str(body, pos, 'schema encoding')
        data, _ = _take_str(body, pos, 'schema data')
        return ('schema', sid, name, encoding, data)
    if op == 0x04:
        cid, sid = struct.unpack_from('<HH', body, 0)
        topic, _ = _take_str(body, 4, 'channel topic')
        return ('channel', cid, sid, topic)
    if op == 0x05:
        if len(body) < 22:
            raise _Truncated('message record shorter than its header')
        cid, _, log_time = struct.unpack_from('<HIQ', body, 0)
        return ('message', cid, log_time, body[22:])
    return None


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
        self.salvage_note = None
        self._typestore = get_typestore(TYPESTORE)
        self._source = path
        self._conns = {}
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
        with files[0].open('rb') as f:
            return files[0] if f.read(8) == _MCAP_MAGIC else None

    def _salvage(self, mcap: Path, err: Exception) -> None:
        self._conns.clear()
        schemas, channels, count, end = {}, {}, 0, None
        for event in _scan_mcap(mcap):
            kind = event[0]
            if kind == 'schema':
                schemas[event[1]] = event[2:]
            elif kind == 'channel':
                name, enc, data = schemas.get(event[2], ('', '', ''))
                fmt = {'ros2msg': 'MSG', 'ros2idl': 'IDL'}.get(enc, 'NONE')
                channels[event[1]] = event[3]
                self._add_conn(event[3], name, fmt, data, 0)
            elif kind == 'message' and event[1] in channels:
                self._conns[channels[event[1]]].count += 1
                count += 1
            elif kind == 'end':
                end = event
        self.salvaged = True
        self._source = mcap
        if end[2] is None:
            lost = 'data section complete, only the index was damaged'
        else:
            lost = f'{end[2]}; data from byte {end[1]} on lost'
        self.salvage_note = (f'rosbags cannot open {mcap} ({err}); scanned it record by record'
                             f' and recovered {count} messages ({lost})')
        logger.warning('%s', self.salvage_note)

    # introspection -----------------------------------------------------------------
    def __enter__(self) -> 'HDRBag':
        """Return self (an HDRBag holds no open file)."""
        return self

    def __exit__(self, *exc) -> bool:
        """Nothing to release."""
        return False

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
                channels = set()
                for event in _scan_mcap(self._source):
                    if event[0] == 'channel' and event[3] == topic:
                        channels.add(event[1])
                    elif event[0] == 'message' and event[1] in channels:
                        count += 1
                        yield event[2], event[3]
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
            try:
                msg = self._typestore.deserialize_cdr(data, conn.msgtype)
            except Exception as err:
                raise BagFormatError(
                    f'cannot deserialize {conn.msgtype} on {topic!r} at t_ns={t_ns}: {err}'
                ) from err
            yield t_ns, msg

    def timestamps(self, topic: str = None) -> list:
        """List the log times in ns of ``topic`` (default: radiance), in bag order."""
        return [t for t, _ in self._raw(topic or self.radiance_topic)]

    def iter_radiance(self, topic: str = None):
        """
        Yield ``(t_ns, radiance)`` with radiance float32 ``(H, W, 3)``, linear RGB.

        Encodings are decoded by :func:`decode_radiance`. Non-finite values (NaN, inf)
        are replaced by 0 with a logged warning that counts them.
        """
        topic = topic or self.radiance_topic
        conn = self._conn(topic)
        if conn.msgtype != IMAGE_MSGTYPE:
            raise BagFormatError(
                f'topic {topic!r} of {self.path} carries {conn.msgtype}, not {IMAGE_MSGTYPE}')
        for t_ns, msg in self.iter_messages(topic):
            arr = decode_radiance(msg, where=f'{topic} at t_ns={t_ns}')
            finite = np.isfinite(arr)
            bad = arr.size - int(np.count_nonzero(finite))
            if bad:
                logger.warning('%s at t_ns=%d: replaced %d non-finite radiance values with 0',
                               topic, t_ns, bad)
                arr[~finite] = 0.0
            yield t_ns, arr

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
