"""The controller registry, and adding a controller: one module + one registration."""
import math

from neural_ae.core import controllers as C
from neural_ae.core.checkpoints import resolve_model_path
from neural_ae.core.closed_loop import run_closed_loop
from neural_ae.core.controllers.registry import unregister
from neural_ae.core.errors import ConfigError, ControllerError, ModelError
from neural_ae.core.loop import FrameStep
from neural_ae.core.replay import replay_frames
from neural_ae.core.sensor import load_sensor
import numpy as np
import pytest

SENSOR = load_sensor('imx249')


class HalfController(C.Controller):
    """A trivial policy for the walk-through: always ask for half the exposure."""

    name = 'half_test'

    def propose(self, raw, used, features, info):
        """Half the exposure that produced the frame."""
        return used.e_s * 0.5


@pytest.fixture
def half():
    """Register the walk-through controller for one test."""
    spec = C.register(C.ControllerSpec('half_test', 'Half', HalfController,
                                       description='walk-through'))
    yield spec
    unregister('half_test')


def _frames(n=6):
    return [np.full((32, 48), 2e5, np.float32) for _ in range(n)]


def test_the_shipped_controllers_are_registered_with_their_needs():
    assert C.CONTROLLER_NAMES == ('fixed', 'average', 'gradient', 'histogram_nn',
                                  'semantic_nn', 'hybrid_nn', 'oracle', 'personalized')
    assert C.controller_names(needs_features=True) == ('semantic_nn', 'hybrid_nn')
    assert C.controller_names(trained=True) == ('histogram_nn', 'semantic_nn', 'hybrid_nn',
                                                'personalized')
    assert C.get_spec('personalized').detector_from == 'hybrid'
    assert 'oracle' not in C.controller_names(live=True)
    labels = [s.label for s in C.specs()]
    modes = [s.train_mode for s in C.specs() if s.train_mode]
    assert len(set(labels)) == len(labels) and len(set(modes)) == len(modes)
    for spec in C.specs(trained=True):  # every default model ships with the package
        assert resolve_model_path(None, spec.default_model).is_file(), spec.name
    assert C.make_controller('hybrid_nn').needs_features
    assert not C.make_controller('average').needs_features
    assert C.make_controller('oracle').needs_next_scene


def test_unknown_and_duplicate_registrations_are_refused():
    with pytest.raises(ControllerError, match="unknown controller 'nope'.*average"):
        C.make_controller('nope')
    with pytest.raises(ControllerError, match='registered already'):
        C.register(C.ControllerSpec('average', 'Other', HalfController))
    with pytest.raises(ControllerError, match='default_model needs trained'):
        C.ControllerSpec('x', 'X', HalfController, default_model='x.pt')
    with pytest.raises(ControllerError, match='detector_from needs'):
        C.ControllerSpec('x', 'X', HalfController, trained=True, detector_from='hybrid')


def test_build_controller_resolves_and_checks_model_files(tmp_path):
    assert C.build_controller('histogram_nn', {'mu': 0.5}).options.mu == 0.5
    with pytest.raises(ModelError, match='model file for hybrid_nn not found'):
        C.build_controller('hybrid_nn', model=str(tmp_path / 'missing.pt'))
    # non-trained controllers ignore model and device
    assert C.build_controller('average', model='ignored.pt').name == 'average'


def test_adding_a_controller_is_one_class_and_one_registration(half):
    """Walk-through: after ``register`` every tool can run the new controller by name."""
    from neural_ae.nodes.auto_exposure_node import ae_parameter_specs

    assert 'half_test' in C.controller_names(live=True)
    ctrl = C.build_controller('half_test', sensor=SENSOR)
    d = ctrl.step(np.full((8, 8), 400, np.uint16), C.ExposureSetting(8000.0, 0.0))
    assert math.isclose(d.setting.e_s, 0.004, rel_tol=1e-9)
    # the core step, the closed loop, replay and the node's parameter all know it
    result = FrameStep(C.make_controller('half_test', sensor=SENSOR)).step(
        np.full((8, 8), 400, np.uint16), C.ExposureSetting(8000.0, 0.0))
    assert result.perception is None and not result.features_used
    loop = run_closed_loop(_frames(), C.make_controller('half_test', sensor=SENSOR), seed=0)
    assert loop.controller == 'half_test' and loop.n_frames == 6
    assert loop.e_s[-1] < loop.e_s[0]
    run = replay_frames([(k, f) for k, f in enumerate(_frames(4))],
                        C.make_controller('half_test', sensor=SENSOR))
    assert run.result.n_frames == 4 and run.detection_frames == 0
    spec = next(p for p in ae_parameter_specs(SENSOR) if p.name == 'controller')
    assert 'half_test' in spec.choices


def test_a_controller_that_needs_features_is_refused_without_perception(half):
    unregister('half_test')
    C.register(C.ControllerSpec('half_test', 'Half', HalfController, needs_features=True))
    with pytest.raises(ConfigError, match='half_test needs backbone features'):
        FrameStep(C.make_controller('half_test', sensor=SENSOR))


def test_frame_step_routes_features_only_to_controllers_that_need_them():
    calls = []

    class FakePerception:
        def run(self, raw):
            from neural_ae.core.models.perception import PerceptionResult
            calls.append(raw.shape)
            return PerceptionResult(np.zeros((0, 4), np.float32), np.zeros(0, np.int64),
                                    np.zeros(0, np.float32), 'layer2-map')

    seen = {}

    class Recorder(HalfController):
        def propose(self, raw, used, features, info):
            seen['features'] = features
            return used.e_s

    raw = np.full((8, 8), 400, np.uint16)
    used = C.ExposureSetting(8000.0, 0.0)
    step = FrameStep(Recorder(sensor=SENSOR), FakePerception())
    r = step.step(raw, used)
    assert calls == [(8, 8)] and seen['features'] is None and not r.features_used
    assert r.perception.arrays()['boxes'].shape == (0, 4)
    assert FrameStep(Recorder(sensor=SENSOR), FakePerception(), detect=False).step(
        raw, used).perception is None
    assert calls == [(8, 8)]
    assert r.timings.total_ms >= r.timings.controller_ms >= 0
