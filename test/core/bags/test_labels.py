"""COCO labels: structure checks, stamp keys, nearest-stamp matching, bad boxes dropped."""
import json
import logging

from neural_ae import cli
from neural_ae.core.bags import HDRBagWriter, open_hdr_bag, write_coco_labels
from neural_ae.core.bags.labels import (clean_boxes_xyxy, DEFAULT_STAMP_TOLERANCE_NS,
                                        label_index, match_stamp, read_labels_file,
                                        resolve_label_frames, stamp_tolerance_ns,
                                        validate_coco)
from neural_ae.core.errors import BagFormatError, ConfigError
import numpy as np
import pytest

PERIOD = 33_333_333                                     # 30 Hz [ns]


def _coco(**image):
    img = {'id': 1, 'frame_index': 0, 'width': 100, 'height': 50}
    img.update(image)
    return {'images': [img], 'annotations': [
        {'id': 1, 'image_id': 1, 'bbox': [10, 5, 20, 10], 'category_id': 2}]}


def _with_ann(**ann):
    coco = _coco()
    coco['annotations'][0].update(ann)
    return coco


def _without_bbox():
    coco = _coco()
    del coco['annotations'][0]['bbox']
    return coco


@pytest.mark.parametrize('coco, needle', [
    ([{'id': 1}], 'must be a COCO object (a dict with an "images" list), got a JSON array'),
    ({'annotations': []}, 'have no "images" list'),
    ({'images': {'id': 1}}, '"images" must be a list, got a JSON object'),
    ({'images': [], 'annotations': 'none'}, '"annotations" must be a list, got a JSON string'),
    (_without_bbox(), 'annotation id 1 has no "bbox"'),
    (_with_ann(bbox=[1, 2, 3]), 'bbox must be 4 numbers [x, y, width, height], got 3 values'),
    (_with_ann(bbox=[1, float('nan'), 3, 4]), 'not JSON serializable (NaN'),
    (_with_ann(bbox=[1, '2', 3, 4]), "bbox must be 4 numbers, got [1, '2', 3, 4]"),
    (_with_ann(category_id='car'), "category_id must be an integer, got 'car'"),
    (_with_ann(category_id=True), 'category_id must be an integer, got'),
    (_with_ann(image_id=[1]), 'annotation with unknown image_id'),
    ({'images': [{'id': 1}]}, 'image id 1 needs "frame_index" or a stamp'),
    ({'images': [{'id': 1, 'frame_index': -1}]}, 'frame_index must be an integer >= 0'),
    ({'images': [{'id': 1, 'frame_index': 1.5}]}, 'frame_index must be an integer >= 0'),
    ({'images': [{'id': 1, 't_ns': 'soon'}]}, 't_ns must be an integer in [0, 2**63) ns'),
    ({'images': [{'id': 1, 'stamp_ns': -5}]}, 'stamp_ns must be an integer in [0, 2**63)'),
    ({'images': [{'id': 1, 't_ns': 5, 'stamp_ns': 6}]}, 'has t_ns 5 and stamp_ns 6'),
    ({'images': [{'id': 1, 't_ns': 5}, {'id': 1, 't_ns': 6}]}, 'image id 1 appears twice'),
    ({'images': [{'id': None, 't_ns': 5}]}, 'image id must be an integer or a string'),
    ({'images': [{'id': 1, 't_ns': 5, 'width': 0}]}, 'width must be a positive integer'),
])
def test_malformed_labels_are_one_line_errors(coco, needle):
    with pytest.raises(BagFormatError) as info:
        validate_coco(coco, 'here')
    msg = str(info.value)
    assert needle in msg and msg.startswith('labels for here') and '\n' not in msg, msg


