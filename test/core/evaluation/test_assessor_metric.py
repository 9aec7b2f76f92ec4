"""The assessor as a no-reference metric of ``neural-ae evaluate`` (issue 13)."""
import math

from neural_ae.core.errors import EvaluationError
from neural_ae.core.evaluation import report as R
from neural_ae.core.evaluation.assessor import (correlation, DEFAULT_ASSESSOR, FrameAssessor,
                                                load_frame_assessor, score_summary)
from neural_ae.core.evaluation.config import EvalConfig, load_eval_config
from neural_ae.core.evaluation.drives import run_drive_protocol, step_drive
from neural_ae.core.evaluation.methods import Method
from neural_ae.core.evaluation.shift import run_shift_protocol
from neural_ae.core.models.perception import PerceptionResult
from neural_ae.core.paths import config_dir
from neural_ae.core.sensor import load_sensor
import numpy as np
import pytest
from scipy import stats
import torch

H, W = 64, 96
SENSOR = load_sensor('imx249')
GT_BOXES = np.array([[30, 20, 50, 44]], np.float32)
GT_LABELS = np.array([3], np.int64)


def _radiance(seed: int, scale: float = 1.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rad = np.full((H, W, 3), 2e5, np.float32) * rng.uniform(0.5, 1.5, (H, W, 1))
    rad[20:44, 30:50] = 3e6
    rad[:8] = 5e7
    return (rad * scale).astype(np.float32)


def _pairs(n: int = 2) -> list:
    return [{'rad1': _radiance(i), 'rad2': _radiance(i, 1.02), 'boxes': GT_BOXES.copy(),
             'labels': GT_LABELS.copy(), 'key': i} for i in range(n)]


class FakePerception:
    """Detections whose confidence depends on exposure (mid-grey is best)."""

    source = 'fake detector'

    def _quality(self, raw) -> float:
        level = (float(np.mean(raw[24:40, 34:46])) - 64.0) / (4095.0 - 64.0)
        return float(math.exp(-0.5 * math.log2(max(level, 1e-4) / 0.4) ** 2))

    def detect(self, raw):
        q = self._quality(raw)
        dets = {'boxes': np.array([[30, 20, 50, 44], [0, 50, 12, 62]], np.float64),
                'scores': np.array([q, 1.0 - q]), 'labels': np.array([3, 3], np.int64)}
        return dets, torch.zeros(1, 128, H // 8, W // 8)

    def features(self, raw):
        return torch.zeros(1, 128, H // 8, W // 8)

    def run(self, raw):
        dets, layer2 = self.detect(raw)
        return PerceptionResult(dets['boxes'], dets['labels'], dets['scores'], layer2)


class FakeAssessor:
    """Score = 10 minus the distance of the mean raw level from mid-grey (cheap, exact)."""

    def __init__(self):
        self.calls = 0

    def score(self, raw) -> float:
        self.calls += 1
        level = (float(np.mean(raw)) - 64.0) / (4095.0 - 64.0)
        return 10.0 - abs(math.log2(max(level, 1e-4) / 0.18))

    def describe(self) -> dict:
        return {'model': 'fake', 'width_px': W}


def _methods(names=('fixed', 'average')):
    perc = FakePerception()
    return [Method(n, perc, 'fake detector') for n in names]


def test_correlation_is_scipys_and_nan_when_undefined():
    rng = np.random.default_rng(0)
    s = rng.normal(size=20)
    a = s + rng.normal(scale=0.5, size=20)
    c = correlation(s, a)
    assert c['n'] == 20
    assert c['srcc'] == pytest.approx(stats.spearmanr(s, a).statistic)
    assert c['plcc'] == pytest.approx(stats.pearsonr(s, a).statistic)
    a_nan = a.copy()
    a_nan[:3] = np.nan                                 # frames without ground truth
    assert correlation(s, a_nan)['n'] == 17
    assert math.isnan(correlation([1.0, 2.0], [0.1, 0.2])['srcc'])
    assert math.isnan(correlation([1.0] * 5, [0.1, 0.2, 0.3, 0.4, 0.5])['plcc'])
    with pytest.raises(EvaluationError, match='scores'):
        correlation([1.0, 2.0], [1.0])
    summ = score_summary([(8.0, 0.5), (6.0, math.nan), (7.0, 0.25)])
    assert summ['score_mean'] == pytest.approx(7.0) and summ['n_frames'] == 3
    assert summ['n'] == 2


def test_config_key_defaults_to_the_shipped_model_and_is_documented():
    assert EvalConfig().assessor_model == DEFAULT_ASSESSOR
    assert load_eval_config(config_dir() / 'evaluate.yaml').assessor_model == DEFAULT_ASSESSOR
    text = (config_dir() / 'evaluate.yaml').read_text()
    line = next(t for t in text.splitlines() if t.startswith('assessor_model:'))
    assert '#' in line
    assert load_eval_config(None, assessor_model='').assessor_model == ''
    with pytest.raises(EvaluationError, match='assessor_model'):
        EvalConfig(assessor_model=3)


def test_load_frame_assessor_off_default_and_bad(tmp_path):
    assert load_frame_assessor('', SENSOR) == (None, None)
    bad = tmp_path / 'bad.pt'
    bad.write_bytes(b'not a model')
    with pytest.raises(EvaluationError, match='assessor_model'):
        load_frame_assessor(str(bad), SENSOR)
    with pytest.raises(EvaluationError, match='assessor_model'):
        load_frame_assessor(str(tmp_path / 'missing.pt'), SENSOR)
    fa, why = load_frame_assessor(DEFAULT_ASSESSOR, SENSOR)
    if fa is None:                                     # the shipped model is optional
        assert 'not found' in why
        return
    assert isinstance(fa, FrameAssessor) and why is None
    raw = np.full((H, W), 1500.0, np.float32)
    dark = np.full((H, W), 70.0, np.float32)
    rgb = fa.rgb(raw)
    assert rgb.shape == (H, W, 3) and np.allclose(rgb * 255, np.round(rgb * 255), atol=1e-3)
    assert 0.0 <= fa.score(raw) <= 10.0 and 0.0 <= fa.score(dark) <= 10.0
    assert fa.describe()['model'].endswith(DEFAULT_ASSESSOR)


def test_shift_figures_are_unchanged_and_frame2_is_scored():
    methods = _methods()
    pairs = _pairs(2)
    plain = run_shift_protocol(pairs, methods, SENSOR, levels=(1.5, 10.0), repeats=2)
    fa = FakeAssessor()
    scored = run_shift_protocol(pairs, methods, SENSOR, levels=(1.5, 10.0), repeats=2,
                                assessor=fa)
    assert 'assessor' not in plain
    assert scored['methods'] == plain['methods']       # no other figure moves
    # every frame 2 of every method: 2 pairs x 2 flips x 2 repeats x 2 levels x 2 methods
    assert fa.calls == 32
    a = scored['assessor']
    assert a['model'] == 'fake' and set(a['methods']) == {'fixed', 'average'}
    lvl = a['methods']['average']['levels']['10']
    assert lvl['n_frames'] == 8 and lvl['n'] == 8 and 0 <= lvl['score_mean'] <= 10
    assert a['methods']['average']['all']['n_frames'] == 16 and a['all']['n_frames'] == 32
    md = R.shift_table_md(scored)
    assert 'score k = 10' in md and 'SRCC score/AP' in md
    assert R.shift_table_md(plain) == R.shift_table_md({**scored, 'assessor': None})
    assert 'SRCC' not in R.shift_table_md(plain)
    text = R.assessor_shift_text(scored)
    assert 'all methods pooled' in text and 'Average AE' in text


def test_shift_assessor_under_two_shards_matches_one_process():
    from neural_ae.core.evaluation.distributed import Shard

    methods = _methods(('average',))
    pairs = _pairs(3)
    one = run_shift_protocol(pairs, methods, SENSOR, levels=(4.0,), repeats=1,
                             assessor=FakeAssessor())
    parts: dict = {}                                   # rank 1 runs first, rank 0 sees both

    class Fake(Shard):
        def gather(self, obj):
            parts[self.rank] = obj
            return [parts.get(r, {}) for r in range(self.world)]

    run_shift_protocol(pairs, methods, SENSOR, levels=(4.0,), repeats=1,
                       assessor=FakeAssessor(), shard=Fake(1, 2))
    two = run_shift_protocol(pairs, methods, SENSOR, levels=(4.0,), repeats=1,
                             assessor=FakeAssessor(), shard=Fake(0, 2))
    assert two['assessor'] == one['assessor'] and two['methods'] == one['methods']


def test_drive_frames_are_scored_without_changing_the_loop(tmp_path):
    drive = step_drive(2_100_000, n_frames=12, factor=10.0, height=H, width=W, sensor=SENSOR)
    methods = _methods(('average',))
    plain = run_drive_protocol([drive], methods, SENSOR, repeats=2)
    fa = FakeAssessor()
    scored = run_drive_protocol([drive], methods, SENSOR, repeats=2, assessor=fa)
    a, b = plain.drives[0].runs['average'], scored.drives[0].runs['average']
    assert a.assessed is None and len(b.assessed) == 12 and fa.calls == 12   # first repeat
    assert b.map50_repeats == a.map50_repeats
    assert list(b.result.e_s) == list(a.result.e_s)
    assert all(0 <= ap <= 1 for _, ap in b.assessed)
    md = R.drive_table_md(scored)
    assert '| score | SRCC score/AP |' in md and 'SRCC' not in R.drive_table_md(plain)
    assert 'all pooled' in R.assessor_drive_text(scored)
    written = R.write_report(tmp_path / 'rep', {'command': 'test'}, None, scored)
    md = written['report'].read_text()
    assert 'score / SRCC score/AP' in md
    import json

    doc = json.loads(written['results'].read_text())
    run = doc['drives']['drives'][0]['runs']['average']
    assert run['assessor']['n_frames'] == 12 and len(run['per_frame']['assessor_score']) == 12


def test_evaluate_assessor_option_off_gives_no_columns(tmp_path, capsys):
    from neural_ae.cli import main

    cfg = tmp_path / 'ev.yaml'
    cfg.write_text(f'models_dir: {tmp_path / "none"}\nheight: {H}\nwidth: {W}\n'
                   'shift_pairs: 1\nshift_repeats: 1\nshift_levels: [4]\noracle: false\n'
                   'causal_ceiling: false\n')
    rc = main(['evaluate', '--config', str(cfg), '--protocol', 'shift', '--methods', 'fixed',
               '--allow-untrained', '--no-progress', '--assessor-model', '',
               '--out', str(tmp_path / 'off')])
    assert rc == 0, capsys.readouterr().err
    assert 'score k =' not in (tmp_path / 'off' / 'report.md').read_text()
    rc = main(['evaluate', '--config', str(cfg), '--protocol', 'shift', '--methods', 'fixed',
               '--allow-untrained', '--no-progress', '--assessor-model',
               str(tmp_path / 'missing.pt'), '--out', str(tmp_path / 'bad')])
    assert rc == 2 and 'assessor_model' in capsys.readouterr().err
