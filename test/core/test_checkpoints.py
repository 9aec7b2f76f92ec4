"""
Model files taken on trust no more: hostile files and metadata give one-line ModelErrors.

:func:`read_checkpoint` (the one ``torch.load``), :func:`load_exposure_model` and
:func:`load_perception` on foreign, damaged and hand-edited files: every message is one
line naming the file (and the key), and nothing is allocated from a bad value.
"""
import math
import pickle
import zipfile

from neural_ae.core.checkpoints import read_checkpoint
from neural_ae.core.controllers.neural import load_exposure_model
from neural_ae.core.errors import ModelError, TrainingError
from neural_ae.core.models.detector import build_detector
from neural_ae.core.models.exposure_nets import ExposureNet
from neural_ae.core.models.perception import load_perception
from neural_ae.core.sensor import load_sensor
from neural_ae.core.training import checkpoints
from neural_ae.core.training.config import config_from_dict
from neural_ae.core.training.pipeline import ExposurePipeline
import pytest
import torch

SENSOR = load_sensor('imx249')
TINY_DET = {'widths': [8, 8, 128, 16, 16], 'fpn_channels': 16, 'representation_size': 32}


class Gadget:
    """A class a weights-only load does not trust (pickled by reference to this module)."""

    def __init__(self):
        self.x = 1


def _one_line(err) -> str:
    msg = str(err.value)
    assert '\n' not in msg and '\x1b' not in msg, msg
    return msg


