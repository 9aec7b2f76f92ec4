"""Monitor state machine and the judge on the shipped assessor (issue 13)."""
from neural_ae.core.assessment import ExposureJudge
from neural_ae.core.assessment.errors import AssessmentError
from neural_ae.core.assessment.labels import ExampleSpec, render_example, VAL_SEED_START
from neural_ae.core.assessment.monitor import ExposureMonitor
from neural_ae.core.errors import ModelError
import numpy as np
import pytest


def test_monitor_holds_n_frames():
    m = ExposureMonitor(0.3, 0.6, hold_frames=3)
    assert [m.update(0.5, 0.0).level for _ in range(4)] == ['OK', 'OK', 'WARN', 'WARN']
    assert [m.update(0.9, 0.0).level for _ in range(3)] == ['WARN', 'WARN', 'ERROR']
    # one good frame does not clear it, three do
    assert [m.update(0.0, 0.0).level for _ in range(3)] == ['ERROR', 'ERROR', 'OK']
    # a single odd frame never raises it
    assert {m.update(0.0, 0.9 if i % 2 else 0.0).level for i in range(10)} == {'OK'}
    s = m.update(0.0, 0.5)
    assert s.frame_class == 'WARN' and s.run == 2      # follows the bad frame i = 9
    with pytest.raises(AssessmentError, match='warn_share'):
        ExposureMonitor(0.7, 0.6)


@pytest.fixture(scope='module')
def judge():
    return ExposureJudge(width=192)   # models/assessor_demo.pt (whatever is shipped)


def test_judge_api_on_rgb8(judge):
    frames = {s: (render_example(ExampleSpec(VAL_SEED_START + 3, s, 0.0, 2), 128, 192).rgb
                  * 255 + 0.5).astype(np.uint8) for s in (-4.0, 0.0, 4.0)}
    res = {s: judge.assess(f) for s, f in frames.items()}
    for a in res.values():
        assert a.label in ('under', 'well', 'over') and 0 <= a.score <= 10
        assert a.residual.shape == (128, 192) and a.residual.dtype == np.float32
    assert judge.label(frames[4.0]) == 'over' and judge.label(frames[-4.0]) == 'under'
    assert res[0.0].score > max(res[-4.0].score, res[4.0].score)
    assert res[4.0].over_share > res[4.0].under_share
    with pytest.raises(AssessmentError, match=r'\(H, W, 3\)'):
        judge.assess(np.zeros((4, 4), np.uint8))


def test_judge_refuses_foreign_file(tmp_path):
    p = tmp_path / 'x.pt'
    p.write_bytes(b'\x00' * 10)
    with pytest.raises(ModelError):
        ExposureJudge(p)
