"""Variant labels follow the exposure actually captured (the sensor clamps dark scenes)."""
from types import SimpleNamespace

from neural_ae.core import sensor as S
from neural_ae.core.personalized.data import VARIANTS_EV, VariantSet
from neural_ae.core.personalized.experts import (detector_offset, EXPERTS, reference_exposure,
                                                 unclamped_split)
import numpy as np

SENSOR = S.load_sensor('imx249')


def test_clamped_variants_get_the_labels_of_the_exposure_they_were_captured_at():
    n, v = 2, len(VARIANTS_EV)
    actual = np.tile(VARIANTS_EV.astype(np.float32), (n, 1))
    actual[1, 15:] = actual[1, 14]     # scene 1: the sensor tops out at +0.8 EV
    offsets = np.zeros((n, len(EXPERTS)), np.float32)
    vs = VariantSet(np.zeros((n, v, 4, 4, 3), np.uint8), offsets, VARIANTS_EV.copy(),
                    np.arange(n), EXPERTS, actual)
    ideal = vs.ideal('mid_grey')
    assert np.allclose(ideal[0], -VARIANTS_EV)
    assert np.allclose(ideal[1, 14:], -0.8)       # identical images, identical labels
    assert np.allclose(vs.subset(1).actual_ev, actual[:1])
    plain = VariantSet(vs.images, offsets, VARIANTS_EV.copy(), np.arange(n))
    assert plain.actual_ev.shape == (n, v)
    assert np.allclose(plain.ideal('mid_grey')[1], -VARIANTS_EV)


class _CountingPerception:
    """Stands in for the detector: counts captures, finds more the brighter the frame."""

    def __init__(self):
        self.means = []

    def detect(self, raw):
        self.means.append(float(raw.mean()))
        score = min(1.0, self.means[-1] / 2000.0)
        return {'boxes': np.array([[2.0, 2.0, 30.0, 30.0]]), 'scores': np.array([score]),
                'labels': np.array([1])}, None


def _scene(level: float):
    rad = np.full((32, 48, 3), level, np.float32)
    return SimpleNamespace(radiance=rad, boxes=np.array([[2.0, 2.0, 30.0, 30.0]]),
                           labels=np.array([1]))


def test_the_detector_expert_sweeps_beyond_the_sensor_range():
    """A dark scene's preference is read from renders past the longest exposure."""
    dark = _scene(3e3)          # e-/s: needs ~8x the sensor's longest exposure x top gain
    e_ref = reference_exposure(dark.radiance, SENSOR)
    top = S.split_exposure(1e9, SENSOR)
    assert e_ref * 2.0 ** -2 > top.t_exp_s * top.gain   # every offset is out of range
    perception = _CountingPerception()
    off, scores = detector_offset(dark, SENSOR, e_ref, perception)
    assert len(perception.means) == len(scores) == 9
    assert np.all(np.diff(perception.means) > 0)      # nine distinct, brighter renders
    assert off >= 1.0, (off, scores)                   # the stand-in likes bright frames
    t_exp, gain = unclamped_split(e_ref, SENSOR)
    assert t_exp == min(S.T_MAX_S, SENSOR.max_exposure_s) and gain > SENSOR.max_gain
    assert np.isclose(t_exp * gain, e_ref)


class _NoDetections:
    def detect(self, raw):
        return {'boxes': np.zeros((0, 4)), 'scores': np.zeros(0),
                'labels': np.zeros(0, np.int64)}, None


def test_the_variant_cache_round_trips_the_captured_offsets(tmp_path):
    from neural_ae.core.personalized.data import load_variants, VariantSpec

    spec = VariantSpec(height=64, width=96, size=32, detector_model='stand-in')
    built = load_variants('val', 2, spec, tmp_path, perception=_NoDetections())
    again = load_variants('val', 2, spec, tmp_path, build=False)
    assert built.images.shape == (2, len(VARIANTS_EV), 32, 32, 3)
    np.testing.assert_array_equal(again.variant_ev, built.variant_ev)
    np.testing.assert_array_equal(again.offsets, built.offsets)
    a = again.actual_ev
    assert np.all(np.diff(a, axis=1) >= -1e-6)          # never darker for a brighter ask
    assert np.all(np.abs(a) <= 2.0 + 1e-5)
