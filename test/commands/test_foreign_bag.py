"""
A bag recorded by someone else, replayed with every controller (issue 10, closing note).

The bag is written with plain ``rosbags`` (no neural_ae writer, so it declares no unit):
radiance in [0, 1] (another HDR camera's merged value), a tunnel exit (a tunnel interior
for 8 frames, then daylight about 10 EV brighter), COCO labels keyed by ``stamp_ns``
3 ms after each frame's stamp, plus one label image 26 ms from any frame (beyond the
half-period tolerance: it must not match). Each controller replays it through
``neural-ae replay`` with the shipped models; the figures are printed (``pytest -s``).
"""
import json
import math

from neural_ae.cli import main as cli
from neural_ae.core import sensor as S
from neural_ae.core.bags import open_hdr_bag
from neural_ae.core.bags.units import SCALE_KEY, SCALE_METHOD_KEY
from neural_ae.core.calibration import auto_target_e_s
from neural_ae.core.paths import models_dir
from neural_ae.core.replay import RAW_TOPIC
from neural_ae.core.scenes import generate_scene
import numpy as np
import pytest
from rosbags.rosbag2 import Writer
from rosbags.typesys import get_typestore, Stores

H, W, N = 64, 96, 16
EXIT = N // 2
T0 = 1_700_000_000_000_000_000
PERIOD = 50_000_000
SENSOR = S.load_sensor('imx249')
CONTROLLERS = ('fixed', 'average', 'gradient', 'histogram_nn', 'semantic_nn', 'hybrid_nn')
NEEDS_DETECTOR_FLAG = ('fixed', 'average', 'gradient', 'histogram_nn')


def _scenes():
    return ([generate_scene(11, 'tunnel_interior', H, W)] * EXIT
            + [generate_scene(111, 'day', H, W)] * (N - EXIT))


