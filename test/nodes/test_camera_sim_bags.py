"""camera_sim_node on foreign bags: the radiance scale and labels keyed by stamp."""
import json
import math

from neural_ae.core import sensor as S
from neural_ae.core.bags import HDRBagWriter
from neural_ae.core.calibration import auto_target_e_s
from neural_ae.core.errors import ConfigError
from neural_ae.core.scenes import generate_scene
from neural_ae.nodes.camera_sim_node import CameraSimNode
import numpy as np
import pytest
from rclpy.parameter import Parameter

SENSOR = S.load_sensor('imx249')
T0, PERIOD = 5_000_000_000, 40_000_000


def _bag(path, unit, labels=None, n=4):
    """``n`` frames, radiance in [0, 1] (dark, dark, bright, bright); return the frames."""
    scenes = [generate_scene(6, 'tunnel_interior', 64, 96)] * (n // 2) + \
        [generate_scene(7, 'day', 64, 96)] * (n - n // 2)
    peak = max(float(sc.radiance.max()) for sc in scenes)
    frames = [(sc.radiance / peak).astype(np.float32) for sc in scenes]
    with HDRBagWriter(path, radiance_unit=unit) as writer:
        for k, rad in enumerate(frames):
            writer.write_radiance(T0 + k * PERIOD, rad)
    if labels is not None:
        (path / 'labels.json').write_text(labels if isinstance(labels, str)
                                          else json.dumps(labels))
    return frames


def _run(side, name, bag, **params):
    docs = []
    overrides = [Parameter('bag', value=str(bag)), Parameter('mode', value='lockstep'),
                 Parameter('lockstep_timeout_s', value=0.02),
                 Parameter('wait_for_subscribers', value=0)]
    overrides += [Parameter(k, value=v) for k, v in params.items()]
    sim = CameraSimNode(name, context=side.context, parameter_overrides=overrides)
    sim.exposure_pub.publish = lambda m: docs.append(json.loads(m.data))
    side.executor.add_node(sim)
    try:
        assert side.spin_until(lambda: sim.finished, 30.0), docs
        return sim, docs
    finally:
        side.executor.remove_node(sim)
        sim.destroy_node()


def test_foreign_bag_gets_an_auto_scale_and_stamp_labels(ros_side, tmp_path):
    coco = {'images': [{'id': 'by_index', 'frame_index': 0},
                       {'id': 'by_stamp', 'stamp_ns': T0 + 2 * PERIOD + 2_000_000},
                       {'id': 'far', 't_ns': T0 + 3 * PERIOD + PERIOD // 2}],
            'annotations': [
                {'id': 1, 'image_id': 'by_index', 'category_id': 4, 'bbox': [2, 3, 5, 9]},
                {'id': 2, 'image_id': 'by_stamp', 'category_id': 1, 'bbox': [10, 4, 8, 16]},
                {'id': 3, 'image_id': 'far', 'category_id': 2, 'bbox': [1, 1, 4, 4]}]}
    frames = _bag(tmp_path / 'foreign', None, coco)
    sim, docs = _run(ros_side, 'foreign_sim', tmp_path / 'foreign')
    assert [d['frame_index'] for d in docs] == [0, 1, 2, 3]
    assert [d['gt'] for d in docs] == [[[2.0, 3.0, 7.0, 12.0, 4]], [],
                                       [[10.0, 4.0, 18.0, 20.0, 1]], []]
    scale = sim.radiance_scale
    assert all(d['radiance_scale'] == scale for d in docs)
    e_base = [S.e_base_s(S.mosaic(f * np.float32(scale), SENSOR.bayer_pattern), SENSOR)
              for f in frames]
    assert math.exp(np.median(np.log(e_base))) == pytest.approx(auto_target_e_s(SENSOR)[0],
                                                                rel=1e-3)


def test_declared_and_given_scales(ros_side, tmp_path):
    _bag(tmp_path / 'own', 'e-/s')
    sim, docs = _run(ros_side, 'own_sim', tmp_path / 'own')
    assert sim.radiance_scale == 1.0 and {d['radiance_scale'] for d in docs} == {1.0}
    _bag(tmp_path / 'rel', 'relative')
    sim, docs = _run(ros_side, 'given_sim', tmp_path / 'rel', radiance_scale='2.5e4')
    assert {d['radiance_scale'] for d in docs} == {25000.0}


def test_malformed_labels_are_left_out_with_a_warning(ros_side, tmp_path):
    _bag(tmp_path / 'bad', 'e-/s', labels='[{"id": 1}]')
    sim, docs = _run(ros_side, 'bad_labels_sim', tmp_path / 'bad')
    assert len(docs) == 4 and all(d['gt'] == [] for d in docs)


@pytest.mark.parametrize('value', ['bright', '-1', '0', 'inf'])
def test_a_bad_radiance_scale_is_refused_at_start(ros_side, tmp_path, value):
    _bag(tmp_path / 'b', None)
    with pytest.raises(ConfigError, match='radiance_scale'):
        CameraSimNode('bad_scale_sim', context=ros_side.context, parameter_overrides=[
            Parameter('bag', value=str(tmp_path / 'b')),
            Parameter('radiance_scale', value=value)])
