"""The assessor bench suite (issue 13): both sizes and the Histogram NN in one run, as ratios."""
import math

from neural_ae.benchmarks import assessor


def test_assessor_suite_times_both_sizes_against_the_histogram_nn():
    res = assessor.run(quick=True)
    ref = res['histogram_nn']['median_ms']
    assert res['histogram_nn']['repeats'] == 5 and ref > 0
    assert res['assessor_256']['input'] == [256, 256]
    assert res['assessor_node']['working_size'][1] == assessor.NODE_WIDTH
    for key in ('assessor_256', 'assessor_node'):
        fig = res[key]
        assert math.isfinite(fig['over_histogram_nn'])
        assert fig['over_histogram_nn'] == round(fig['median_ms'] / ref, 3)
    assert res['params'] > 1000 and res['torch_threads'] == 1
