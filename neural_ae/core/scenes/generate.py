"""
Generating scenes: the :class:`Scene` record, single frames, pairs, sequences, statistics.

Every generator is deterministic in its seed; see :mod:`neural_ae.core.scenes` for the
units, the geometry and the scenario names.
"""
from dataclasses import dataclass, field
from typing import Optional

from neural_ae.core import hdr
from neural_ae.core.errors import SceneError
from neural_ae.core.scenes.sampling import uniform as _u
from neural_ae.core.scenes.scenarios import (DEFAULT_HEIGHT, DEFAULT_WIDTH, sample_scenario,
                                             SCENARIOS, SEQUENCE_LIGHTING,
                                             SEQUENCE_SCENARIOS)
from neural_ae.core.scenes.world import World
import numpy as np


@dataclass
class Scene:
    """
    One HDR frame with its annotations.

    ``radiance``: float32 ``(H, W, 3)`` linear RGB, photo-electrons/s/pixel.
    ``boxes``: float32 ``(N, 4)`` xyxy in pixels (pixel edges: ``x2 = last column + 1``).
    ``labels``: int64 ``(N,)`` category ids 1..6 (:data:`neural_ae.core.classes.CLASSES`
    order).
    """

    radiance: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray
    scenario: str
    seed: int
    meta: dict = field(default_factory=dict)

    @property
    def shape(self):
        """``(H, W)`` of the frame."""
        return self.radiance.shape[:2]


def _check_size(height, width):
    try:
        h, w = int(height), int(width)
    except (TypeError, ValueError) as err:
        raise SceneError(f'height and width must be integers; got {height!r}, '
                         f'{width!r}') from err
    if h < 64 or w < 64 or h != height or w != width:
        raise SceneError(f'scene size must be integers >= 64 x 64; got {height} x {width}')
    return h, w


def _resolve(seed, scenario, height, width):
    h, w = _check_size(height, width)
    try:
        seed = int(seed)
    except (TypeError, ValueError) as err:
        raise SceneError(f'seed must be an integer; got {seed!r}') from err
    if seed < 0:
        raise SceneError(f'seed must be >= 0; got {seed}')
    if scenario is None:
        scenario = sample_scenario(np.random.default_rng([seed, 7]))
    if scenario not in SCENARIOS:
        raise SceneError(f'unknown scenario {scenario!r}; expected one of {SCENARIOS}')
    return seed, scenario, h, w


def generate_scene(seed: int, scenario: Optional[str] = None, height: int = DEFAULT_HEIGHT,
                   width: int = DEFAULT_WIDTH) -> Scene:
    """
    Generate one procedural HDR driving scene, deterministic in ``seed``.

    ``scenario`` defaults to :func:`sample_scenario` drawn from the seed. Any size from
    64 x 64 up works (1216 x 1936 included).
    """
    seed, scenario, h, w = _resolve(seed, scenario, height, width)
    world = World(seed, scenario, h, w)
    rad, boxes, labels = world.render(0)
    return Scene(rad, boxes, labels, scenario, seed, world.meta(0, rad))


def generate_pair(seed: int, scenario: Optional[str] = None, height: int = DEFAULT_HEIGHT,
                  width: int = DEFAULT_WIDTH, light_change: float = 0.03):
    """
    Two consecutive frames of one scene: small ego and object motion, light within ±3 %.

    The first frame equals :func:`generate_scene` with the same arguments; the second
    is one frame (1/30 s) later, with the global light scaled by a factor drawn from
    ``[1 - light_change, 1 + light_change]``.
    """
    seed, scenario, h, w = _resolve(seed, scenario, height, width)
    world = World(seed, scenario, h, w)
    rad0, b0, l0 = world.render(0)
    first = Scene(rad0, b0, l0, scenario, seed, world.meta(0, rad0))
    jitter = 1.0 + _u(np.random.default_rng([seed, 1]), -light_change, light_change)
    for o in world.objects:
        world.move(o)
    rad1, b1, l1 = world.render(1, light_jitter=jitter)
    second = Scene(rad1, b1, l1, scenario, seed,
                   world.meta(1, rad1, {'light_jitter': jitter}))
    return first, second


def iter_sequence(seed: int, n_frames: int, scenario: str = 'tunnel_exit',
                  height: int = DEFAULT_HEIGHT, width: int = DEFAULT_WIDTH):
    """
    Yield ``n_frames`` consecutive :class:`Scene` frames of a driving sequence.

    Scenarios (:data:`SEQUENCE_SCENARIOS`): ``tunnel_exit`` (inside a lit tunnel, the
    exit grows and the camera leaves it at 70 % of the frames: the light at the camera
    steps by about 100x to 1000x within a few frames), ``tunnel_entry`` (enter at 40 %),
    ``tunnel_in_out`` (enter at 25 %, leave at 75 %), ``low_sun`` (low sun ahead,
    swinging in and out of view as the road curves), ``night_headlights`` (oncoming
    cars with high beams) and ``day`` (clouds occasionally hide the sun). Objects move
    smoothly and are replaced when they leave the view. ``meta`` per frame holds
    ``frame_index``, ``illumination_scale`` (light at the camera / full sun),
    ``illumination_e_per_s``, ``mean_luminance_e_per_s`` and ``event``.
    """
    seed, _, h, w = _resolve(seed, 'day', height, width)
    if scenario not in SEQUENCE_SCENARIOS:
        raise SceneError(f'unknown sequence scenario {scenario!r}; expected one of '
                         f'{SEQUENCE_SCENARIOS}')
    try:
        n = int(n_frames)
    except (TypeError, ValueError) as err:
        raise SceneError(f'n_frames must be an integer; got {n_frames!r}') from err
    if n < 1:
        raise SceneError(f'n_frames must be >= 1; got {n_frames}')
    world = World(seed, SEQUENCE_LIGHTING[scenario], h, w, sequence=scenario, n_frames=n)
    for k in range(n):
        if k:
            world.step(k)
        rad, boxes, labels = world.render(k)
        meta = world.meta(k, rad)
        meta['scenario'] = scenario
        yield Scene(rad, boxes, labels, scenario, seed, meta)


def generate_sequence(seed: int, n_frames: int, scenario: str = 'tunnel_exit',
                      height: int = DEFAULT_HEIGHT, width: int = DEFAULT_WIDTH) -> list:
    """List form of :func:`iter_sequence` (use the iterator for long sequences)."""
    return list(iter_sequence(seed, n_frames, scenario, height, width))


def scenario_dynamic_range_table(n_per_scenario: int = 8, seed0: int = 0,
                                 size=(DEFAULT_HEIGHT, DEFAULT_WIDTH), progress=None) -> dict:
    """
    Robust dynamic range per scenario over seeds ``seed0 .. seed0 + n - 1``.

    Returns ``{scenario: {'median_db', 'p95_db', 'min_db', 'max_db', 'n'}}`` using
    :func:`neural_ae.core.hdr.dynamic_range_db`. ``progress`` is an optional callable
    called once per generated scene.
    """
    h, w = size
    table = {}
    for sc in SCENARIOS:
        drs = []
        for i in range(int(n_per_scenario)):
            drs.append(hdr.dynamic_range_db(generate_scene(seed0 + i, sc, h, w).radiance))
            if progress:
                progress()
        a = np.asarray(drs)
        table[sc] = {'median_db': float(np.median(a)), 'p95_db': float(np.percentile(a, 95)),
                     'min_db': float(a.min()), 'max_db': float(a.max()), 'n': int(a.size)}
    return table