def test_validate_returns_a_normalised_copy_and_accepts_every_key():
    coco = {'images': [{'id': 1, 'frame_index': 0}, {'id': 'b', 'stamp_ns': 2_000},
                       {'id': 3, 't_ns': 3_000}, {'id': 4, 't_ns': 4.0e3}]}
    out = validate_coco(coco, 'x')
    assert [im.get('t_ns') for im in out['images']] == [None, 2_000, 3_000, 4_000]
    assert isinstance(out['images'][3]['t_ns'], int)
    assert out['annotations'] == [] and out['categories'] == []
    assert 't_ns' not in coco['images'][1]                 # the caller's dict untouched
    with pytest.raises(ConfigError, match='labels for x'):
        validate_coco([], 'x', ConfigError)
    assert validate_coco({'images': [{'id': 1, 'file_name': 'a.png'}]}, 'x',
                         require_key=False)['images'][0] == {'id': 1, 'file_name': 'a.png'}


@pytest.mark.parametrize('text, needle', [
    ('[1, 2]', 'got a JSON array at the top level'),
    ('{"images": [', 'are not valid JSON'),
    ('{"images": 3}', '"images" must be a list, got a JSON number'),
])
def test_read_labels_file_errors_name_the_file(tmp_path, text, needle):
    path = tmp_path / 'labels.json'
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        read_labels_file(path)
    assert needle in str(info.value) and str(path) in str(info.value)
    assert '\n' not in str(info.value)
    with pytest.raises(ConfigError, match='labels file not found'):
        read_labels_file(tmp_path / 'none.json')


# --------------------------------------------------------------------------- stamps


def test_match_stamp_nearest_within_tolerance():
    stamps = [0, PERIOD, 2 * PERIOD, 3 * PERIOD]
    assert DEFAULT_STAMP_TOLERANCE_NS == round(1e9 / 30 / 2)
    assert match_stamp(stamps, PERIOD) == 1                       # exact
    assert match_stamp(stamps, PERIOD + 16_000_000) == 1          # nearer 1 than 2
    assert match_stamp(stamps, 2 * PERIOD - 16_000_000) == 2
    assert match_stamp(stamps, -16_666_667) == 0                  # before the first, inside
    assert match_stamp(stamps, -16_666_668) is None               # just outside
    assert match_stamp(stamps, 3 * PERIOD + 16_666_667) == 3      # tolerance is inclusive
    assert match_stamp(stamps, 3 * PERIOD + 16_666_668) is None
    assert match_stamp([0, 10], 5) == 0                           # a tie: the earlier one
    assert match_stamp([0, 10], 5, tolerance_ns=4) is None
    assert match_stamp([], 0) is None
    assert match_stamp([7], 7, tolerance_ns=0) == 0
    with pytest.raises(ConfigError, match='stamp tolerance must be a number >= 0'):
        match_stamp(stamps, 0, tolerance_ns=-1)


def test_match_stamp_against_brute_force():
    rng = np.random.default_rng(3)
    stamps = sorted(set(rng.integers(0, 10**9, 200).tolist()))
    for t in rng.integers(-10**7, 10**9 + 10**7, 2000).tolist():
        dist = [abs(s - t) for s in stamps]
        best = int(np.argmin(dist))                               # first minimum: earlier
        want = best if dist[best] <= 5_000_000 else None
        assert match_stamp(stamps, t, 5_000_000) == want, t


def test_stamp_tolerance_is_half_the_frame_period_capped_at_30_hz():
    assert stamp_tolerance_ns([0, 10, 20, 30]) == 5
    assert stamp_tolerance_ns([i * 16_666_667 for i in range(5)]) == 8_333_333   # 60 Hz
    assert stamp_tolerance_ns([i * 100_000_000 for i in range(5)]) == \
        DEFAULT_STAMP_TOLERANCE_NS                                               # 10 Hz
    assert stamp_tolerance_ns([5]) == DEFAULT_STAMP_TOLERANCE_NS


