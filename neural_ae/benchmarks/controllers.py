"""
Controller decision latency on the CPU at the target resolution (1936x1216, 12-bit).

One ``Controller.step`` per call, i.e. everything a controller does per frame:

- ``histogram_nn``: multi-scale histogram of the raw frame + Histogram NN + EMA + split;
- ``hybrid_nn_head``: histogram + Hybrid NN given a precomputed backbone feature map
  ``(1, 128, 1216/8, 1936/8) = (1, 128, 152, 242)`` (the backbone pass is the detector's
  cost, shared) + EMA + split;
- ``personalized``: the personalized policy (Yang et al. 2018): Bayer binning to
  256 px, fixed ISP, 128 x 128 RGB, SqueezeNet to fire7 + adaptive metering, split
  (the paper: 17 ms on an iPhone 7); ``personalized_vs_histogram_nn`` is the ratio of
  the medians in the same run;
- ``average`` and ``gradient``: the baselines at the same size, as references;
- ``multiscale_histogram``: the histogram alone (part of both network cases).

Untrained networks (latency does not depend on the weights). Torch runs with one thread;
the cases are timed in interleaved rounds after warm-up; median and 90th percentile [ms].
"""
import time

from neural_ae.benchmarks._common import bench_frame, one_torch_thread, summary_ms
from neural_ae.core.controllers import (ControllerOptions, ExposureSetting, get_spec,
                                        make_controller)
from neural_ae.core.sensor import load_sensor
import torch

CASES = (('histogram_nn', 'histogram_nn'), ('hybrid_nn_head', 'hybrid_nn'),
         ('personalized', 'personalized'), ('average', 'average'), ('gradient', 'gradient'))
"""``(key, controller)`` of the timed controllers; the registry says which get features."""


def run(quick: bool = False) -> dict:
    """Time one decision of each controller; see the module docstring."""
    with one_torch_thread():
        return _run(quick)


def _run(quick: bool) -> dict:
    sensor = load_sensor('imx249')
    raw = bench_frame(sensor)
    used = ExposureSetting(20000.0, 0.0)
    options = ControllerOptions()
    feats = torch.randn(1, 128, sensor.height // 8, sensor.width // 8,
                        generator=torch.Generator().manual_seed(0))
    cases = {}
    notes = {}
    for key, name in CASES:
        try:
            c = make_controller(name, options, sensor=sensor)
        except Exception as err:  # noqa: BLE001 - report a missing piece, time the rest
            notes[key] = f'unavailable: {type(err).__name__}: {err}'
            continue
        c.reset(used)
        cases[key] = (c, feats if get_spec(name).needs_features else None)
    if 'histogram_nn' in cases:
        hist_fn = cases['histogram_nn'][0].histogram
        cases['multiscale_histogram'] = (None, hist_fn)
    reps = 8 if quick else 40
    times = {k: [] for k in cases}

    def call(c, extra):
        if c is None:
            extra(raw)
        else:
            c.reset(used)
            c.step(raw, used, features=extra)

    for c, extra in cases.values():
        for _ in range(2):
            call(c, extra)
    for _ in range(reps):
        for key, (c, extra) in cases.items():
            t0 = time.perf_counter()
            call(c, extra)
            times[key].append((time.perf_counter() - t0) * 1e3)
    out = {'resolution': [sensor.height, sensor.width], 'torch_threads': 1,
           'repeats': reps,
           'feature_map': [1, 128, sensor.height // 8, sensor.width // 8]}
    for key, ts in times.items():
        out[key] = summary_ms(ts)
    if 'personalized' in out and 'histogram_nn' in out:
        out['personalized_vs_histogram_nn'] = round(
            out['personalized']['median_ms'] / out['histogram_nn']['median_ms'], 2)
    out.update(notes)
    return out
