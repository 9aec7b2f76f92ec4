"""The camera_sim bench at a tiny size: every frame is accounted for, the figures are sane."""
import os

from neural_ae.benchmarks import camera_sim


def test_camera_sim_realtime_figures_at_a_tiny_size():
    domain = 1 + (int(os.environ.get('ROS_DOMAIN_ID', '100')) + 77) % 200
    res = camera_sim.measure_camera_sim(64, 96, n_frames=12, rate_hz=30.0, domain_id=domain)
    assert res['finished'] and res['frames'] == 12
    assert 0 <= res['frames_late'] <= 12
    assert res['late_fraction'] == round(res['frames_late'] / 12, 4)
    assert res['delay_ms']['n'] == 12 and res['delay_ms']['median_ms'] >= 0
    assert res['frames_per_s'] > 0 and res['rate_ratio'] > 0
    assert res['frames_received_by_subscriber'] >= 1


def test_capture_reference_has_its_repeats():
    ref = camera_sim.capture_reference(64, 96, repeats=3)
    assert ref['repeats'] == 3 and ref['median_ms'] > 0