def test_label_index_by_frame_and_by_stamp():
    coco = {'images': [{'id': 1, 'frame_index': 0}, {'id': 2, 'stamp_ns': 5 * PERIOD},
                       {'id': 3, 'frame_index': 7, 't_ns': 7 * PERIOD}],
            'annotations': [{'image_id': 1, 'bbox': [1, 2, 3, 4], 'category_id': 1},
                            {'image_id': 2, 'bbox': [0, 0, 5, 5], 'category_id': 2},
                            {'image_id': 2, 'bbox': [5, 5, 5, 5], 'category_id': 3}]}
    index = label_index(coco, 'bag')
    assert sorted(index.by_frame) == [0, 7] and index.stamps_ns == [5 * PERIOD, 7 * PERIOD]
    assert len(index) == 3
    np.testing.assert_array_equal(index.by_frame[0].boxes, [[1, 2, 4, 6]])
    rec = index.lookup(frame_index=5, t_ns=5 * PERIOD + 1_000_000)  # no index 5: by stamp
    assert rec.image_id == 2 and rec.labels.tolist() == [2, 3]
    np.testing.assert_array_equal(rec.boxes, [[0, 0, 5, 5], [5, 5, 10, 10]])
    assert index.lookup(frame_index=0, t_ns=5 * PERIOD).image_id == 1   # index first
    assert index.lookup(frame_index=3, t_ns=6 * PERIOD) is None         # between: too far
    assert index.lookup(t_ns=7 * PERIOD).image_id == 3


# --------------------------------------------------------------------------- bad boxes


def test_boxes_outside_or_negative_are_dropped_with_one_warning(caplog):
    boxes = [[10, 10, 20, 20],       # fine
             [-5, 10, 5, 20],        # partly outside: clipped
             [120, 10, 130, 20],     # right of the 100 x 50 image
             [10, -30, 20, -10],     # above it
             [30, 30, 20, 40],       # negative width
             [40, 40, 40, 45],       # zero width
             [10, 10, 10.5, 20]]     # 0.5 px wide
    with caplog.at_level(logging.WARNING, logger='neural_ae.core.bags.labels'):
        kept, labels, dropped = clean_boxes_xyxy(boxes, range(7), 50, 100, 'cam')
    assert labels.tolist() == [0, 1]
    np.testing.assert_array_equal(kept, [[10, 10, 20, 20], [0, 10, 5, 20]])
    assert dropped == {'negative': 2, 'outside': 2, 'small': 1}
    assert len(caplog.records) == 1
    msg = caplog.records[0].getMessage()
    assert msg.startswith('labels for cam: dropped 5 of 7 boxes:')
    assert '2 with negative or zero size' in msg and '2 outside the image' in msg
    assert '1 smaller than 1 px' in msg and 'image 100 x 50 px' in msg


def test_label_index_drops_bad_boxes_against_the_frame_size(caplog):
    coco = {'images': [{'id': 1, 'frame_index': 0, 'width': 640, 'height': 480}],
            'annotations': [{'image_id': 1, 'bbox': [10, 10, 20, 20], 'category_id': 1},
                            {'image_id': 1, 'bbox': [400, 10, 20, 20], 'category_id': 2},
                            {'image_id': 1, 'bbox': [50, 50, -20, 10], 'category_id': 3}]}
    with caplog.at_level(logging.WARNING, logger='neural_ae.core.bags.labels'):
        index = label_index(coco, 'bag b', frame_size=(240, 320))   # labels made at 640
    assert index.by_frame[0].labels.tolist() == [1]
    assert index.dropped == {'negative': 1, 'outside': 1, 'small': 0}
    assert 'dropped 2 of 3 boxes' in caplog.text and 'image 320 x 240 px' in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger='neural_ae.core.bags.labels'):
        own = label_index(coco, 'bag b')                 # the image's own 640 x 480
    assert own.by_frame[0].labels.tolist() == [1, 2] and 'dropped 1 of 3' in caplog.text


