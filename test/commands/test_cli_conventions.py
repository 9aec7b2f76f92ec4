"""
One CLI convention for every ``neural-ae`` subcommand (``neural_ae.commands._args``).

Writers take ``-o/--out``, long-running commands ``--no-progress``, commands that run a
network ``--device {auto,cpu,cuda}`` and ``--threads N``; old spellings parse to the same
``dest``; defaults are what they were. A new subcommand must be classified in ``TRAITS``.
"""
import argparse
import json

from neural_ae import cli
from neural_ae.commands._args import apply_device_threads, DEVICES, resolve_device
from neural_ae.core.bags import open_hdr_bag
from neural_ae.core.errors import ConfigError
import pytest
import torch

WRITES, LONG, NETWORK = 'writes', 'long', 'network'
TRAITS = {
    'assess': {WRITES, LONG, NETWORK},
    'bench': {WRITES, LONG, NETWORK},
    'controllers': {WRITES, LONG, NETWORK},
    'demo': {WRITES, LONG, NETWORK},
    'evaluate': {WRITES, LONG, NETWORK},
    'export': {WRITES, NETWORK},
    'hdr': set(),
    'make-bag': {WRITES, LONG},
    'personalize': {WRITES, LONG, NETWORK},
    'replay': {WRITES, LONG, NETWORK},
    'scenes': {WRITES, LONG},
    'sensor': {WRITES},
    'train': {WRITES, LONG, NETWORK},
    'vehicle': set(),   # a ROS process: its node reads device and model from the YAML
}
OLD_SPELLINGS = {'bench': ['--output'], 'replay': ['--output'], 'train': ['--output'],
                 'sensor': ['--snr-plot']}
# Defaults that must not change (None: the command picks, e.g. from its config).
OUT_DEFAULTS = {'assess': 'out/assessor/report',
                'bench': None, 'controllers': 'out/controllers', 'demo': 'out/demo',
                'export': None,
                'evaluate': None, 'make-bag': None, 'personalize': None, 'replay': None,
                'scenes': None,
                'sensor': 'out/sensor_snr.png', 'train': None}
DEVICE_DEFAULTS = {'assess': ('cpu', 1),
                   'bench': ('cpu', None), 'controllers': ('cpu', 1), 'demo': ('cpu', None),
                   'export': ('cpu', None),
                   'evaluate': ('auto', 1), 'personalize': ('cpu', 1), 'replay': ('cpu', None),
                   'train': (None, None)}
REQUIRED = {'replay': ['BAG', '--controller', 'average']}


