"""
Procedural HDR driving scenes, pairs and sequences with exact boxes.

A scene is linear RGB radiance in **photo-electrons per second per pixel of the target
sensor** (quantum efficiency folded in), so a raw value is ``raw ~ g1 * K * t * phi``.
Scale: a white surface in full midday sun gives :data:`E_SUNLIT_WHITE` = 1.5e8 e-/s
(IMX249-like 5.86 um pixel at f/2: 1 cd/m^2 is about 5e3 e-/s), so sunlit road and
facades sit at 1e7..1e8, a lit tunnel road at 1e4..1e5, a street-lit road at night at
1e3..1e4, unlit night surfaces at 10..1e3, and lamps, headlights and the sun at 1e8..1e12.
(Every level derives from :data:`E_SUNLIT_WHITE`; change it to rescale all scenes.)

Geometry is a pinhole camera 1.4 m above a flat road (focal length 0.75 x width) that
ray-casts, per pixel and vectorised, the road plane, tunnel walls and ceiling, a tunnel
portal or bridge face, building facades and the sky. Objects are flat billboards drawn
with OpenCV primitives in metres at their depth, painted far to near with a depth test
against the background, lit by the light *where they stand* (inside a tunnel, under a
bridge, in a lamp's pool, in the ego headlights, backlit by a low sun); lamps,
headlights, traffic lights, lit windows and signs are emissive. Bright sources get a
small optical bloom. Boxes are the extent of the drawn pixels of each object (xyxy,
pixel edges, clipped to the image); boxes narrower or lower than :data:`MIN_BOX_PX` and
objects less than :data:`MIN_VISIBLE` visible are dropped.

Scenario names, and the lighting mix of :func:`sample_scenario` (50 % day, 20 % dusk,
30 % night, uniform within a group): day group ``day``, ``deep_shadow``,
``tunnel_interior``, ``tunnel_exit``; dusk group ``dusk``, ``low_sun_glare``; night
group ``night``, ``night_headlights``. ``tunnel_exit``, ``low_sun_glare`` and

Modules: :mod:`~neural_ae.core.scenes.scenarios` (scenario names, lighting tables,
defaults), :mod:`~neural_ae.core.scenes.world` (the scene builder, with its
:mod:`~neural_ae.core.scenes.lighting`, :mod:`~neural_ae.core.scenes.background` and
:mod:`~neural_ae.core.scenes.traffic` parts), :mod:`~neural_ae.core.scenes.sprites`
(object shapes), :mod:`~neural_ae.core.scenes.generate` (scenes, pairs, sequences),
:mod:`~neural_ae.core.scenes.coco` and :mod:`~neural_ae.core.scenes.brackets`
(exports). Everything public is importable from this package.
"""
from neural_ae.core.classes import CATEGORY_IDS, CLASSES
from neural_ae.core.scenes.brackets import export_brackets, load_brackets
from neural_ae.core.scenes.coco import from_coco, to_coco
from neural_ae.core.scenes.generate import (generate_pair, generate_scene, generate_sequence,
                                            iter_sequence, scenario_dynamic_range_table,
                                            Scene)
from neural_ae.core.scenes.scenarios import (DEFAULT_HEIGHT, DEFAULT_WIDTH, E_SUNLIT_WHITE,
                                             GROUP_WEIGHTS, MIN_BOX_PX, MIN_VISIBLE,
                                             RADIANCE_FLOOR, sample_scenario,
                                             scenario_group, SCENARIO_GROUPS, SCENARIOS,
                                             SEQUENCE_SCENARIOS)
from neural_ae.core.scenes.sprites import BIKE, BUS, CAR, LAMP_POST, PERSON, SIGN, TLIGHT

__all__ = [
    'BIKE', 'BUS', 'CAR', 'CATEGORY_IDS', 'CLASSES', 'DEFAULT_HEIGHT', 'DEFAULT_WIDTH',
    'E_SUNLIT_WHITE', 'GROUP_WEIGHTS', 'LAMP_POST', 'MIN_BOX_PX', 'MIN_VISIBLE', 'PERSON',
    'RADIANCE_FLOOR', 'SCENARIOS', 'SCENARIO_GROUPS', 'SEQUENCE_SCENARIOS', 'SIGN',
    'TLIGHT', 'Scene', 'export_brackets', 'from_coco', 'generate_pair', 'generate_scene',
    'generate_sequence', 'iter_sequence', 'load_brackets', 'sample_scenario',
    'scenario_dynamic_range_table', 'scenario_group', 'to_coco',
]
