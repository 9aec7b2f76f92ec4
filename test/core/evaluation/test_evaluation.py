"""Evaluation protocols and report (issue 5): mechanics on tiny cases with test doubles."""
import json
import math
from pathlib import Path

from neural_ae.cli import main
from neural_ae.core.bags import HDRBagWriter
from neural_ae.core.errors import EvaluationError
from neural_ae.core.evaluation import report as R
from neural_ae.core.evaluation.bag import DrivePairs, load_bag_frames
from neural_ae.core.evaluation.config import (check_test_seeds, DRIVE_SEED_OFFSET,
                                              load_eval_config, TEST_SEED_START)
from neural_ae.core.evaluation.drives import (DriveProtocolResult, DriveResult, DriveRun,
                                              run_drive_protocol, step_drive)
from neural_ae.core.evaluation.methods import (baseline_names, build_methods, detector_chain,
                                               Method, method_label, method_names)
from neural_ae.core.evaluation.oracle import image_score, OracleSpec, soft_score
from neural_ae.core.evaluation.shift import (causal_ceiling, correction_slope, draw_kappa,
                                             flip_record,
                                             OffsetSweep, run_shift_protocol)
from neural_ae.core.metrics.detection import CLASSES
from neural_ae.core.models.perception import PerceptionResult
from neural_ae.core.paths import config_dir
from neural_ae.core.sensor import load_sensor
from neural_ae.core.training.config import load_config, TrainConfig
import numpy as np
import pytest
import torch

H, W = 64, 96
SENSOR = load_sensor('imx249')
GT_BOXES = np.array([[30, 20, 50, 44]], np.float32)
GT_LABELS = np.array([3], np.int64)