@pytest.fixture(autouse=True)
def keep_torch_threads():
    """Commands run here set torch's thread count; give the next test what it had."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope='module')
def parsers():
    return cli.subcommands(cli.build_parser())


def _options(p: argparse.ArgumentParser) -> dict:
    return {s: a for a in p._actions for s in a.option_strings}


def test_every_subcommand_is_classified(parsers):
    assert set(parsers) == set(TRAITS), 'classify the new subcommand in TRAITS'


@pytest.mark.parametrize('name', sorted(TRAITS))
def test_subcommand_follows_the_convention(parsers, name):
    p, traits = parsers[name], TRAITS[name]
    opts = _options(p)
    if WRITES in traits:
        assert opts.get('-o') is opts.get('--out') is not None, f'{name}: -o/--out'
        assert opts['--out'].dest == 'out' and opts['--out'].default == OUT_DEFAULTS[name]
    else:
        assert '--out' not in opts and '-o' not in opts
    assert ('--no-progress' in opts) == (LONG in traits), f'{name}: --no-progress'
    if LONG in traits:
        assert opts['--no-progress'].dest == 'no_progress'
        assert opts['--no-progress'].default is False
    has_device = '--device' in opts and '--threads' in opts
    assert has_device == (NETWORK in traits), f'{name}: --device/--threads'
    if NETWORK in traits:
        assert tuple(opts['--device'].choices) == DEVICES
        assert (opts['--device'].default, opts['--threads'].default) == DEVICE_DEFAULTS[name]
    # the old spelling of an output option never stands alone
    assert '--output' not in opts or opts['--output'] is opts['--out']
    # --help stays clear: every option explains itself, and the help renders
    for action in p._actions:
        if action.option_strings and action.dest != 'help':
            assert action.help, f'{name} {action.option_strings[0]} has no help'
    text = p.format_help()
    if WRITES in traits:
        assert '-o ' in text and '--out' in text


@pytest.mark.parametrize('name,old', [(n, o) for n, olds in sorted(OLD_SPELLINGS.items())
                                      for o in olds])
def test_old_spellings_parse_to_the_same_dest(name, old):
    parser = cli.build_parser()
    base = [name] + REQUIRED.get(name, [])
    values = {spelling: vars(parser.parse_args(base + [spelling, 'x/y.z']))
              for spelling in (old, '--out', '-o')}
    assert values[old] == values['--out'] == values['-o']
    assert values[old]['out'] == 'x/y.z'


def test_make_bag_takes_the_bag_as_argument_or_out():
    parser = cli.build_parser()
    a = parser.parse_args(['make-bag', 'b'])
    b = parser.parse_args(['make-bag', '-o', 'b'])
    from neural_ae.commands.make_bag import output_path
    assert output_path(a) == output_path(b) == 'b'
    with pytest.raises(ConfigError, match='two output bags'):
        output_path(parser.parse_args(['make-bag', 'b', '-o', 'c']))
    with pytest.raises(ConfigError, match='-o/--out'):
        output_path(parser.parse_args(['make-bag']))


def test_device_helpers(monkeypatch):
    assert resolve_device('cpu') == 'cpu'
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    assert resolve_device('auto') == 'cpu'
    with pytest.raises(ConfigError, match='CUDA is not available'):
        resolve_device('cuda')
    args = argparse.Namespace(device='cpu', threads=0)
    assert apply_device_threads(args) == 'cpu' and torch.get_num_threads() == 1
    assert apply_device_threads(argparse.Namespace(device=None, threads=None)) is None


def test_sensor_writes_its_plot_with_out(tmp_path, capsys):
    out = tmp_path / 'snr.png'
    assert cli.main(['sensor', '--size', '32', '-o', str(out)]) == 0
    assert f'SNR plot: {out}' in capsys.readouterr().out and out.stat().st_size > 10_000


def test_make_bag_and_replay_with_the_new_spellings(tmp_path, capsys):
    bag, out = tmp_path / 'in', tmp_path / 'replayed'
    assert cli.main(['make-bag', '-o', str(bag), '--frames', '4', '--height', '64',
                     '--width', '96', '--no-progress']) == 0
    assert len(open_hdr_bag(bag)) == 4
    capsys.readouterr()
    assert cli.main(['replay', str(bag), '--controller', 'histogram_nn', '--out', str(out),
                     '--no-progress', '--device', 'cpu', '--threads', '1']) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary['output'] == str(out) and summary['frames'] == 4
    assert torch.get_num_threads() == 1
    assert (tmp_path / 'replayed.metrics.json').is_file()


def test_device_reaches_the_networks(tmp_path, monkeypatch):
    import neural_ae.commands._args as A
    import neural_ae.commands.replay as R
    import neural_ae.core.controllers as C

    seen = []
    monkeypatch.setattr(A, 'resolve_device', lambda name, error=ConfigError: f'dev-{name}')

    def spy(real):
        def build(*a, device='cpu', **kw):
            seen.append(device)
            return real(*a, device='cpu', **kw)
        return build

    monkeypatch.setattr(R, 'build_controller', spy(R.build_controller))
    monkeypatch.setattr(C, 'make_controller', spy(C.make_controller))
    bag = tmp_path / 'in'
    assert cli.main(['make-bag', str(bag), '--frames', '2', '--height', '64', '--width', '96',
                     '--no-progress']) == 0
    assert cli.main(['replay', str(bag), '--controller', 'histogram_nn', '--no-progress',
                     '-o', str(tmp_path / 'r'), '--device', 'cuda']) == 0
    assert cli.main(['controllers', '--controllers', 'histogram_nn', '--frames', '2',
                     '--height', '64', '--width', '96', '-o', str(tmp_path / 'c'),
                     '--no-progress', '--device', 'auto']) == 0
    assert seen == ['dev-cuda', 'dev-auto']
