"""
Replay speed against real time (``neural-ae bench --suite replay``).

:func:`measure_replay`: frames/s of :func:`neural_ae.core.replay.replay_frames` (closed
loop: sensor simulation, controller, detector when given) over synthetic radiance frames,
divided by the 30 fps of a recording: > 1 is faster than real time. The suite runs the
Average AE, the Histogram NN (its shipped model file; issue 15 asks >= 1x at full
resolution) and the Hybrid NN (its shipped model file, named by the controller registry,
with that file's ISP + detector) at the target resolution (1216x1936) and at the
detector's training size (192x320).

The figures are those the ``ros_latency`` suite reported under ``replay`` and
``replay_torch_threads`` before it became ROS-only; the keys are unchanged. Nothing here
asserts a time: read ``realtime_ratio``.
"""
import math
import time
from typing import Optional

from neural_ae.benchmarks._common import latency_stats, radiance, ratio, shipped_model
from neural_ae.core.controllers import build_controller, get_spec
from neural_ae.core.replay import replay_frames
from neural_ae.core.sensor import load_sensor

RECORDING_FPS = 30.0
"""Frame rate of a recording: the real-time reference."""

FULL = (1216, 1936)
"""Target resolution (height, width)."""
SMALL = (192, 320)
"""Detector training resolution (height, width)."""


def measure_replay(height: int, width: int, controller: str = 'average', n_frames: int = 20,
                   model: Optional[str] = None, perception=None,
                   recording_fps: float = RECORDING_FPS) -> dict:
    """
    Frames/s of ``replay_frames`` over ``n_frames`` synthetic frames, and / ``recording_fps``.

    The illumination steps up 8x halfway so the loop has something to do. ``perception``
    (a loaded detector) runs on every frame, as ``neural-ae replay --detector`` does.
    ``model``: the model file of a trained controller (empty: the registry's default).
    One untimed frame with a throwaway controller first, so torch's first-call costs are
    out.
    """
    sensor = load_sensor('imx249')
    phi = radiance(height, width, seed=2)
    bright = phi * 8.0
    step_ns = int(1e9 / recording_fps)
    replay_frames([(0, phi)], build_controller(controller, None, sensor, model), sensor=sensor,
                  perception=perception)
    ctrl = build_controller(controller, None, sensor, model)
    frames = ((k * step_ns, phi if k < n_frames // 2 else bright) for k in range(n_frames))
    t0 = time.perf_counter()
    out = replay_frames(frames, ctrl, sensor=sensor, perception=perception)
    wall = time.perf_counter() - t0
    n = out.result.n_frames
    fps = n / wall if wall > 0 else math.nan
    return {'controller': controller, 'resolution': [height, width], 'frames': n,
            'detector': perception is not None, 'wall_s': round(wall, 3),
            'frames_per_s': round(fps, 3), 'recording_fps': recording_fps,
            'realtime_ratio': ratio(fps, recording_fps),
            'controller_step_median_ms': latency_stats(out.result.controller_ms)['median_ms']}


def replay_cases(quick: bool, full: tuple = FULL, small: tuple = SMALL) -> dict:
    """
    ``<controller>_<h>x<w> -> measure_replay`` figures of the suite (or ``{'error': ...}``).

    A trained controller replays with its shipped model file; one that needs backbone
    features also with that file's ISP + detector (loaded once).
    """
    from neural_ae.core.models.perception import load_perception

    n = {'average': (10, 40) if quick else (30, 150),
         'histogram_nn': (10, 40) if quick else (30, 150),
         'hybrid_nn': (2, 6) if quick else (5, 30)}
    out = {}
    for name, counts in n.items():
        perception = None
        for size, frames in zip((full, small), counts):
            key = f'{name}_{size[0]}x{size[1]}'
            try:
                spec = get_spec(name)
                kw = {}
                if spec.trained:
                    kw['model'] = str(shipped_model(name))
                if spec.needs_features:
                    if perception is None:
                        perception = load_perception(kw['model'], load_sensor('imx249'))
                    kw['perception'] = perception
                out[key] = measure_replay(size[0], size[1], name, frames, **kw)
            except Exception as err:  # noqa: BLE001 - report a failed case, run the rest
                out[key] = {'error': f'{type(err).__name__}: {err}'}
    return out


def run(quick: bool = False) -> dict:
    """Replay speed of the suite's cases; see the module docstring."""
    import torch

    return {'replay_torch_threads': torch.get_num_threads(), 'replay': replay_cases(quick)}
