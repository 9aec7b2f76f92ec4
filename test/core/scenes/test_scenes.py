"""Tests of the procedural HDR scenes, sequences, COCO export and bracket export."""
import json

from hypothesis import given, settings, strategies as st
from neural_ae.cli import main as cli_main
from neural_ae.core import hdr, scenes
from neural_ae.core.errors import SceneError
import numpy as np
import pytest

H, W = 96, 144          # small frames keep the suite fast


def _check_annotations(scene):
    h, w = scene.radiance.shape[:2]
    assert scene.boxes.dtype == np.float32 and scene.boxes.shape == (len(scene.labels), 4)
    assert scene.labels.dtype == np.int64
    if len(scene.labels):
        b = scene.boxes
        assert b[:, 0].min() >= 0 and b[:, 1].min() >= 0
        assert b[:, 2].max() <= w and b[:, 3].max() <= h
        assert np.all(b[:, 2] - b[:, 0] >= scenes.MIN_BOX_PX)
        assert np.all(b[:, 3] - b[:, 1] >= scenes.MIN_BOX_PX)
        assert set(scene.labels.tolist()) <= set(range(1, 7))


def test_classes_and_scenarios():
    assert scenes.CLASSES == ('bike', 'bus_truck', 'car_van', 'person', 'traffic_light',
                              'traffic_sign')
    assert scenes.CATEGORY_IDS['bike'] == 1 and scenes.CATEGORY_IDS['traffic_sign'] == 6
    assert set(scenes.SCENARIOS) == {n for g in scenes.SCENARIO_GROUPS.values() for n in g}


def test_scene_is_deterministic_by_seed():
    a = scenes.generate_scene(3, 'night', H, W)
    b = scenes.generate_scene(3, 'night', H, W)
    c = scenes.generate_scene(4, 'night', H, W)
    assert np.array_equal(a.radiance, b.radiance)
    assert np.array_equal(a.boxes, b.boxes) and np.array_equal(a.labels, b.labels)
    assert not np.array_equal(a.radiance, c.radiance)
    d = scenes.generate_scene(5, None, H, W)          # scenario drawn from the seed
    assert d.scenario == scenes.generate_scene(5, None, H, W).scenario
    assert d.scenario in scenes.SCENARIOS


@pytest.mark.parametrize('scenario', scenes.SCENARIOS)
def test_every_scenario_has_valid_radiance_and_boxes(scenario):
    n_boxes = 0
    for seed in range(2):
        sc = scenes.generate_scene(seed, scenario, H, W)
        assert sc.radiance.dtype == np.float32 and sc.radiance.shape == (H, W, 3)
        assert np.all(np.isfinite(sc.radiance)) and sc.radiance.min() > 0
        assert sc.scenario == scenario and sc.seed == seed
        assert sc.meta['units'] == 'photo-electrons/s/pixel'
        _check_annotations(sc)
        n_boxes += len(sc.labels)
    assert n_boxes >= 2


def test_light_levels_are_physical():
    day = hdr.luminance(scenes.generate_scene(0, 'day', H, W).radiance)
    night = hdr.luminance(scenes.generate_scene(0, 'night', H, W).radiance)
    tunnel = hdr.luminance(scenes.generate_scene(0, 'tunnel_interior', H, W).radiance)
    assert 1e6 < np.median(day) < 1e8
    assert 1e3 < np.median(tunnel) < 1e6
    assert np.median(night) < 1e5
    assert np.median(day) > 100 * np.median(night)


@pytest.mark.parametrize('scenario', ['tunnel_exit', 'low_sun_glare', 'night_headlights'])
def test_hard_scenarios_reach_120_db(scenario):
    drs = [hdr.dynamic_range_db(scenes.generate_scene(s, scenario, 128, 192).radiance)
           for s in range(5)]
    assert np.median(drs) >= 120, drs


def test_day_is_milder_than_the_hard_cases():
    drs = [hdr.dynamic_range_db(scenes.generate_scene(s, 'day', H, W).radiance)
           for s in range(3)]
    assert np.median(drs) < 100


def test_lighting_mix():
    rng = np.random.default_rng(0)
    draws = [scenes.scenario_group(scenes.sample_scenario(rng)) for _ in range(2000)]
    for group, share in scenes.GROUP_WEIGHTS.items():
        assert abs(draws.count(group) / 2000 - share) <= 0.04, (group, draws.count(group))


