"""rosbag2 read/write through rosbags: round trips, labels, damage and crash safety."""
import logging
import os
import struct

from neural_ae.core.bags import HDRBagWriter, open_hdr_bag, write_coco_labels
from neural_ae.core.errors import BagFormatError, HDRError
import numpy as np
import pytest
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import get_typestore, Stores

STORE = get_typestore(Stores.ROS2_KILTED)
IMAGE = STORE.types['sensor_msgs/msg/Image']


def _frames(n, height=5, width=7, seed=0):
    rng = np.random.default_rng(seed)
    return [(rng.random((height, width, 3)) * 10.0 ** rng.integers(-3, 5)).astype(np.float32)
            for _ in range(n)]


def _write(path, frames, storage='mcap', t0=1_000):
    with HDRBagWriter(path, storage=storage) as writer:
        for i, frame in enumerate(frames):
            assert writer.write_radiance(t0 + 10 * i, frame) == i
    return path


def _image(height, width, encoding, is_bigendian, step, data):
    return IMAGE(header=STORE.types['std_msgs/msg/Header'](
        stamp=STORE.types['builtin_interfaces/msg/Time'](sec=0, nanosec=0), frame_id='c'),
        height=height, width=width, encoding=encoding, is_bigendian=is_bigendian, step=step,
        data=np.frombuffer(data, np.uint8))


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_radiance_round_trip_is_exact(tmp_path, storage):
    frames = _frames(4)
    frames[1][0, 0] = np.float32(3.4e38)
    frames[2][1, 2] = np.float32(1e-42)  # subnormal survives too
    bag = open_hdr_bag(_write(tmp_path / 'b', frames, storage))
    assert len(bag) == 4 and bag.topics() == {'/hdr/image': 'sensor_msgs/msg/Image'}
    got = list(bag.iter_radiance())
    assert [t for t, _ in got] == [1000, 1010, 1020, 1030]
    for (_, arr), frame in zip(got, frames):
        assert arr.dtype == np.float32 and arr.shape == (5, 7, 3)
        assert np.array_equal(arr, frame)
    assert bag.timestamps() == [1000, 1010, 1020, 1030]


def test_deserialized_image_has_the_layout_ros_conversions_expect(tmp_path):
    frame = _frames(1, height=3, width=4)[0]
    with HDRBagWriter(tmp_path / 'b', frame_id='cam_front') as writer:
        writer.write_radiance(5_000_000_123, frame)
        writer.write_raw('/camera/image_raw', 7, np.arange(12, dtype=np.uint16).reshape(3, 4))
    bag = open_hdr_bag(tmp_path / 'b')
    (t_ns, msg), = bag.iter_messages('/hdr/image')
    assert t_ns == 5_000_000_123
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (5, 123)
    assert msg.header.frame_id == 'cam_front'
    assert (msg.height, msg.width, msg.encoding, msg.is_bigendian) == (3, 4, '32FC3', 0)
    assert msg.step == 4 * 3 * 4
    assert isinstance(msg.data, np.ndarray) and msg.data.dtype == np.uint8
    assert msg.data.size == msg.height * msg.step
    assert np.array_equal(msg.data.view('<f4').reshape(3, 4, 3), frame)
    (_, raw), = bag.iter_messages('/camera/image_raw')
    assert (raw.encoding, raw.step, raw.is_bigendian) == ('bayer_rggb16', 8, 0)
    assert raw.data.view('<u2').reshape(3, 4).tolist() == np.arange(12).reshape(3, 4).tolist()


def test_json_round_trip_and_strictness(tmp_path):
    objs = [{'exposure_time_us': 1000 + i, 'gain_db': np.float32(0.5 * i),
             'boxes': np.arange(4).reshape(1, 4), 'ok': np.bool_(True)} for i in range(3)]
    with HDRBagWriter(tmp_path / 'b', storage='sqlite3') as writer:
        for i, obj in enumerate(objs):
            writer.write_json('/ae/settings', i, obj)
        with pytest.raises(BagFormatError, match='/ae/settings'):
            writer.write_json('/ae/settings', 9, {'x': float('nan')})
        with pytest.raises(BagFormatError, match='already carries'):
            writer.write_message('/ae/settings', IMAGE.__msgtype__, 1,
                                 _image(1, 1, 'mono8', 0, 1, b'\x00'))
    got = list(open_hdr_bag(tmp_path / 'b').iter_json('/ae/settings'))
    assert [t for t, _ in got] == [0, 1, 2]
    assert got[2][1] == {'exposure_time_us': 1002, 'gain_db': 1.0, 'boxes': [[0, 1, 2, 3]],
                         'ok': True}


