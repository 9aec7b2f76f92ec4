"""
``neural-ae replay --backend onnxruntime``: checked before any output, same decisions as torch.

Histogram NN with the shipped model copied into a temporary folder (its ONNX exported
there), over a small synthetic bag (64 x 96, 12 frames).
"""
import json
import warnings

from neural_ae.benchmarks._common import shipped_model
from neural_ae.cli import main as cli
from neural_ae.core.deploy import export_onnx
import numpy as np
import pytest


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('replay_backend')
    bag = tmp / 'seq'
    assert cli(['make-bag', str(bag), '--frames', '12', '--scenario', 'tunnel_exit',
                '--seed', '3', '--no-progress', '--height', '64', '--width', '96']) == 0
    src = shipped_model('histogram_nn')
    if not src.is_file():
        pytest.fail(f'shipped model {src} is missing')
    model = tmp / src.name
    model.write_bytes(src.read_bytes())
    return bag, model, tmp


def _replay(bag, model, out, *extra):
    return cli(['replay', str(bag), '--controller', 'histogram_nn', '--model', str(model),
                '-o', str(out), '--no-progress', *extra])


def test_missing_onnx_fails_before_output(setup, capsys):
    bag, model, tmp = setup
    out = tmp / 'missing'
    assert _replay(bag, model, out, '--backend', 'onnxruntime') == 2
    err = capsys.readouterr().err
    assert 'not found; run neural-ae export' in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_onnxruntime_replay_matches_torch(setup, capsys):
    bag, model, tmp = setup
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        export_onnx(model, 'exposure_net')
    assert _replay(bag, model, tmp / 'torch') == 0
    assert _replay(bag, model, tmp / 'ort', '--backend', 'onnxruntime') == 0
    capsys.readouterr()
    a = json.loads((tmp / 'torch.metrics.json').read_text())['per_frame']['e_s']
    b = json.loads((tmp / 'ort.metrics.json').read_text())['per_frame']['e_s']
    assert len(a) == len(b) == 12
    np.testing.assert_allclose(b, a, rtol=1e-4)
    assert len(set(a)) > 1  # the controller did move the exposure
