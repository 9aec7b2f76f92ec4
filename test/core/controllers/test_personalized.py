"""The personalized controller: registry, shared limits, ROI metering, policy maps."""
import math

from neural_ae.core.controllers import (build_controller, ControllerOptions, ExposureSetting,
                                        get_spec, make_controller)
from neural_ae.core.controllers.metering import Metering
from neural_ae.core.controllers.personalized import PersonalizedController, \
    register_personalized
from neural_ae.core.errors import ControllerError, ModelError
from neural_ae.core.personalized.policy import (load_policy, policy_input, PolicyNet,
                                                rgb_input, save_policy)
from neural_ae.core.sensor import load_sensor
import numpy as np
import pytest
import torch

SENSOR = load_sensor('imx249')


def test_the_controller_is_registered_on_import():
    assert register_personalized().name == 'personalized'


class ConstEM(PolicyNet):
    """Exposure map +1 in the lower half, -1 in the upper half: the ROI decides the sign."""

    def head(self, feat, roi=None, roi_mode='replace'):
        em = torch.ones(feat.shape[0], 1, *feat.shape[-2:])
        em[..., : feat.shape[-2] // 2, :] = -1.0
        return _weighted(self, em, roi)


def _weighted(net, em, roi):
    from neural_ae.core.personalized.policy import roi_map

    if roi is None:
        return net.scale_ev * em.mean(dim=(1, 2, 3)), em, torch.ones_like(em)
    w = roi_map(roi, em.shape[-2:], em)
    return net.scale_ev * (em * w).sum(dim=(1, 2, 3)) / w.sum(dim=(1, 2, 3)), em, w


def _raw(level=800):
    rng = np.random.default_rng(0)
    return rng.integers(level - 50, level + 50, (192, 320)).astype(np.uint16)


def test_registered_and_built_through_the_shared_limits():
    spec = get_spec('personalized')
    assert spec.trained and spec.live and not spec.needs_features
    opts = ControllerOptions(max_exposure_us=8000.0, max_gain_db=6.0, max_step_ev=0.5)
    ctrl = make_controller('personalized', opts, sensor=SENSOR)
    used = ExposureSetting(8000.0, 6.0)
    ctrl.reset(used)
    d = ctrl.step(_raw(100), used)
    assert d.setting.exposure_time_us <= 8000.0 and d.setting.gain_db <= 6.0
    assert abs(math.log2(d.setting.e_s / used.e_s)) <= 0.5 + 1e-9
    assert math.isfinite(d.info['dev_ev']) and ctrl.last_input.shape == (128, 128, 3)
    assert ctrl.smoothing.name == 'none'


def test_control_law_and_gain_split():
    net = load_policy(None)
    torch.nn.init.constant_(net.exposure_head.bias, 10.0)      # tanh -> 1: dEV -> mean(IM)*4
    ctrl = PersonalizedController(sensor=SENSOR, model=net)
    used = ExposureSetting(1000.0, 0.0)
    d = ctrl.step(_raw(), used)
    assert d.info['dev_ev'] > 0
    assert d.target_e_s == pytest.approx(used.e_s * 2 ** d.info['dev_ev'], rel=1e-6)
    # exposure priority: time first, gain only above T_max
    assert d.setting.gain_db == pytest.approx(0.0) or d.setting.exposure_time_us == 15000.0


def test_roi_replaces_the_importance_map():
    net = ConstEM()
    ctrl = PersonalizedController(sensor=SENSOR, model=net,
                                  metering=Metering('roi', roi=(0.0, 0.5, 1.0, 0.5)))
    d = ctrl.step(_raw(), ExposureSetting(1000.0, 0.0))
    assert d.info['dev_ev'] > 0               # lower half only: EM = +1
    ctrl.set_roi((0.0, 0.0, 1.0, 0.5))
    d = ctrl.step(_raw(), ExposureSetting(1000.0, 0.0))
    assert d.info['dev_ev'] < 0               # upper half only: EM = -1
    ctrl.set_roi(None)
    assert ctrl.metering.mode == 'global'


def test_weighted_dev_equals_the_formula():
    torch.manual_seed(0)
    net = PolicyNet().eval()
    x = rgb_input(policy_input(_raw(), SENSOR))
    roi = torch.zeros(1, 1, 7, 7)
    roi[..., 3:, :] = 1.0
    with torch.no_grad():
        dev, em, w = net.maps(x, roi, 'multiply')
        _, _, im = net.maps(x)
    assert torch.allclose(w, roi * im)
    assert float(dev) == pytest.approx(float(4 * (em * w).sum() / w.sum()), rel=1e-5)
    with torch.no_grad():
        plain = net(x)
    assert float(plain) == pytest.approx(float(4 * (em * im).mean()), rel=1e-5)


def test_ablation_has_no_importance_branch():
    net = PolicyNet('exposure_only')
    assert net.importance_head is None
    with torch.no_grad():
        dev, em, im = net.eval().maps(torch.rand(2, 3, 64, 64))
    assert torch.all(im == 1) and dev.shape == (2,)


def test_model_files_round_trip_and_bad_files(tmp_path):
    torch.manual_seed(1)
    net = PolicyNet().eval()
    path = save_policy(tmp_path / 'p.pt', net, {'size': 96})
    ctrl = build_controller('personalized', {}, sensor=SENSOR, model=str(path))
    assert ctrl.size == 96
    x = torch.rand(1, 3, 96, 96)
    with torch.no_grad():
        assert torch.allclose(ctrl.model(x), net(x))
    bad = tmp_path / 'bad.pt'
    torch.save({'format': 'something'}, bad)
    with pytest.raises(ModelError, match='not a personalized policy'):
        load_policy(bad)
    with pytest.raises(ModelError, match='not found'):
        build_controller('personalized', {}, sensor=SENSOR, model=str(tmp_path / 'no.pt'))
    shipped = build_controller('personalized', {}, sensor=SENSOR)   # the default model
    assert isinstance(shipped, PersonalizedController) and shipped.size == 128
    with pytest.raises(ControllerError, match='roi_mode'):
        PersonalizedController(sensor=SENSOR, roi_mode='add')


def test_non_finite_output_falls_back_to_average():
    net = load_policy(None)
    with torch.no_grad():
        net.exposure_head.bias.fill_(float('nan'))
    ctrl = PersonalizedController(sensor=SENSOR, model=net)
    d = ctrl.step(_raw(), ExposureSetting(1000.0, 0.0))
    assert d.fallback and 'Average AE' in d.info['fallback_reason']


def test_policy_input_of_float_frames_with_nan():
    ctrl = PersonalizedController(sensor=SENSOR)
    raw = _raw().astype(np.float32)
    raw[:10] = np.nan
    d = ctrl.step(raw, ExposureSetting(1000.0, 0.0))
    assert math.isfinite(d.setting.e_s)
