"""
``neural-ae make-bag`` and ``neural-ae replay``: the offline counterparts of the nodes.

(They need no ROS; they live here with the node tests because they share the simulator's
contract: raw frames out, settings in, latency in frames.)
"""
import json

from neural_ae.cli import main as cli
from neural_ae.commands.replay import DETECTIONS_TOPIC, RAW_TOPIC, replay_frames, SETTINGS_TOPIC
from neural_ae.core.bags import open_hdr_bag
from neural_ae.core.controllers import make_controller
from neural_ae.core.scenes import export_brackets, generate_scene
import numpy as np
import pytest

SIZE = ['--height', '64', '--width', '96']


@pytest.fixture(scope='module')
def bag(tmp_path_factory):
    path = tmp_path_factory.mktemp('bags') / 'seq'
    assert cli(['make-bag', str(path), '--frames', '30', '--scenario', 'tunnel_exit',
                '--seed', '2', '--no-progress', *SIZE]) == 0
    return path


def test_make_bag_synthetic_writes_radiance_and_labels(bag):
    b = open_hdr_bag(bag)
    assert len(b) == 30
    t_ns, rad = next(b.iter_radiance())
    assert rad.shape == (64, 96, 3) and rad.dtype == np.float32
    labels = b.labels()
    assert len(labels['images']) == 30
    assert [img['frame_index'] for img in labels['images']] == list(range(30))
    assert labels['annotations']


def test_make_bag_from_brackets_and_hdr_files(tmp_path, capsys):
    scenes = [generate_scene(s, 'day', 64, 96) for s in (1, 2)]
    for i, sc in enumerate(scenes):
        export_brackets(sc, tmp_path / 'br', f'f{i}')
        np.save(tmp_path / f'h{i}.npy', sc.radiance)
    coco = {'images': [{'id': 1, 'file_name': 'f1.jpg'}],
            'annotations': [{'id': 1, 'image_id': 1, 'category_id': 3,
                             'bbox': [1, 2, 10, 10]}], 'categories': []}
    (tmp_path / 'labels.json').write_text(json.dumps(coco))
    assert cli(['make-bag', str(tmp_path / 'b1'), '--brackets', str(tmp_path / 'br'),
                '--labels', str(tmp_path / 'labels.json'), '--no-progress']) == 0
    b = open_hdr_bag(tmp_path / 'b1')
    assert len(b) == 2
    assert b.labels()['images'][0]['frame_index'] == 1
    merged = [r for _, r in b.iter_radiance()]
    ratio = np.median(merged[0]) / np.median(scenes[0].radiance)
    assert 0.5 < ratio < 2.0  # Eq. 7 merge lands on the scene's radiance scale
    assert cli(['make-bag', str(tmp_path / 'b2'), '--hdr', str(tmp_path / 'h0.npy'),
                str(tmp_path / 'h1.npy'), '--storage', 'sqlite3', '--no-progress']) == 0
    got = [r for _, r in open_hdr_bag(tmp_path / 'b2').iter_radiance()]
    np.testing.assert_array_equal(got[1], scenes[1].radiance)
    assert cli(['make-bag', str(tmp_path / 'b2'), '--no-progress', *SIZE]) == 2
    assert 'exists' in capsys.readouterr().err


def test_replay_writes_output_bag_and_metrics(bag, tmp_path, capsys):
    out = tmp_path / 'out'
    assert cli(['replay', str(bag), '--controller', 'average', '-o', str(out),
                '--latency-frames', '1', '--option', 'ev_compensation=0.5',
                '--no-progress']) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary['frames'] == 30 and summary['error'] is None
    metrics = json.loads((tmp_path / 'out.metrics.json').read_text())
    assert metrics['latency_frames'] == 1
    assert metrics['options']['options']['ev_compensation'] == 0.5
    assert 'summary' in metrics['metrics'] and len(metrics['per_frame']['e_s']) == 30
    b = open_hdr_bag(out, topic=RAW_TOPIC)
    assert b.message_counts() == {RAW_TOPIC: 30, SETTINGS_TOPIC: 30, DETECTIONS_TOPIC: 30}
    settings = [doc for _, doc in b.iter_json(SETTINGS_TOPIC)]
    # Latency 1: the command issued after frame k is in force at frame k + 2.
    for k in range(len(settings) - 2):
        assert settings[k + 2]['e_s'] == pytest.approx(settings[k]['command_e_s'])
    _, raw_msg = next(b.iter_messages(RAW_TOPIC))
    assert raw_msg.encoding == 'bayer_rggb16' and (raw_msg.height, raw_msg.width) == (64, 96)
    dets = next(b.iter_json(DETECTIONS_TOPIC))[1]
    assert dets['detector'] is None and dets['detections'] == []


def test_replay_of_a_truncated_bag_keeps_what_was_replayed(bag, tmp_path, capsys):
    damaged = tmp_path / 'damaged'
    damaged.mkdir()
    mcap = next(bag.glob('*.mcap'))
    data = mcap.read_bytes()
    (damaged / mcap.name).write_bytes(data[:int(len(data) * 0.85)])
    out = tmp_path / 'out'
    assert cli(['replay', str(damaged), '--controller', 'gradient', '-o', str(out),
                '--no-progress']) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith('neural-ae replay: error:') and 'damaged' in err[-1]
    metrics = json.loads((tmp_path / 'out.metrics.json').read_text())
    n = metrics['run']['frames']
    assert 0 < n < 30 and metrics['run']['error']
    assert open_hdr_bag(out, topic=RAW_TOPIC).message_counts()[RAW_TOPIC] == n


def test_replay_rejects_bad_input_in_one_line(bag, tmp_path, capsys):
    (tmp_path / 'junk.mcap').write_bytes(b'not a bag at all')
    cases = [
        ['replay', str(tmp_path / 'junk.mcap'), '--controller', 'average'],
        ['replay', str(tmp_path / 'missing'), '--controller', 'average'],
        ['replay', str(bag), '--controller', 'hybrid_nn', '--model', str(tmp_path / 'no.pt'),
         '-o', str(tmp_path / 'o1')],
        ['replay', str(bag), '--controller', 'average', '--option', 'mu=7',
         '-o', str(tmp_path / 'o2')],
        ['replay', str(bag), '--controller', 'magic', '-o', str(tmp_path / 'o3')],
    ]
    for argv in cases:
        assert cli(argv + ['--no-progress']) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) >= 1 and err[-1].startswith('neural-ae replay: error:'), err
    assert not any((tmp_path / o).exists() for o in ('o1', 'o2', 'o3'))


def test_replay_frames_function_for_other_tools():
    frames = ((k * 33_000_000, generate_scene(5, 'night', 64, 96).radiance * (1 + k))
              for k in range(6))
    ctrl = make_controller('average')
    run = replay_frames(frames, ctrl, seed=1)
    assert run['result'].n_frames == 6 and run['error'] is None
    assert run['t_ns'] == [k * 33_000_000 for k in range(6)]
    assert 'summary' in run['metrics']
