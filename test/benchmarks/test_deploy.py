"""The deploy bench suite: torch and onnxruntime timed on the same inputs, ratio from both."""
import math

from neural_ae.benchmarks import deploy
from neural_ae.benchmarks._common import shipped_model
import pytest


def test_histogram_case_times_both_backends(tmp_path):
    ck = shipped_model('histogram_nn')
    if not ck.is_file():
        pytest.fail(f'shipped model {ck} is missing')
    out = deploy._case(ck, 'exposure_net', str(tmp_path), reps=3, gpu=False)
    assert out['inputs'] == {'hist': [1, 256, 59]}
    assert out['check']['u_max_rel_diff'] <= 1e-4
    for key in ('torch_cpu', 'onnxruntime_cpu'):
        assert out[key]['repeats'] == 3 and out[key]['median_ms'] > 0
        assert out[key]['p90_ms'] >= out[key]['median_ms']
    assert out['ratio_ort_vs_torch'] == pytest.approx(
        out['onnxruntime_cpu']['median_ms'] / out['torch_cpu']['median_ms'], rel=1e-2)
    assert 'torch_cuda' not in out and math.isfinite(out['ratio_ort_vs_torch'])


def test_suite_lists_every_shipped_network():
    assert [k for k, _, _ in deploy.NETWORKS] == ['histogram_nn', 'semantic_nn', 'hybrid_nn',
                                                  'detector']
