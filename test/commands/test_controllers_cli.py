"""``neural-ae controllers`` table and plot; ``bench --suite controllers`` JSON."""
import json

from neural_ae import cli


def test_controllers_command_prints_metrics_and_writes_plot(tmp_path, capsys):
    rc = cli.main(['controllers', '--frames', '24', '--height', '64', '--width', '96',
                   '--out', str(tmp_path), '--latency', '1'])
    assert rc == 0
    text = capsys.readouterr().out
    for word in ('conv [fr]', 'fixed', 'average', 'gradient', 'plot:'):
        assert word in text
    png = tmp_path / 'exposure_tunnel_exit.png'
    assert png.exists() and png.stat().st_size > 10_000
    report = json.loads((tmp_path / 'metrics_tunnel_exit.json').read_text())
    run = report['controllers']['average']
    assert run['frames']['latency_frames'] == 1 and len(run['frames']['e_s']) == 24
    assert set(run['metrics']['summary']) >= {'frames_to_converge', 'overshoot_ev',
                                              'oscillations', 'flicker_ev', 'saturated_time'}


def test_unknown_controller_is_one_line_error(capsys):
    assert cli.main(['controllers', '--controllers', 'fixed,magic']) == 2
    err = capsys.readouterr().err
    assert 'magic' in err and err.count('\n') == 1


def test_bench_controllers_suite_reports_median_and_p90(capsys):
    assert cli.main(['bench', '--suite', 'controllers', '--quick']) == 0
    fig = json.loads(capsys.readouterr().out)['suites']['controllers']
    assert fig['resolution'] == [1216, 1936] and fig['feature_map'] == [1, 128, 152, 242]
    for key in ('histogram_nn', 'hybrid_nn_head', 'average', 'gradient'):
        assert 0 < fig[key]['median_ms'] <= fig[key]['p90_ms']
