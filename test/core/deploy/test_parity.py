"""
torch vs onnxruntime (and TensorRT where a GPU and ``tensorrt`` exist) on the shipped models.

The shipped checkpoints in ``models/`` (whatever they hold now: they are retrained) are
exported once per module into a temporary folder; frames are procedural scenes (seeds
3,150,001.., issue 15 part 1's range) at three exposures each, at the training frame size.
Tolerances (issue 15): exposure net ``u`` within 1e-4 relative; detections matched by IoU
>= 0.9 with the same label and score differences <= 1e-3 (a detection within 1e-3 of the
score threshold may appear on one side only).
"""
import warnings

from neural_ae.benchmarks._common import shipped_model
from neural_ae.core.controllers.neural import load_exposure_model
from neural_ae.core.deploy import (artifact_path, DeployError, export_onnx, exposure_backend,
                                   OrtSession)
from neural_ae.core.deploy.exporters import exposure_mode, scene_frame, SCENE_SEED
from neural_ae.core.deploy.parity import match_detections, relative_error
from neural_ae.core.deploy.provenance import CHECKPOINT_SHA, file_sha256
from neural_ae.core.histograms import multiscale_histogram
from neural_ae.core.models.perception import load_perception
from neural_ae.core.sensor import load_sensor
import numpy as np
import pytest
import torch

SENSOR = load_sensor('imx249')
NETS = ('histogram_nn', 'semantic_nn', 'hybrid_nn')
FRAMES = [(SCENE_SEED + 1 + k, f) for k in range(3) for f in (0.25, 1.0, 4.0)]
U_RTOL = 1e-4
IOU_MIN, SCORE_ATOL = 0.9, 1e-3


def _model(name):
    path = shipped_model(name)
    if not path.is_file():
        pytest.fail(f'shipped model {path} is missing')
    return path


@pytest.fixture(scope='module')
def exported(tmp_path_factory):
    """Export every kind into one folder; map controller -> (checkpoint, folder)."""
    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp('onnx')
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        for name in NETS:
            ck = _model(name)
            export_onnx(ck, 'exposure_net', artifact_path(ck, 'exposure_net', deploy_dir=folder))
            if name == 'hybrid_nn':
                export_onnx(ck, 'detector', artifact_path(ck, 'detector', deploy_dir=folder))
            out[name] = (ck, folder)
    return out


def _size(ck):
    from neural_ae.core.checkpoints import read_checkpoint
    from neural_ae.core.deploy import default_frame_size

    return default_frame_size(read_checkpoint(ck))


def _inputs(ck, mode, perception):
    h, w = _size(ck)
    for seed, factor in FRAMES:
        raw = scene_frame(seed, h, w, SENSOR, factor)
        hist = torch.from_numpy(multiscale_histogram(raw, SENSOR.bit_depth,
                                                     SENSOR.bayer_pattern))[None]
        feats = perception.run(raw).layer2 if mode != 'histogram' else None
        yield hist, feats


@pytest.mark.parametrize('name', NETS)
def test_exposure_net_u_matches_torch(exported, name):
    ck, folder = exported[name]
    from neural_ae.core.checkpoints import read_checkpoint

    mode = exposure_mode(read_checkpoint(ck))
    net = load_exposure_model(str(ck), mode)
    onnx_net = exposure_backend(ck, 'onnxruntime', deploy_dir=folder)
    perception = load_perception(ck, SENSOR)
    worst, us = 0.0, []
    for hist, feats in _inputs(ck, mode, perception):
        with torch.no_grad():
            ref = net(hist, feats)
        got = onnx_net(hist, feats)
        worst = max(worst, relative_error(ref, got))
        us.append(float(ref[0]))
    assert worst <= U_RTOL, f'{name}: max relative difference of u {worst:.3g}'
    assert len({round(u, 6) for u in us}) > 1  # the frames do exercise the network


def test_detector_matches_torch(exported):
    ck, folder = exported['hybrid_nn']
    size = _size(ck)
    ref_p = load_perception(ck, SENSOR)
    ort_p = load_perception(ck, SENSOR, backend='onnxruntime', deploy_dir=folder,
                            frame_size=size)
    thresh = ref_p.detector.roi_heads.score_thresh
    total = 0
    for seed, factor in FRAMES:
        raw = scene_frame(seed, *size, SENSOR, factor)
        a, b = ref_p.run(raw), ort_p.run(raw)
        m = match_detections(a.arrays(), b.arrays(), IOU_MIN)
        assert m['max_score_diff'] <= SCORE_ATOL, m
        assert m['matched'] == 0 or m['min_iou'] >= IOU_MIN, m
        assert m['unmatched_max_score'] <= thresh + SCORE_ATOL, m
        assert m['extra_max_score'] <= thresh + SCORE_ATOL, m
        assert float((a.layer2 - b.layer2).abs().max()) <= 1e-3 * float(a.layer2.abs().max())
        total += m['matched']
    assert total > 0  # some detections were compared


