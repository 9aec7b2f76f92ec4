"""Variant labels follow the exposure actually captured (the sensor clamps dark scenes)."""
from types import SimpleNamespace

from neural_ae.core import sensor as S
from neural_ae.core.personalized.data import VARIANTS_EV, VariantSet
from neural_ae.core.personalized.experts import detector_offset, EXPERTS, reference_exposure
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
    assert plain.actual_ev.shape == (n, v) and np.allclose(plain.ideal('mid_grey')[1],
                                                            -VARIANTS_EV)


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


def test_the_detector_expert_captures_each_reachable_exposure_once():
    dark = _scene(2.0)          # e-/s: far below what the longest exposure needs
    e_ref = reference_exposure(dark.radiance, SENSOR)
    top = S.split_exposure(1e9, SENSOR)
    assert e_ref * 2.0 ** -2 > top.t_exp_s * top.gain   # every offset clamps
    perception = _CountingPerception()
    off, scores = detector_offset(dark, SENSOR, e_ref, perception)
    assert off == 0.0 and scores == [] and len(perception.means) == 1

    mid = _scene(3e4)          # the upper offsets clamp, the lower ones do not
    e_ref = reference_exposure(mid.radiance, SENSOR)
    reach = [S.split_exposure(e_ref * 2.0 ** o, SENSOR) for o in np.arange(-2, 2.01, 0.5)]
    unique = {round(s.t_exp_s * s.gain, 12) for s in reach}
    perception = _CountingPerception()
    off, scores = detector_offset(mid, SENSOR, e_ref, perception)
    assert 2 < len(unique) < 9
    assert len(perception.means) == len(scores) == len(unique)
    assert np.isfinite(off) and -2.0 <= off <= 2.0