def test_resolve_label_frames_matches_stamps_and_drops_bad_boxes(caplog):
    frames = [1_000 + k * PERIOD for k in range(4)]
    coco = {'images': [{'id': 1, 'stamp_ns': frames[2] + 3_000_000, 'width': 64,
                        'height': 48},
                       {'id': 2, 't_ns': frames[3]}],
            'annotations': [{'image_id': 1, 'bbox': [1, 1, 5, 5], 'category_id': 1},
                            {'image_id': 1, 'bbox': [70, 1, 5, 5], 'category_id': 1},
                            {'image_id': 2, 'bbox': [1, 1, -5, 5], 'category_id': 1}]}
    with caplog.at_level(logging.WARNING, logger='neural_ae.core.bags.labels'):
        out = resolve_label_frames(coco, frames, '/hdr/image', 'bag')
    first, second = out['images']
    assert (first['frame_index'], first['t_ns'], first['label_t_ns']) == (
        2, frames[2], frames[2] + 3_000_000)
    assert (second['frame_index'], second['t_ns']) == (3, frames[3])
    assert 'label_t_ns' not in second
    assert [a['bbox'] for a in out['annotations']] == [[1, 1, 5, 5]]
    assert 'dropped 2 of 3 boxes: 1 with negative or zero size, 1 outside the image' in \
        caplog.text
    with pytest.raises(BagFormatError, match='matches no frame on /hdr/image'):
        resolve_label_frames({'images': [{'id': 1, 't_ns': frames[3] + PERIOD}]}, frames,
                             '/hdr/image', 'bag')


def test_stamp_labels_of_a_bag_through_the_writer(tmp_path):
    rng = np.random.default_rng(0)
    with HDRBagWriter(tmp_path / 'b') as writer:
        for k in range(3):
            writer.write_radiance(5_000 + k * PERIOD, rng.random((4, 6, 3)).astype(np.float32))
    write_coco_labels(tmp_path / 'b', {'images': [{'id': 'x', 'stamp_ns': 5_000 + PERIOD - 7}]})
    img, = open_hdr_bag(tmp_path / 'b').labels()['images']
    assert (img['frame_index'], img['t_ns'], img['stamp_ns']) == \
        (1, 5_000 + PERIOD, 5_000 + PERIOD - 7)


@pytest.mark.parametrize('text, needle', [
    ('[{"id": 1}]', 'got a JSON array at the top level'),
    ('{"images": {"id": 1}}', '"images" must be a list'),
    ('{"images": [{"id": 1, "file_name": "a"}], "annotations": '
     '[{"image_id": 1, "category_id": 1}]}', 'has no "bbox"'),
    ('{"images": [{"id": 1, "file_name": "a"}], "annotations": '
     '[{"image_id": 1, "bbox": [1, 2, 3], "category_id": 1}]}', 'got 3 values'),
    ('{"images": [{"id": 1, "file_name": "a"}], "annotations": '
     '[{"image_id": 1, "bbox": [1, NaN, 3, 4], "category_id": 1}]}', 'NaN'),
    ('{"images": [{"id": 1, "file_name": "a"}], "annotations": '
     '[{"image_id": 1, "bbox": [1, 2, 3, 4], "category_id": "car"}]}',
     "category_id must be an integer, got 'car'"),
])
def test_make_bag_refuses_malformed_labels_in_one_line(tmp_path, capsys, text, needle):
    hdr = tmp_path / 'hdr'
    hdr.mkdir()
    labels = tmp_path / 'labels.json'
    labels.write_text(text)
    code = cli.main(['make-bag', '--hdr', str(hdr), '--labels', str(labels), '-o',
                     str(tmp_path / 'bag')])
    err = capsys.readouterr().err.strip()
    assert code == 2 and needle in err and str(labels) in err, err
    assert len(err.splitlines()) == 1
    assert not (tmp_path / 'bag').exists()


def test_json_helper_round_trip(tmp_path):
    path = tmp_path / 'labels.json'
    path.write_text(json.dumps(_coco(t_ns=17)))
    out = read_labels_file(path)
    assert out['images'][0]['t_ns'] == 17 and out['annotations'][0]['bbox'] == [10, 5, 20, 10]