@pytest.fixture(scope='module')
def foreign(tmp_path_factory):
    """Write the foreign bag; return ``(path, relative radiance frames)``."""
    root = tmp_path_factory.mktemp('foreign')
    scenes = _scenes()
    peak = max(float(sc.radiance.max()) for sc in scenes)
    frames = [(sc.radiance / peak).astype('<f4') for sc in scenes]
    assert all(0.0 <= f.min() and f.max() <= 1.0 for f in frames)
    store = get_typestore(Stores.ROS2_HUMBLE)
    image, header, time_ = (store.types[n] for n in (
        'sensor_msgs/msg/Image', 'std_msgs/msg/Header', 'builtin_interfaces/msg/Time'))
    path = root / 'foreign_hdr'
    coco = {'images': [], 'annotations': [], 'categories': []}
    with Writer(path, version=8) as writer:
        conn = writer.add_connection('/hdr/image', 'sensor_msgs/msg/Image', typestore=store)
        for k, (sc, rad) in enumerate(zip(scenes, frames)):
            t = T0 + k * PERIOD
            msg = image(header=header(stamp=time_(sec=t // 10**9, nanosec=t % 10**9),
                                      frame_id='hdr_cam'),
                        height=H, width=W, encoding='32FC3', is_bigendian=0, step=W * 12,
                        data=rad.reshape(-1).view(np.uint8))
            writer.write(conn, t, store.serialize_cdr(msg, 'sensor_msgs/msg/Image'))
            coco['images'].append({'id': 100 + k, 'stamp_ns': t + 3_000_000,
                                   'width': W, 'height': H})
            for box, lab in zip(sc.boxes, sc.labels):
                x1, y1, x2, y2 = (float(v) for v in box)
                coco['annotations'].append({'id': len(coco['annotations']) + 1,
                                            'image_id': 100 + k, 'category_id': int(lab),
                                            'bbox': [x1, y1, x2 - x1, y2 - y1]})
    far = T0 + 3 * PERIOD + PERIOD // 2 + 1_000_000     # 26 ms from frames 3 and 4
    coco['images'].append({'id': 999, 'stamp_ns': far, 'width': W, 'height': H})
    coco['annotations'].append({'id': 9999, 'image_id': 999, 'category_id': 1,
                                'bbox': [1, 1, 30, 30]})
    (path / 'labels.json').write_text(json.dumps(coco))
    return path, frames


def _replay(bag, out, controller, *extra):
    argv = ['replay', str(bag), '--controller', controller, '-o', str(out), '--no-progress',
            *extra]
    assert cli(argv) == 0, argv
    return json.loads((out.parent / f'{out.name}.metrics.json').read_text())


def test_foreign_bag_replayed_with_every_controller(foreign, tmp_path, capsys, caplog):
    bag, frames = foreign
    assert open_hdr_bag(bag).radiance_unit is None          # declares nothing
    detector = str(models_dir() / 'hybrid_demo.pt')
    # independent check of the chosen scale: the scaled frames' median e_base (of log)
    # must land at the geometric middle of the sensor's exposure range
    target, (e_lo, e_hi) = auto_target_e_s(SENSOR)
    assert target == pytest.approx(math.sqrt(e_lo * e_hi), rel=1e-12)
    rows = []
    for controller in CONTROLLERS:
        extra = ['--detector', detector] if controller in NEEDS_DETECTOR_FLAG else []
        m = _replay(bag, tmp_path / controller, controller, *extra)
        rad = m['radiance']
        assert rad['method'] == 'auto' and rad['unit'] is None and rad['sample_frames'] == N
        scale = rad['scale']
        e_base = [S.e_base_s(S.mosaic(f * np.float32(scale), SENSOR.bayer_pattern), SENSOR)
                  for f in frames]
        assert math.exp(np.median(np.log(e_base))) == pytest.approx(target, rel=1e-3)
        out_bag = open_hdr_bag(tmp_path / controller, topic=RAW_TOPIC)
        assert float(out_bag.custom_data[SCALE_KEY]) == scale
        assert out_bag.custom_data[SCALE_METHOD_KEY] == 'auto'
        # exposure at the tunnel exit: down for every controller that follows the scene
        e = np.array(m['per_frame']['e_s'])
        drop_ev = math.log2(e[EXIT - 1] / np.median(e[-3:]))
        if controller == 'fixed':
            assert np.all(e == e[0])
        else:
            assert drop_ev > 0.5 and e[-1] < e[EXIT], (controller, e)
        # AP from the stamp-matched labels: all N frames matched, the far label not
        det = m['detection']
        assert det['labelled_frames'] == N and det['label_images'] == N + 1
        assert det['num_images'] == N and sum(det['num_gt'].values()) > 0
        assert det['map50'] is not None and 0.0 <= det['map50'] <= 1.0
        assert m['metrics']['summary']['at_bound'] is False
        rows.append((controller, scale, e[EXIT - 1], float(np.median(e[-3:])), drop_ev,
                     det['map50'], det['labelled_frames'], m['run']['detector']))
    scales = {r[1] for r in rows}
    assert len(scales) == 1                                 # one scale per bag
    # taken as e-/s (scale 1), the camera sits at its ceiling: flagged and warned
    caplog.clear()
    pinned = _replay(bag, tmp_path / 'as_e_per_s', 'average', '--radiance-scale', '1')
    summ = pinned['metrics']['summary']
    assert pinned['radiance']['method'] == 'given'
    assert summ['at_bound'] is True and summ['at_max_share'] == 1.0
    assert pinned['run']['warnings'] and 'maximum' in pinned['run']['warnings'][0]
    assert any('sat at its maximum' in r.getMessage() and r.levelname == 'WARNING'
               for r in caplog.records)
    with capsys.disabled():
        print(f'\nforeign bag ({N} frames {H}x{W}, radiance in [0, 1], tunnel exit at frame '
              f'{EXIT}): auto radiance scale {rows[0][1]:.4g}, target e_base {target:.4g} s')
        print(f'{"controller":<13} {"e before exit":>13} {"e after":>10} {"drop EV":>8} '
              f'{"mAP@0.5":>8} {"matched":>8}  detector')
        for c, _, before, after, drop, ap, matched, det in rows:
            print(f'{c:<13} {before:13.4g} {after:10.4g} {drop:8.2f} {ap:8.3f} '
                  f'{matched:>8}  {det}')
        print(f'scale 1 (units taken as e-/s): at the maximum for '
              f'{100 * summ["at_max_share"]:.0f} % of the frames, frames_to_converge '
              f'{summ["frames_to_converge"]}')
