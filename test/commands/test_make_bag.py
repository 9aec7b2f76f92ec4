"""``neural-ae make-bag``: declared units, natural order, outputs that destroy nothing."""
import json

from neural_ae.cli import main as cli
from neural_ae.core import sensor as S
from neural_ae.core.bags import open_hdr_bag
from neural_ae.core.bags.units import E_PER_S, RELATIVE, SCALE_KEY, SCALE_METHOD_KEY
from neural_ae.core.calibration import auto_target_e_s
from neural_ae.core.scenes import export_brackets, generate_scene
import numpy as np
import pytest

SIZE = ['--height', '64', '--width', '96']
SENSOR = S.load_sensor('imx249')


@pytest.fixture()
def hdr_dir(tmp_path):
    """Four Radiance-like frames in unknown units (values about 0.02 to 50)."""
    folder = tmp_path / 'hdr'
    folder.mkdir()
    for k in range(4):
        rad = generate_scene(20 + k, 'day', 64, 96).radiance
        np.save(folder / f'f{k}.npy', (rad / rad.max() * 50 + 0.02).astype(np.float32))
    return folder


def _err(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert err and err[-1].startswith('neural-ae make-bag: error:'), err
    assert 'Traceback' not in '\n'.join(err)
    return err[-1]


def test_units_are_declared(tmp_path, hdr_dir):
    assert cli(['make-bag', str(tmp_path / 'syn'), '--frames', '3', '--no-progress',
                *SIZE]) == 0
    assert open_hdr_bag(tmp_path / 'syn').radiance_unit == E_PER_S
    assert cli(['make-bag', str(tmp_path / 'rel'), '--hdr', str(hdr_dir),
                '--no-progress']) == 0
    rel = open_hdr_bag(tmp_path / 'rel')
    assert rel.radiance_unit == RELATIVE and SCALE_KEY not in rel.custom_data
    # brackets with full_well_e in their sidecars are e-/s; without it, relative
    sc = generate_scene(1, 'day', 64, 96)
    export_brackets(sc, tmp_path / 'br', 'f0')
    assert cli(['make-bag', str(tmp_path / 'br_bag'), '--brackets', str(tmp_path / 'br'),
                '--no-progress']) == 0
    assert open_hdr_bag(tmp_path / 'br_bag').radiance_unit == E_PER_S
    side = tmp_path / 'br' / 'f0.json'
    doc = json.loads(side.read_text())
    del doc['full_well_e']
    side.write_text(json.dumps(doc))
    assert cli(['make-bag', str(tmp_path / 'br_rel'), '--brackets', str(tmp_path / 'br'),
                '--no-progress']) == 0
    assert open_hdr_bag(tmp_path / 'br_rel').radiance_unit == RELATIVE


def test_radiance_scale_given_or_auto(tmp_path, hdr_dir):
    raw = [np.load(p) for p in sorted(hdr_dir.glob('*.npy'))]
    assert cli(['make-bag', str(tmp_path / 'x4'), '--hdr', str(hdr_dir), '--radiance-scale',
                '4', '--no-progress']) == 0
    b = open_hdr_bag(tmp_path / 'x4')
    assert b.radiance_unit == E_PER_S and b.custom_data[SCALE_METHOD_KEY] == 'given'
    got = [r for _, r in b.iter_radiance()]
    np.testing.assert_allclose(got[2], raw[2] * np.float32(4), rtol=1e-6)
    assert cli(['make-bag', str(tmp_path / 'auto'), '--hdr', str(hdr_dir),
                '--radiance-scale', 'auto', '--no-progress']) == 0
    b = open_hdr_bag(tmp_path / 'auto')
    scale = float(b.custom_data[SCALE_KEY])
    assert b.radiance_unit == E_PER_S and b.custom_data[SCALE_METHOD_KEY] == 'auto'
    e_base = [S.e_base_s(S.mosaic(r, SENSOR.bayer_pattern), SENSOR) for _, r in b.iter_radiance()]
    assert np.exp(np.median(np.log(e_base))) == pytest.approx(auto_target_e_s(SENSOR)[0],
                                                              rel=1e-3)
    assert scale > 1e5                       # 0.02..50 "units" are far from e-/s


def test_natural_order_hdr_dir_then_bag(tmp_path, hdr_dir, capsys):
    out = tmp_path / 'natural'
    assert cli(['make-bag', '--hdr', str(hdr_dir), str(out), '--no-progress']) == 0
    assert len(open_hdr_bag(out)) == 4
    # the same order again: the bag exists now, refused (not read as an HDR input)
    assert cli(['make-bag', '--hdr', str(hdr_dir), str(out), '--no-progress']) == 2
    assert 'exists' in _err(capsys)
    # a missing HDR file is still an input, not the output
    assert cli(['make-bag', '--hdr', str(hdr_dir), str(tmp_path / 'gone.hdr'),
                '--no-progress']) == 2
    assert 'BAG' in _err(capsys)
    assert not (tmp_path / 'gone.hdr').exists()


def test_force_replaces_a_bag_but_never_an_input(tmp_path, hdr_dir, capsys):
    out = tmp_path / 'b'
    assert cli(['make-bag', str(out), '--frames', '3', '--no-progress', *SIZE]) == 0
    assert cli(['make-bag', str(out), '--frames', '5', '--no-progress', *SIZE]) == 2
    assert 'give --force' in _err(capsys) and len(open_hdr_bag(out)) == 3
    assert cli(['make-bag', str(out), '--frames', '5', '--no-progress', '--force',
                *SIZE]) == 0
    assert len(open_hdr_bag(out)) == 5 and not list(tmp_path.glob('.*partial*'))
    files = sorted(p.name for p in hdr_dir.iterdir())
    for argv in (['make-bag', str(hdr_dir), '--hdr', str(hdr_dir)],
                 ['make-bag', str(tmp_path), '--hdr', str(hdr_dir)]):
        assert cli(argv + ['--no-progress', '--force']) == 2
        _err(capsys)
    assert sorted(p.name for p in hdr_dir.iterdir()) == files


def test_a_failure_leaves_no_partial_bag(tmp_path, hdr_dir, capsys):
    (hdr_dir / 'f9.npy').write_bytes(b'not an array')       # the last frame is broken
    out = tmp_path / 'b'
    assert cli(['make-bag', str(out), '--hdr', str(hdr_dir), '--no-progress']) == 2
    _err(capsys)
    assert not out.exists() and not list(tmp_path.glob('.*partial*'))
    (hdr_dir / 'f9.npy').unlink()
    assert cli(['make-bag', str(out), '--hdr', str(hdr_dir), '--no-progress']) == 0


@pytest.mark.parametrize('text,needle', [
    ('[{"id": 1}]', 'array at the top level'),
    ('{"images": {"id": 1}}', '"images" must be a list'),
    ('{"images": [{"id": 1, "frame_index": 0}], "annotations": [{"image_id": 1, '
     '"category_id": 1}]}', 'bbox'),
    ('{not json', 'not valid JSON'),
])
def test_malformed_labels_are_one_line(tmp_path, hdr_dir, capsys, text, needle):
    labels = tmp_path / 'labels.json'
    labels.write_text(text)
    assert cli(['make-bag', str(tmp_path / 'b'), '--hdr', str(hdr_dir), '--labels',
                str(labels), '--no-progress']) == 2
    assert needle in _err(capsys)
    assert not (tmp_path / 'b').exists()


def test_stamp_keyed_labels_match_the_nearest_frame(tmp_path, hdr_dir):
    coco = {'images': [{'id': 'a', 'stamp_ns': 2 * 33_333_333 + 4_000_000}],
            'annotations': [{'id': 1, 'image_id': 'a', 'category_id': 2,
                             'bbox': [4, 5, 20, 10]}]}
    labels = tmp_path / 'labels.json'
    labels.write_text(json.dumps(coco))
    assert cli(['make-bag', str(tmp_path / 'b'), '--hdr', str(hdr_dir), '--labels',
                str(labels), '--no-progress']) == 0
    img = open_hdr_bag(tmp_path / 'b').labels()['images'][0]
    assert img['frame_index'] == 2 and img['t_ns'] == 2 * 33_333_333
    assert img['label_t_ns'] == 2 * 33_333_333 + 4_000_000


@pytest.mark.parametrize('rate', ['0', '-5', 'inf', 'nan', '1e-30'])
def test_bad_rates_are_one_line(tmp_path, capsys, rate):
    assert cli(['make-bag', str(tmp_path / 'b'), '--frames', '2', '--rate-hz', rate,
                '--no-progress', *SIZE]) == 2
    assert '--rate-hz' in _err(capsys) and not (tmp_path / 'b').exists()
