"""Simulated captures per second at the target resolution (numpy and torch paths)."""
import time

from neural_ae.core import sensor as S
import numpy as np
import torch


def _median_s(fn, reps: int) -> tuple:
    fn()  # warm-up
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), float(np.percentile(times, 90))


def run(quick: bool = False) -> dict:
    """Time one 1936x1216 raw capture: exact Poisson (numpy), noiseless, and torch CPU."""
    sensor = S.load_sensor('imx249')
    rng = np.random.default_rng(0)
    phi = rng.uniform(1e4, 1e6, size=(sensor.height, sensor.width))
    reps = 5 if quick else 20
    poisson, poisson_p90 = _median_s(lambda: S.capture(phi, 0.004, 1.0, sensor, rng), reps)
    clean, _ = _median_s(lambda: S.capture(phi, 0.004, 1.0, sensor, rng, noise=False), reps)
    phi_t = torch.from_numpy(phi).float()[None]
    e = torch.tensor(0.004)
    with torch.no_grad():
        torch_s, _ = _median_s(lambda: S.capture_torch(phi_t, e, sensor), reps)
    return {
        'resolution': [sensor.height, sensor.width],
        'numpy_capture_ms_median': round(poisson * 1e3, 2),
        'numpy_capture_ms_p90': round(poisson_p90 * 1e3, 2),
        'numpy_captures_per_s': round(1.0 / poisson, 2),
        'numpy_noiseless_capture_ms': round(clean * 1e3, 2),
        'noise_cost_ratio': round(poisson / clean, 2),
        'torch_cpu_capture_ms': round(torch_s * 1e3, 2),
        'torch_over_numpy_ratio': round(torch_s / poisson, 2),
        'reference': 'noiseless numpy capture measured in the same run',
    }
