"""
The node's ``backend`` parameter: a missing or stale ONNX fails configure with the reason.

Histogram NN (no detector needed) with the shipped model copied into a temporary folder:
no ONNX -> configure fails naming the missing file and the export command; a fresh ONNX
-> configure succeeds and the controller runs it; the checkpoint changed after the export
(retrained) -> configure fails saying the file is stale. The node stays alive throughout.
"""
import warnings

from neural_ae.benchmarks._common import shipped_model
from neural_ae.core.deploy import artifact_path, export_onnx
from neural_ae.core.deploy.exporters import OnnxExposureNet
from neural_ae.core.errors import ConfigError
from neural_ae.nodes.auto_exposure_node import AutoExposureNode
import pytest
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.parameter import Parameter
import torch


@pytest.fixture(scope='module')
def model_copy(tmp_path_factory):
    src = shipped_model('histogram_nn')
    if not src.is_file():
        pytest.fail(f'shipped model {src} is missing')
    folder = tmp_path_factory.mktemp('deploy')
    copy = folder / src.name
    copy.write_bytes(src.read_bytes())
    return copy


def _node(side, name, model, deploy_dir):
    node = AutoExposureNode(name, context=side.context, parameter_overrides=[
        Parameter('controller', value='histogram_nn'),
        Parameter('model_path', value=str(model)),
        Parameter('backend', value='onnxruntime'),
        Parameter('deploy_dir', value=str(deploy_dir)),
        Parameter('driver_node', value=f'{name}_camera'),
        Parameter('exposure_feedback_topic', value='')])
    side.executor.add_node(node)
    return node


def test_backend_onnxruntime_missing_fresh_and_stale(ros_side, model_copy):
    folder = model_copy.parent
    node = _node(ros_side, 'ae_backend', model_copy, folder)
    try:
        assert node.get_parameter('backend').value == 'onnxruntime'
        assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
        assert node.lifecycle_state() == 'unconfigured'
        reason = node._last_error
        assert 'configure failed' in reason and 'not found; run neural-ae export' in reason
        assert str(artifact_path(model_copy, 'exposure_net')) in reason
        assert '\n' not in reason

        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            export_onnx(model_copy, 'exposure_net')
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert isinstance(node._controller._infer, OnnxExposureNet)
        assert node.trigger_cleanup() == TransitionCallbackReturn.SUCCESS

        ckpt = torch.load(model_copy, weights_only=True)
        ckpt['global_step'] = int(ckpt.get('global_step', 0)) + 1  # retrained
        torch.save(ckpt, model_copy)
        assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
        assert 'is stale' in node._last_error and 'export it again' in node._last_error
        assert node.lifecycle_state() == 'unconfigured'
    finally:
        ros_side.release(node)


def test_backend_parameter_is_described_and_checked(ros_side, model_copy):
    node = _node(ros_side, 'ae_backend_desc', model_copy, model_copy.parent)
    try:
        desc = node.describe_parameter('backend')
        assert desc.read_only and 'stale' in desc.description
        assert desc.additional_constraints == 'one of: torch, onnxruntime, tensorrt'
        assert node.get_parameter('deploy_dir').value == str(model_copy.parent)
    finally:
        ros_side.release(node)
    with pytest.raises(ConfigError, match='backend'):
        AutoExposureNode('ae_backend_bad', context=ros_side.context, parameter_overrides=[
            Parameter('backend', value='tflite')])
