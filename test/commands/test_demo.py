"""``neural-ae demo``: the camera part and a short closed-loop drive with the shipped model."""
from pathlib import Path

from neural_ae import cli
from neural_ae.core.bags import open_hdr_bag
from neural_ae.core.paths import models_dir
import pytest


def test_camera_part_writes_sheet_and_table(tmp_path, capsys):
    assert cli.main(['demo', '--camera-only', '--out', str(tmp_path), '--height', '128',
                     '--width', '192']) == 0
    text = capsys.readouterr().out
    assert 'dynamic range' in text and 'sat %' in text
    assert (tmp_path / 'camera_contact_sheet.png').stat().st_size > 5_000
    assert 'contact sheet' in (tmp_path / 'report.md').read_text()


def test_closed_loop_part_with_shipped_model(tmp_path, capsys):
    shipped = sorted(Path(models_dir()).glob('hybrid*.pt'))
    assert shipped, 'the shipped hybrid model is missing from models/'
    assert cli.main(['demo', '--out', str(tmp_path), '--frames', '10', '--height', '96',
                     '--width', '128']) == 0
    text = capsys.readouterr().out
    for name in ('Hybrid NN', 'Average AE', 'Gradient AE', 'mAP', 'flicker'):
        assert name in text
    for f in ('exposure_tunnel_exit.png', 'frames_tunnel_exit.png', 'report.md'):
        assert (tmp_path / f).is_file()
    bag = open_hdr_bag(tmp_path / 'drive_bag')
    assert len(bag) == 10
    topics = bag.topics()
    assert any(t.endswith('/settings') for t in topics)
    assert any(t.endswith('/image_raw') for t in topics)
    assert bag.labels() is not None


def test_missing_models_folder_is_a_clear_error(tmp_path, capsys):
    empty = tmp_path / 'empty'
    empty.mkdir()
    rc = cli.main(['demo', '--out', str(tmp_path / 'o'), '--frames', '4', '--models',
                   str(empty), '--height', '96', '--width', '128'])
    assert rc == 2
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and 'checkpoint' in err


@pytest.mark.parametrize('bad', [['--frames', '0']])
def test_bad_arguments_exit_nonzero(bad, tmp_path):
    assert cli.main(['demo', '--out', str(tmp_path)] + bad) == 2
