"""
``neural-ae replay`` never destroys data and fails in one line (issue 10, items 4 and 6).

Outputs never land on or inside the input bag (not even with ``--force``), an existing
metrics file or output bag is replaced only with ``--force``, every input is checked
before the output exists, a run that fails midway leaves nothing that blocks the rerun,
and hostile option values are one-line errors.
"""
import hashlib
import json

from neural_ae.cli import main as cli
import neural_ae.commands.replay as replay_cmd
from neural_ae.core.bags import open_hdr_bag
from neural_ae.core.bags.units import E_PER_S, UNIT_KEY
from neural_ae.core.replay import RAW_TOPIC
import pytest

SIZE = ['--height', '64', '--width', '96']


@pytest.fixture(scope='module')
def bag(tmp_path_factory):
    path = tmp_path_factory.mktemp('in') / 'seq'
    assert cli(['make-bag', str(path), '--frames', '8', '--seed', '4', '--no-progress',
                *SIZE]) == 0
    return path


def _digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.iterdir()) if p.is_file()}


def _one_line_error(capsys, *needles):
    err = capsys.readouterr().err.strip().splitlines()
    assert err and err[-1].startswith('neural-ae replay: error:'), err
    assert 'Traceback' not in '\n'.join(err)
    for needle in needles:
        assert needle in err[-1], err[-1]
    return err[-1]


def test_a_make_bag_bag_declares_e_per_s_and_replays_unscaled(bag, tmp_path, capsys):
    assert open_hdr_bag(bag).custom_data[UNIT_KEY] == E_PER_S
    assert cli(['replay', str(bag), '--controller', 'average', '-o', str(tmp_path / 'o'),
                '--no-progress']) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary['radiance'] == {'scale': 1.0, 'method': 'declared', 'unit': E_PER_S,
                                   'target_e_s': None, 'e_range_s': None,
                                   'median_e_base_s': None, 'sample_frames': 0}


def test_metrics_never_inside_the_input_bag_even_with_force(bag, tmp_path, capsys):
    before = _digest(bag)
    target = next(bag.glob('*.mcap'))
    for extra in ([], ['--force']):
        for metrics in (target, bag / 'metadata.yaml', bag / 'new.json', bag):
            assert cli(['replay', str(bag), '--controller', 'average', '-o',
                        str(tmp_path / 'o'), '--metrics', str(metrics), '--no-progress',
                        *extra]) == 2
            _one_line_error(capsys, 'inside the input')
    assert _digest(bag) == before and not (bag / 'new.json').exists()
    assert not (tmp_path / 'o').exists()
    # the output bag on the input itself, or around it, neither
    for out in (bag, bag.parent):
        assert cli(['replay', str(bag), '--controller', 'average', '-o', str(out),
                    '--metrics', str(tmp_path / 'm.json'), '--no-progress', '--force']) == 2
        _one_line_error(capsys)
    assert _digest(bag) == before


def test_existing_outputs_need_force(bag, tmp_path, capsys):
    metrics = tmp_path / 'precious.json'
    metrics.write_text('keep me')
    argv = ['replay', str(bag), '--controller', 'average', '-o', str(tmp_path / 'o'),
            '--metrics', str(metrics), '--no-progress']
    assert cli(argv) == 2
    _one_line_error(capsys, 'exists', '--force')
    assert metrics.read_text() == 'keep me' and not (tmp_path / 'o').exists()
    assert cli(argv + ['--force']) == 0
    assert json.loads(metrics.read_text())['run']['frames'] == 8
    first = _digest(tmp_path / 'o')
    # the output bag exists now: refused, then replaced with --force (other seed)
    assert cli(argv + ['--seed', '5']) == 2
    _one_line_error(capsys, 'exists')
    assert _digest(tmp_path / 'o') == first
    assert cli(argv + ['--seed', '5', '--force']) == 0
    assert _digest(tmp_path / 'o') != first
    assert open_hdr_bag(tmp_path / 'o', topic=RAW_TOPIC).message_counts()[RAW_TOPIC] == 8
    assert not list(tmp_path.glob('.*partial*'))
    # --force replaces a bag by a bag only, never a folder of something else
    other = tmp_path / 'notabag'
    other.mkdir()
    (other / 'thesis.txt').write_text('years of work')
    assert cli(['replay', str(bag), '--controller', 'average', '-o', str(other),
                '--no-progress', '--force']) == 2
    _one_line_error(capsys, 'not a rosbag2')
    assert (other / 'thesis.txt').read_text() == 'years of work'


@pytest.mark.parametrize('extra,needle', [
    (['--option', 'mu=[x'], 'not YAML'),
    (['--option', '=3'], 'KEY=VALUE'),
    (['--max-frames', '-3'], '--max-frames must be an integer >= 1'),
    (['--max-frames', '0'], '--max-frames must be an integer >= 1'),
    (['--seed', '-1'], '--seed must be an integer in [0, '),
    (['--latency-frames', '-1'], '--latency-frames must be an integer in [0, 30]'),
    (['--radiance-scale', '-2'], '--radiance-scale'),
    (['--radiance-scale', 'bright'], '--radiance-scale'),
    (['--radiance-scale', 'nan'], '--radiance-scale'),
    (['--detector', '/nonexistent/det.pt'], 'det.pt'),
])
def test_hostile_options_are_one_line_and_create_nothing(bag, tmp_path, capsys, extra,
                                                         needle):
    out = tmp_path / 'o'
    assert cli(['replay', str(bag), '--controller', 'average', '-o', str(out),
                '--no-progress', *extra]) == 2
    _one_line_error(capsys, needle)
    assert not out.exists() and not (tmp_path / 'o.metrics.json').exists()
    assert not list(tmp_path.iterdir())


def test_a_failed_feature_check_leaves_no_bag_and_the_rerun_works(bag, tmp_path, capsys):
    """semantic_nn with a model file that holds no detector: refused before any output."""
    import torch
    from neural_ae.core.models.exposure_nets import ExposureNet

    net = tmp_path / 'semantic_without_detector.pt'
    torch.save({'state_dict': ExposureNet('semantic').state_dict(), 'mode': 'semantic'}, net)
    out = tmp_path / 'o'
    assert cli(['replay', str(bag), '--controller', 'semantic_nn', '--model', str(net),
                '-o', str(out), '--no-progress']) == 2
    _one_line_error(capsys, 'needs backbone features')
    assert not out.exists()
    assert cli(['replay', str(bag), '--controller', 'semantic_nn', '-o', str(out),
                '--max-frames', '3', '--no-progress']) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary['frames'] == 3 and summary['detector'].endswith('semantic_demo.pt')


def test_a_run_that_fails_midway_leaves_nothing(bag, tmp_path, monkeypatch):
    """A fault injected after 3 frames: no output bag, no metrics, no temporary left."""
    real = replay_cmd.replay_frames

    def failing(*args, progress=None, **kw):
        count = [0]

        def tick():
            count[0] += 1
            if count[0] == 3:
                raise OSError(28, 'No space left on device')
        return real(*args, progress=tick, **kw)

    monkeypatch.setattr(replay_cmd, 'replay_frames', failing)
    with pytest.raises(OSError, match='No space'):
        replay_cmd.replay_bag(bag, 'average', tmp_path / 'o', show_progress=False)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(replay_cmd, 'replay_frames', real)
    summary = replay_cmd.replay_bag(bag, 'average', tmp_path / 'o', show_progress=False)
    assert summary['frames'] == 8 and (tmp_path / 'o.metrics.json').is_file()
