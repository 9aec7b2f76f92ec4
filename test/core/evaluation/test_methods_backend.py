"""
``build_methods(backend=...)``: the evaluated methods run from their exported files.

Histogram NN only (its shipped checkpoint in ``models/``), exported into a temporary
folder: without the files the build fails naming the export command; with them the
method's detector and network are the onnxruntime sessions.
"""
import warnings

from neural_ae.core.deploy import artifact_path, DeployError, export_onnx
from neural_ae.core.deploy.exporters import OnnxExposureNet
from neural_ae.core.evaluation.methods import build_methods
from neural_ae.core.paths import models_dir
from neural_ae.core.sensor import load_sensor
import pytest


def test_build_methods_with_the_onnxruntime_backend(tmp_path):
    sensor = load_sensor('imx249')
    with pytest.raises(DeployError, match='not found; run neural-ae export'):
        build_methods(models_dir(), ['histogram_nn'], sensor, backend='onnxruntime',
                      deploy_dir=str(tmp_path))
    built = build_methods(models_dir(), ['histogram_nn'], sensor)
    ck = built.methods[0].checkpoint
    assert ck is not None and built.methods[0].backend == 'torch'
    height, width = built.configs[0].height, built.configs[0].width
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        for kind in ('detector', 'exposure_net'):
            export_onnx(ck, kind, artifact_path(ck, kind, deploy_dir=tmp_path),
                        (height, width))
    built = build_methods(models_dir(), ['histogram_nn'], sensor, backend='onnxruntime',
                          deploy_dir=str(tmp_path), height=height, width=width)
    method = built.methods[0]
    assert method.perception.backend.startswith('onnxruntime')
    assert isinstance(method.controller(sensor)._infer, OnnxExposureNet)
