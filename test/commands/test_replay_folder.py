"""``neural-ae replay FOLDER``: every bag of a folder, and the same sharded by torchrun."""
import json
from pathlib import Path
import socket
import subprocess
import sys

from neural_ae.cli import main as cli
from neural_ae.commands.replay import bags_in, is_bag
import pytest

ROOT = Path(__file__).resolve().parents[2]
SIZE = ['--height', '64', '--width', '96']


@pytest.fixture(scope='module')
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp('fleet')
    for i, scenario in enumerate(('tunnel_exit', 'night_headlights', 'low_sun')):
        assert cli(['make-bag', str(root / f'drive{i}'), '--frames', '10', '--scenario',
                    scenario, '--seed', str(10 + i), '--no-progress', *SIZE]) == 0
    (root / 'notes.txt').write_text('not a bag')
    return root


def _per_bag(summary: dict) -> list:
    keep = ('frames', 'error', 'radiance_scale', 'map50', 'summary')
    out = []
    for b in summary['bags']:
        row = {k: b.get(k) for k in keep}
        row['bag'] = Path(b['bag']).name
        row['summary'] = {k: v for k, v in b['summary'].items() if '_ms_' not in k}
        out.append(row)
    return out


def test_folder_detection(folder):
    assert [p.name for p in bags_in(folder)] == ['drive0', 'drive1', 'drive2']
    assert is_bag(folder / 'drive0') and not is_bag(folder) and not is_bag(folder / 'notes.txt')


def test_replay_folder_one_and_two_processes_agree(folder, tmp_path, capsys):
    args = ['replay', str(folder), '--controller', 'average', '--latency-frames', '1',
            '--no-progress']
    assert cli(args + ['-o', str(tmp_path / 'one')]) == 0
    one = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert one['processes'] == 1 and len(one['bags']) == 3
    assert all(b['frames'] == 10 and b['error'] is None for b in one['bags'])
    assert (tmp_path / 'one' / 'drive1').is_dir()
    assert (tmp_path / 'one' / 'drive1.metrics.json').is_file()
    assert json.loads((tmp_path / 'one' / 'summary.json').read_text())['bags'] == one['bags']
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    two = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node',
                          '2', '--master_addr', '127.0.0.1', '--master_port', str(port),
                          '-m', 'neural_ae.cli'] + args + ['-o', str(tmp_path / 'two')],
                         capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert two.returncode == 0, (two.stdout + two.stderr)[-3000:]
    lines = [ln for ln in two.stdout.splitlines() if ln.startswith('{')]
    assert len(lines) == 1                                    # rank 0 alone printed
    got = json.loads(lines[0])
    assert got['processes'] == 2 and _per_bag(got) == _per_bag(one)
    assert sorted(p.name for p in (tmp_path / 'two').iterdir()) == sorted(
        p.name for p in (tmp_path / 'one').iterdir())


def test_replay_folder_rejects_metrics_and_empty_folders(tmp_path, folder, capsys):
    assert cli(['replay', str(folder), '--controller', 'average', '--metrics',
                str(tmp_path / 'm.json'), '--no-progress']) == 2
    assert 'folder of bags' in capsys.readouterr().err
    (tmp_path / 'empty').mkdir()
    assert cli(['replay', str(tmp_path / 'empty'), '--controller', 'average',
                '-o', str(tmp_path / 'o'), '--no-progress']) == 2
    assert 'holds no rosbag2' in capsys.readouterr().err
