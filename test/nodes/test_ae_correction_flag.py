"""
``auto_exposure_node`` ``correction_model`` (issue 14): the detector sees the corrected image.

Core: :class:`~neural_ae.core.correction.perception.CorrectedPerception` renders the raw
frame through the corrector's ISP, corrects it and detects on the result (in a
:class:`~neural_ae.core.loop.FrameStep`, the core step of the node and of replay); a bad
file is one typed line. Node (in process): a bad correction model fails configure with a
one-line reason, the shipped one configures and every detected frame passes through it.
"""
from neural_ae.core.checkpoints import resolve_model_path
from neural_ae.core.controllers import ControllerOptions, make_controller
from neural_ae.core.correction.perception import CorrectedPerception, with_correction
from neural_ae.core.errors import ModelError
from neural_ae.core.loop import FrameStep
from neural_ae.core.models.detector import build_detector
from neural_ae.core.models.perception import load_perception
from neural_ae.core.sensor import capture, load_sensor
from neural_ae.nodes.auto_exposure_node import AutoExposureNode
from neural_ae.ros.conversions import array_to_image
from neural_ae.ros.qos import command_qos, image_qos
import numpy as np
import pytest
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image
from std_msgs.msg import String
import torch

SENSOR = load_sensor('imx249')
CORRECTOR = resolve_model_path('correction_encdec.pt')


@pytest.fixture(scope='module')
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp('models')
    torch.manual_seed(0)
    torch.save({'detector': build_detector().state_dict()}, d / 'detector.pt')
    (d / 'broken.pt').write_bytes(b'not a checkpoint')
    return d


def _raw(level=3e5):
    return capture(np.full((64, 96), level), 0.004, 1.0, SENSOR, np.random.default_rng(0))


def test_off_and_bad_files_are_typed_one_liners(models):
    base = load_perception(models / 'detector.pt', SENSOR)
    assert with_correction(base, 'src', '', SENSOR) == (base, 'src')
    with pytest.raises(ModelError, match='correction_model') as err:
        with_correction(base, 'src', str(models / 'broken.pt'), SENSOR)
    assert '\n' not in str(err.value)
    with pytest.raises(ModelError, match='correction_model'):
        with_correction(base, 'src', str(models / 'missing.pt'), SENSOR)
    with pytest.raises(ModelError, match='no detector'):
        with_correction(None, '', str(CORRECTOR), SENSOR)


def test_frame_step_detects_on_the_corrected_image(models):
    base = load_perception(models / 'detector.pt', SENSOR)
    wrapped, source = with_correction(base, 'src', str(CORRECTOR), SENSOR)
    assert isinstance(wrapped, CorrectedPerception) and source == 'src'
    seen = []
    original = wrapped.corrector.correct

    def spy(rgb):
        out = original(rgb)
        seen.append((rgb.clone(), out.clone()))
        return out

    wrapped.corrector.correct = spy
    step = FrameStep(make_controller('average', ControllerOptions(), sensor=SENSOR), wrapped)
    res = step.step(_raw())
    assert len(seen) == 1 and res.perception is not None
    rgb_in, rgb_out = seen[0]
    assert rgb_in.shape == rgb_out.shape and not torch.equal(rgb_in, rgb_out)
    # the detector's input is the corrected image: same result as detecting it directly
    from neural_ae.core.models.detector import detector_inference

    dets, _ = detector_inference(wrapped.detector, rgb_out)
    np.testing.assert_allclose(res.perception.scores, dets[0]['scores'].numpy(), atol=1e-5)


def _node(side, name, models, correction):
    return AutoExposureNode(name, context=side.context, parameter_overrides=[
        Parameter('controller', value='average'),
        Parameter('detector_path', value=str(models / 'detector.pt')),
        Parameter('correction_model', value=correction),
        Parameter('driver_node', value=f'{name}_camera'),
        Parameter('exposure_feedback_topic', value=''),
        Parameter('detection_score_threshold', value=0.0)])


def test_bad_correction_model_fails_configure_with_one_line(ros_side, models):
    node = _node(ros_side, 'ae_corr_bad', models, str(models / 'broken.pt'))
    try:
        desc = node.describe_parameter('correction_model')
        assert desc.description and desc.read_only
        assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
        reason = node._last_error
        assert 'correction_model' in reason and '\n' not in reason
        assert node._perception is None
    finally:
        ros_side.release(node)


def test_node_feeds_its_detector_the_corrected_image(ros_side, models):
    side = ros_side
    node = _node(side, 'ae_corr', models, str(CORRECTOR))
    side.executor.add_node(node)
    got = []
    side.node.create_subscription(String, 'detections_json', got.append, command_qos())
    pub = side.node.create_publisher(Image, 'camera/image_raw', image_qos(1))
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        perception = node._perception
        assert isinstance(perception, CorrectedPerception)
        calls = []
        original = perception.corrector.correct
        perception.corrector.correct = lambda rgb: (calls.append(rgb.shape), original(rgb))[1]
        msg = array_to_image(_raw(), 'bayer_rggb16')
        msg.header.frame_id = 'camera'
        pub.publish(msg)
        assert side.spin_until(lambda: got and calls, 60.0), (got, calls)
    finally:
        side.release(node)


def test_replay_feeds_the_detector_the_corrected_image(models, tmp_path, capsys):
    from neural_ae.cli import main as cli
    from neural_ae.commands.replay import replay_bag

    bag = tmp_path / 'seq'
    assert cli(['make-bag', str(bag), '--frames', '4', '--seed', '4', '--no-progress',
                '--height', '64', '--width', '96']) == 0
    assert cli(['replay', str(bag), '--controller', 'average', '--detector',
                str(models / 'detector.pt'), '--correction-model', str(models / 'broken.pt'),
                '--no-progress', '-o', str(tmp_path / 'bad')]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert 'correction_model' in err[-1] and not (tmp_path / 'bad').exists()
    assert CORRECTOR.is_file()          # models/correction_encdec.pt ships
    summary = replay_bag(bag, 'average', tmp_path / 'out', detector=str(models / 'detector.pt'),
                         correction_model=str(CORRECTOR), show_progress=False)
    assert summary['correction_model'] == str(CORRECTOR) and summary['frames'] == 4
