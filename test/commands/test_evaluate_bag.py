"""
Evaluate's bag protocol on a foreign bag (issue 10).

Stamp labels, the radiance scale, the at-bound warning, and an output folder that
destroys nothing.
"""
import json

from neural_ae.cli import main as cli
from neural_ae.core import sensor as S
from neural_ae.core.bags import HDRBagWriter
from neural_ae.core.evaluation.bag import load_bag_drive
from neural_ae.core.scenes import generate_scene
import numpy as np
import pytest

H, W, N = 64, 96, 6
T0, PERIOD = 2_000_000_000, 33_333_333
SENSOR = S.load_sensor('imx249')


@pytest.fixture(scope='module')
def foreign(tmp_path_factory):
    """Radiance in [0, 1], no declared unit, labels keyed by ``stamp_ns`` (+2 ms)."""
    path = tmp_path_factory.mktemp('ev') / 'foreign'
    sc = generate_scene(31, 'day', H, W)
    rad = (sc.radiance / sc.radiance.max()).astype(np.float32)
    coco = {'images': [], 'annotations': []}
    with HDRBagWriter(path, radiance_unit=None) as writer:
        for k in range(N):
            writer.write_radiance(T0 + k * PERIOD, rad)
    for k in range(1, N):
        coco['images'].append({'id': k, 'stamp_ns': T0 + k * PERIOD + 2_000_000})
        for j, (box, lab) in enumerate(zip(sc.boxes, sc.labels)):
            x1, y1, x2, y2 = (float(v) for v in box)
            coco['annotations'].append({'id': 100 * k + j, 'image_id': k,
                                        'category_id': int(lab),
                                        'bbox': [x1, y1, x2 - x1, y2 - y1]})
    (path / 'labels.json').write_text(json.dumps(coco))
    return path


def test_stamp_labels_and_auto_scale_in_the_loader(foreign):
    drive, calib = load_bag_drive(foreign, sensor=SENSOR)
    assert [f.labelled for f in drive.frames] == [False] + [True] * (N - 1)
    assert len(drive.frames[1].boxes) > 0
    assert calib.method == 'auto' and calib.scale > 1e5
    phi = drive.frames[0].radiance                    # Bayer irradiance after the scale
    assert S.e_base_s(phi, SENSOR) == pytest.approx(calib.target_e_s, rel=1e-3)
    _, given = load_bag_drive(foreign, sensor=SENSOR, radiance_scale=3.0)
    assert given.method == 'given' and given.scale == 3.0


def _config(tmp_path):
    cfg = tmp_path / 'ev.yaml'
    cfg.write_text(f'models_dir: {tmp_path / "none"}\nheight: {H}\nwidth: {W}\n'
                   'shift_repeats: 1\nshift_levels: [4]\noracle_sweep: 2\n'
                   'drive_smoothings: [adaptive]\n')
    return cfg


def test_evaluate_records_the_scale_and_warns_at_a_bound(foreign, tmp_path, capsys):
    out = tmp_path / 'out'
    argv = ['evaluate', '--config', str(_config(tmp_path)), '--protocol', 'bag', '--bag',
            str(foreign), '--methods', 'average', '--allow-untrained', '--no-oracle',
            '--no-progress', '--out', str(out), '--device', 'cpu']
    assert cli(argv + ['--bag-radiance-scale', '1']) == 0
    text = capsys.readouterr().out
    assert 'radiance scale 1 (given' in text
    assert 'sat at its maximum' in text                 # units taken as e-/s: pinned
    doc = json.loads((out / 'results.json').read_text())
    assert doc['context']['settings']['bag_radiance']['scale'] == 1.0
    # a second run into the same folder: refused without --force, before any work
    before = (out / 'report.md').read_text()
    assert cli(argv) == 2
    err = capsys.readouterr().err
    assert 'exists' in err and '--force' in err and err.count('\n') == 1
    assert (out / 'report.md').read_text() == before
    assert cli(argv + ['--force']) == 0
    text = capsys.readouterr().out
    assert 'radiance scale' in text and '(auto' in text and 'sat at its' not in text
    doc = json.loads((out / 'results.json').read_text())
    assert doc['context']['settings']['bag_radiance']['method'] == 'auto'


def test_evaluate_never_writes_into_the_bag(foreign, tmp_path, capsys):
    before = sorted(p.name for p in foreign.iterdir())
    for out in (foreign, foreign / 'report'):
        assert cli(['evaluate', '--config', str(_config(tmp_path)), '--protocol', 'bag',
                    '--bag', str(foreign), '--methods', 'average', '--allow-untrained',
                    '--no-progress', '--out', str(out), '--force']) == 2
        assert 'inside' in capsys.readouterr().err
    assert sorted(p.name for p in foreign.iterdir()) == before
