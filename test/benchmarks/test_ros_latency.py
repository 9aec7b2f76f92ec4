"""
The ros_latency bench at tiny sizes: figures present and finite, the queue never grows.

Real processes and real rclpy (camera and node in child processes, this process only
orchestrates). No timed assertions: the figures exist, are finite, add up, obey causality
(one wall clock for all processes) and the ratios divide by the references they name; the
figures and ratios of hand-made records with known delays are checked exactly.
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
    """Each ratio divides by the reference it names; the figures obey causality."""
    bare, res = tiny['bare_delivery'], tiny['average']
    assert bare['stream']['frames_delivered'] >= 1
    bare_med = bare['delivery_ms']['median_ms']
    med = res['frame_to_sent_ms']['median_ms']
    own = res['delivery_ms']['median_ms']
    assert _finite(bare_med) and bare_med > 0 and med > 0 and own > 0
    ratios = ros_latency.latency_ratios(tiny)
    row = ratios['average']
    assert ratios['reference_bare_delivery_median_ms'] == bare_med
    assert ratios['reference_average_frame_to_sent_median_ms'] == med
    assert row['frame_to_sent_median_ms'] == med
    assert row['over_bare_delivery'] == round(med / bare_med, 3)   # the other stream
    assert row['over_own_delivery'] == round(med / own, 3)         # this stream
    # One wall clock for all processes: every sent decision's frame was delivered, waited
    # and processed before it was sent (frame_to_sent = delivery + wait + processing per
    # frame, over the same frames), and the driver sees a request after it was sent (the
    # k-th request received is the k-th sent). Order statistics keep those inequalities.
    n = res['frame_to_sent_ms']['n']
    assert res['frame_to_driver_ms']['n'] == n
    for stat in ('median_ms', 'p99_ms', 'mean_ms'):
        assert res['frame_to_driver_ms'][stat] >= res['frame_to_sent_ms'][stat], stat
    parts = res['breakdown_median_ms']
    assert min(parts.values()) >= 0
    assert med >= max(parts.values())
    summary = ros_latency.queue_summary(tiny)
    assert summary['average']['max_mailbox_occupancy'] <= 1
    assert summary['average']['accounted']


def _records(delivery_ns, wait_ns, proc_ns, to_driver_ns, n=5, period_ns=10_000_000):
    """Camera and node records of ``n`` frames with the given constant delays."""
    t0 = 1_700_000_000_000_000_000
    stamps = [t0 + k * period_ns for k in range(n)]
    received = [(s, s + delivery_ns) for s in stamps]
    processed = [(s, s + delivery_ns + wait_ns, s + delivery_ns + wait_ns + proc_ns + 500)
                 for s in stamps]
    sends = [(s, s + delivery_ns + wait_ns + proc_ns, 'setting', 1000.0 + k)
             for k, s in enumerate(stamps)]
    cam = {'published': [(s, s + 100_000) for s in stamps], 'stream_s': n * period_ns / 1e9,
           'requests': [(t + to_driver_ns, v) for _, t, _, v in sends]}
    child = {'received': received, 'torch_threads': 1, 'processed': processed, 'sends': sends,
             'mailbox': {'puts': n, 'taken': n, 'dropped': 0, 'left': 0, 'cleared': 0,
                         'max_occupancy': 1, 'max_in_node': 1},
             'node': {'frames_processed': n, 'bad_frames': 0, 'errors': 0, 'last_error': ''},
             'drained': True, 'warmup_ms': 1.0, 'decisions_not_sent': 0,
             'actuator': dict.fromkeys(('sent', 'succeeded', 'rejected', 'timeouts',
                                        'coalesced', 'unavailable'), 0),
             'perception_ms': [], 'isp_ms': [], 'layer2_shape': None}
    return cam, child


def test_summarize_and_ratios_on_known_records():
    """Hand-made records with known delays: the figures and ratios they must give."""
    ms = 1_000_000
    avg = ros_latency.summarize('average', 8, 8, 100.0,
                                *_records(2 * ms, 1 * ms, 3 * ms, ms // 2))
    hist = ros_latency.summarize('histogram_nn', 8, 8, 100.0,
                                 *_records(2 * ms, 4 * ms, 6 * ms, ms))
    bare_cam, bare_child = _records(ms, 0, 0, 0)
    bare = ros_latency.summarize('none', 8, 8, 100.0, bare_cam, bare_child)
    assert avg['frame_to_sent_ms']['median_ms'] == 6.0
    assert avg['frame_to_driver_ms']['median_ms'] == 6.5
    assert avg['breakdown_median_ms'] == {'delivery': 2.0, 'mailbox_wait': 1.0,
                                          'processing_to_sent': 3.0}
    assert avg['delivery_ms']['median_ms'] == 2.0 and avg['publish_call_ms']['median_ms'] == 0.1
    assert avg['stream']['rate_hz_achieved'] == 100.0 and avg['stream']['accounted']
    assert avg['trend']['slope_ms_per_s'] == 0.0 and avg['trend']['last_over_first'] == 1.0
    assert 'frame_to_sent_ms' not in bare and bare['delivery_ms']['median_ms'] == 1.0
    ratios = ros_latency.latency_ratios({'average': avg, 'histogram_nn': hist,
                                         'bare_delivery': bare})
    assert ratios['average'] == {'frame_to_sent_median_ms': 6.0, 'over_average': 1.0,
                                 'over_bare_delivery': 6.0, 'over_own_delivery': 3.0}
    assert ratios['histogram_nn'] == {'frame_to_sent_median_ms': 12.0, 'over_average': 2.0,
                                      'over_bare_delivery': 12.0, 'over_own_delivery': 6.0}
    assert 'bare_delivery' not in ratios


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
