"""Pieces shared by the benchmark suites: a reproducible raw test frame, timing summaries."""
from neural_ae.core.sensor import capture, load_sensor, SensorConfig
import numpy as np


def bench_frame(sensor: SensorConfig = None, seed: int = 0) -> np.ndarray:
    """
    Return a full-size raw frame of a random-ish scene, mean level mid-range.

    A smooth pattern times log-normal 8x8 blocks, captured with noise at 20 ms: enough
    structure that histograms and gradients are not degenerate.
    """
    sensor = sensor or load_sensor('imx249')
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:sensor.height, 0:sensor.width]
    blocks = rng.lognormal(0.0, 0.8, (8, 8))
    blocks = blocks.repeat(-(-sensor.height // 8), 0)[:sensor.height]
    blocks = blocks.repeat(-(-sensor.width // 8), 1)[:, :sensor.width]
    phi = 2e5 * (1.2 + np.sin(xx / 97.0) * np.cos(yy / 61.0)) * blocks
    return capture(phi, 0.02, 1.0, sensor, rng)


def summary_ms(times_ms: list) -> dict:
    """Median and 90th percentile of a list of milliseconds."""
    return {'median_ms': round(float(np.median(times_ms)), 4),
            'p90_ms': round(float(np.percentile(times_ms, 90)), 4),
            'repeats': len(times_ms)}