def test_pair_has_small_motion_and_same_light():
    a, b = scenes.generate_pair(11, 'day', H, W)
    first = scenes.generate_scene(11, 'day', H, W)
    assert np.array_equal(a.radiance, first.radiance)
    assert not np.array_equal(a.radiance, b.radiance)
    ratio = b.meta['mean_luminance_e_per_s'] / a.meta['mean_luminance_e_per_s']
    assert 0.9 < ratio < 1.1
    assert abs(b.meta['light_jitter'] - 1) <= 0.03
    # every box of frame 2 has a close partner of the same class in frame 1
    for box, label in zip(b.boxes, b.labels):
        same = a.boxes[a.labels == label]
        assert len(same), label
        centre = (box[:2] + box[2:]) / 2
        shift = np.abs((same[:, :2] + same[:, 2:]) / 2 - centre).sum(axis=1).min()
        assert shift < 0.1 * W


def test_tunnel_exit_sequence_steps_up_in_light():
    frames = scenes.iter_sequence(0, 150, 'tunnel_exit', 64, 96)
    assert iter(frames) is frames                           # a generator, not a list
    metas = [f.meta for f in frames]
    assert [m['frame_index'] for m in metas] == list(range(150))
    mean = np.array([m['mean_luminance_e_per_s'] for m in metas])
    light = np.array([m['illumination_scale'] for m in metas])
    assert light[-1] / light[0] >= 100                      # light at the camera
    assert np.median(mean[-15:]) / np.median(mean[:15]) >= 10   # what an AE sees
    events = [m['event'] for m in metas]
    assert events[0] in ('inside', 'approaching_exit') and events[-1] == 'outside'
    assert 'exiting' in events
    # the step is quick: from 25 % to 90 % of the (log) change within 20 frames
    # (2/3 s; the lamps' ripple inside the tunnel is about 10 % of the change)
    log_light = np.log10(light)
    span = log_light[-1] - log_light[0]
    k25 = np.argmax(log_light > log_light[0] + 0.25 * span)
    k90 = np.argmax(log_light > log_light[0] + 0.9 * span)
    assert 0 < k90 - k25 <= 20, (k25, k90)


@pytest.mark.parametrize('name', scenes.SEQUENCE_SCENARIOS)
def test_every_sequence_runs(name):
    frames = scenes.generate_sequence(1, 6, name, 64, 96)
    assert len(frames) == 6
    for f in frames:
        assert np.all(np.isfinite(f.radiance)) and f.radiance.min() > 0
        _check_annotations(f)
        assert f.scenario == name and isinstance(f.meta['event'], str)


def _log_change(a, b):
    """Mean absolute log radiance ratio of two frames (0 for identical frames)."""
    return float(np.mean(np.abs(np.log(b.radiance / a.radiance))))


def test_sequence_objects_move_smoothly():
    """Consecutive frames differ far less than unrelated frames of the same scenario."""
    frames = scenes.generate_sequence(2, 4, 'day', H, W)
    steps = [_log_change(a, b) for a, b in zip(frames, frames[1:])]
    # unrelated 'day' frames differ by 0.59-1.4 (seeds 0-5), consecutive ones by 0.13-0.33
    jumps = [_log_change(frames[0], scenes.generate_sequence(s, 1, 'day', H, W)[0])
             for s in (3, 4)]
    assert max(steps) < 0.3 < min(jumps), (steps, jumps)
    assert min(steps) > 0.01                # and they do move


def test_coco_export_round_trip():
    sc = [scenes.generate_scene(s, 'day', H, W) for s in range(3)]
    coco = scenes.to_coco(sc, [f'f{i}.png' for i in range(3)])
    json.dumps(coco)                                        # serialisable
    assert [c['id'] for c in coco['categories']] == [1, 2, 3, 4, 5, 6]
    assert len(coco['annotations']) == sum(len(s.labels) for s in sc)
    assert len({a['id'] for a in coco['annotations']}) == len(coco['annotations'])
    for img, s in zip(coco['images'], sc):
        assert (img['height'], img['width']) == (H, W)
        anns = [a for a in coco['annotations'] if a['image_id'] == img['id']]
        for ann, box, label in zip(anns, s.boxes, s.labels):
            x, y, w, h = ann['bbox']
            assert np.allclose([x, y, x + w, y + h], box)
            assert ann['area'] == pytest.approx(w * h) and ann['iscrowd'] == 0
            assert ann['category_id'] == label
    back = scenes.from_coco(coco)
    for rec, s in zip(back, sc):
        assert np.allclose(rec['boxes'], s.boxes) and np.array_equal(rec['labels'], s.labels)
    with pytest.raises(SceneError):
        scenes.to_coco(sc, ['only_one.png'])