@pytest.fixture(scope='module')
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp('files')
    torch.save({'state_dict': {'w': torch.zeros(2)}, 'gadget': Gadget()}, d / 'custom.pt')
    torch.save({'layer': torch.nn.Linear(2, 2)}, d / 'module.pt')
    with (d / 'pickle.pt').open('wb') as f:
        pickle.dump({'a': 1}, f, protocol=4)
    (d / 'empty.pt').write_bytes(b'')
    (d / 'text.pt').write_text('hello, this is not a model\n')
    (d / 'random.pt').write_bytes(bytes(range(7, 250)) * 8)
    with zipfile.ZipFile(d / 'zip.pt', 'w') as z:
        z.writestr('notes/readme.txt', 'x')
    torch.save({'state_dict': ExposureNet('histogram').state_dict(), 'mode': 'histogram'},
               d / 'good.pt')
    data = (d / 'good.pt').read_bytes()
    (d / 'truncated.pt').write_bytes(data[:len(data) // 2])
    legacy = d / 'legacy.pt'
    torch.save({'w': torch.zeros(3)}, legacy, _use_new_zipfile_serialization=False)
    (d / 'legacy_truncated.pt').write_bytes(legacy.read_bytes()[:legacy.stat().st_size // 2])
    torch.save([1, 2, 3], d / 'list.pt')
    torch.save({'foo': 1}, d / 'foreign.pt')
    torch.save(build_detector().state_dict(), d / 'detector.pt')
    return d


@pytest.mark.parametrize('name, needle', [
    ('custom.pt', 'not a neural_ae checkpoint, or it holds objects a weights-only load does '
                  'not trust ('),
    ('module.pt', 'does not trust (torch.nn.modules.linear.Linear)'),
    ('pickle.pt', 'not a neural_ae checkpoint, or it holds objects a weights-only load'),
    ('empty.pt', 'the file is empty, not a neural_ae checkpoint'),
    ('text.pt', 'not a torch file (neither a zip archive nor a pickle)'),
    ('random.pt', 'not a torch file (neither a zip archive nor a pickle)'),
    ('zip.pt', 'a zip archive but not a torch file'),
    ('truncated.pt', 'truncated or corrupt torch file'),
    ('legacy_truncated.pt', 'truncated or corrupt torch file'),
    ('list.pt', 'holds list, expected a dict: not a neural_ae checkpoint'),
    ('missing.pt', 'model not found'),
])
def test_foreign_and_damaged_files_are_one_line_errors(files, name, needle):
    with pytest.raises(ModelError) as info:
        read_checkpoint(files / name)
    msg = _one_line(info)
    assert needle in msg and str(files / name) in msg, msg
    if name == 'custom.pt':
        assert 'test_checkpoints.Gadget)' in msg           # names the untrusted class
    if name not in ('missing.pt', 'empty.pt', 'text.pt', 'random.pt', 'list.pt'):
        assert info.value.__cause__ is not None          # torch's own error is chained
    with pytest.raises(TrainingError, match='checkpoint'):
        read_checkpoint(files / name, 'checkpoint', error=TrainingError)


def test_a_good_file_still_reads_with_weights_only(files):
    ckpt = read_checkpoint(files / 'good.pt')
    assert ckpt['mode'] == 'histogram' and 'head.weight' in ckpt['state_dict']
    assert torch.equal(read_checkpoint(files / 'legacy.pt')['w'], torch.zeros(3))


# --------------------------------------------------------------------------- exposure nets


def _exposure_file(tmp_path, name='m.pt', **meta):
    net = ExposureNet('histogram', feature_dim=meta.pop('_feature_dim', 64))
    ckpt = {'state_dict': net.state_dict(), 'mode': 'histogram'}
    ckpt.update(meta)
    path = tmp_path / name
    torch.save(ckpt, path)
    return path, net


@pytest.mark.parametrize('meta, needle', [
    ({'feature_dim': 2 ** 40}, 'feature_dim must be an integer in [1, 4096], got 1099511627776'),
    ({'feature_dim': 0}, 'feature_dim must be an integer in [1, 4096], got 0'),
    ({'feature_dim': '64'}, "feature_dim must be an integer in [1, 4096], got '64' (str)"),
    ({'feature_dim': True}, 'feature_dim must be an integer in [1, 4096], got True (bool)'),
    ({'feature_dim': 64.0}, 'feature_dim must be an integer in [1, 4096], got 64.0 (float)'),
    ({'m_exp': 1e300}, 'm_exp must be a finite number in (1, 1000], got 1e+300'),
    ({'m_exp': math.nan}, 'm_exp must be a finite number in (1, 1000], got nan'),
    ({'m_exp': math.inf}, 'm_exp must be a finite number in (1, 1000], got inf'),
    ({'m_exp': 1.0}, 'm_exp must be a finite number in (1, 1000], got 1.0'),
    ({'m_exp': 'ten'}, "m_exp must be a finite number in (1, 1000], got 'ten' (str)"),
    ({'m_exp': torch.tensor(10.0)}, 'm_exp must be a finite number in (1, 1000], got tensor'),
    ({'mode': 'magic'}, "mode must be one of histogram|semantic|hybrid, got 'magic'"),
    ({'mode': 3}, 'mode must be one of histogram|semantic|hybrid, got 3 (int)'),
    ({'config': [1, 2]}, 'config must be a mapping with string keys, got [1, 2] (list)'),
    ({'config': {'ae_feature_dim': 2 ** 40}, 'mode': 'histogram'},
     'feature_dim must be an integer in [1, 4096]'),
    ({'mode': 'semantic'}, "is a 'semantic' model, controller needs 'histogram'"),
])
def test_exposure_model_metadata_is_checked(tmp_path, meta, needle):
    path, _ = _exposure_file(tmp_path, **meta)
    with pytest.raises(ModelError) as info:
        load_exposure_model(path, 'histogram')
    msg = _one_line(info)
    assert needle in msg and str(path) in msg, msg


@pytest.mark.parametrize('state, needle', [
    (build_detector().state_dict(), 'unexpected key(s)'),
    ({'foo': 1}, 'it holds no state dict (keys'),
    ({}, 'it holds no state dict (got dict (empty))'),
    ('weights', 'it holds no state dict (got str)'),
])
def test_a_state_dict_of_another_network_is_refused(tmp_path, state, needle):
    path = tmp_path / 'other.pt'
    torch.save({'state_dict': state, 'mode': 'histogram'}, path)
    with pytest.raises(ModelError) as info:
        load_exposure_model(path, 'histogram')
    msg = _one_line(info)
    assert "does not match ExposureNet('histogram')" in msg and needle in msg, msg


def test_shapes_and_weights_of_the_state_dict_are_checked(tmp_path):
    path, _ = _exposure_file(tmp_path, _feature_dim=16)             # says nothing of 16
    with pytest.raises(ModelError) as info:
        load_exposure_model(path, 'histogram')
    assert 'shape mismatch(es) (histogram.dense.3.weight (16, 128) != (64, 128)' in \
        _one_line(info)
    net = ExposureNet('histogram')
    state = net.state_dict()
    state['head.bias'] = torch.tensor([math.nan])
    torch.save({'state_dict': state, 'mode': 'histogram'}, tmp_path / 'nan.pt')
    with pytest.raises(ModelError) as info:
        load_exposure_model(tmp_path / 'nan.pt', 'histogram')
    assert "hold non-finite values in 1 tensor(s) ('head.bias')" in _one_line(info)


@pytest.mark.parametrize('name', ['foreign.pt', 'detector.pt', 'custom.pt', 'zip.pt',
                                  'text.pt', 'empty.pt', 'truncated.pt', 'missing.pt'])
def test_foreign_files_as_exposure_models(files, name):
    with pytest.raises(ModelError) as info:
        load_exposure_model(files / name, 'histogram')
    msg = _one_line(info)
    assert str(files / name) in msg and (
        'cannot read' in msg or 'does not match' in msg or 'not found' in msg), msg


def test_good_metadata_is_used(tmp_path):
    path, net = _exposure_file(tmp_path, m_exp=1000.0, feature_dim=32, _feature_dim=32)
    got = load_exposure_model(path, 'histogram')
    assert got.m_exp == 1000.0 and got.feature_dim == 32 and not got.training
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in got.state_dict().items())
    path, _ = _exposure_file(tmp_path, name='cfg.pt', config={'m_exp': 4, 'ae': 'histogram'})
    assert load_exposure_model(path, 'histogram').m_exp == 4.0


# --------------------------------------------------------------------------- training files


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """Write a slim ``neural-ae train`` checkpoint of a tiny hybrid pipeline (untrained)."""
    d = tmp_path_factory.mktemp('trained')
    cfg = config_from_dict({'ae': 'hybrid', 'height': 64, 'width': 96, 'train_size': 2,
                            'val_size': 1, 'ae_feature_dim': 16, 'detector': TINY_DET})
    torch.manual_seed(0)
    pipe = ExposurePipeline(cfg, SENSOR)
    ckpt = checkpoints.checkpoint_dict(pipe, cfg, slim=True)
    checkpoints.save_checkpoint(d / 'model.pt', ckpt)
    return d, pipe, ckpt


def _edited(trained, tmp_path, edit):
    _, _, ckpt = trained
    ck = {k: (dict(v) if isinstance(v, dict) else v) for k, v in ckpt.items()}
    ck['config'] = dict(ck['config'])
    edit(ck)
    path = tmp_path / 'edited.pt'
    torch.save(ck, path)
    return path


def test_training_checkpoint_loads_both_parts(trained):
    d, pipe, _ = trained
    net = load_exposure_model(d / 'model.pt', 'hybrid')
    assert net.feature_dim == 16
    assert all(torch.equal(v, pipe.ae.state_dict()[k]) for k, v in net.state_dict().items())
    perception = load_perception(d / 'model.pt', SENSOR)
    assert all(torch.equal(v, pipe.detector.state_dict()[k])
               for k, v in perception.detector.state_dict().items())


@pytest.mark.parametrize('edit, needle', [
    (lambda ck: ck.pop('config'), 'no "config" (neural-ae train always writes it)'),
    (lambda ck: ck.update(config='hybrid'), 'config must be a mapping with string keys'),
    (lambda ck: ck['config'].update(height=2 ** 40), 'config.height must be an integer in '
                                                     '[64, 8192], got 1099511627776'),
    (lambda ck: ck['config'].update(width='96'), 'config.width must be an integer in [64, '
                                                 "8192], got '96'"),
    (lambda ck: ck['config'].update(height=65), 'must be even, got 65 x 96'),
    (lambda ck: ck['config'].update(detector={'widths': [8, 8, 128, 16, 2 ** 40]}),
     'detector.widths must hold integers in [1, 4096], got 1099511627776'),
    (lambda ck: ck['config'].update(detector={'representation_size': 1e9}),
     'detector.representation_size must hold integers in [1, 16384]'),
    (lambda ck: ck['config'].update(detector={'depth': 3}), "unknown detector key(s) ['depth']"),
    (lambda ck: ck['config'].update(detector=[1]), 'detector must be a mapping, got list'),
    (lambda ck: ck['config'].update(isp={'gamma': math.nan}), 'isp.gamma must hold finite'),
    (lambda ck: ck['config'].update(isp_learnable='yes'), 'isp_learnable must be a bool'),
    (lambda ck: ck.update(sensor=[1]), 'sensor must be a mapping'),
    (lambda ck: ck.update(model=[1]), 'holds no model state ("model" is list)'),
    (lambda ck: ck.update(model={k: v for k, v in ck['model'].items()
                                 if not k.startswith('detector.')}),
     'holds no detector weights'),
    (lambda ck: ck.update(model={k: v for k, v in ck['model'].items()
                                 if k != 'detector.backbone.body.conv1.weight'}),
     "does not match the detector: 1 missing key(s) ('backbone.body.conv1.weight')"),
])
def test_training_checkpoint_metadata_is_checked_by_load_perception(trained, tmp_path, edit,
                                                                    needle):
    path = _edited(trained, tmp_path, edit)
    with pytest.raises(ModelError) as info:
        load_perception(path, SENSOR)
    msg = _one_line(info)
    assert needle in msg and str(path) in msg, msg


@pytest.mark.parametrize('edit, needle', [
    (lambda ck: ck.pop('config'), 'a neural-ae train checkpoint without its "config"'),
    (lambda ck: ck.update(feature_dim=2 ** 40), 'feature_dim must be an integer in [1, 4096]'),
    (lambda ck: ck.update(m_exp=1e300), 'm_exp must be a finite number in (1, 1000]'),
    (lambda ck: [ck.pop(k) for k in ('state_dict', 'mode', 'm_exp', 'feature_dim')] and
     ck['config'].update(ae='fixed'), 'holds no exposure network: it was trained with '
                                      "ae='fixed'"),
])
def test_training_checkpoint_metadata_is_checked_by_load_exposure_model(trained, tmp_path,
                                                                        edit, needle):
    path = _edited(trained, tmp_path, edit)
    with pytest.raises(ModelError) as info:
        load_exposure_model(path, 'hybrid')
    msg = _one_line(info)
    assert needle in msg and str(path) in msg, msg


def test_training_checkpoint_without_state_dict_uses_the_ae_weights(trained, tmp_path):
    _, pipe, _ = trained
    path = _edited(trained, tmp_path, lambda ck: ck.pop('state_dict'))
    net = load_exposure_model(path, 'hybrid')
    assert all(torch.equal(v, pipe.ae.state_dict()[k]) for k, v in net.state_dict().items())


@pytest.mark.parametrize('ckpt, needle', [
    ({'detector': {}, 'detector_config': [1]}, 'detector must be a mapping, got list'),
    ({'detector': {}, 'detector_config': {'widths': [8, 8, 128, 16, 2 ** 40]}},
     'detector.widths must hold integers in [1, 4096]'),
    ({'detector': {}, 'detector_config': {'fpn_layers': [5]}},
     'detector.fpn_layers must hold integers in [1, 4]'),
    ({'detector': {}, 'detector_config': {'anchor_sizes': [[16]] * 100}},
     'detector.anchor_sizes holds more than 64 numbers'),
    ({'detector': {'w': torch.zeros(1)}}, 'does not match the detector'),
    ({'state_dict': ExposureNet('semantic').state_dict()}, 'does not match the detector'),
])
def test_plain_detector_checkpoint_metadata_is_checked(tmp_path, ckpt, needle):
    path = tmp_path / 'det.pt'
    torch.save(ckpt, path)
    with pytest.raises(ModelError) as info:
        load_perception(path, SENSOR)
    msg = _one_line(info)
    assert needle in msg and str(path) in msg, msg


def test_plain_detector_checkpoint_with_isp(files, tmp_path):
    assert load_perception(files / 'detector.pt', SENSOR).source == str(files / 'detector.pt')
    torch.save({'detector': torch.load(files / 'detector.pt'), 'isp': {'x': torch.ones(1)}},
               tmp_path / 'isp.pt')
    with pytest.raises(ModelError) as info:
        load_perception(tmp_path / 'isp.pt', SENSOR)
    assert 'does not match the ISP' in _one_line(info)


@pytest.mark.parametrize('name', ['custom.pt', 'zip.pt', 'text.pt', 'empty.pt', 'truncated.pt',
                                  'foreign.pt', 'good.pt', 'missing.pt'])
def test_foreign_files_as_detectors(files, name):
    with pytest.raises(ModelError) as info:
        load_perception(files / name, SENSOR)
    msg = _one_line(info)
    assert str(files / name) in msg and (
        'cannot read' in msg or 'does not match' in msg or 'not found' in msg), msg
