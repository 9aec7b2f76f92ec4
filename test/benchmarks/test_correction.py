"""The correction bench suite (issue 14): figures measured in the same run, as ratios."""
import math

from neural_ae.benchmarks import correction
from neural_ae.core.checkpoints import resolve_model_path


def test_correction_suite_times_both_networks_against_the_detector():
    res = correction.run(quick=True)
    assert res['frame'] == [192, 320]
    assert res['detector']['repeats'] == 5 and res['detector']['median_ms'] > 0
    for name in ('encdec', 'pix2pix'):
        fig = res[name]
        assert math.isfinite(fig['over_detector']) and fig['over_detector'] > 0
        assert fig['over_detector'] == round(fig['median_ms'] / res['detector']['median_ms'], 3)
        assert fig['untrained'] == (not resolve_model_path(f'correction_{name}.pt').is_file())
        assert fig['params'] > 1000
        hist = res['histogram_nn']['median_ms']         # the node's decision, same rounds
        assert hist > 0 and fig['over_histogram_nn'] == round(fig['median_ms'] / hist, 3)