def test_labels_beside_the_bag(tmp_path):
    path = _write(tmp_path / 'b', _frames(3))
    assert open_hdr_bag(path).labels() is None
    coco = {'images': [{'id': 7, 't_ns': 1020}, {'id': 8, 'frame_index': 0}],
            'annotations': [{'id': 1, 'image_id': 7, 'bbox': [1, 2, 3, 4], 'category_id': 1}],
            'categories': [{'id': 1, 'name': 'pedestrian'}]}
    labels_path = write_coco_labels(path, coco)
    assert labels_path == path / 'labels.json'
    labels = open_hdr_bag(path).labels()
    assert labels['images'] == [{'id': 7, 't_ns': 1020, 'frame_index': 2},
                                {'id': 8, 'frame_index': 0, 't_ns': 1000}]
    assert labels['annotations'] == coco['annotations']
    assert 'frame_index' not in coco['images'][0]  # caller's dict untouched
    with pytest.raises(BagFormatError, match='image id 9'):
        write_coco_labels(path, {'images': [{'id': 9, 'frame_index': 3}]})
    with pytest.raises(BagFormatError, match='matches no frame'):
        write_coco_labels(path, {'images': [{'id': 9, 't_ns': 1}]})
    with pytest.raises(BagFormatError, match='unknown image_id'):
        write_coco_labels(path, {'images': [], 'annotations': [{'image_id': 3}]})


def test_writer_attached_labels_are_written_on_close(tmp_path):
    with HDRBagWriter(tmp_path / 'b') as writer:
        writer.write_labels({'images': [{'id': 1, 'frame_index': 1}]})
        for i, frame in enumerate(_frames(2)):
            writer.write_radiance(100 + i, frame)
    assert open_hdr_bag(tmp_path / 'b').labels()['images'] == [
        {'id': 1, 'frame_index': 1, 't_ns': 101}]


def test_missing_path_and_missing_topic(tmp_path):
    with pytest.raises(BagFormatError, match='does not exist') as info:
        open_hdr_bag(tmp_path / 'nope')
    assert str(tmp_path / 'nope') in str(info.value)
    path = _write(tmp_path / 'b', _frames(1))
    bag = open_hdr_bag(path, topic='/other')
    assert len(bag) == 0
    with pytest.raises(BagFormatError, match=r"no topic '/other'.*'/hdr/image'"):
        list(bag.iter_radiance())
    with pytest.raises(BagFormatError, match='available'):
        list(open_hdr_bag(path).iter_messages('/x'))


@pytest.mark.parametrize('storage, name', [('mcap', 'b.mcap'), ('sqlite3', 'b.db3')])
def test_corrupt_bag_random_bytes(tmp_path, storage, name):
    path = _write(tmp_path / 'b', _frames(2), storage)
    (path / name).write_bytes(np.random.default_rng(1).bytes(5000))
    with pytest.raises(BagFormatError, match='cannot read rosbag2') as info:
        open_hdr_bag(path)
    assert info.value.__cause__ is not None
    loose = tmp_path / 'x.mcap'
    loose.write_bytes(np.random.default_rng(2).bytes(300))
    with pytest.raises(BagFormatError, match='x.mcap'):
        open_hdr_bag(loose)
    (path / 'metadata.yaml').write_text('[: not yaml')
    with pytest.raises(BagFormatError, match=r'cannot read rosbag2 .*metadata\.yaml'):
        open_hdr_bag(path)


def test_truncated_mcap_yields_complete_chunks_and_warns(tmp_path, caplog):
    # rosbags starts a new MCAP chunk after 1 MiB: 64x64x3 float32 is 48 KiB per frame.
    frames = _frames(30, height=64, width=64)
    path = _write(tmp_path / 'b', frames)
    mcap = path / 'b.mcap'
    os.truncate(mcap, int(mcap.stat().st_size * 0.8))
    with pytest.raises(BagFormatError, match='File end magic'):
        open_hdr_bag(path, strict=True)
    with caplog.at_level(logging.WARNING, logger='neural_ae.core.bags'):
        bag = open_hdr_bag(path)
    assert bag.salvaged and 'recovered' in caplog.text and 'lost' in caplog.text
    got = list(bag.iter_radiance())
    assert 15 < len(got) == len(bag) < 30
    for (t_ns, arr), i in zip(got, range(len(got))):
        assert t_ns == 1000 + 10 * i and np.array_equal(arr, frames[i])


