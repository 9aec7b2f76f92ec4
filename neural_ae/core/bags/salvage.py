"""
Salvage of damaged MCAP files: scan record by record, keep every complete chunk.

A process that dies without closing its bag leaves an MCAP file without index or footer
(and no ``metadata.yaml``); rosbags cannot open that. :func:`scan_mcap` reads such a file
from the start, record by record, and stops at the first incomplete or inconsistent
record; chunks are decompressed (zstd, lz4) and checked against their size and CRC.
"""
from pathlib import Path
import struct
from typing import Dict, List, NamedTuple
import zlib

MCAP_MAGIC = b'\x89MCAP0\r\n'


def is_mcap(path: Path) -> bool:
    """Whether the file ``path`` starts with the MCAP magic."""
    with path.open('rb') as f:
        return f.read(8) == MCAP_MAGIC


class SalvageIndex(NamedTuple):
    """What a scan recovered: connections by topic, message count, what was lost."""

    connections: Dict[str, List]
    """topic -> ``[msgtype, definition format ('MSG', 'IDL', 'NONE'), definition, count]``"""
    messages: int
    lost: str


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


def scan_mcap(path: Path):
    """
    Scan an MCAP file record by record, tolerating a missing index, footer or tail.

    Yields ``('schema', id, name, encoding, data)``, ``('channel', id, schema_id, topic)``
    and ``('message', channel_id, log_time, data)`` (messages of a chunk sorted by time),
    and finally ``('end', offset, reason)`` where ``reason`` is None for a clean end.
    """
    size = path.stat().st_size
    with path.open('rb') as f:
        if f.read(8) != MCAP_MAGIC:
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


def salvage_index(mcap: Path) -> SalvageIndex:
    """
    Scan the damaged MCAP file ``mcap`` once and index what it still holds.

    A topic announced again with another type starts over (the later channel wins), as
    rosbags' reader does. ``lost`` says where and why the scan stopped.
    """
    conns: Dict[str, List] = {}
    schemas, channels, count, end = {}, {}, 0, None
    for event in scan_mcap(mcap):
        kind = event[0]
        if kind == 'schema':
            schemas[event[1]] = event[2:]
        elif kind == 'channel':
            name, enc, data = schemas.get(event[2], ('', '', ''))
            fmt = {'ros2msg': 'MSG', 'ros2idl': 'IDL'}.get(enc, 'NONE')
            channels[event[1]] = event[3]
            have = conns.get(event[3])
            if have is None or have[0] != name:
                conns[event[3]] = [name, fmt, data, 0]
        elif kind == 'message' and event[1] in channels:
            conns[channels[event[1]]][3] += 1
            count += 1
        elif kind == 'end':
            end = event
    assert end is not None, 'scan_mcap always ends with an end event'
    if end[2] is None:
        lost = 'data section complete, only the index was damaged'
    else:
        lost = f'{end[2]}; data from byte {end[1]} on lost'
    return SalvageIndex(conns, count, lost)


def iter_salvaged(mcap: Path, topic: str):
    """Yield ``(log_time_ns, rawdata)`` of the messages on ``topic`` a scan recovers."""
    channels = set()
    for event in scan_mcap(mcap):
        if event[0] == 'channel' and event[3] == topic:
            channels.add(event[1])
        elif event[0] == 'message' and event[1] in channels:
            yield event[2], event[3]
