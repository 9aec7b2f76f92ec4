"""
Pieces shared by the benchmark suites.

A reproducible synthetic scene (:func:`radiance`) and raw test frame (:func:`bench_frame`),
timing summaries (:func:`summary_ms`: median / p90, :func:`time_interleaved`: cases
timed in interleaved rounds, :func:`latency_stats`: median / p99 /
mean), ratios of timings measured in the same run (:func:`ratio`) and the shipped model
file of a controller, named by the controller registry (:func:`shipped_model`).
"""
import contextlib
import math
from pathlib import Path
import time

from neural_ae.core.sensor import capture, load_sensor, SensorConfig
import numpy as np


def radiance(height: int, width: int, seed=0) -> np.ndarray:
    """
    Bayer-plane irradiance [e-/s]: a smooth pattern times log-normal 8x8 blocks.

    ``seed``: an int, or a numpy ``Generator`` that the blocks are drawn from (as is).
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    blocks = rng.lognormal(0.0, 0.8, (8, 8))
    blocks = blocks.repeat(-(-height // 8), 0)[:height].repeat(-(-width // 8), 1)[:, :width]
    return 2e5 * (1.2 + np.sin(xx / 97.0) * np.cos(yy / 61.0)) * blocks


def bench_frame(sensor: SensorConfig = None, seed: int = 0) -> np.ndarray:
    """
    Return a full-size raw frame of a random-ish scene, mean level mid-range.

    :func:`radiance` at the sensor's size, captured with noise at 20 ms (one generator
    for the scene and the noise): enough structure that histograms and gradients are not
    degenerate.
    """
    sensor = sensor or load_sensor('imx249')
    rng = np.random.default_rng(seed)
    phi = radiance(sensor.height, sensor.width, rng)
    return capture(phi, 0.02, 1.0, sensor, rng)


def summary_ms(times_ms: list) -> dict:
    """Median and 90th percentile of a list of milliseconds."""
    return {'median_ms': round(float(np.median(times_ms)), 4),
            'p90_ms': round(float(np.percentile(times_ms, 90)), 4),
            'repeats': len(times_ms)}


def time_interleaved(cases: dict) -> dict:
    """
    Time ``cases`` (name -> ``(fn, repeats, setup)``) in interleaved rounds, in ms.

    Each case is warmed up once; then round ``r`` runs every case that still has
    repetitions left, so a change of machine load hits all of them alike. ``setup``
    (or None) is a context-manager factory entered around each call (e.g. one thread).
    """
    times = {name: [] for name in cases}
    for fn, _, setup in cases.values():
        with setup() if setup else contextlib.nullcontext():
            fn()
    for r in range(max(repeats for _, repeats, _ in cases.values())):
        for name, (fn, repeats, setup) in cases.items():
            if r >= repeats:
                continue
            with setup() if setup else contextlib.nullcontext():
                t0 = time.perf_counter()
                fn()
                times[name].append((time.perf_counter() - t0) * 1e3)
    return {name: summary_ms(t) for name, t in times.items()}


def latency_stats(values) -> dict:
    """Median, p99, mean and count of ``values`` [ms] (NaN when empty)."""
    v = np.asarray(list(values), dtype=np.float64)
    if v.size == 0:
        return {'n': 0, 'median_ms': math.nan, 'p99_ms': math.nan, 'mean_ms': math.nan}
    return {'n': int(v.size), 'median_ms': round(float(np.median(v)), 3),
            'p99_ms': round(float(np.percentile(v, 99)), 3),
            'mean_ms': round(float(v.mean()), 3)}


def ratio(a: float, b: float) -> float:
    """Return ``a / b`` rounded to 3 decimals; NaN unless both are finite and ``b > 0``."""
    return round(a / b, 3) if math.isfinite(a) and math.isfinite(b) and b > 0 else math.nan


def shipped_model(controller: str) -> Path:
    """
    Absolute path of the registry's default model file of ``controller``.

    Resolved by :func:`neural_ae.core.checkpoints.resolve_model_path` (the package's
    ``models/`` folder); the file may be missing: callers check. Raises
    :class:`~neural_ae.core.errors.ModelError` for a controller without a default model
    and :class:`~neural_ae.core.errors.ControllerError` for an unknown name.
    """
    from neural_ae.core.checkpoints import resolve_model_path
    from neural_ae.core.controllers import get_spec

    return resolve_model_path(None, get_spec(controller).default_model).resolve()


@contextlib.contextmanager
def one_torch_thread():
    """Limit torch to one intra-op thread, restoring the setting afterwards."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def histogram_nn_decision(sensor: SensorConfig, raw: np.ndarray = None):
    """
    Return a callable making one Histogram NN decision on a full raw frame (the reference).

    The controller is reset before each call, so every call is a first decision
    (histograms + network + smoothing + split).
    """
    from neural_ae.core.controllers import ControllerOptions, ExposureSetting, make_controller

    raw = bench_frame(sensor) if raw is None else raw
    used = ExposureSetting(20000.0, 0.0)
    ctrl = make_controller('histogram_nn', ControllerOptions(), sensor=sensor)

    def decide():
        ctrl.reset(used)
        ctrl.step(raw, used)

    return decide