def _radiance(seed: int, scale: float = 1.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rad = np.full((H, W, 3), 2e5, np.float32) * rng.uniform(0.5, 1.5, (H, W, 1))
    rad[20:44, 30:50] = 3e6
    rad[:8] = 5e7                                  # a bright sky band (HDR)
    return (rad * scale).astype(np.float32)


def _pairs(n: int = 2) -> list:
    return [{'rad1': _radiance(i), 'rad2': _radiance(i, 1.02), 'boxes': GT_BOXES.copy(),
             'labels': GT_LABELS.copy(), 'key': i} for i in range(n)]


class FakePerception:
    """Detections whose quality depends on exposure: the GT box, scored by mid-grey-ness."""

    source = 'fake detector'

    def __init__(self):
        self.calls = 0

    def _quality(self, raw) -> float:
        level = (float(np.mean(raw[24:40, 34:46])) - 64.0) / (4095.0 - 64.0)
        return float(math.exp(-0.5 * math.log2(max(level, 1e-4) / 0.4) ** 2))

    def detect(self, raw):
        self.calls += 1
        q = self._quality(raw)
        boxes = np.array([[30, 20, 50, 44], [0, 50, 12, 62]], np.float64)
        dets = {'boxes': boxes, 'scores': np.array([q, 1.0 - q]),
                'labels': np.array([3, 3], np.int64)}
        return dets, torch.zeros(1, 128, H // 8, W // 8)

    def features(self, raw):
        return torch.zeros(1, 128, H // 8, W // 8)

    def run(self, raw):
        dets, layer2 = self.detect(raw)
        return PerceptionResult(dets['boxes'], dets['labels'], dets['scores'], layer2)


def _methods(names=('fixed', 'average', 'gradient'), perception=None):
    perc = perception or FakePerception()
    return [Method(n, perc, 'fake detector') for n in names], perc


# --------------------------------------------------------------------------- sampling, seeds


def test_kappa_is_one_over_k_or_k_with_equal_probability():
    rng = np.random.default_rng(1)
    for k in (1.5, 4.0, 10.0):
        draws = np.array([draw_kappa(rng, k) for _ in range(4000)])
        assert set(np.round(draws, 9)) == {round(1 / k, 9), round(k, 9)}
        assert 0.46 < np.mean(draws == k) < 0.54
    with pytest.raises(EvaluationError, match='>= 1'):
        draw_kappa(rng, 0.5)


def _exposure_train_configs() -> list:
    """Return the exposure-pipeline training configs (other trainers' carry a ``task:``)."""
    from neural_ae.core.training.config import config_task, EXPOSURE_TASK

    return [load_config(p) for p in sorted(config_dir().glob('train_*.yaml'))
            if config_task(p) == EXPOSURE_TASK]


def test_test_seeds_are_disjoint_from_training_seed_ranges():
    cfgs = [TrainConfig()] + _exposure_train_configs()
    assert len(cfgs) >= 7
    ev = load_eval_config(config_dir() / 'evaluate.yaml')
    assert ev.test_seed_start >= TrainConfig().test_seed_start == TEST_SEED_START
    pairs = range(ev.test_seed_start, ev.test_seed_start + ev.shift_pairs)
    drives = range(ev.test_seed_start + DRIVE_SEED_OFFSET,
                   ev.test_seed_start + DRIVE_SEED_OFFSET + len(ev.drives))
    check_test_seeds(list(pairs) + list(drives), cfgs)
    with pytest.raises(EvaluationError, match='overlap the train seeds'):
        check_test_seeds([3, 2_000_000], cfgs)
    with pytest.raises(EvaluationError, match='overlap the val seeds'):
        check_test_seeds([1_000_001], [TrainConfig()])
    check_test_seeds([1_000_001], [TrainConfig()], splits=('train',))


# --------------------------------------------------------------------------- shift protocol


def test_flips_double_the_pairs_and_repeats_give_mean_and_std():
    methods, _ = _methods(('fixed', 'average'))
    pairs = _pairs(2)
    flipped = run_shift_protocol(pairs, methods, SENSOR, levels=(4.0,), repeats=3, flip=True)
    plain = run_shift_protocol(pairs, methods, SENSOR, levels=(4.0,), repeats=3, flip=False)
    st = flipped['methods']['average']['levels']['4']
    assert flipped['images_per_repeat'] == 4 and st['num_images'] == 4
    assert plain['images_per_repeat'] == 2
    assert plain['methods']['average']['levels']['4']['num_images'] == 2
    assert st['num_gt']['car_van'] == 4
    reps = st['map50_repeats']
    assert len(reps) == 3
    assert st['map50_mean'] == pytest.approx(np.mean(reps))
    assert st['map50_std'] == pytest.approx(np.std(reps, ddof=1))
    assert set(st['ap50_mean']) == set(CLASSES)
    # same draws -> same figures (deterministic)
    again = run_shift_protocol(pairs, methods, SENSOR, levels=(4.0,), repeats=3, flip=True)
    assert again['methods']['average']['levels']['4']['map50_repeats'] == reps


def test_flip_record_mirrors_boxes():
    r1, r2 = _radiance(0), _radiance(1)
    f1, f2, boxes, labels = flip_record(r1, r2, GT_BOXES, GT_LABELS)
    assert np.array_equal(f2[:, 0], r2[:, -1])
    assert boxes.tolist() == [[W - 50, 20, W - 30, 44]]
    assert labels.tolist() == [3]


def test_oracle_is_at_least_every_method_on_the_same_draws():
    methods, perc = _methods(('fixed', 'average', 'gradient'))
    oracle = OracleSpec(perc, 'fake', n_sweep=5, range_ev=3.0)
    res = run_shift_protocol(_pairs(1), methods, SENSOR, levels=(10.0, 1.5), repeats=2,
                             flip=False, oracle=oracle)
    for level in ('10', '1.5'):
        orc = res['oracle']['levels'][level]['map50_repeats']
        for name in ('fixed', 'average', 'gradient'):
            got = res['methods'][name]['levels'][level]['map50_repeats']
            assert all(o >= m - 1e-12 for o, m in zip(orc, got)), (level, name, orc, got)
    # at k = 10 frame 1 is far off: Fixed stays there, the oracle does not
    assert res['oracle']['levels']['10']['map50_mean'] > \
        res['methods']['fixed']['levels']['10']['map50_mean']
    assert res['oracle']['levels']['10']['ev_error_median'] < 3.0


def test_causal_ceiling_is_chosen_on_validation_and_below_the_oracle():
    methods, perc = _methods(('fixed', 'average'))
    offsets = OffsetSweep(perc, 'fake', (-6.0, -1.5, 0.0, 6.0))
    val = run_shift_protocol(_pairs(2), [], SENSOR, levels=(1.5,), repeats=1, flip=False,
                             offsets=offsets)['offsets']
    assert val['offsets_ev'] == [-6.0, -1.5, 0.0, 6.0] and len(val['map50_repeats']) == 4
    # 6 EV off e_base clips or drowns the box: worse than near mid-grey
    assert max(val['map50_mean'][1:3]) > val['map50_mean'][0]
    assert max(val['map50_mean'][1:3]) > val['map50_mean'][3]
    oracle = OracleSpec(perc, 'fake', n_sweep=3, range_ev=3.0)
    test = run_shift_protocol(_pairs(1), methods, SENSOR, levels=(10.0,), repeats=2,
                              flip=False, oracle=oracle, offsets=offsets)
    ceil = causal_ceiling(val, test['offsets'])
    j = int(np.argmax(val['map50_mean']))
    assert ceil['offset_ev'] == val['offsets_ev'][j]
    assert ceil['map50_mean'] == test['offsets']['map50_mean'][j]   # scored on test
    orc = test['oracle']['levels']['10']['map50_repeats']
    assert all(o >= c - 1e-12 for o, c in zip(orc, ceil['map50_repeats']))
    with pytest.raises(EvaluationError, match='differ'):
        causal_ceiling(val, {**test['offsets'], 'offsets_ev': [0.0]})
    with pytest.raises(EvaluationError, match='offsets_ev'):
        OffsetSweep(perc, 'fake', (float('nan'),))
    test['causal_ceiling'] = ceil
    test['offsets_val'] = val
    table = R.offsets_table_md(test)
    assert f'**{ceil["offset_ev"]:+g}**' in table and table.count('\n') == 5
    assert 'Causal ceiling' in R.shift_table_md(test)


def test_correction_slope():
    pts = [(k, -0.5 * k + 0.3) for k in (-3.3, -1.0, 0.0, 2.0, 3.3)]
    assert correction_slope(pts) == pytest.approx(-0.5)
    assert math.isnan(correction_slope([(1.0, 2.0), (1.0, 3.0)]))
    methods, _ = _methods(('fixed', 'average'))
    res = run_shift_protocol(_pairs(1), methods, SENSOR, levels=(4.0, 10.0), repeats=2)
    assert res['methods']['fixed']['correction_slope'] == pytest.approx(0.0, abs=1e-9)
    assert res['methods']['average']['correction_slope'] < -0.2      # it corrects


def test_drive_repeats_give_a_spread():
    methods, _ = _methods(('average',))
    res = run_drive_protocol([_tiny_drive('step10x')], methods, SENSOR, repeats=3)
    run = res.drives[0].runs['average']
    assert len(run.map50_repeats) == 3 and run.map50_repeats[0] == run.ap['map50']
    assert R.map_spread(run) >= 0 and math.isfinite(R.map_spread(run))
    with pytest.raises(EvaluationError, match='repeats'):
        run_drive_protocol([_tiny_drive('step10x')], methods, SENSOR, repeats=0)


def test_image_score_prefers_confident_true_positives():
    good = {'boxes': np.array([[30, 20, 50, 44.]]), 'scores': np.array([0.9]),
            'labels': np.array([3])}
    bad = {'boxes': np.array([[0, 0, 10, 10.]]), 'scores': np.array([0.9]),
           'labels': np.array([3])}
    assert image_score(GT_BOXES, GT_LABELS, good) > image_score(GT_BOXES, GT_LABELS, bad)
    assert soft_score(GT_BOXES, GT_LABELS, good) == pytest.approx(0.9)
    assert soft_score(GT_BOXES, GT_LABELS, bad) == pytest.approx(-0.9)


# --------------------------------------------------------------------------- drives, report


def _tiny_drive(name='tunnel_exit'):
    d = step_drive(2_100_000, n_frames=12, factor=10.0, height=H, width=W, sensor=SENSOR)
    d.name = name
    return d


def test_drive_protocol_and_report_files(tmp_path):
    methods, perc = _methods(('fixed', 'average'))
    shift = run_shift_protocol(_pairs(1), methods, SENSOR, levels=(1.5, 10.0), repeats=2,
                               flip=True, oracle=OracleSpec(perc, 'fake', 3, 3.0))
    drive = _tiny_drive()
    step = _tiny_drive('step10x')
    drives = run_drive_protocol([drive, step], methods, SENSOR,
                                oracle=OracleSpec(perc, 'fake', 3, 3.0))
    runs = drives['drives'][0]['runs']
    assert set(runs) == {'fixed', 'average', 'oracle'}
    assert runs['average']['metrics']['summary']['n_events'] == 2
    assert runs['average']['result'].n_frames == 12 and len(runs['average']['raws']) == 12
    assert 0 <= runs['average']['ap']['map50'] <= 1
    written = R.write_report(tmp_path / 'rep', {'command': 'test', 'warnings': ['careful']},
                             shift, drives, None, {'tunnel_exit': drive.frames}, SENSOR)
    names = {p.name for p in written['figures']}
    assert {'shift_map.png', 'drive_tunnel_exit_exposure.png', 'frame_grid.png',
            'drive_step10x_exposure.png'} <= names
    for p in written['figures']:
        assert p.stat().st_size > 1000
    md = written['report'].read_text()
    assert 'WARNINGS' in md and 'careful' in md and '![mAP per shift level](shift_map.png)' in md
    doc = json.loads(written['results'].read_text())
    assert doc['shift']['repeats'] == 2 and doc['drives']['drives'][0]['name'] == 'tunnel_exit'
    bench = R.write_benchmarks(tmp_path / 'BENCHMARKS.md', written, tmp_path / 'figs', 'figs')
    assert '](figs/shift_map.png)' in bench.read_text()
    assert (tmp_path / 'figs' / 'frame_grid.png').is_file()


def test_drive_results_are_typed_and_read_as_mappings():
    methods, perc = _methods(('average',))
    drive = _tiny_drive()
    res = run_drive_protocol([drive], methods, SENSOR, keep_raw_for=())
    assert isinstance(res, DriveProtocolResult) and res['drives'] is res.drives
    d = res.drives[0]
    assert isinstance(d, DriveResult) and d['name'] == d.name == 'tunnel_exit'
    run = d.runs['average']
    assert isinstance(run, DriveRun) and run['ap'] is run.ap and run.get('raws') is None
    assert run.get('nope', 1) == 1 and 'metrics' in run and 'nope' not in run
    with pytest.raises(KeyError):
        run['nope']
    # one FrameStep per frame: one detection record per frame, all labelled frames counted
    assert len(run.detections) == run.result.n_frames == 12
    assert run.ap['num_images'] == 12


def test_methods_labels_and_detectors_come_from_the_registry():
    from neural_ae.core.controllers import controller_names, ControllerSpec, FixedController
    from neural_ae.core.controllers.registry import register, unregister

    assert method_names() == controller_names(live=True)
    assert 'oracle' not in method_names()
    assert baseline_names() == ('fixed', 'average', 'gradient')
    assert method_label('hybrid_nn+adaptive') == 'Hybrid NN (adaptive)'
    assert method_label('oracle') == 'Oracle' and method_label('unknown') == 'unknown'
    assert detector_chain('hybrid_nn') == ('hybrid',)
    assert detector_chain('average')[:2] == ('average', 'fixed')
    assert detector_chain('fixed', fixed_detector='gradient')[0] == 'gradient'
    register(ControllerSpec('tiny_test_ae', 'Tiny AE', FixedController, train_mode='tiny'))
    try:
        assert method_names()[-1] == 'tiny_test_ae' and 'tiny_test_ae' in baseline_names()
        assert method_label('tiny_test_ae') == 'Tiny AE'
        assert detector_chain('tiny_test_ae')[0] == 'tiny'
        assert load_eval_config(methods=('tiny_test_ae',)).methods == ('tiny_test_ae',)
    finally:
        unregister('tiny_test_ae')
    with pytest.raises(EvaluationError, match='unknown methods'):
        load_eval_config(methods=('tiny_test_ae',))


def test_targets_are_checked_against_the_figures():
    def entry(*maps):
        return {'detector_from': 'x', 'notes': [], 'levels': {
            k: {'map50_mean': m, 'map50_std': 0.01} for k, m in zip(('1.5', '4', '10'), maps)}}
    shift = {'levels': [1.5, 4.0, 10.0], 'methods': {
        'average': entry(0.30, 0.28, 0.20), 'gradient': entry(0.31, 0.27, 0.18),
        'hybrid_nn': entry(0.33, 0.33, 0.30), 'histogram_nn': entry(0.32, 0.30, 0.25)},
        'oracle': entry(0.40, 0.40, 0.40),
        'causal_ceiling': {'offset_ev': -1.5, 'val_map50': 0.3, 'map50_mean': 0.32,
                           'map50_std': 0.01, 'val_seeds': '1000000..1000047'}}
    t = R.check_targets(shift, None)
    by = {x['target'].split(' ')[0] + x['target'].split(' ')[2]: x for x in t}
    assert [x['met'] for x in t] == [True, True, True, None]
    assert 'Histogram NN worst at k=1.5: +1.00' in t[0]['value']
    assert '+10.00' in t[1]['value']
    assert '83%' in t[2]['value'] and 'causal ceiling 32.00 at -1.5 EV' in t[2]['value']
    assert t[3]['reference'] and '50%' in t[3]['value']          # (30 - 20) / (40 - 20)
    assert 'reference' in R.targets_md(t)
    assert len(by) == 4
    shift['methods']['hybrid_nn'] = entry(0.30, 0.33, 0.22)
    shift['methods']['histogram_nn'] = entry(0.30, 0.33, 0.25)   # ties Gradient at k = 1.5
    assert [x['met'] for x in R.check_targets(shift, None)][:3] == [False, False, False]
    del shift['causal_ceiling']
    assert R.check_targets(shift, None)[2]['met'] is None      # no ceiling: not measured


# --------------------------------------------------------------------------- checkpoints


def test_missing_checkpoints_give_a_clear_message(tmp_path, capsys):
    with pytest.raises(EvaluationError, match='no trained checkpoints found.*--allow-untrained'):
        build_methods(tmp_path, ('average',), SENSOR)
    rc = main(['evaluate', '--models', str(tmp_path), '--protocol', 'shift', '--no-progress',
               '--out', str(tmp_path / 'o')])
    err = capsys.readouterr().err
    assert rc == 2 and 'no trained checkpoints found' in err
    with pytest.raises(EvaluationError, match='checkpoint for hybrid_nn not found'):
        build_methods(tmp_path, ('hybrid_nn',), SENSOR,
                      explicit={'hybrid_nn': str(tmp_path / 'nope.pt')})


def test_fallbacks_are_reported_loudly(tmp_path):
    from neural_ae.core.training.checkpoints import checkpoint_dict, save_checkpoint
    from neural_ae.core.training.pipeline import ExposurePipeline

    cfg = TrainConfig(name='avg_tiny', ae='average', height=H, width=W,
                      detector={'widths': [8, 8, 128, 16, 16], 'fpn_channels': 16,
                                'representation_size': 32})
    save_checkpoint(tmp_path / 'average_tiny.pt',
                    checkpoint_dict(ExposurePipeline(cfg, SENSOR), cfg, slim=True))
    built = build_methods(tmp_path, ('fixed', 'gradient', 'hybrid_nn'), SENSOR)
    names = [m.name for m in built['methods']]
    assert names == ['fixed', 'gradient']
    assert 'hybrid_nn' in built['skipped']
    text = ' | '.join(built['warnings'])
    assert 'NOT EVALUATED' in text and 'FALLBACK detector' in text
    fixed, gradient = built['methods']
    assert fixed.perception is gradient.perception          # both use the Average detector
    assert 'average_tiny.pt' in fixed.detector_from
    assert built['configs'][0].name == 'avg_tiny'


# --------------------------------------------------------------------------- bag


def _write_bag(path: Path, n: int = 4) -> Path:
    coco = {'images': [], 'annotations': [], 'categories': [
        {'id': i + 1, 'name': c} for i, c in enumerate(CLASSES)]}
    with HDRBagWriter(path) as bag:
        for k in range(n):
            bag.write_radiance(1_000_000_000 + k * 33_333_333, _radiance(k, 1.0 + 0.01 * k))
            if k:                                   # frame 0 unlabelled
                coco['images'].append({'id': k, 'frame_index': k, 'width': W, 'height': H})
                coco['annotations'].append({'id': k, 'image_id': k, 'category_id': 3,
                                            'bbox': [30, 20, 20, 24], 'area': 480,
                                            'iscrowd': 0})
        bag.write_labels(coco)
    return path


def test_bag_protocol_on_a_tiny_labelled_bag(tmp_path):
    bag = _write_bag(tmp_path / 'tiny_bag')
    drive = load_bag_frames(bag, sensor=SENSOR)
    assert len(drive.frames) == 4
    assert [f.labelled for f in drive.frames] == [False, True, True, True]
    assert drive.frames[1].boxes.tolist() == [[30, 20, 50, 44]]
    pairs = DrivePairs(drive, SENSOR.bayer_pattern)
    assert len(pairs) == 3
    rec = pairs[0]
    assert np.array_equal(rec['rad2'][..., 0], drive.frames[1].radiance)
    methods, perc = _methods(('fixed', 'average'))
    shift = run_shift_protocol(pairs, methods, SENSOR, levels=(4.0,), repeats=1, flip=True)
    assert shift['images_per_repeat'] == 6
    res = run_drive_protocol([drive], methods, SENSOR, keep_raw_for=())
    run = res['drives'][0]['runs']['average']
    assert run['ap']['num_images'] == 3                     # unlabelled frame 0 left out
    assert run['result'].n_frames == 4
    # half the size: boxes scaled
    small = load_bag_frames(bag, H // 2, W // 2, SENSOR)
    assert small.frames[1].boxes.tolist() == [[15, 10, 25, 22]]
    nolabels = tmp_path / 'nolabels'
    with HDRBagWriter(nolabels) as b:
        b.write_radiance(1, _radiance(0))
        b.write_radiance(2, _radiance(1))
    with pytest.raises(EvaluationError, match='no labels.json'):
        load_bag_frames(nolabels)


def test_evaluate_command_bag_protocol_end_to_end(tmp_path, capsys):
    bag = _write_bag(tmp_path / 'bag', n=3)
    cfg = tmp_path / 'ev.yaml'
    cfg.write_text(f'models_dir: {tmp_path / "none"}\nheight: {H}\nwidth: {W}\n'
                   'shift_repeats: 1\nshift_levels: [4]\noracle_sweep: 2\n'
                   'drive_smoothings: [adaptive]\n')
    notes = tmp_path / 'notes.md'
    notes.write_text('Hand-written reading of the figures.')
    rc = main(['evaluate', '--config', str(cfg), '--protocol', 'bag', '--bag', str(bag),
               '--methods', 'average,hybrid_nn', '--allow-untrained', '--no-progress',
               '--notes', str(notes), '--out', str(tmp_path / 'out')])
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert 'UNTRAINED' in out.err and 'Bag bag' in out.out
    md = (tmp_path / 'out' / 'report.md').read_text()
    assert '## Bag protocol: bag' in md and 'Hybrid NN (adaptive)' in md
    assert '## Discussion\n\nHand-written reading of the figures.' in md
    assert (tmp_path / 'out' / 'bag_exposure.png').is_file()


def test_other_model_kinds_in_the_models_folder_are_not_warned_about(tmp_path, caplog):
    from neural_ae.core.evaluation.methods import discover_checkpoints

    torch.save({'format': 'neural_ae.assessor/1', 'model': {}}, tmp_path / 'assessor.pt')
    (tmp_path / 'broken.pt').write_bytes(b'not a checkpoint')
    with caplog.at_level('WARNING'):
        found = discover_checkpoints(tmp_path)
    assert [u.split(':')[0] for u in found['_unreadable']] == [str(tmp_path / 'broken.pt')]
    assert 'assessor' not in caplog.text
