"""Metering modes of Average AE (and their weight maps): ROI, spot, centre, matrix, boxes."""
import math

from neural_ae.core.controllers import AverageController, ControllerOptions, ExposureSetting
from neural_ae.core.controllers.metering import (make_metering, metered_mean_dn, Metering,
                                                 METERING_MODES)
from neural_ae.core.errors import ControllerError
from neural_ae.core.models.perception import PerceptionResult
from neural_ae.core.sensor import load_sensor
import numpy as np
import pytest

SENSOR = load_sensor('imx249')
USED = ExposureSetting(5000.0, 0.0)


def _sky_frame(sky: bool = True) -> np.ndarray:
    """Lower half mid-dark road (600 DN), upper half a clipped sky (or the same road)."""
    raw = np.full((240, 320), 600, np.uint16)
    if sky:
        raw[:120] = SENSOR.white_level_dn
    return raw


def test_bright_sky_outside_the_roi_does_not_darken_the_exposure():
    roi = (0.0, 0.5, 1.0, 0.5)               # the lower half
    glob = AverageController(sensor=SENSOR)
    metered = AverageController(sensor=SENSOR, metering=Metering('roi', roi=roi))
    e_sky_global = glob.step(_sky_frame(), USED).target_e_s
    e_sky_roi = metered.step(_sky_frame(), USED).target_e_s
    metered.reset()
    e_road_roi = metered.step(_sky_frame(False), USED).target_e_s
    assert e_sky_global < 0.6 * e_road_roi          # the global mean is pulled down by sky
    assert e_sky_roi == pytest.approx(e_road_roi, rel=1e-3)
    assert e_sky_roi > USED.e_s                     # the road is dark: expose up


def test_weight_maps_of_every_mode():
    for mode in METERING_MODES:
        m = Metering(mode, roi=(0.25, 0.25, 0.5, 0.5) if mode in ('roi', 'spot') else None)
        w, used = m.weights(30, 40)
        if mode in ('global', 'detections'):
            assert w is None and used == 'global'
            continue
        assert w.shape == (30, 40) and w.max() == pytest.approx(1.0) and w.min() >= 0
        assert used == mode
    c, _ = Metering('centre_weighted').weights(31, 31)
    assert c[15, 15] == c.max() and c[0, 0] < 0.2
    z, _ = Metering('matrix', zones=((0, 0), (0, 1))).weights(10, 10)
    assert z[:5].sum() == 0 and z[5:, 5:].min() == 1


def test_detections_metering_uses_person_boxes_and_falls_back():
    raw = _sky_frame(False)
    raw[:, :160] = 3000                      # bright left half; a person on the right
    ctrl = AverageController(sensor=SENSOR, metering_mode='detections',
                             metering_classes=['person'])
    ctrl.observe_detections(PerceptionResult(
        np.array([[200, 50, 260, 200], [0, 0, 100, 100]], np.float32),
        np.array([4, 3]), np.array([0.9, 0.9], np.float32), None))
    d = ctrl.step(raw, USED)
    assert d.info['metering'] == 'detections'
    assert d.info['raw_mean_dn'] == pytest.approx(600, abs=1)   # the car box is ignored
    ctrl.observe_detections(PerceptionResult(np.zeros((0, 4), np.float32),
                                             np.zeros(0, np.int64), np.zeros(0), None))
    d = ctrl.step(raw, USED)
    assert d.info['metering'] == 'global'


def test_metered_mean_skips_non_finite_pixels():
    raw = np.full((64, 64), 1000.0, np.float32)
    raw[:8] = np.nan
    mean, _ = metered_mean_dn(raw, Metering('centre_weighted'))
    assert mean == pytest.approx(1000.0, rel=1e-4)
    mean, _ = metered_mean_dn(np.full((16, 16), np.nan, np.float32), Metering('spot'))
    assert math.isnan(mean)


def test_bad_metering_settings_are_one_line_errors():
    with pytest.raises(ControllerError, match='must lie inside'):
        Metering('roi', roi=(0.5, 0.5, 0.8, 0.2))
    with pytest.raises(ControllerError, match='needs roi'):
        Metering('roi')
    with pytest.raises(ControllerError, match='mode must be one of'):
        Metering('sun')
    with pytest.raises(ControllerError, match='classes'):
        Metering('detections', classes=('dragon',))
    with pytest.raises(ControllerError, match='differ in length'):
        make_metering(metering_mode='matrix', metering_zones='1,2;3')
    with pytest.raises(ControllerError, match='comma-separated numbers'):
        make_metering(metering_mode='roi', metering_roi='0,0,a,1')
    with pytest.raises(ControllerError, match='zones'):
        Metering('matrix', zones=((0, 0), (0, 0)))
    m = make_metering(metering_mode='matrix', metering_zones='1,2; 3,4')
    assert m.zones == ((1.0, 2.0), (3.0, 4.0))
    assert make_metering(metering_mode='roi', metering_roi='0,0.5,1,0.5').roi == \
        (0.0, 0.5, 1.0, 0.5)


def test_set_roi_switches_global_to_roi_and_back():
    ctrl = AverageController(ControllerOptions(), sensor=SENSOR)
    ctrl.set_roi((0.0, 0.5, 1.0, 0.5))
    assert ctrl.metering.mode == 'roi'
    ctrl.set_roi(None)
    assert ctrl.metering.mode == 'global'
