"""``neural-ae sensor`` table and SNR plot; ``bench --suite sensor`` JSON."""
import json

from neural_ae import cli


def test_sensor_command_writes_plot_and_prints_table(tmp_path, capsys):
    out = tmp_path / 'snr.png'
    assert cli.main(['sensor', '--size', '64', '--snr-plot', str(out)]) == 0
    text = capsys.readouterr().out
    assert 'signal e-' in text and out.exists() and out.stat().st_size > 10_000


def test_bench_sensor_suite_reports_ratios(capsys):
    assert cli.main(['bench', '--suite', 'sensor', '--quick']) == 0
    report = json.loads(capsys.readouterr().out)
    fig = report['suites']['sensor']
    assert fig['resolution'] == [1216, 1936]
    assert fig['numpy_captures_per_s'] > 0 and fig['noise_cost_ratio'] > 0
    assert fig['speedup_vs_exact_poisson'] > 0 and fig['exact_poisson_ms']['repeats'] == 3


def test_unknown_preset_is_one_line_error(capsys):
    assert cli.main(['sensor', '--preset', 'nope']) == 2
    err = capsys.readouterr().err
    assert 'sensor preset not found' in err and err.count('\n') == 1
