"""The replay bench at tiny sizes: frames/s and the ratio to real time exist and are finite."""
import math

from neural_ae.benchmarks import replay
from neural_ae.benchmarks._common import shipped_model
from neural_ae.core.controllers import get_spec


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and \
        math.isfinite(value)


def test_replay_speed_ratio():
    res = replay.measure_replay(64, 96, 'average', n_frames=6)
    assert res['frames'] == 6
    assert _finite(res['frames_per_s']) and res['frames_per_s'] > 0
    assert _finite(res['realtime_ratio']) and res['realtime_ratio'] > 0


def test_shipped_models_come_from_the_registry():
    for name in ('histogram_nn', 'hybrid_nn'):
        path = shipped_model(name)
        assert path.name == get_spec(name).default_model
        assert path.is_absolute() and path.is_file(), path


def test_suite_cases_at_tiny_sizes():
    """Average AE, Histogram NN and Hybrid NN (shipped model + its detector), two sizes."""
    out = replay.replay_cases(True, full=(64, 96), small=(32, 48))
    assert set(out) == {'average_64x96', 'average_32x48', 'histogram_nn_64x96',
                        'histogram_nn_32x48', 'hybrid_nn_64x96', 'hybrid_nn_32x48'}
    for key, res in out.items():
        assert 'error' not in res, (key, res)
        assert _finite(res['realtime_ratio']) and res['realtime_ratio'] > 0, (key, res)
    assert out['hybrid_nn_64x96']['detector'] and not out['average_64x96']['detector']
    assert not out['histogram_nn_64x96']['detector']
    assert out['hybrid_nn_32x48']['frames'] == 6
