"""
The ros_latency bench at tiny sizes: figures present and finite, the queue never grows.

Real processes and real rclpy (camera and node in child processes, this process only
orchestrates). No timed assertions: only that the figures exist, are finite and add up.
"""
import math

from neural_ae.benchmarks import ros_latency
from neural_ae.benchmarks._common import shipped_model
import pytest

pytestmark = pytest.mark.ros


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and \
        math.isfinite(value)


@pytest.fixture(scope='module')
def tiny():
    """Average AE and the bare subscriber on 64x96 frames at 60 Hz."""
    return {'average': ros_latency.measure_latency(height=64, width=96, controller='average',
                                                   seconds=2.0),
            'bare_delivery': ros_latency.measure_latency(height=64, width=96,
                                                         controller='none', seconds=1.0)}


def test_latency_figures_are_finite(tiny):
    res = tiny['average']
    for key in ('frame_to_sent_ms', 'frame_to_driver_ms', 'delivery_ms', 'publish_call_ms',
                'worker_ms_per_frame'):
        assert res[key]['n'] >= 1, (key, res)
        for stat in ('median_ms', 'p99_ms', 'mean_ms'):
            assert _finite(res[key][stat]), (key, stat, res[key])
    for key, value in res['breakdown_median_ms'].items():
        assert _finite(value), (key, value)
    for key in ('first_quarter_median_ms', 'last_quarter_median_ms', 'last_over_first',
                'slope_ms_per_s'):
        assert _finite(res['trend'][key]), (key, res['trend'])
    assert res['decisions_sent'] >= 1
    assert res['driver_requests_received'] == res['actuator']['sent']
    assert res['driver_order_mismatches'] == 0


def test_queue_never_grows_and_every_frame_is_accounted_for(tiny):
    st = tiny['average']['stream']
    assert st['frames_published'] >= 1
    assert 1 <= st['frames_delivered'] <= st['frames_published']
    assert st['drained']
    assert st['max_mailbox_occupancy'] <= 1
    assert st['max_frames_in_node'] <= 2
    assert st['accounted']
    assert st['frames_processed'] + st['frames_dropped_by_mailbox'] + \
        st['frames_left_in_mailbox'] + st['frames_cleared'] + st['bad_frames'] + \
        st['errors'] == st['frames_delivered']
    assert st['frames_processed'] >= 1
    assert st['bad_frames'] == 0 and st['errors'] == 0


def test_reference_and_ratios(tiny):
    bare = tiny['bare_delivery']
    assert bare['stream']['frames_delivered'] >= 1
    assert _finite(bare['delivery_ms']['median_ms'])
    ratios = ros_latency.latency_ratios(tiny)
    assert _finite(ratios['average']['over_average'])
    assert _finite(ratios['average']['over_bare_delivery'])
    summary = ros_latency.queue_summary(tiny)
    assert summary['average']['max_mailbox_occupancy'] <= 1
    assert summary['average']['accounted']


def test_detector_case_reads_the_step_timings():
    """Hybrid NN with its detector: the node's FrameStep timings and the ISP inside them."""
    model = str(shipped_model('hybrid_nn'))
    res = ros_latency.measure_latency(height=64, width=96, controller='hybrid_nn',
                                      seconds=1.0, model_path=model, detector_path=model,
                                      node_parameters={'publish_debug_image': False})
    det = res['detector']
    assert det['perception_run_ms']['n'] >= 1
    assert det['isp_ms']['n'] == det['perception_run_ms']['n']
    assert det['isp_ms']['median_ms'] <= det['perception_run_ms']['median_ms']
    assert det['layer2_shape'][:2] == [1, 128]
    assert res['stream']['accounted'] and res['stream']['errors'] == 0


def test_suite_cases_and_bad_transport():
    cases = ros_latency.latency_cases(True, 'hist.pt', 'hybrid.pt')
    assert {'bare_delivery', 'bare_delivery_rmw_default', 'average', 'histogram_nn',
            'hybrid_nn'} <= set(cases)
    assert cases['hybrid_nn']['detector_path'] == 'hybrid.pt'
    assert cases['hybrid_nn']['model_path'] == 'hybrid.pt'
    assert cases['histogram_nn']['model_path'] == 'hist.pt'
    assert 'detector_path' not in cases['histogram_nn']
    assert 'model_path' not in cases['average']
    with pytest.raises(ValueError, match='transport'):
        ros_latency.measure_latency(controller='average', transport='udp')