def test_brackets_export_load_merge(tmp_path):
    sc = scenes.generate_scene(0, 'day', H, W)
    side = scenes.export_brackets(sc, tmp_path, 'day0')
    assert len(side['files']) == 3 and all((tmp_path / f).is_file() for f in side['files'])
    images, times, gains, side2 = scenes.load_brackets(tmp_path, 'day0')
    assert side2 == json.loads((tmp_path / 'day0.json').read_text())
    assert [im.shape for im in images] == [(H, W, 3)] * 3 and images[0].dtype == np.uint8
    assert times[0] < times[1] < times[2]
    merged = hdr.merge_brackets(images, times, gains, full_scale=side['full_well_e'])
    peak = np.stack(images).max(axis=3)
    well = ((peak >= 40) & (peak <= 230)).any(axis=0)
    assert well.mean() > 0.9
    rel = np.abs(hdr.luminance(merged) / hdr.luminance(sc.radiance) - 1)[well]
    assert np.median(rel) < 0.03          # JPEG (q 95) + 8-bit quantisation
    with pytest.raises(FileNotFoundError, match='missing.json'):
        scenes.load_brackets(tmp_path, 'missing')


def test_cover_brackets_span_a_sunlit_tunnel_exit(tmp_path):
    sc = scenes.generate_scene(2, 'tunnel_exit', H, W)
    assert hdr.dynamic_range_db(sc.radiance) > 120
    side = scenes.export_brackets(sc, tmp_path, 'te', exposures_s='cover')
    images, times, gains, _ = scenes.load_brackets(tmp_path, 'te')
    assert times[2] / times[0] > 1e4
    merged = hdr.merge_brackets(images, times, gains, full_scale=side['full_well_e'])
    peak = np.stack(images).max(axis=3)
    well = ((peak >= 40) & (peak <= 230)).any(axis=0)
    # three 8-bit brackets over > 120 dB leave gaps, but far fewer than around e_base
    assert well.mean() > 0.7
    rel = np.abs(hdr.luminance(merged) / hdr.luminance(sc.radiance) - 1)[well]
    assert np.median(rel) < 0.05
    scenes.export_brackets(sc, tmp_path, 'base')
    base = np.stack(scenes.load_brackets(tmp_path, 'base')[0]).max(axis=3)
    assert ((base >= 40) & (base <= 230)).any(axis=0).mean() < well.mean() - 0.3


def test_dynamic_range_table_shape():
    table = scenes.scenario_dynamic_range_table(1, 0, (64, 96))
    assert set(table) == set(scenes.SCENARIOS)
    for row in table.values():
        assert row['n'] == 1 and row['median_db'] == row['p95_db'] > 0


@pytest.mark.parametrize('size', [(32, 128), (128, 63), (64.5, 64)])
def test_bad_sizes_rejected(size):
    with pytest.raises(SceneError, match='64 x 64'):
        scenes.generate_scene(0, 'day', *size)


def test_odd_sizes_and_bad_arguments():
    sc = scenes.generate_scene(0, 'tunnel_exit', 65, 97)
    assert sc.radiance.shape == (65, 97, 3)
    _check_annotations(sc)
    with pytest.raises(SceneError, match='unknown scenario'):
        scenes.generate_scene(0, 'moon')
    with pytest.raises(SceneError, match='unknown sequence'):
        next(scenes.iter_sequence(0, 3, 'moon'))
    with pytest.raises(SceneError, match='n_frames'):
        next(scenes.iter_sequence(0, 0, 'day'))


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 2 ** 31 - 1), scenario=st.sampled_from(scenes.SCENARIOS))
def test_radiance_is_finite_and_positive(seed, scenario):
    sc = scenes.generate_scene(seed, scenario, 64, 80)
    assert np.all(np.isfinite(sc.radiance)) and sc.radiance.min() > 0
    _check_annotations(sc)


def test_cli_writes_previews_coco_and_stats(tmp_path, capsys):
    out = tmp_path / 'out'
    rc = cli_main(['scenes', '--out', str(out), '--n', '2', '--height', '64', '--width',
                   '96', '--brackets', '--save-hdr', 'npy', '--draw-boxes'])
    assert rc == 0
    coco = json.loads((out / 'annotations.json').read_text())
    assert len(coco['images']) == 2
    for img in coco['images']:
        assert (out / img['file_name']).is_file()
        stem = img['file_name'][:-4]
        assert (out / f'{stem}.npy').is_file() and (out / 'brackets' / f'{stem}.json').is_file()
    rc = cli_main(['scenes', '--stats', '--n-per-scenario', '1', '--height', '64',
                   '--width', '96'])
    assert rc == 0
    text = capsys.readouterr().out
    assert 'tunnel_exit' in text and 'median' in text
    assert cli_main(['scenes']) == 2
