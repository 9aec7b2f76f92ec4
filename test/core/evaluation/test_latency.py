"""Drive protocol per actuation latency (issue 11): config, --latency, tables, step response."""
import json
import math

from neural_ae.cli import build_parser, main
from neural_ae.core.errors import EvaluationError
from neural_ae.core.evaluation import report as R
from neural_ae.core.evaluation.config import EvalConfig, load_eval_config, parse_latencies
from neural_ae.core.evaluation.drives import run_drive_latencies, step_drive, step_response
from neural_ae.core.evaluation.methods import Method
from neural_ae.core.models.perception import PerceptionResult
from neural_ae.core.paths import config_dir
from neural_ae.core.sensor import load_sensor
import numpy as np
import pytest
import torch

H, W = 64, 96
SENSOR = load_sensor('imx249')


class FakePerception:
    """One GT-shaped detection scored by how mid-grey the box region is (no trained model)."""

    source = 'fake detector'

    def _quality(self, raw) -> float:
        level = (float(np.mean(raw[24:40, 34:46])) - 64.0) / (4095.0 - 64.0)
        return float(math.exp(-0.5 * math.log2(max(level, 1e-4) / 0.4) ** 2))

    def detect(self, raw):
        q = self._quality(raw)
        dets = {'boxes': np.array([[30, 20, 50, 44]], np.float64), 'scores': np.array([q]),
                'labels': np.array([3], np.int64)}
        return dets, torch.zeros(1, 128, H // 8, W // 8)

    def features(self, raw):
        return torch.zeros(1, 128, H // 8, W // 8)

    def run(self, raw):
        dets, layer2 = self.detect(raw)
        return PerceptionResult(dets['boxes'], dets['labels'], dets['scores'], layer2)


def _step(name='step10x', n=12):
    d = step_drive(2_100_000, n_frames=n, factor=10.0, height=H, width=W, sensor=SENSOR)
    d.name = name
    return d


def _methods(names=('fixed', 'average')):
    perc = FakePerception()
    return [Method(n, perc, 'fake detector') for n in names]


# --------------------------------------------------------------------------- config, CLI


def test_latency_config_takes_a_list_or_an_int():
    assert EvalConfig().latency_frames == (0, 1, 2)
    assert load_eval_config(config_dir() / 'evaluate.yaml').latency_frames == (0, 1, 2)
    assert EvalConfig(latency_frames=2).latency_frames == (2,)
    assert EvalConfig(latency_frames=[0, 1, 30]).latency_frames == (0, 1, 30)
    assert EvalConfig(latency_frames=[2, 0]).to_dict()['latency_frames'] == [2, 0]
    assert load_eval_config(config_dir() / 'evaluate.yaml',
                            latency_frames=(1, 2)).latency_frames == (1, 2)


@pytest.mark.parametrize('value, match', [
    (-1, r'latency -1 out of range; each must be in \[0, 30\]'),
    ([0, 31], r'latency 31 out of range'),
    ([], 'at least one latency'),
    ([1, 1], 'latency 1 given twice'),
    (1.5, 'must be integers'),
    (['1'], 'must be integers'),
    ([True], 'must be integers'),
])
def test_bad_latency_config_is_one_clear_line(value, match):
    with pytest.raises(EvaluationError, match=match) as err:
        EvalConfig(latency_frames=value)
    assert str(err.value).startswith('evaluate config: latency_frames')
    assert '\n' not in str(err.value)


def test_bad_latency_in_yaml(tmp_path):
    cfg = tmp_path / 'ev.yaml'
    cfg.write_text('latency_frames: [0, x]\n')
    with pytest.raises(EvaluationError, match='must be integers'):
        load_eval_config(cfg)


def test_latency_option_parses_a_comma_list():
    assert parse_latencies('0,1,2') == (0, 1, 2)
    assert parse_latencies(' 2 ') == (2,)
    assert parse_latencies('1, 0') == (1, 0)
    for text, match in (('0,,1', 'comma-separated integers'), ('a', 'comma-separated'),
                        ('1.5', 'comma-separated'), ('', 'comma-separated'),
                        ('0,31', 'out of range'), ('-1', 'out of range'),
                        ('2,2', 'given twice')):
        with pytest.raises(EvaluationError, match=match) as err:
            parse_latencies(text)
        assert str(err.value).startswith('--latency')
    args = build_parser().parse_args(['evaluate', '--latency', '0,2'])
    assert args.latency == '0,2'


@pytest.mark.parametrize('text', ['0,x', '40'])
def test_evaluate_refuses_a_bad_latency_before_running(tmp_path, capsys, text):
    rc = main(['evaluate', '--latency', text, '--protocol', 'drive', '--no-progress',
               '--out', str(tmp_path / 'out')])
    err = capsys.readouterr().err
    assert rc != 0 and '--latency' in err and 'Traceback' not in err
    assert len([line for line in err.splitlines() if '--latency' in line]) == 1
    assert not (tmp_path / 'out').exists()


# --------------------------------------------------------------------------- protocol, report


def test_two_latencies_give_two_result_sets_and_the_step_response(tmp_path):
    step = _step()
    results = run_drive_latencies([step], _methods(), SENSOR, latencies=(0, 2),
                                  keep_raw_for=())
    assert [r.latency_frames for r in results] == [0, 2]
    avg0 = results[0].drives[0].runs['average']
    avg2 = results[1].drives[0].runs['average']
    assert avg0.result.latency_frames == 0 and avg2.result.latency_frames == 2
    assert not np.allclose(avg0.result.e_s, avg2.result.e_s)
    y0, y2 = step_response(avg0), step_response(avg2)
    assert y0.size == y2.size == 4                  # frames 4..7 are at 10x (12 // 3 = 4)
    # the step frame itself was exposed with a setting chosen before the step
    assert abs(y0[0]) < 0.1 and abs(y2[0]) < 0.1
    # the correction for the step lands on the next frame at latency 0, two frames later
    # at latency 2 (frames 1 and 2 after the step still carry pre-step settings)
    assert y0[1] < -0.5 and y2[1] > -0.1 and y2[2] > -0.1 and y2[3] < -0.5
    assert step_response(results[0].drives[0].runs['fixed']) == pytest.approx(np.zeros(4))

    text = R.drive_tables_text(results)
    assert 'latency 0 frames' in text and 'latency 2 frames' in text
    assert text.count('step10x (seed') == 2
    md = R.drive_tables_md(results)
    assert md.count('#### latency') == 2 and md.index('latency 0') < md.index('latency 2')
    assert R.drive_tables_md(results[:1]) == R.drive_table_md(results[0])
    assert R.drive_tables_text(results[0]) == R.drive_table_text(results[0])

    written = R.write_report(tmp_path / 'rep', {'command': 'test'}, None, results, None,
                             None, SENSOR)
    png = tmp_path / 'rep' / 'drive_step_response.png'
    assert png in written['figures'] and png.stat().st_size > 5000
    report = written['report'].read_text()
    assert '](drive_step_response.png)' in report and '#### latency 2 frames' in report
    doc = json.loads(written['results'].read_text())
    assert doc['drives']['latency_frames'] == 0
    assert [d['latency_frames'] for d in doc['drives_by_latency']] == [0, 2]


def test_single_latency_report_keeps_todays_layout(tmp_path):
    results = run_drive_latencies([_step('tunnel_exit')], _methods(('average',)), SENSOR,
                                  latencies=0, keep_raw_for=())
    written = R.write_report(tmp_path / 'rep', {'command': 'test'}, None, results, None,
                             None, SENSOR)
    md = written['report'].read_text()
    assert 'latency 0 frames' not in md and R.drive_table_md(results[0]) in md
    assert 'Latency 0 frame(s)' in md
    doc = json.loads(written['results'].read_text())
    assert 'drives_by_latency' not in doc and doc['drives']['drives'][0]['name'] == 'tunnel_exit'
    # no step10x drive: no step-response figure
    assert not (tmp_path / 'rep' / 'drive_step_response.png').exists()
    assert R.plot_step_response(results, tmp_path / 'x.png') is None


def test_step_response_is_relative_to_the_frame_before_the_step():
    res = run_drive_latencies([_step(n=15)], _methods(('average',)), SENSOR, latencies=[1],
                              keep_raw_for=())
    run = res[0].drives[0].runs['average']
    y = step_response(run)
    a = 5                                           # 15 // 3
    e = run.result.e_s
    assert y.size == 5
    assert y == pytest.approx(np.log2(e[a:2 * a] / e[a - 1]))
    assert math.isfinite(y[-1]) and y[-1] < -1.0    # Average AE moved towards -log2(10)
