"""
Exposure-assessor latency (issue 13): CPU ms per frame, the Histogram NN in the same run.

Timed in interleaved rounds with one torch thread, after warm-up:

- ``assessor_256``: the shipped P-IEANet (``models/assessor_demo.pt``; an untrained
  network of the same config when missing, flagged ``untrained``) on one 256 x 256 RGB
  frame (the paper's size; paper: 83 ms on an RTX 3090);
- ``assessor_node``: what ``exposure_monitor_node`` does per frame at its default
  working width (``width`` 192 px): area resize of a full-size sensor RGB frame to
  the working size (aspect kept) + the network + score and area shares;
- ``histogram_nn``: one decision of the Histogram NN controller on the full-size raw
  frame (multi-scale histogram + network + smoothing + split), the reference.

Figures: median / p90 [ms] and ``over_histogram_nn``, the ratio of the medians.
"""
from neural_ae.benchmarks._common import histogram_nn_decision, one_torch_thread, ratio, \
    time_interleaved
import numpy as np

NODE_WIDTH = 192
"""``exposure_monitor_node``'s default ``width`` [px]."""


def _judge(width: int):
    from neural_ae.core.assessment.judge import DEFAULT_MODEL, ExposureJudge
    from neural_ae.core.assessment.network import AssessorConfig, build_assessor
    from neural_ae.core.checkpoints import resolve_model_path

    path = resolve_model_path(DEFAULT_MODEL)
    if path.is_file():
        return ExposureJudge(path, width=width), False
    model = build_assessor(AssessorConfig())
    return ExposureJudge(model=model, meta={'path': 'untrained'}, width=width), True


def run(quick: bool = False) -> dict:
    """Time the assessor at both sizes and the Histogram NN; return the figures."""
    with one_torch_thread():
        return _run(quick)


def _run(quick: bool) -> dict:
    from neural_ae.core.assessment.network import parameter_count
    from neural_ae.core.sensor import load_sensor

    sensor = load_sensor('imx249')
    rng = np.random.default_rng(0)
    rgb256 = rng.random((256, 256, 3), dtype=np.float32)
    full = rng.random((sensor.height, sensor.width, 3), dtype=np.float32)
    j256, untrained = _judge(256)
    jnode, _ = _judge(NODE_WIDTH)
    decide = histogram_nn_decision(sensor)
    reps = 5 if quick else 30
    times = time_interleaved({'assessor_256': (lambda: j256.assess(rgb256), reps, None),
                              'assessor_node': (lambda: jnode.assess(full), reps, None),
                              'histogram_nn': (decide, reps, None)})
    node_size = list(jnode.residual(full).shape)
    ref = times['histogram_nn']['median_ms']
    out = {'torch_threads': 1, 'model': str(j256.meta.get('path', '')),
           'untrained': untrained, 'params': parameter_count(j256.model),
           'histogram_nn': {**times['histogram_nn'],
                            'raw_frame': [sensor.height, sensor.width]},
           'assessor_256': {**times['assessor_256'], 'input': [256, 256],
                            'over_histogram_nn': ratio(times['assessor_256']['median_ms'],
                                                       ref)},
           'assessor_node': {**times['assessor_node'], 'input': [sensor.height, sensor.width],
                             'working_size': node_size,
                             'over_histogram_nn': ratio(times['assessor_node']['median_ms'],
                                                        ref)}}
    return out