@pytest.fixture(scope='module')
def big_bag(tmp_path_factory):
    frames = _frames(30, height=64, width=64)
    path = _write(tmp_path_factory.mktemp('big') / 'b', frames)
    return path, (path / 'b.mcap').read_bytes(), frames


def _chunk_ends(data: bytes) -> list:
    """
    ``(end offset, messages)`` of every MCAP chunk, read from the spec's record layout.

    Independent of the salvage code: opcode (1 byte) + length (u64) per record; a chunk
    (0x06) holds start/end time, uncompressed size, crc, compression, then its records,
    whose messages (0x05) are counted (the writer does not compress).
    """
    out, pos = [], 8                                     # after the leading magic
    while pos + 9 <= len(data):
        op, length = data[pos], struct.unpack_from('<Q', data, pos + 1)[0]
        if op == 0x06:
            body = data[pos + 9:pos + 9 + length]
            comp_len = struct.unpack_from('<I', body, 28)[0]
            assert body[32:32 + comp_len] == b'', 'compressed chunks: oracle needs updating'
            rec_len = struct.unpack_from('<Q', body, 32 + comp_len)[0]
            records, p, n = body[40 + comp_len:40 + comp_len + rec_len], 0, 0
            while p < len(records):
                n += records[p] == 0x05
                p += 9 + struct.unpack_from('<Q', records, p + 1)[0]
            out.append((pos + 9 + length, n))
        pos += 9 + length
    return out


def test_the_chunk_oracle_sees_every_frame(big_bag):
    _, data, frames = big_bag
    chunks = _chunk_ends(data)
    assert len(chunks) >= 2 and sum(n for _, n in chunks) == len(frames)
    assert chunks[-1][0] < len(data) * 0.9999       # the last cut keeps every chunk


@pytest.mark.parametrize('fraction', [0.0, 0.001, 0.01, 0.3, 0.5, 0.7, 0.9, 0.99, 0.9999])
def test_any_truncation_gives_a_prefix_or_a_clear_error(tmp_path, big_bag, fraction):
    _, data, frames = big_bag
    cut = max(4, int(len(data) * fraction))
    # every chunk that ends before the cut is complete on disk: its frames must come back
    expected = sum(n for end, n in _chunk_ends(data) if end <= cut)
    mcap = tmp_path / 'cut.mcap'
    mcap.write_bytes(data[:cut])
    try:
        got = list(open_hdr_bag(mcap).iter_radiance())
    except BagFormatError as err:
        assert 'cut.mcap' in str(err)
        assert expected == 0, f'{expected} complete frames before the cut, but: {err}'
        return
    assert expected <= len(got) <= len(frames)
    if fraction == 0.9999:
        assert len(got) == len(frames) == 30    # only the summary was cut: nothing lost
    assert all(np.array_equal(a, frames[i]) for i, (_, a) in enumerate(got))


def test_unfinished_mcap_without_metadata_is_salvaged(tmp_path, caplog):
    # A writer that dies without closing: rosbags' own abort leaves no index, no footer
    # and no metadata.yaml; the chunk still in memory is lost.
    frames = _frames(25, height=64, width=64)
    with pytest.raises(RuntimeError, match='crash'):
        with Writer(tmp_path / 'b', version=9, storage_plugin=StoragePlugin.MCAP) as w:
            conn = w.add_connection('/hdr/image', IMAGE.__msgtype__, typestore=STORE)
            for i, frame in enumerate(frames):
                w.write(conn, i, STORE.serialize_cdr(
                    _image(64, 64, '32FC3', 0, 64 * 12, frame.tobytes()), IMAGE.__msgtype__))
            raise RuntimeError('crash')
    assert not (tmp_path / 'b' / 'metadata.yaml').exists()
    with caplog.at_level(logging.WARNING, logger='neural_ae.core.bags'):
        got = list(open_hdr_bag(tmp_path / 'b').iter_radiance())
    assert 'metadata.yaml' in caplog.text
    assert 15 < len(got) < 25
    assert all(np.array_equal(a, frames[t]) for t, a in got)