def test_metadata_links_the_checkpoint(exported):
    import onnx

    ck, folder = exported['hybrid_nn']
    model = onnx.load(str(artifact_path(ck, 'detector', deploy_dir=folder)))
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta[CHECKPOINT_SHA] == file_sha256(ck)
    assert meta['neural_ae.kind'] == 'detector' and meta['neural_ae.opset'] == '17'
    assert len(meta['neural_ae.training_fingerprint_sha256']) == 64
    assert [o.version for o in model.opset_import if o.domain in ('', 'ai.onnx')] == [17]
    assert [i.name for i in model.graph.input] == ['image']
    assert [o.name for o in model.graph.output] == ['boxes', 'scores', 'labels', 'layer2']
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims[:2] == [1, 3] and all(d > 0 for d in dims)  # fixed input size


def test_stale_missing_and_resized_files_are_refused(exported, tmp_path):
    ck, folder = exported['histogram_nn']
    copy = tmp_path / ck.name
    copy.write_bytes(ck.read_bytes())
    with pytest.raises(DeployError, match='not found; run neural-ae export'):
        exposure_backend(copy, 'onnxruntime', deploy_dir=tmp_path)
    (tmp_path / artifact_path(ck, 'exposure_net').name).write_bytes(
        artifact_path(ck, 'exposure_net', deploy_dir=folder).read_bytes())
    assert exposure_backend(copy, 'onnxruntime', deploy_dir=tmp_path) is not None
    ckpt = torch.load(copy, weights_only=True)
    ckpt['global_step'] = int(ckpt.get('global_step', 0)) + 1  # "retrained"
    torch.save(ckpt, copy)
    with pytest.raises(DeployError, match='is stale'):
        exposure_backend(copy, 'onnxruntime', deploy_dir=tmp_path)
    hck, hfolder = exported['hybrid_nn']
    with pytest.raises(DeployError, match='exported for detector input'):
        load_perception(hck, SENSOR, backend='onnxruntime', deploy_dir=hfolder,
                        frame_size=(SENSOR.height, SENSOR.width))


def test_session_checks_input_shapes(exported):
    ck, folder = exported['histogram_nn']
    session = OrtSession(artifact_path(ck, 'exposure_net', deploy_dir=folder))
    assert session.inputs == {'hist': (1, 256, 59)} and session.outputs == ('u',)
    with pytest.raises(DeployError, match=r'input hist must have shape \(1, 256, 59\)'):
        session.run({'hist': torch.zeros(2, 256, 59)})


# ------------------------------------------------------------------------ TensorRT


def _tensorrt():
    if not torch.cuda.is_available():
        pytest.skip('TensorRT tests need a CUDA GPU (none here)')
    return pytest.importorskip('tensorrt', reason='TensorRT tests need the tensorrt package')


@pytest.mark.parametrize('precision,u_rtol,score_atol', [('fp32', 1e-3, 1e-3),
                                                         ('fp16', 2e-2, 2e-2)])
def test_tensorrt_matches_torch(exported, tmp_path, precision, u_rtol, score_atol):
    _tensorrt()
    from neural_ae.core.deploy.onnx_export import export_model

    ck, _ = exported['hybrid_nn']
    size = _size(ck)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        export_model(ck, 'tensorrt', None, tmp_path, None, (precision,))
    ref_p = load_perception(ck, SENSOR, 'cuda')
    trt_p = load_perception(ck, SENSOR, 'cuda', backend='tensorrt', deploy_dir=tmp_path,
                            frame_size=size)
    assert trt_p.backend.startswith('tensorrt') and precision in trt_p.backend
    net = load_exposure_model(str(ck), 'hybrid').cuda()
    trt_net = exposure_backend(ck, 'tensorrt', 'cuda', tmp_path)
    for seed, factor in FRAMES[:3]:
        raw = scene_frame(seed, *size, SENSOR, factor)
        a, b = ref_p.run(raw), trt_p.run(raw)
        m = match_detections(a.arrays(), b.arrays(), IOU_MIN)
        assert m['matched'] > 0 and m['max_score_diff'] <= score_atol, m
        hist = torch.from_numpy(multiscale_histogram(raw, SENSOR.bit_depth,
                                                     SENSOR.bayer_pattern))[None].cuda()
        with torch.no_grad():
            ref = net(hist, a.layer2)
        assert relative_error(ref, trt_net(hist, a.layer2)) <= u_rtol
    assert np.isfinite(m['min_iou'])
