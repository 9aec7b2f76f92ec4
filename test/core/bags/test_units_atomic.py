"""Declared radiance units, frame sampling, atomic bags, the radiance calibration."""
import math

from neural_ae.core import sensor as S
from neural_ae.core.bags import HDRBagWriter, open_hdr_bag
from neural_ae.core.bags.units import E_PER_S, RELATIVE, UNIT_KEY
from neural_ae.core.calibration import (AUTO, auto_target_e_s, calibrate_bag, calibrate_frames,
                                        parse_radiance_scale)
from neural_ae.core.closed_loop import run_closed_loop
from neural_ae.core.controllers import make_controller
from neural_ae.core.errors import BagFormatError, ConfigError
from neural_ae.core.metrics.temporal import bound_warning, temporal_metrics
from neural_ae.core.scenes import generate_scene
import numpy as np
import pytest

SENSOR = S.load_sensor('imx249')


def _write(path, n=5, unit=E_PER_S, scale=1.0, **kw):
    rad = generate_scene(2, 'day', 64, 64).radiance * np.float32(scale)
    with HDRBagWriter(path, radiance_unit=unit, **kw) as w:
        for k in range(n):
            w.write_radiance(k * 1000, rad * np.float32(1 + k))
    return rad


def test_writer_declares_the_unit_and_reader_reads_it(tmp_path):
    _write(tmp_path / 'a')
    _write(tmp_path / 'b', unit=RELATIVE)
    _write(tmp_path / 'c', unit=None)
    assert open_hdr_bag(tmp_path / 'a').radiance_unit == E_PER_S
    assert open_hdr_bag(tmp_path / 'b').radiance_unit == RELATIVE
    assert open_hdr_bag(tmp_path / 'c').radiance_unit is None
    assert UNIT_KEY not in open_hdr_bag(tmp_path / 'c').custom_data
    with HDRBagWriter(tmp_path / 'd') as w:            # no radiance: no unit
        w.write_json('/x', 1, {'a': 1})
        w.set_custom_data('neural_ae.note', 3.5)
    assert open_hdr_bag(tmp_path / 'd', topic='/x').custom_data == {'neural_ae.note': '3.5'}
    with pytest.raises(BagFormatError, match='radiance_unit'):
        HDRBagWriter(tmp_path / 'e', radiance_unit='lux')


def test_sample_radiance_reads_every_kth_frame(tmp_path):
    rad = _write(tmp_path / 'a', n=10)
    bag = open_hdr_bag(tmp_path / 'a')
    got = list(bag.sample_radiance(4))
    assert [k for k, _, _ in got] == [0, 3, 6, 9]
    assert [t for _, t, _ in got] == [0, 3000, 6000, 9000]
    np.testing.assert_array_equal(got[1][2], rad * np.float32(4))
    assert [k for k, _, _ in bag.sample_radiance(50)] == list(range(10))


def test_atomic_bag_appears_only_when_complete(tmp_path):
    target = tmp_path / 'bag'
    with pytest.raises(RuntimeError, match='boom'):
        with HDRBagWriter(target, atomic=True) as w:
            w.write_radiance(0, np.ones((4, 4, 3), np.float32))
            partial = list(tmp_path.glob('.bag.partial-*'))
            assert len(partial) == 1 and not target.exists()
            raise RuntimeError('boom')
    assert list(tmp_path.iterdir()) == []                # nothing left behind
    _write(target, atomic=True)
    assert len(open_hdr_bag(target)) == 5 and list(tmp_path.iterdir()) == [target]
    with pytest.raises(BagFormatError, match='exists'):
        _write(target, atomic=True)
    _write(target, n=2, atomic=True, replace=True)       # --force: replaced when complete
    assert len(open_hdr_bag(target)) == 2 and list(tmp_path.iterdir()) == [target]


@pytest.mark.parametrize('value', ['x', '-1', 0, float('nan'), float('inf'), True, '1e400',
                                   2.0 ** 200])
def test_bad_radiance_scales_are_config_errors(value):
    with pytest.raises(ConfigError, match='radiance_scale'):
        parse_radiance_scale(value)


def test_calibration_choices(tmp_path):
    assert parse_radiance_scale(None) == parse_radiance_scale(' Auto ') == AUTO
    assert parse_radiance_scale('2.5e4') == 25000.0
    _write(tmp_path / 'own')
    rad = _write(tmp_path / 'foreign', unit=None, scale=1e-6)
    own = calibrate_bag(open_hdr_bag(tmp_path / 'own'), SENSOR)
    assert (own.scale, own.method) == (1.0, 'declared')
    assert calibrate_bag(open_hdr_bag(tmp_path / 'own'), SENSOR, 7).method == 'given'
    auto = calibrate_bag(open_hdr_bag(tmp_path / 'foreign'), SENSOR)
    assert auto.method == 'auto' and auto.sample_frames == 5
    e_base = [S.e_base_s(S.mosaic(rad * np.float32((1 + k) * auto.scale),
                                  SENSOR.bayer_pattern), SENSOR) for k in range(5)]
    target, (lo, hi) = auto_target_e_s(SENSOR)
    assert np.median(e_base) == pytest.approx(target, rel=1e-4)
    assert target == pytest.approx(math.sqrt(lo * hi)) and lo < target < hi
    with pytest.raises(ConfigError, match='no sampled frame'):
        calibrate_frames([np.zeros((8, 8, 3), np.float32)], SENSOR, 'auto')


def test_runs_at_a_bound_are_flagged():
    scene = generate_scene(5, 'day', 64, 96).radiance
    ok = temporal_metrics(run_closed_loop([scene] * 12, make_controller('average'), seed=0))
    assert ok['summary']['at_bound'] is False and ok['summary']['at_bound_share'] == 0.0
    assert bound_warning(ok['summary']) is None
    dark = temporal_metrics(run_closed_loop([scene * np.float32(1e-6)] * 12,
                                            make_controller('average'), seed=0))
    s = dark['summary']
    assert s['at_bound'] is True and s['at_max_share'] > 0.8 and s['at_min_share'] == 0.0
    assert s['frames_to_converge'] == 0                  # reads as success...
    assert 'maximum' in bound_warning(s, 'dark')         # ...so it is warned about
    bright = temporal_metrics(run_closed_loop([scene * np.float32(1e4)] * 12,
                                              make_controller('average'), seed=0))
    assert bright['summary']['at_min_share'] > 0.8
    assert 'minimum' in bound_warning(bright['summary'])