def test_truncated_sqlite_is_a_clear_error(tmp_path):
    path = _write(tmp_path / 'b', _frames(40, height=32, width=32), 'sqlite3')
    db = path / 'b.db3'
    os.truncate(db, db.stat().st_size // 2)
    with pytest.raises(BagFormatError, match='b.db3'):
        list(open_hdr_bag(path).iter_radiance())


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_exception_inside_with_keeps_earlier_messages(tmp_path, storage):
    frames = _frames(3)
    with pytest.raises(KeyError, match='boom'):
        with HDRBagWriter(tmp_path / 'b', storage=storage) as writer:
            for i, frame in enumerate(frames):
                writer.write_radiance(i, frame)
            writer.write_json('/meta', 0, {'a': 1})
            raise KeyError('boom')
    bag = open_hdr_bag(tmp_path / 'b', strict=True)
    assert not bag.salvaged and bag.message_counts() == {'/hdr/image': 3, '/meta': 1}
    got = list(bag.iter_radiance())
    assert all(np.array_equal(a, f) for (_, a), f in zip(got, frames)) and len(got) == 3
    with pytest.raises(BagFormatError, match='not open'):
        writer.write_radiance(9, frames[0])


def test_closed_bag_is_never_overwritten(tmp_path):
    path = _write(tmp_path / 'b', _frames(2))
    before = {p.name: p.read_bytes() for p in path.iterdir()}
    with pytest.raises(BagFormatError, match='exists'):
        with HDRBagWriter(path) as writer:
            writer.write_radiance(0, _frames(1)[0])
    assert {p.name: p.read_bytes() for p in path.iterdir()} == before


def test_radiance_decoding_nan_fc1_and_integer_encodings(tmp_path, caplog):
    nan = np.array([[[1.0, np.nan, 2.0], [np.inf, 3.0, -np.inf]]], '<f4')
    mono = np.array([[0.5, 2.0]], '<f4')
    be_padded = np.concatenate([np.array([[1.0, 2.0, 3.0]], '>f4').view(np.uint8),
                                np.zeros((1, 4), np.uint8)], axis=1)
    msgs = {
        '/nan': _image(1, 2, '32FC3', 0, 24, nan.tobytes()),
        '/mono': _image(1, 2, '32FC1', 0, 8, mono.tobytes()),
        '/be': _image(1, 1, '32FC3', 1, 16, be_padded.tobytes()),
        '/bgr8': _image(1, 1, 'bgr8', 0, 3, bytes([0, 128, 255])),
        '/rgb16': _image(1, 1, '16UC3', 0, 6, np.array([0, 65535, 32768], '<u2').tobytes()),
        '/mono8': _image(1, 1, 'mono8', 0, 1, b'\x01'),
    }
    with HDRBagWriter(tmp_path / 'b') as writer:
        for topic, msg in msgs.items():
            writer.write_message(topic, IMAGE.__msgtype__, 1, msg)
    bag = open_hdr_bag(tmp_path / 'b')
    with caplog.at_level(logging.WARNING, logger='neural_ae.core.bags'):
        (_, arr), = bag.iter_radiance('/nan')
    assert 'replaced 3 non-finite' in caplog.text
    assert arr.tolist() == [[[1.0, 0.0, 2.0], [0.0, 3.0, 0.0]]]
    assert next(bag.iter_radiance('/mono'))[1].tolist() == [[[0.5] * 3, [2.0] * 3]]
    assert next(bag.iter_radiance('/be'))[1].tolist() == [[[1.0, 2.0, 3.0]]]
    rgb = next(bag.iter_radiance('/bgr8'))[1][0, 0]
    assert rgb[0] == 1.0 and rgb[2] == 0.0 and abs(rgb[1] - 0.2158605) < 1e-5
    assert np.allclose(next(bag.iter_radiance('/rgb16'))[1], [[[0.0, 1.0, 32768 / 65535]]])
    with pytest.raises(BagFormatError, match="'mono8'"):
        list(bag.iter_radiance('/mono8'))


def test_writer_input_errors(tmp_path):
    with pytest.raises(BagFormatError, match='storage'):
        HDRBagWriter(tmp_path / 'b', storage='bag')
    with HDRBagWriter(tmp_path / 'b') as writer:
        with pytest.raises(HDRError, match=r'\(2, 2\)'):
            writer.write_radiance(0, np.zeros((2, 2), np.float32))
        with pytest.raises(HDRError, match='1 non-finite'):
            writer.write_radiance(0, np.array([[[0.0, np.nan, 0.0]]]))
        with pytest.raises(BagFormatError, match='uint16'):
            writer.write_raw('/raw', 0, np.zeros((2, 2), np.float32))
        with pytest.raises(BagFormatError, match='timestamp'):
            writer.write_json('/j', -1, {})
    assert open_hdr_bag(tmp_path / 'b').topics() == {}
