"""
Scenario tables of the procedural scenes: names, lighting mix, light levels, defaults.

Every level derives from :data:`E_SUNLIT_WHITE` (photo-electrons per second per pixel of
a white surface in full midday sun); change it to rescale all scenes. The night and dusk
light levels are :data:`DARK_LIGHTING`, the daylight ones :data:`DAYLIGHT`; ranges are
drawn uniformly in log space, in the field order of :class:`DarkLighting`.
"""
from dataclasses import dataclass
from typing import Tuple

from neural_ae.core.errors import SceneError
import numpy as np

SCENARIOS = ('day', 'dusk', 'night', 'tunnel_interior', 'tunnel_exit', 'low_sun_glare',
             'night_headlights', 'deep_shadow')
SCENARIO_GROUPS = {
    'day': ('day', 'deep_shadow', 'tunnel_interior', 'tunnel_exit'),
    'dusk': ('dusk', 'low_sun_glare'),
    'night': ('night', 'night_headlights'),
}
GROUP_WEIGHTS = {'day': 0.5, 'dusk': 0.2, 'night': 0.3}
SEQUENCE_SCENARIOS = ('tunnel_exit', 'tunnel_entry', 'tunnel_in_out', 'low_sun',
                      'night_headlights', 'day')
SEQUENCE_LIGHTING = {'tunnel_exit': 'tunnel_exit', 'tunnel_entry': 'tunnel_interior',
                     'tunnel_in_out': 'tunnel_interior', 'low_sun': 'low_sun_glare',
                     'night_headlights': 'night_headlights', 'day': 'day'}
"""Scene scenario whose lighting each sequence scenario uses."""

#: White surface in full midday sun, photo-electrons per second per pixel.
E_SUNLIT_WHITE = 1.5e8
MIN_BOX_PX = 4
MIN_VISIBLE = 0.3
DEFAULT_HEIGHT = 256
DEFAULT_WIDTH = 384
RADIANCE_FLOOR = 1e-2

# world geometry (metres) and the bloom threshold (e-/s)
CAM_H = 1.4
LANE = 3.5
ROAD_HALF = 5.25
BLOOM_THRESHOLD = 3e8

TINT = {
    'sun': (1.0, 0.97, 0.92), 'sky': (0.80, 0.92, 1.15), 'low_sun': (1.0, 0.78, 0.52),
    'dusk': (1.05, 0.9, 0.85), 'sodium': (1.3, 0.85, 0.38), 'led': (0.95, 1.0, 1.08),
    'halogen': (1.1, 1.0, 0.82), 'night_sky': (0.55, 0.6, 0.9),
}
"""Colour of each light source, RGB gains."""


@dataclass(frozen=True)
class DarkLighting:
    """
    Light levels of a night or dusk scene; ``(lo, hi)`` ranges are drawn log-uniformly.

    ``ambient``, ``lamp_pool`` and ``ego_beam`` are fractions of :data:`E_SUNLIT_WHITE`
    (light on a white surface); the ``*_level`` ranges and ``lamp_head`` are radiances of
    the sources themselves, e-/s/pixel. ``sky_horizon`` / ``sky_zenith`` scale the ambient
    level; ``retro`` is the sign retro-reflection gain.
    """

    ambient: Tuple[float, float]
    sky_horizon: float
    sky_zenith: float
    sky_tint: str
    lamp_pool: Tuple[float, float] = (2e-4, 1e-3)
    lamp_head: Tuple[float, float] = (1e9, 5e9)
    ego_beam: Tuple[float, float] = (5e-4, 1.5e-3)
    head_level: Tuple[float, float] = (5e9, 2e10)
    tail_level: Tuple[float, float] = (5e7, 2e8)
    window_level: Tuple[float, float] = (2e5, 2e6)
    traffic_light_level: Tuple[float, float] = (5e7, 2e8)
    retro: float = 1.0


DARK_LIGHTING = {
    'night': DarkLighting(ambient=(5e-6, 3e-5), sky_horizon=1.2, sky_zenith=0.3,
                          sky_tint='night_sky'),
    'dusk': DarkLighting(ambient=(3e-3, 3e-2), sky_horizon=2.5, sky_zenith=0.4,
                         sky_tint='dusk', head_level=(3e9, 1e10),
                         traffic_light_level=(1e8, 3e8), retro=0.3),
}
"""Light levels of the night and dusk groups."""


@dataclass(frozen=True)
class Daylight:
    """
    Light levels of a daylight scene.

    ``strength`` (``low_sun_strength`` for low-sun and tunnel-exit scenes) scales the
    sun and sky, whose parts are fractions of :data:`E_SUNLIT_WHITE`; the ``*_level``
    ranges (log-uniform) are source radiances, e-/s/pixel (daytime running lights).
    """

    strength: Tuple[float, float] = (0.6, 1.0)
    low_sun_strength: Tuple[float, float] = (0.3, 0.7)
    sun: float = 0.87
    sky_ambient: float = 0.13
    sky_horizon: float = 0.3
    sky_zenith: float = 0.12
    head_level: Tuple[float, float] = (3e8, 3e9)
    tail_level: Tuple[float, float] = (1e6, 1e7)
    traffic_light_level: Tuple[float, float] = (1e8, 4e8)


DAYLIGHT = Daylight()
"""Light levels of the day group."""


def tint(name: str, scale: float = 1.0) -> np.ndarray:
    """RGB gains of light source ``name`` (:data:`TINT`) times ``scale``, float32."""
    return np.asarray(TINT[name], np.float32) * np.float32(scale)


def scenario_group(scenario: str) -> str:
    """Lighting group ('day', 'dusk' or 'night') of a scenario name."""
    for group, names in SCENARIO_GROUPS.items():
        if scenario in names:
            return group
    raise SceneError(f'unknown scenario {scenario!r}; expected one of {SCENARIOS}')


def sample_scenario(rng) -> str:
    """Draw a scenario with the lighting mix 50 % day / 20 % dusk / 30 % night."""
    groups = list(GROUP_WEIGHTS)
    g = groups[int(rng.choice(len(groups), p=[GROUP_WEIGHTS[k] for k in groups]))]
    names = SCENARIO_GROUPS[g]
    return names[int(rng.integers(len(names)))]
