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
``night_headlights`` reach 120 dB and more (see :func:`scenario_dynamic_range_table`).
"""
from dataclasses import dataclass, field
import json
import logging
import math
from pathlib import Path

import cv2
from neural_ae.core import hdr
from neural_ae.core.errors import HDRError, SceneError
import numpy as np

logger = logging.getLogger(__name__)

CLASSES = ('bike', 'bus_truck', 'car_van', 'person', 'traffic_light', 'traffic_sign')
CATEGORY_IDS = {name: i + 1 for i, name in enumerate(CLASSES)}
BIKE, BUS, CAR, PERSON, TLIGHT, SIGN = range(1, 7)
LAMP_POST = 0  # drawn, never annotated

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

#: White surface in full midday sun, photo-electrons per second per pixel.
E_SUNLIT_WHITE = 1.5e8
MIN_BOX_PX = 4
MIN_VISIBLE = 0.3
DEFAULT_HEIGHT = 256
DEFAULT_WIDTH = 384
RADIANCE_FLOOR = 1e-2

_CAM_H = 1.4
_LANE = 3.5
_ROAD_HALF = 5.25
_BLOOM_THRESHOLD = 3e8

_TINT = {
    'sun': (1.0, 0.97, 0.92), 'sky': (0.80, 0.92, 1.15), 'low_sun': (1.0, 0.78, 0.52),
    'dusk': (1.05, 0.9, 0.85), 'sodium': (1.3, 0.85, 0.38), 'led': (0.95, 1.0, 1.08),
    'halogen': (1.1, 1.0, 0.82), 'night_sky': (0.55, 0.6, 0.9),
}
_CAR_COLOURS = ((0.6, 0.6, 0.62), (0.05, 0.05, 0.06), (0.55, 0.06, 0.05),
                (0.08, 0.15, 0.45), (0.75, 0.75, 0.72), (0.25, 0.27, 0.3),
                (0.6, 0.45, 0.1), (0.1, 0.3, 0.12), (0.35, 0.2, 0.12))
_CLOTHES = ((0.05, 0.05, 0.08), (0.5, 0.1, 0.08), (0.1, 0.2, 0.5), (0.55, 0.55, 0.5),
            (0.15, 0.35, 0.15), (0.7, 0.6, 0.2), (0.3, 0.2, 0.35), (0.8, 0.8, 0.8))
_SKIN = ((0.6, 0.42, 0.33), (0.45, 0.3, 0.22), (0.25, 0.16, 0.11), (0.7, 0.55, 0.45))


@dataclass
class Scene:
    """
    One HDR frame with its annotations.

    ``radiance``: float32 ``(H, W, 3)`` linear RGB, photo-electrons/s/pixel.
    ``boxes``: float32 ``(N, 4)`` xyxy in pixels (pixel edges: ``x2 = last column + 1``).
    ``labels``: int64 ``(N,)`` category ids 1..6 (:data:`CLASSES` order).
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


# ----------------------------------------------------------------------------- helpers

def _u(rng, lo, hi):
    return float(rng.uniform(lo, hi))


def _logu(rng, lo, hi):
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def _value_noise(rng, h, w, cells):
    """Smooth noise in about [-1, 1]: random grids of ``cells`` columns, bilinear up."""
    out = np.zeros((h, w), np.float32)
    amp, total = 1.0, 0.0
    for c in cells:
        cw = max(2, int(c))
        ch = max(2, int(round(c * h / max(w, 1))))
        grid = rng.random((ch + 1, cw + 1), dtype=np.float32) * 2 - 1
        out += amp * cv2.resize(grid, (w, h), interpolation=cv2.INTER_LINEAR)
        total += amp
        amp *= 0.6
    return out / total


def _tint(name, scale=1.0):
    return np.asarray(_TINT[name], np.float32) * np.float32(scale)


def _check_size(height, width):
    try:
        h, w = int(height), int(width)
    except (TypeError, ValueError) as err:
        raise SceneError(f'height and width must be integers; got {height!r}, '
                         f'{width!r}') from err
    if h < 64 or w < 64 or h != height or w != width:
        raise SceneError(f'scene size must be integers >= 64 x 64; got {height} x {width}')
    return h, w


# ----------------------------------------------------------------------------- sprites

class _Sprite:
    """One object drawn in metres (``u`` right of its foot centre, ``v`` up) in a patch."""

    def __init__(self, half_w_m, top_m, scale, below_m=0.0, pad=2):
        self.s = float(scale)
        self.x0 = half_w_m * self.s + pad
        self.y0 = top_m * self.s + pad
        w = int(math.ceil(2 * self.x0))
        h = int(math.ceil(self.y0 + below_m * self.s + pad))
        self.alb = np.zeros((h, w, 3), np.float32)
        self.emit = np.zeros((h, w, 3), np.float32)
        self.glow = None
        self.cover = np.zeros((h, w), np.uint8)
        self.box = np.zeros((h, w), np.uint8)

    def px(self, m):
        """Metres to (rounded, >= 1) pixels."""
        return max(1, int(round(m * self.s)))

    def _pts(self, pts):
        a = np.asarray(pts, np.float64).reshape(-1, 2)
        out = np.empty_like(a)
        out[:, 0] = self.x0 + a[:, 0] * self.s
        out[:, 1] = self.y0 - a[:, 1] * self.s
        return np.round(out * 16).astype(np.int32)

    def _c(self, u, v):
        return (int(round((self.x0 + u * self.s) * 16)),
                int(round((self.y0 - v * self.s) * 16)))

    def _paint(self, fn, alb, emit, box):
        fn(self.alb, tuple(float(c) for c in alb))
        fn(self.emit, tuple(float(c) for c in (emit if emit is not None else (0, 0, 0))))
        fn(self.cover, 1)
        fn(self.box, 1 if box else 0)

    def poly(self, pts, alb, emit=None, box=True):
        """Fill a polygon given by metre vertices."""
        p = [self._pts(pts)]
        self._paint(lambda im, c: cv2.fillPoly(im, p, c, cv2.LINE_8, 4), alb, emit, box)

    def rect(self, u0, v0, u1, v1, alb, emit=None, box=True):
        """Fill an axis-aligned rectangle between two metre corners."""
        self.poly([(u0, v0), (u1, v0), (u1, v1), (u0, v1)], alb, emit, box)

    def circle(self, u, v, r, alb, emit=None, box=True, thick_m=None):
        """Disc (or ring of ``thick_m``) of radius ``r`` metres."""
        c = self._c(u, v)
        rr = max(16, int(round(r * self.s * 16)))
        t = -1 if thick_m is None else self.px(thick_m)
        self._paint(lambda im, col: cv2.circle(im, c, rr, col, t, cv2.LINE_8, 4),
                    alb, emit, box)

    def ellipse(self, u, v, ru, rv, alb, emit=None, box=True):
        """Fill an ellipse with metre semi-axes."""
        c = self._c(u, v)
        ax = (max(16, int(round(ru * self.s * 16))), max(16, int(round(rv * self.s * 16))))
        self._paint(lambda im, col: cv2.ellipse(im, c, ax, 0, 0, 360, col, -1,
                                                cv2.LINE_8, 4), alb, emit, box)

    def line(self, u0, v0, u1, v1, w_m, alb, emit=None, box=True):
        """Thick line segment between metre points."""
        a, b = self._c(u0, v0), self._c(u1, v1)
        t = self.px(w_m)
        self._paint(lambda im, col: cv2.line(im, a, b, col, t, cv2.LINE_8, 4),
                    alb, emit, box)

    def add_glow(self, pts, radiance):
        """Emission-only polygon (no cover): e.g. a headlight's reflection on a wet road."""
        if self.glow is None:
            self.glow = np.zeros_like(self.emit)
        cv2.fillPoly(self.glow, [self._pts(pts)], tuple(float(c) for c in radiance),
                     cv2.LINE_8, 4)

    def texture(self, rng, amp, cell_m):
        """Multiply the albedo by ``1 + amp * noise`` with features of ``cell_m`` metres."""
        h, w = self.cover.shape
        cells = max(2, int(w / max(self.s * cell_m, 1.0)))
        n = _value_noise(rng, h, w, (cells, cells * 3))
        self.alb *= (1.0 + amp * n)[..., None]


def _lamp(level, colour):
    return np.asarray(colour, np.float32) * np.float32(level)


def _draw_car(sp, o, rng):
    p = o.params
    w, hgt, van = p['w'], p['h'], p['van']
    col = np.asarray(p['colour'], np.float32)
    hw = w / 2
    belt = hgt * (0.62 if van else 0.55)
    sp.rect(-hw + 0.08, 0.0, -hw + 0.36, 0.36, (0.025, 0.025, 0.025))
    sp.rect(hw - 0.36, 0.0, hw - 0.08, 0.36, (0.025, 0.025, 0.025))
    sp.rect(-hw + 0.3, 0.04, hw - 0.3, 0.24, (0.008, 0.008, 0.008))  # underbody
    sp.poly([(-hw, 0.22), (hw, 0.22), (hw, belt), (-hw * 0.98, belt)], col)
    top = hw * (0.9 if van else 0.68)
    sp.poly([(-hw * 0.93, belt), (hw * 0.93, belt), (top, hgt), (-top, hgt)], col * 0.92)
    glass = (0.05, 0.06, 0.07) if not p['day'] else (0.12, 0.14, 0.17)
    gi = 0.1
    sp.poly([(-hw * 0.93 + gi, belt + 0.06), (hw * 0.93 - gi, belt + 0.06),
             (top - gi * 0.7, hgt - 0.08), (-top + gi * 0.7, hgt - 0.08)], glass)
    sp.rect(-hw, 0.22, hw, 0.4, (0.06, 0.06, 0.065))            # bumper
    sp.line(-hw * 0.9, belt - 0.05, hw * 0.9, belt - 0.05, 0.03, col * 1.4)  # trim
    sp.rect(-0.26, 0.44, 0.26, 0.56, (0.85, 0.85, 0.8))        # licence plate
    for i in range(5):
        x = -0.21 + i * 0.09
        sp.rect(x, 0.465, x + 0.05, 0.535, (0.04, 0.04, 0.04))
    ly = belt - 0.2
    if p['front']:
        for i in range(4):                                        # grille
            y = 0.45 + i * 0.05
            sp.rect(-0.45, y, 0.45, y + 0.025, (0.03, 0.03, 0.03))
        e = _lamp(p['head_level'], _TINT['halogen'] if not p['led'] else _TINT['led'])
        for sgn in (-1, 1):
            sp.ellipse(sgn * (hw - 0.25), ly, 0.17, 0.08, (0.7, 0.7, 0.7), e)
            if p['wet']:
                u = sgn * (hw - 0.25)
                for frac, gain in ((1.0, 0.0005), (0.55, 0.0015), (0.25, 0.003)):
                    sp.add_glow([(u - 0.12, 0.0), (u + 0.12, 0.0),
                                 (u + 0.12 - 0.08 * frac, -1.6 * hgt * frac),
                                 (u - 0.12 + 0.08 * frac, -1.6 * hgt * frac)], e * gain)
    else:
        e = _lamp(p['tail_level'], (1.0, 0.05, 0.03))
        for sgn in (-1, 1):
            sp.rect(sgn * (hw - 0.05), ly - 0.08, sgn * (hw - 0.38), ly + 0.08,
                    (0.45, 0.04, 0.03), e)
    sp.texture(rng, 0.12, 0.3)


def _draw_bus(sp, o, rng):
    p = o.params
    w, hgt = p['w'], p['h']
    hw = w / 2
    col = np.asarray(p['colour'], np.float32)
    for sgn in (-1, 1):
        sp.rect(sgn * (hw - 0.1), 0.0, sgn * (hw - 0.45), 0.5, (0.025, 0.025, 0.025))
    sp.rect(-hw + 0.4, 0.05, hw - 0.4, 0.35, (0.008, 0.008, 0.008))  # underbody
    sp.rect(-hw, 0.3, hw, hgt, col)
    if p['truck']:
        for i in range(int(w / 0.3)):                             # container ribs
            x = -hw + 0.1 + i * 0.3
            sp.rect(x, 0.9, x + 0.08, hgt - 0.1, col * 0.7)
        sp.line(0.0, 0.9, 0.0, hgt - 0.1, 0.04, (0.05, 0.05, 0.05))
        sp.rect(-hw + 0.1, 0.35, hw - 0.1, 0.5, (0.6, 0.1, 0.05))  # underride guard
        for i in range(6):
            x = -hw + 0.1 + i * (w - 0.2) / 6
            sp.rect(x, 0.35, x + (w - 0.2) / 12, 0.5, (0.8, 0.8, 0.8))
    else:
        glass = (0.06, 0.07, 0.08)
        sp.rect(-hw + 0.12, 1.05, hw - 0.12, hgt - 0.55, glass)
        for x in (-hw / 3, hw / 3):
            sp.line(x, 1.05, x, hgt - 0.55, 0.06, col * 0.8)
        disp = _lamp(p['display_level'], (1.0, 0.6, 0.1))
        sp.rect(-hw + 0.3, hgt - 0.45, hw - 0.3, hgt - 0.12, (0.03, 0.03, 0.03))
        for i in range(8):
            x = -hw + 0.4 + i * (w - 0.8) / 8
            sp.rect(x, hgt - 0.4, x + (w - 0.8) / 14, hgt - 0.17, (0.3, 0.2, 0.05), disp)
        sp.rect(-hw, 0.75, hw, 0.9, col * 0.5)
    sp.rect(-0.26, 0.55, 0.26, 0.67, (0.85, 0.85, 0.8))
    for i in range(5):
        sp.rect(-0.21 + i * 0.09, 0.575, -0.16 + i * 0.09, 0.645, (0.04, 0.04, 0.04))
    if p['front']:
        e = _lamp(p['head_level'], _TINT['halogen'])
        for sgn in (-1, 1):
            sp.rect(sgn * (hw - 0.15), 0.6, sgn * (hw - 0.5), 0.78, (0.7, 0.7, 0.7), e)
    else:
        e = _lamp(p['tail_level'], (1.0, 0.05, 0.03))
        for sgn in (-1, 1):
            sp.rect(sgn * (hw - 0.05), 0.6, sgn * (hw - 0.25), 1.1, (0.45, 0.04, 0.03), e)
    sp.texture(rng, 0.1, 0.4)


def _draw_person(sp, o, rng, lift=0.0):
    p = o.params
    hp = p['h']
    shirt = np.asarray(p['shirt'], np.float32)
    pants = np.asarray(p['pants'], np.float32)
    skin = p['skin']
    ph = p['phase']
    stride = 0.18 * math.sin(ph) if not p['riding'] else 0.0
    hip = 0.47 * hp + lift
    shoulder = 0.81 * hp + lift
    for sgn, st in ((-1, stride), (1, -stride)):
        foot = st + sgn * 0.07
        sp.poly([(sgn * 0.02, hip), (sgn * 0.15, hip), (foot + sgn * 0.07, lift + 0.05),
                 (foot - sgn * 0.05, lift + 0.05)], pants)
        sp.rect(foot - 0.07, lift, foot + 0.09, lift + 0.06, (0.03, 0.03, 0.03))
    tw = 0.19 * hp / 1.75
    sp.poly([(-tw, hip - 0.02), (tw, hip - 0.02), (tw * 1.12, shoulder),
             (-tw * 1.12, shoulder)], shirt)
    if p['pattern'] == 'stripes':
        n = 5
        for i in range(n):
            y0 = hip + (shoulder - hip) * (i + 0.3) / n
            sp.rect(-tw * 1.05, y0, tw * 1.05, y0 + (shoulder - hip) / (2.2 * n),
                    shirt * 0.35 + 0.25)
    elif p['pattern'] == 'check':
        n = 4
        for i in range(n):
            for j in range(3):
                if (i + j) % 2:
                    y0 = hip + (shoulder - hip) * i / n
                    x0 = -tw + 2 * tw * j / 3
                    sp.rect(x0, y0, x0 + 2 * tw / 3, y0 + (shoulder - hip) / n,
                            shirt * 0.45)
    elif p['pattern'] == 'vest':
        sp.rect(-tw, hip + 0.1, tw, hip + 0.16, (0.85, 0.85, 0.3))
        sp.rect(-tw, hip + 0.25, tw, hip + 0.31, (0.85, 0.85, 0.3))
    swing = 0.12 * math.sin(ph + math.pi) if not p['riding'] else 0.15
    for sgn in (-1, 1):
        sp.line(sgn * tw * 1.05, shoulder - 0.04, sgn * (tw + 0.06) + sgn * swing * 0.3,
                hip + 0.02, 0.075, shirt * 0.9)
        sp.circle(sgn * (tw + 0.06) + sgn * swing * 0.3, hip, 0.045, skin)
    sp.rect(-0.05, shoulder, 0.05, shoulder + 0.05, skin)
    head_v = shoulder + 0.05 + 0.11
    sp.circle(0.0, head_v, 0.105, skin)
    sp.ellipse(0.0, head_v + 0.04, 0.11, 0.07, p['hair'])
    if p['bag']:
        sp.rect(tw * 0.6, hip + 0.05, tw * 1.5, hip + 0.35, (0.1, 0.08, 0.06))
    sp.texture(rng, 0.1, 0.1)


def _draw_bike(sp, o, rng):
    p = o.params
    frame = np.asarray(p['colour'], np.float32)
    tyre = (0.03, 0.03, 0.03)
    if p['side']:
        r = 0.34
        for u in (-0.52, 0.52):
            sp.circle(u, r, r, tyre, thick_m=0.05)
            sp.circle(u, r, 0.04, (0.5, 0.5, 0.5))
            sp.line(u - r * 0.7, r, u + r * 0.7, r, 0.015, (0.4, 0.4, 0.4))
            sp.line(u, r * 0.3, u, r * 1.7, 0.015, (0.4, 0.4, 0.4))
        bb, seat, head = (0.0, 0.3), (-0.17, 0.82), (0.36, 0.85)
        for a, b in ((bb, seat), (bb, head), (seat, head), ((-0.52, r), bb),
                     ((-0.52, r), seat), ((0.52, r), head)):
            sp.line(a[0], a[1], b[0], b[1], 0.045, frame)
        sp.rect(-0.28, 0.84, -0.06, 0.9, (0.05, 0.05, 0.05))
        sp.line(0.36, 0.85, 0.42, 1.02, 0.04, frame)
        sp.line(0.32, 1.02, 0.52, 1.02, 0.035, (0.1, 0.1, 0.1))
    else:
        sp.ellipse(0.0, 0.34, 0.035, 0.34, tyre)
        sp.rect(-0.06, 0.5, 0.06, 0.72, frame)                   # fender / rack
        sp.rect(-0.16, 0.72, 0.16, 0.78, frame * 0.8)
        sp.rect(-0.05, 0.55, 0.05, 0.62, (0.7, 0.05, 0.03),
                _lamp(p['tail_level'], (1.0, 0.05, 0.03)))
        sp.line(-0.3, 1.02, 0.3, 1.02, 0.035, (0.1, 0.1, 0.1))  # handlebar
        sp.rect(-0.09, 0.86, 0.09, 0.92, (0.05, 0.05, 0.05))
    sp.texture(rng, 0.08, 0.1)


def _draw_traffic_light(sp, o, rng):
    p = o.params
    v0 = p['mount']
    sp.rect(-0.06, 0.0, 0.06, v0, (0.25, 0.25, 0.25), box=False)
    hh = 0.95
    sp.rect(-0.25, v0 - 0.05, 0.25, v0 + hh + 0.05, (0.8, 0.8, 0.8))  # backplate border
    sp.rect(-0.2, v0, 0.2, v0 + hh, (0.04, 0.04, 0.04))
    cols = ((1.0, 0.08, 0.04), (1.0, 0.55, 0.05), (0.1, 1.0, 0.55))
    for i, c in enumerate(cols):
        v = v0 + hh - 0.17 - i * 0.3
        lit = i == p['state']
        e = _lamp(p['level'], c) if lit else None
        sp.circle(0.0, v, 0.11, np.asarray(c, np.float32) * (0.6 if lit else 0.08), e)
        sp.rect(-0.13, v + 0.11, 0.13, v + 0.14, (0.02, 0.02, 0.02))  # visor


def _draw_sign(sp, o, rng):
    p = o.params
    v0 = p['mount']
    shape = p['shape']
    sp.rect(-0.04, 0.0, 0.04, v0, (0.45, 0.45, 0.45), box=False)
    glow = p['retro']
    red, white, black = (0.6, 0.04, 0.03), (0.85, 0.85, 0.85), (0.03, 0.03, 0.03)

    def e(c):
        return None if glow <= 0 else np.asarray(c, np.float32) * np.float32(glow)

    if shape == 'circle':
        r = p['size'] / 2
        c = v0 + r
        sp.circle(0.0, c, r, red, e(red))
        sp.circle(0.0, c, r * 0.75, white, e(white))
        for u in (-0.32, 0.32):                                     # digit-like rings
            sp.ellipse(u * r, c, r * 0.22, r * 0.38, black)
            sp.ellipse(u * r, c, r * 0.1, r * 0.24, white, e(white))
    elif shape == 'triangle':
        s = p['size']
        pts = [(-s / 2, v0), (s / 2, v0), (0.0, v0 + s * 0.87)]
        sp.poly(pts, red, e(red))
        sp.poly([(-s * 0.33, v0 + s * 0.1), (s * 0.33, v0 + s * 0.1),
                 (0.0, v0 + s * 0.68)], white, e(white))
        sp.rect(-0.03, v0 + s * 0.22, 0.03, v0 + s * 0.48, black)
        sp.circle(0.0, v0 + s * 0.16, 0.035, black)
    elif shape == 'octagon':
        r = p['size'] / 2
        c = v0 + r
        pts = [(r * math.cos(a), c + r * math.sin(a))
               for a in np.linspace(math.pi / 8, 2 * math.pi + math.pi / 8, 9)[:-1]]
        sp.poly(pts, red, e(red))
        for i in range(4):
            x = -r * 0.6 + i * r * 0.32
            sp.rect(x, c - r * 0.2, x + r * 0.2, c + r * 0.2, white, e(white))
    else:
        s = p['size']
        blue = (0.05, 0.15, 0.45)
        sp.rect(-s * 0.6, v0, s * 0.6, v0 + s * 0.8, white, e(white))
        sp.rect(-s * 0.55, v0 + s * 0.05, s * 0.55, v0 + s * 0.75, blue, e(blue))
        for i in range(3):                                          # text lines
            y = v0 + s * (0.15 + 0.2 * i)
            n = 3 + (i + p['text']) % 3
            for j in range(n):
                x = -s * 0.45 + j * s * 0.9 / n
                sp.rect(x, y, x + s * 0.9 / n * 0.7, y + s * 0.1, white, e(white))
    sp.texture(rng, 0.06, 0.1)


def _draw_lamp_post(sp, o, rng):
    p = o.params
    hgt = p['h']
    sp.rect(-0.07, 0.0, 0.07, hgt, (0.3, 0.3, 0.3), box=False)
    arm = -p['side'] * 1.5
    sp.line(0.0, hgt, arm, hgt + 0.2, 0.08, (0.3, 0.3, 0.3), box=False)
    sp.ellipse(arm, hgt + 0.12, 0.35, 0.1, (0.2, 0.2, 0.2), box=False)
    if p['level'] > 0:
        sp.ellipse(arm, hgt + 0.05, 0.28, 0.06, (0.8, 0.8, 0.8),
                   _lamp(p['level'], p['tint']), box=False)


_DRAW = {CAR: _draw_car, BUS: _draw_bus, PERSON: _draw_person, BIKE: _draw_bike,
         TLIGHT: _draw_traffic_light, SIGN: _draw_sign, LAMP_POST: _draw_lamp_post}


@dataclass
class _Obj:
    cls: int
    x: float            # lateral, metres (right positive)
    z: float            # along the road, absolute metres
    vx: float = 0.0     # metres per frame
    vz: float = 0.0
    seed: int = 0
    params: dict = field(default_factory=dict)
    lift: float = 0.0   # drawn above the road (riders)

    def extent(self):
        """(half width, top) in metres of the sprite."""
        p = self.params
        if self.cls in (CAR, BUS):
            return p['w'] / 2 + 0.05, p['h'] + 0.05
        if self.cls == PERSON:
            return 0.45, p['h'] + 0.05 + self.lift
        if self.cls == BIKE:
            return (0.95 if p['side'] else 0.35), 1.1
        if self.cls == TLIGHT:
            return 0.3, p['mount'] + 1.05
        if self.cls == SIGN:
            return p['size'] * 0.7 + 0.05, p['mount'] + p['size'] + 0.05
        return 2.0, p['h'] + 0.4


# ------------------------------------------------------------------------------- world

class _World:
    """Static layout, lighting and objects of one scene or sequence; renders frames."""

    def __init__(self, seed, scenario, height, width, sequence=None, n_frames=1):
        self.seed = int(seed)
        self.rng = np.random.default_rng(self.seed)
        rng = self.rng
        self.scenario = scenario
        self.sequence = sequence
        self.n_frames = n_frames
        self.H, self.W = height, width
        self.f = 0.75 * width
        self.cx = width / 2 + _u(rng, -0.03, 0.03) * width
        self.yh = height * _u(rng, 0.38, 0.5)
        self.speed = _u(rng, 0.45, 0.75) if sequence else _u(rng, 0.0, 0.6)
        self.cloud = None
        self.sun_az_amp = 0.0
        self._sun_px = 0
        self._road_direct = None
        self._setup_light(rng)
        self._setup_structures(rng)
        self.noise = _value_noise(rng, height, width, (6, 24, 96))
        self.objects = []
        self._populate(rng)

    # ---- lighting ------------------------------------------------------------------
    def _setup_light(self, rng):
        E = E_SUNLIT_WHITE
        sc = self.scenario
        night = sc in ('night', 'night_headlights')
        dusk = sc == 'dusk'
        self.night, self.dusk = night, dusk
        self.outside_dark = night or dusk
        self.sun = 0.0
        self.sky_amb = 0.0
        self.sun_tint = _tint('sun')
        self.sun_in_view = False
        self.face = _u(rng, 0.35, 0.8)       # direct sun on camera-facing surfaces
        self.side_l, self.side_r = (_u(rng, 0.05, 0.6), _u(rng, 0.05, 0.6))
        self.wet = False
        if night:
            self.amb = E * _logu(rng, 5e-6, 3e-5)
            self.sky_horizon, self.sky_zenith = self.amb * 1.2, self.amb * 0.3
            self.sky_tint = _tint('night_sky')
            self.lamp_pool = E * _logu(rng, 2e-4, 1e-3)
            self.lamp_head = _logu(rng, 1e9, 5e9)
            self.lamp_tint = _tint('sodium' if rng.random() < 0.5 else 'led')
            self.ego_beam = E * _logu(rng, 5e-4, 1.5e-3)
            self.head_level = _logu(rng, 5e9, 2e10)
            self.tail_level = _logu(rng, 5e7, 2e8)
            self.window_level = _logu(rng, 2e5, 2e6)
            self.tl_level = _logu(rng, 5e7, 2e8)
            self.retro = 1.0
            self.wet = sc == 'night_headlights' and rng.random() < 0.7
        elif dusk:
            self.amb = E * _logu(rng, 3e-3, 3e-2)
            self.sky_horizon, self.sky_zenith = self.amb * 2.5, self.amb * 0.4
            self.sky_tint = _tint('dusk')
            self.lamp_pool = E * _logu(rng, 2e-4, 1e-3)
            self.lamp_head = _logu(rng, 1e9, 5e9)
            self.lamp_tint = _tint('sodium' if rng.random() < 0.5 else 'led')
            self.ego_beam = E * _logu(rng, 5e-4, 1.5e-3)
            self.head_level = _logu(rng, 3e9, 1e10)
            self.tail_level = _logu(rng, 5e7, 2e8)
            self.window_level = _logu(rng, 2e5, 2e6)
            self.tl_level = _logu(rng, 1e8, 3e8)
            self.retro = 0.3
        else:
            strength = _u(rng, 0.3, 0.7) if sc in ('low_sun_glare', 'tunnel_exit') \
                or self.sequence == 'low_sun' else _u(rng, 0.6, 1.0)
            self.sun = 0.87 * E * strength
            self.sky_amb = 0.13 * E * strength
            self.amb = 0.0
            self.sky_horizon = 0.3 * E * strength
            self.sky_zenith = 0.12 * E * strength
            self.sky_tint = _tint('sky')
            self.lamp_pool = 0.0
            self.lamp_head = 0.0
            self.lamp_tint = _tint('led')
            self.ego_beam = 0.0
            self.head_level = _logu(rng, 3e8, 3e9)   # daytime running lights
            self.tail_level = _logu(rng, 1e6, 1e7)
            self.window_level = 0.0
            self.tl_level = _logu(rng, 1e8, 4e8)
            self.retro = 0.0
        want_sun = (sc == 'low_sun_glare' or self.sequence == 'low_sun'
                    or (sc == 'tunnel_exit' and not self.sequence and rng.random() < 0.8))
        if want_sun and not self.outside_dark:
            self.sun_in_view = True
            self.face = _u(rng, 0.0, 0.08)   # backlit
            self.sun_tint = _tint('low_sun')
            self.sun_el = math.radians(_u(rng, 0.8, 6.0))
            self.sun_az = math.radians(_u(rng, -18, 18))
            self.sun_radiance = E * _logu(rng, 2e3, 1e4)
            if self.sequence == 'low_sun':
                self.sun_az_amp = math.radians(_u(rng, 15, 30))
                self.sun_az_period = _u(rng, 80, 200)
        if self.sun_in_view:
            self.shadow_dir = (-math.sin(self.sun_az), -math.cos(self.sun_az))
            self.shadow_el = max(self.sun_el, math.radians(2.0))
        else:
            az = math.radians(180 + _u(rng, -70, 70))
            self.shadow_dir = (-math.sin(az), -math.cos(az))
            self.shadow_el = math.radians(_u(rng, 30, 65))
        if self.sequence == 'day':
            self.cloud = []
            k = int(rng.integers(10, 60))
            while k < self.n_frames:
                length = int(rng.integers(20, 80))
                self.cloud.append((k, k + length, _u(rng, 0.1, 0.35)))
                k += length + int(rng.integers(30, 150))
        self.tunnel_light = E * _logu(rng, 5e-4, 2e-3)
        self.tunnel_lamp = _logu(rng, 5e7, 3e8)
        self.tunnel_tint = _tint('sodium' if rng.random() < 0.4 else 'led')
        self.under_bridge = E * _logu(rng, 2e-4, 2e-3)

    # ---- structures ----------------------------------------------------------------
    def _setup_structures(self, rng):
        sc, seq = self.scenario, self.sequence
        n = self.n_frames
        L = self.speed * max(n, 1)
        self.tunnel = None
        if seq == 'tunnel_exit':
            self.tunnel = (-400.0, 0.7 * L + 5, True)
        elif seq == 'tunnel_entry':
            self.tunnel = (0.4 * L + 5, 1e6, True)
        elif seq == 'tunnel_in_out':
            self.tunnel = (0.25 * L + 5, 0.75 * L + 5, True)
        elif sc == 'tunnel_interior':
            self.tunnel = (-300.0, _u(rng, 400, 900), True)
        elif sc == 'tunnel_exit':
            self.tunnel = (-300.0, _logu(rng, 15, 90), True)
        elif sc == 'deep_shadow':
            z1 = _u(rng, 10, 30)
            self.tunnel = (z1, z1 + _u(rng, 12, 30), False)
        self.aw = _u(rng, 6.0, 7.5)          # tunnel half width (walls at +-aw)
        self.t_h = _u(rng, 5.0, 6.5)         # tunnel/bridge clearance
        self.face_h = _u(rng, 14, 30)        # portal face height
        self.bridge_thick = _u(rng, 1.2, 2.5)
        self.lamp_spacing = _u(rng, 6, 12)
        self.lamp_x = _u(rng, -1.5, 1.5)
        self.facades = (rng.random() < 0.8 if not seq else True)
        if sc in ('low_sun_glare',) and rng.random() < 0.5:
            self.facades = False
        self.fac_l = _u(rng, 8, 14)
        self.fac_r = _u(rng, 8, 14)
        self.fac_far = _u(rng, 80, 200)     # the street opens up beyond this distance
        nb = 24
        self.block_len = _u(rng, 12, 30)
        heights = rng.uniform(6, 28, size=(2, nb)).astype(np.float32)
        gaps = rng.random((2, nb)) < 0.25
        heights[gaps] = 0.0
        self.block_h = heights
        self.block_col = rng.uniform(0.12, 0.5, size=(2, nb, 1)).astype(np.float32) * \
            rng.uniform(0.8, 1.2, size=(2, nb, 3)).astype(np.float32)
        self.dash_phase = _u(rng, 0, 12)
        self.crosswalk = _u(rng, 12, 40) if rng.random() < 0.3 and not self.tunnel else None
        self.road_alb = _u(rng, 0.08, 0.14)
        self.lamp_phase = _u(rng, 0, 30)
        self.lamp_period = _u(rng, 22, 35)
        self.shadow_x = _u(rng, -6, 2) if sc == 'deep_shadow' or rng.random() < 0.3 \
            else None
        if sc == 'low_sun_glare' and self.sun_in_view and self.facades:
            # a street canyon hides a low sun unless it sits near the vanishing point
            self.fac_far = _u(rng, 40, 90)
            lim = math.atan(min(self.fac_l, self.fac_r) / self.fac_far)
            self.sun_az = lim * _u(rng, -0.8, 0.8)
        if sc == 'tunnel_exit' and self.sun_in_view:
            # keep the low sun inside the exit's view
            dist = self.tunnel[1]
            self.sun_az = math.atan(self.aw / dist) * _u(rng, -0.6, 0.6)
            self.sun_el = max(math.radians(0.8),
                              math.atan((self.t_h - _CAM_H) / dist) * _u(rng, 0.2, 0.7))

    # ---- objects -------------------------------------------------------------------
    def _new_obj(self, rng, cls, z_rel_range, s=0.0, lane=None):
        night_lights = self.outside_dark or self.tunnel is not None
        o = _Obj(cls=cls, x=0.0, z=0.0, seed=int(rng.integers(2 ** 31)))
        p = o.params
        z_rel = _u(rng, *z_rel_range)
        if cls in (CAR, BUS):
            lane = lane if lane is not None else int(rng.choice([-1, 0, 1], p=[0.35, 0.35,
                                                                               0.3]))
            if self.tunnel is not None and self.tunnel[2]:
                lane = max(lane, 0) if rng.random() < 0.7 else lane
            o.x = lane * _LANE + _u(rng, -0.4, 0.4)
            p['front'] = lane < 0
            p['lane'] = lane
            p['colour'] = _CAR_COLOURS[int(rng.integers(len(_CAR_COLOURS)))]
            p['day'] = not self.outside_dark
            p['led'] = rng.random() < 0.5
            p['wet'] = self.wet
            lights_on = night_lights or rng.random() < 0.6
            high_beam = p['front'] and (self.scenario == 'night_headlights'
                                        or self.sequence == 'night_headlights')
            p['head_level'] = 0.0 if not lights_on else \
                self.head_level * (_u(rng, 3, 8) if high_beam else 1.0)
            p['tail_level'] = self.tail_level * _u(rng, 0.6, 1.6)
            v_cam = self.speed
            if p['front']:
                o.vz = -v_cam - _u(rng, 0.3, 0.7)
            else:
                o.vz = v_cam + _u(rng, -0.1, 0.1)
            if cls == CAR:
                p['van'] = rng.random() < 0.25
                p['w'] = _u(rng, 1.9, 2.05) if p['van'] else _u(rng, 1.7, 1.88)
                p['h'] = _u(rng, 1.9, 2.3) if p['van'] else _u(rng, 1.35, 1.55)
            else:
                p['truck'] = rng.random() < 0.5
                p['w'] = _u(rng, 2.45, 2.55)
                p['h'] = _u(rng, 3.4, 3.9) if p['truck'] else _u(rng, 2.9, 3.3)
                p['display_level'] = self.window_level * 3 if self.outside_dark else 0.0
                p['colour'] = ((0.85, 0.85, 0.8), (0.7, 0.1, 0.08), (0.1, 0.25, 0.55),
                               (0.8, 0.65, 0.1))[int(rng.integers(4))]
        elif cls == PERSON:
            crossing = rng.random() < 0.25 and self.tunnel is None
            side = 1 if rng.random() < 0.5 else -1
            if self.tunnel is not None and self.tunnel[2]:
                o.x = side * (self.aw - _u(rng, 0.4, 0.9))
            else:
                o.x = _u(rng, -4.5, 4.5) if crossing else side * _u(rng, 5.9, 8.5)
            o.vx = side * _u(rng, 0.03, 0.05) if crossing else 0.0
            o.vz = 0.0 if crossing else _u(rng, -0.05, 0.05)
            p.update(h=_u(rng, 1.55, 1.95), phase=_u(rng, 0, 2 * math.pi), riding=False,
                     shirt=_CLOTHES[int(rng.integers(len(_CLOTHES)))],
                     pants=_CLOTHES[int(rng.integers(len(_CLOTHES)))],
                     skin=_SKIN[int(rng.integers(len(_SKIN)))],
                     hair=(0.04, 0.03, 0.02) if rng.random() < 0.7 else (0.4, 0.3, 0.15),
                     pattern=('plain', 'stripes', 'check', 'vest')[int(rng.integers(4))],
                     bag=rng.random() < 0.3)
        elif cls == BIKE:
            side = 1 if rng.random() < 0.5 else -1
            p['side'] = rng.random() < 0.4
            o.x = side * _u(rng, 4.3, 5.0) if not p['side'] else side * _u(rng, 5.9, 8)
            p['colour'] = _CAR_COLOURS[int(rng.integers(len(_CAR_COLOURS)))]
            p['tail_level'] = self.tail_level * 0.3 if self.outside_dark else 0.0
            o.vz = 0.0 if p['side'] else _u(rng, 0.1, 0.25)
        elif cls == TLIGHT:
            overhead = rng.random() < 0.3
            side = 1 if rng.random() < 0.5 else -1
            o.x = _u(rng, -2, 4) if overhead else side * _u(rng, 5.8, 7.0)
            p['mount'] = _u(rng, 5.0, 5.6) if overhead else _u(rng, 2.6, 3.4)
            p['state'] = int(rng.integers(3))
            p['level'] = self.tl_level * _u(rng, 0.7, 1.4)
        elif cls == SIGN:
            side = 1 if rng.random() < 0.7 else -1
            in_tunnel = self.tunnel is not None and self.tunnel[2]
            o.x = side * (self.aw - 0.3 if in_tunnel else _u(rng, 5.8, 7.5))
            p['shape'] = ('circle', 'triangle', 'octagon', 'rect')[int(rng.integers(4))]
            p['size'] = _u(rng, 0.6, 0.9) if p['shape'] != 'rect' else _u(rng, 0.8, 1.4)
            p['mount'] = _u(rng, 1.9, 2.6)
            p['text'] = int(rng.integers(3))
            p['retro'] = 0.0
        else:
            side = 1 if rng.random() < 0.5 else -1
            o.x = side * _u(rng, 6.0, 7.0)
            p.update(h=_u(rng, 7, 9), side=side, level=self.lamp_head,
                     tint=tuple(self.lamp_tint))
        o.z = s + z_rel
        return o

    def _populate(self, rng):
        sc = self.scenario
        in_tunnel = self.tunnel is not None and self.tunnel[2] and self.tunnel[0] < 0
        counts = {
            CAR: int(rng.integers(2, 8)), BUS: int(rng.integers(0, 3)),
            PERSON: int(rng.integers(0, 5)), BIKE: int(rng.integers(0, 3)),
            TLIGHT: int(rng.integers(0, 3)), SIGN: int(rng.integers(0, 4)),
        }
        if in_tunnel:
            counts[TLIGHT] = 0
            counts[BIKE] = 0
            counts[PERSON] = int(rng.integers(0, 2))
        if sc == 'night_headlights' or self.sequence == 'night_headlights':
            counts[CAR] = max(counts[CAR], 3)
        lane_z = {}
        near = 6.0
        for cls, count in counts.items():
            for _ in range(count):
                zr = (near, 75.0) if cls in (CAR, BUS) else (5.0, 55.0)
                o = self._new_obj(rng, cls, zr)
                if cls in (CAR, BUS):
                    lane = o.params['lane']
                    if any(abs(o.z - z) < 9.0 for z in lane_z.get(lane, [])):
                        continue
                    lane_z.setdefault(lane, []).append(o.z)
                self.objects.append(o)
                if cls == BIKE:
                    self._add_rider(rng, o)
        if sc == 'night_headlights' or self.sequence == 'night_headlights':
            o = self._new_obj(rng, CAR, (10.0, 30.0), lane=-1)
            if all(abs(o.z - z) > 9 for z in lane_z.get(-1, [])):
                self.objects.append(o)
        if self.outside_dark and not in_tunnel:
            k0 = math.floor(-self.lamp_phase / self.lamp_period)
            for k in range(k0, k0 + 8):
                for side in (-1, 1):
                    off = 0.0 if side < 0 else self.lamp_period / 2
                    z = self.lamp_phase + k * self.lamp_period + off
                    if 4 < z < 160:
                        o = self._new_obj(rng, LAMP_POST, (0, 0))
                        o.x = side * 6.5
                        o.z = z
                        o.params['side'] = side
                        self.objects.append(o)

    def _add_rider(self, rng, bike):
        if not (bike.params['side'] or rng.random() < 0.85):
            bike.params['rider'] = None
            return
        rider = self._new_obj(rng, PERSON, (1, 2))
        rider.params['riding'] = True
        rider.params['h'] = _u(rng, 1.45, 1.6)
        rider.lift = 0.35
        bike.params['rider'] = rider
        self._place_rider(bike)

    @staticmethod
    def _place_rider(bike):
        rider = bike.params.get('rider')
        if rider is not None:
            side = bike.params['side']
            rider.x = bike.x + (0.05 if side else 0.0)
            rider.z = bike.z + (-0.05 if side else 0.3)

    def move(self, o):
        """Advance one object (and its rider) by one frame."""
        o.x += o.vx
        o.z += o.vz
        if o.cls == PERSON:
            o.params['phase'] += 0.35
        if o.cls == BIKE:
            self._place_rider(o)

    def step(self, k):
        """Advance objects to frame ``k`` (sequences): move, respawn what left the view."""
        s = self.cam_z(k)
        rng = self.rng
        for i, o in enumerate(self.objects):
            self.move(o)
            zr = o.z - s
            if o.cls == LAMP_POST:
                if zr < 3.0:
                    o.z += 8 * self.lamp_period
                continue
            near = 6.0 if o.cls in (CAR, BUS) else 3.0
            if near <= zr <= 180 and abs(o.x) <= 10:
                continue
            overtaking = o.cls in (CAR, BUS) and not o.params['front'] and zr < near
            far = (8.0, 12.0) if overtaking and o.vz > self.speed else (70.0, 110.0)
            lane = None
            if self.sequence == 'night_headlights' and o.cls == CAR and rng.random() < 0.6:
                lane = -1                      # keep oncoming traffic coming
            new = self._new_obj(rng, o.cls, far, s=s, lane=lane)
            if new.cls in (CAR, BUS):
                lane = new.params['lane']
                for other in self.objects:
                    if other is not o and other.cls in (CAR, BUS) and \
                            other.params['lane'] == lane and abs(other.z - new.z) < 9.0:
                        new.z = other.z + (12.0 if new.z >= other.z else -12.0)
            if new.cls == BIKE:
                self._add_rider(rng, new)
            self.objects[i] = new

    def cam_z(self, k):
        """Camera position along the road at frame ``k``, metres."""
        return self.speed * k

    # ---- light ---------------------------------------------------------------------
    def _in_tunnel(self, x, z_abs, y=None):
        if self.tunnel is None:
            return np.zeros(np.broadcast(x, z_abs).shape, bool)
        z_in, z_out, walls = self.tunnel
        m = (z_abs >= z_in) & (z_abs <= z_out)
        if walls:
            m &= np.abs(x) <= self.aw + 0.05
        return m

    def light(self, x, z_abs, z_rel, kind, k=0, split=False):
        """
        Light on a white surface at world points, e-/s per pixel, RGB ``(..., 3)``.

        ``kind``: 'ground', 'front' (camera-facing vertical: objects, portal face),
        'left'/'right' (facades, walls), 'ceiling'. With ``split``, return
        ``(total, direct sun part)``.
        """
        x = np.asarray(x, np.float32)
        z_abs = np.asarray(z_abs, np.float32)
        z_rel = np.asarray(z_rel, np.float32)
        shape = np.broadcast(x, z_abs, z_rel).shape
        out = np.zeros(shape + (3,), np.float32)
        direct_rgb = None
        sunf = self.sun_factor(k)
        if self.sun > 0:
            direct = {'ground': 1.0, 'front': self.face, 'left': self.side_l,
                      'right': self.side_r, 'ceiling': 0.0}[kind]
            amb = {'ground': 1.0, 'front': 0.6, 'left': 0.6, 'right': 0.6,
                   'ceiling': 0.3}[kind]
            sun = np.full(shape, self.sun * direct * sunf, np.float32)
            if self.shadow_x is not None and kind in ('ground', 'front'):
                sun = np.where(x < self.shadow_x, 0.0, sun)
            direct_rgb = sun[..., None] * self.sun_tint
            out += direct_rgb
            out += np.float32(self.sky_amb * amb * (0.5 + 0.5 * sunf)) * _tint('sky')
        else:
            out += np.float32(self.amb * (0.6 if kind != 'ground' else 1.0)) \
                * self.sky_tint / self.sky_tint.mean()
            if self.lamp_pool > 0 and kind != 'ceiling':
                sig2 = 2 * 7.0 ** 2
                pool = np.zeros(shape, np.float32)
                for side, off in ((-1, 0.0), (1, self.lamp_period / 2)):
                    dz = np.mod(z_abs - self.lamp_phase - off, self.lamp_period)
                    dz = np.minimum(dz, self.lamp_period - dz)
                    pool += np.exp(-((x - side * 6.5) ** 2 + dz ** 2) / sig2)
                out += (self.lamp_pool * pool)[..., None] * self.lamp_tint
            if self.ego_beam > 0 and kind in ('ground', 'front'):
                zr = np.maximum(z_rel, 6.0)
                cone = np.exp(-(x / (zr * 0.28 + 1.0)) ** 2)
                beam = self.ego_beam * (8.0 / zr) ** 2 * cone * (z_rel > 1.0)
                if kind == 'front':
                    beam = beam * 1.5
                out += beam[..., None] * _tint('halogen')
        if self.tunnel is not None:
            z_in, z_out, walls = self.tunnel
            inside = self._in_tunnel(x, z_abs)
            if np.any(inside):
                if walls:
                    ripple = 1.0 + 0.25 * np.cos(2 * np.pi * z_abs / self.lamp_spacing)
                    f = {'ground': 1.0, 'front': 0.7, 'left': 0.8, 'right': 0.8,
                         'ceiling': 0.4}[kind]
                    lvl = self.tunnel_light * f * ripple
                    if not self.outside_dark:
                        d = np.minimum(np.abs(z_abs - z_in), np.abs(z_out - z_abs))
                        lvl = lvl + 0.03 * self.sun * sunf * np.exp(-d / 4.0)
                    inner = lvl[..., None] * self.tunnel_tint
                else:
                    inner = np.broadcast_to(
                        np.float32(self.under_bridge if not self.outside_dark
                                   else self.amb * 0.3) * _tint('sky'), shape + (3,))
                out = np.where(inside[..., None], inner, out)
                if direct_rgb is not None:
                    direct_rgb = np.where(inside[..., None], 0.0, direct_rgb)
        if split:
            return out, (direct_rgb if direct_rgb is not None else np.zeros_like(out))
        return out

    def sun_factor(self, k):
        """Fraction of direct sun not blocked by clouds at frame ``k``."""
        if not self.cloud:
            return 1.0
        for a, b, depth in self.cloud:
            if a - 8 <= k <= b + 8:
                ramp = min(1.0, (k - (a - 8)) / 8.0, ((b + 8) - k) / 8.0)
                return 1.0 - (1.0 - depth) * max(0.0, ramp)
        return 1.0

    def sun_dir(self, k):
        """Sun (azimuth, elevation) in radians at frame ``k``."""
        az = self.sun_az
        if self.sun_az_amp:
            az = az + self.sun_az_amp * math.sin(2 * math.pi * k / self.sun_az_period)
        return az, self.sun_el

    # ---- background ----------------------------------------------------------------
    def background(self, k):
        """Ray-cast the static world: (depth, refl, emis, surface code, x, z_abs)."""
        H, W, f = self.H, self.W, self.f
        s = self.cam_z(k)
        h = _CAM_H
        dx = ((np.arange(W, dtype=np.float32) + 0.5 - self.cx) / f)[None, :]
        dy = ((np.arange(H, dtype=np.float32) + 0.5 - self.yh) / f)[:, None]
        inf = np.float32(np.inf)
        with np.errstate(divide='ignore', invalid='ignore'):
            t_road = np.where(dy > 1e-4, h / dy, inf).astype(np.float32)
            depth = np.broadcast_to(t_road, (H, W)).copy()
            surf = np.where(np.isfinite(depth), 1, 0).astype(np.uint8)  # 0 sky, 1 road

            def consider(t_c, valid, code):
                m = valid & (t_c < depth)
                np.copyto(depth, np.broadcast_to(t_c, (H, W)), where=m)
                surf[m] = code

            if self.tunnel is not None:
                z_in, z_out, walls = self.tunnel
                if walls:
                    for code, sgn in ((2, -1.0), (3, 1.0)):
                        t_w = np.where(sgn * dx > 1e-5, self.aw / (sgn * dx), inf)
                        y_w = h - dy * t_w
                        z_w = s + t_w
                        consider(t_w, (y_w >= 0) & (y_w <= self.t_h) & (z_w >= z_in)
                                 & (z_w <= z_out), code)
                t_c = np.where(dy < -1e-5, (self.t_h - h) / -dy, inf)
                x_c = dx * t_c
                z_c = s + t_c
                across = (np.abs(x_c) <= self.aw) | (not walls)   # a bridge spans all x
                consider(t_c, across & (z_c >= z_in) & (z_c <= z_out), 4)
                if s < z_in:
                    t_p = np.float32(z_in - s)
                    x_p = dx * t_p
                    y_p = h - dy * t_p
                    if walls:
                        top = self.face_h + 0.3 * np.abs(x_p)
                        valid = (y_p >= 0) & (y_p <= top) & ~(
                            (np.abs(x_p) <= self.aw) & (y_p <= self.t_h))
                    else:
                        valid = (y_p >= self.t_h) & (y_p <= self.t_h + self.bridge_thick) \
                            & (x_p == x_p)
                    consider(t_p, valid, 5)
            if self.facades:
                for code, sgn, dist in ((6, -1.0, self.fac_l), (7, 1.0, self.fac_r)):
                    t_f = np.where(sgn * dx > 1e-5, dist / (sgn * dx), inf)
                    y_f = h - dy * t_f
                    z_f = s + t_f
                    side = 0 if sgn < 0 else 1
                    idx = np.mod(np.floor(z_f / self.block_len), self.block_h.shape[1])
                    idx = np.where(np.isfinite(idx), idx, 0).astype(np.int32)
                    hb = self.block_h[side][idx]
                    valid = (y_f >= 0) & (y_f <= hb) & (t_f < self.fac_far)
                    if self.tunnel is not None and self.tunnel[2]:
                        valid &= ~((z_f >= self.tunnel[0] - 1) & (z_f <= self.tunnel[1]))
                    consider(t_f, valid, code)
            x = dx * depth
            y = h - dy * depth
            z_abs = s + depth
        refl = np.zeros((H, W, 3), np.float32)
        emis = np.zeros((H, W, 3), np.float32)
        noise = self.noise
        finite = np.isfinite(depth)
        xs = np.where(finite, x, 0).astype(np.float32)
        zs = np.where(finite, z_abs, 0).astype(np.float32)
        ys = np.where(finite, y, 0).astype(np.float32)
        zr = np.where(finite, depth, 0).astype(np.float32)

        # road ---------------------------------------------------------------------
        m = surf == 1
        if m.any():
            xr, zz = xs[m], zs[m]
            ax = np.abs(xr)
            alb = np.full(xr.shape, self.road_alb, np.float32) * (1 + 0.18 * noise[m])
            dash = (np.mod(zz + self.dash_phase, 12.0) < 4.5)
            for xl in (-_LANE / 2, _LANE / 2):
                alb = np.where((np.abs(xr - xl) < 0.075) & dash, 0.55, alb)
            alb = np.where((np.abs(ax - _ROAD_HALF) < 0.08), 0.6, alb)
            if self.crosswalk is not None:
                cw = (zz > self.crosswalk) & (zz < self.crosswalk + 3.0) & \
                    (ax < _ROAD_HALF) & (np.mod(xr, 1.0) < 0.5)
                alb = np.where(cw, 0.6, alb)
            tun = self._in_tunnel(xr, zz) if self.tunnel and self.tunnel[2] else None
            side_w = np.where((ax > 5.5) & (ax < 5.62), 0.35,
                              np.where(ax >= 5.62, 0.24 * (1 + 0.1 * noise[m]), alb))
            side_w = np.where((ax >= 5.62) & ((np.mod(zz, 1.2) < 0.05)
                                              | (np.mod(xr, 1.2) < 0.05)), 0.14, side_w)
            side_w = np.where(ax > 9.5, 0.07 * (1 + 0.3 * noise[m]), side_w)
            alb = side_w
            if tun is not None and tun.any():
                walk = ax > self.aw - 1.0
                gutter = (ax > self.aw - 1.15) & ~walk
                alb = np.where(tun & walk, 0.2 * (1 + 0.1 * noise[m]), alb)
                alb = np.where(tun & gutter, 0.02, alb)
            total, direct = self.light(xr, zz, zr[m], 'ground', k, split=True)
            refl[m] = alb[:, None] * total
            self._road_direct = (m, alb[:, None] * direct)
            # road shininess in wet conditions: reflect the sky a little
            if self.wet:
                refl[m] += 0.05 * np.float32(self.sky_horizon) * self.sky_tint
        # tunnel walls ---------------------------------------------------------------
        for code, kind in ((2, 'left'), (3, 'right')):
            m = surf == code
            if not m.any():
                continue
            yy, zz = ys[m], zs[m]
            alb = np.full(yy.shape, 0.42, np.float32) * (1 + 0.12 * noise[m])
            grout = (np.mod(yy, 0.3) < 0.025) | (np.mod(zz, 0.3) < 0.025)
            alb = np.where(grout, 0.25, alb)
            alb = np.where(yy < 0.9, 0.03 * (1 + 0.3 * noise[m]), alb)
            alb = np.where((yy > 0.9) & (yy < 1.0), 0.6, alb)
            refl[m] = alb[:, None] * self.light(xs[m], zz, zr[m], kind, k)
            sign_band = (yy > 2.2) & (yy < 2.8) & (np.mod(zz, 60.0) < 1.2)
            emis[m] += np.where(sign_band, 3e5, 0.0)[:, None] * np.float32([0.1, 1.0, 0.3])
        # ceiling ------------------------------------------------------------------
        m = surf == 4
        if m.any():
            xr, zz = xs[m], zs[m]
            alb = np.full(xr.shape, 0.12, np.float32) * (1 + 0.2 * noise[m])
            refl[m] = alb[:, None] * self.light(xr, zz, zr[m], 'ceiling', k)
            if self.tunnel[2]:
                lamp = (np.abs(xr - self.lamp_x) < 0.15) & \
                    (np.mod(zz, self.lamp_spacing) < 1.6)
                emis[m] += np.where(lamp, self.tunnel_lamp, 0.0)[:, None] * self.tunnel_tint
        # portal / bridge face -----------------------------------------------------
        m = surf == 5
        if m.any():
            yy, xr = ys[m], xs[m]
            alb = np.full(yy.shape, 0.32, np.float32) * (1 + 0.15 * noise[m])
            if self.tunnel[2]:
                alb = np.where(yy > self.t_h + 2.5, 0.07 * (1 + 0.4 * noise[m]), alb)
                alb = np.where((np.abs(xr) < self.aw + 0.6) & (yy < self.t_h + 0.6), 0.45,
                               alb)
            refl[m] = alb[:, None] * self.light(xr, zs[m] - 0.5, zr[m] - 0.5, 'front', k)
        # facades --------------------------------------------------------------------
        for code, kind, side in ((6, 'left', 0), (7, 'right', 1)):
            m = surf == code
            if not m.any():
                continue
            yy, zz = ys[m], zs[m]
            blk = np.mod(np.floor(zz / self.block_len), self.block_h.shape[1]).astype(
                np.int32)
            alb = self.block_col[side][blk] * (1 + 0.12 * noise[m])[:, None]
            wz = np.mod(zz, 3.0)
            wy = np.mod(yy, 3.2)
            win = (wz > 0.7) & (wz < 2.3) & (wy > 0.9) & (wy < 2.4) & (yy > 0.6)
            alb = np.where(win[:, None], np.float32(0.03), alb)
            refl[m] = alb * self.light(xs[m], zz, zr[m], kind, k)
            if self.window_level > 0:
                cz = np.floor(zz / 3.0).astype(np.int64)
                cy = np.floor(yy / 3.2).astype(np.int64)
                hsh = ((cz * 73856093) ^ (cy * 19349663) ^ (side * 83492791)) % 1000
                lit = win & (hsh < 350)
                lvl = self.window_level * (0.5 + hsh / 700.0)
                emis[m] += np.where(lit, lvl, 0.0)[:, None] * np.float32([1.1, 0.95, 0.7])
        # sky ------------------------------------------------------------------------
        m = surf == 0
        if m.any():
            yy_pix = np.broadcast_to(dy, (H, W))[m]
            xx_pix = np.broadcast_to(dx, (H, W))[m]
            el = np.arctan(-yy_pix)
            a = np.clip(el / 0.6, 0, 1) ** 0.6
            lvl = self.sky_horizon * (1 - a) + self.sky_zenith * a
            if not self.outside_dark:
                lvl = lvl * (1 + 0.25 * noise[m])
            sky = lvl[:, None] * self.sky_tint
            if self.sun_in_view:
                az, sel = self.sun_dir(k)
                ang = np.sqrt((np.arctan(xx_pix) - az) ** 2 + (el - sel) ** 2)
                r_sun = max(1.5, 0.02 * W) / f
                glow = self.sky_horizon * (3.0 * np.exp(-ang / 0.08) +
                                           30.0 * np.exp(-ang / 0.02))
                glow = glow + self.sun_radiance * 0.02 * np.exp(
                    -np.maximum(ang - r_sun, 0) / (0.4 * r_sun))
                sky = sky + glow[:, None] * self.sun_tint
                disk = ang < r_sun
                sky[disk] = np.float32(self.sun_radiance) * self.sun_tint
                self._sun_px = int(disk.sum())
            emis[m] = sky
        return depth, refl, emis, surf, xs, zs

    # ---- frame ---------------------------------------------------------------------
    def render(self, k, frame_seed=None, light_jitter=0.0):
        """Render frame ``k`` as a :class:`Scene`."""
        H, W, f = self.H, self.W, self.f
        s = self.cam_z(k)
        self._road_direct = None
        self._sun_px = 0
        depth, refl, emis, surf, xs, zs = self.background(k)
        ids = np.zeros((H, W), np.int32)
        items = []
        drawn = list(self.objects)
        drawn += [o.params['rider'] for o in self.objects
                  if o.cls == BIKE and o.params.get('rider') is not None]
        for o in drawn:
            zr = o.z - s
            if zr < 2.5 or zr > 200:
                continue
            scale = f / zr
            half_w, top = o.extent()
            if max(2 * half_w, top) * scale < 2:
                continue
            xf = self.cx + f * o.x / zr
            yf = self.yh + f * _CAM_H / zr
            if xf + half_w * scale < 0 or xf - half_w * scale > W or \
                    yf - top * scale > H or yf < 0:
                continue
            items.append((zr, o, scale, xf, yf))
        items.sort(key=lambda it: -it[0])
        self._shadows(items, surf, refl)
        records = []
        for n, (zr, o, scale, xf, yf) in enumerate(items):
            half_w, top = o.extent()
            sp = _Sprite(half_w, top, scale, below_m=0.1 if not (
                o.cls == CAR and o.params.get('wet')) else 1.7 * o.params['h'])
            rng = np.random.default_rng(o.seed)
            if o.cls == SIGN and self.outside_dark:
                beam = self.light(o.x, o.z, zr, 'front', k).mean()
                retro = self.retro * 40.0 * beam
                if o.params['shape'] == 'rect' and rng.random() < 0.3:
                    retro = max(retro, 1e6)
                o.params['retro'] = float(retro)
            if o.cls == PERSON:
                _draw_person(sp, o, rng, lift=o.lift)
            else:
                _DRAW[o.cls](sp, o, rng)
            light = self.light(o.x, o.z, zr, 'front', k).reshape(3)
            rec = self._composite(sp, xf, yf, zr, light, n + 1, depth, refl, emis, ids)
            if rec is not None and o.cls != LAMP_POST:
                records.append((n + 1, o.cls, rec))
        # bloom of bright sources
        lum = emis @ hdr.LUMA_RGB
        src = np.where((lum > _BLOOM_THRESHOLD)[..., None], emis, 0.0).astype(np.float32)
        if src.any():
            d = max(2, W // 160)
            small = cv2.resize(src, (max(1, W // d), max(1, H // d)),
                               interpolation=cv2.INTER_AREA)
            b1 = cv2.GaussianBlur(small, (0, 0), max(0.6, 0.004 * W / d))
            b2 = cv2.GaussianBlur(small, (0, 0), 0.025 * W / d)
            bloom = cv2.resize(0.001 * b1 + 0.0002 * b2, (W, H),
                               interpolation=cv2.INTER_LINEAR)
            emis += bloom
        rad = refl + emis
        if light_jitter:
            rad *= np.float32(light_jitter)
        np.maximum(rad, np.float32(RADIANCE_FLOOR), out=rad)
        counts = np.bincount(ids.reshape(-1), minlength=len(items) + 2)
        boxes, labels = [], []
        for idx, cls, (box, n_drawn) in records:
            x1, y1, x2, y2 = box
            if x2 - x1 < MIN_BOX_PX or y2 - y1 < MIN_BOX_PX:
                continue
            if counts[idx] < MIN_VISIBLE * n_drawn:
                continue
            boxes.append(box)
            labels.append(cls)
        return rad, np.asarray(boxes, np.float32).reshape(-1, 4), \
            np.asarray(labels, np.int64)

    def _footprint(self, o):
        """(half width along x, depth along z) of an object's ground footprint, metres."""
        p = o.params
        if o.cls == CAR:
            return p['w'] / 2, (5.0 if p['van'] else 4.4)
        if o.cls == BUS:
            return p['w'] / 2, 11.0
        if o.cls == BIKE:
            return (0.85, 0.3) if p['side'] else (0.3, 1.7)
        return 0.25, 0.35

    def _project_ground(self, x, z_rel):
        z_rel = np.maximum(z_rel, 1.0)
        return np.stack([self.cx + self.f * x / z_rel,
                         self.yh + self.f * _CAM_H / z_rel], axis=-1)

    def _shadows(self, items, surf, refl):
        """Darken the road under objects and in their cast shadows (direct sun only)."""
        H, W = self.H, self.W
        amb = np.ones((H, W), np.float32)
        sun = np.ones((H, W), np.float32)
        any_sun = False
        for zr, o, scale, xf, yf in items:
            if o.cls not in (CAR, BUS, PERSON, BIKE) or o.lift:
                continue
            hx, dz = self._footprint(o)
            foot = np.array([[o.x - hx, zr], [o.x + hx, zr], [o.x + hx, zr + dz],
                             [o.x - hx, zr + dz]])
            pts = self._project_ground(foot[:, 0], foot[:, 1])
            hull = cv2.convexHull(np.round(pts * 16).astype(np.int32))
            cv2.fillConvexPoly(amb, hull, 0.45, cv2.LINE_8, 4)
            if self.sun <= 0 or self._in_tunnel(o.x, o.z) or (
                    self.shadow_x is not None and o.x < self.shadow_x):
                continue
            any_sun = True
            length = min(60.0, o.extent()[1] / math.tan(self.shadow_el))
            sx, sz = self.shadow_dir
            moved = foot + np.array([sx * length, sz * length])
            allp = np.concatenate([foot, moved])
            pts = self._project_ground(allp[:, 0], allp[:, 1])
            hull = cv2.convexHull(np.round(pts * 16).astype(np.int32))
            cv2.fillConvexPoly(sun, hull, 0.0, cv2.LINE_8, 4)
        road = surf == 1
        if any_sun and self._road_direct is not None:
            m, direct = self._road_direct
            refl[m] -= direct * (1.0 - sun[m])[:, None]
        refl[road] *= amb[road][:, None]

    def _composite(self, sp, xf, yf, zr, light, idx, depth, refl, emis, ids):
        H, W = self.H, self.W
        ox = int(round(xf - sp.x0))
        oy = int(round(yf - sp.y0))
        h, w = sp.cover.shape
        x1, y1, x2, y2 = max(ox, 0), max(oy, 0), min(ox + w, W), min(oy + h, H)
        if x1 >= x2 or y1 >= y2:
            return None
        sl = (slice(y1, y2), slice(x1, x2))
        psl = (slice(y1 - oy, y2 - oy), slice(x1 - ox, x2 - ox))
        if sp.glow is not None:
            emis[sl] += sp.glow[psl] * (depth[sl] > 0.3 * zr)[..., None]
        cover = sp.cover[psl].astype(bool)
        zt = cover & (depth[sl] >= zr - 1.0)
        if not zt.any():
            return None
        rr, ee, dd, ii = refl[sl], emis[sl], depth[sl], ids[sl]
        rr[zt] = sp.alb[psl][zt] * light
        ee[zt] = sp.emit[psl][zt]
        dd[zt] = zr
        bm = zt & sp.box[psl].astype(bool)
        ii[zt] = 0
        ii[bm] = idx
        if not bm.any():
            return None
        rows = np.flatnonzero(bm.any(axis=1))
        cols = np.flatnonzero(bm.any(axis=0))
        box = (x1 + cols[0], y1 + rows[0], x1 + cols[-1] + 1, y1 + rows[-1] + 1)
        return tuple(float(v) for v in box), int(bm.sum())

    def meta(self, k, rad, extra=None):
        """Per-frame metadata."""
        s = self.cam_z(k)
        cam_light = float(self.light(0.0, s + 3.0, 3.0, 'ground', k).reshape(3)
                          @ hdr.LUMA_RGB)
        m = {
            'scenario': self.scenario, 'group': scenario_group(self.scenario),
            'sequence': self.sequence, 'frame_index': int(k), 'camera_z_m': float(s),
            'illumination_e_per_s': cam_light,
            'illumination_scale': cam_light / E_SUNLIT_WHITE,
            'mean_luminance_e_per_s': float(np.mean(rad @ hdr.LUMA_RGB)),
            'event': self.event(k), 'focal_px': float(self.f),
            'horizon_px': float(self.yh), 'camera_height_m': _CAM_H,
            'sun_in_view': bool(self.sun_in_view), 'sun_visible_px': int(self._sun_px),
            'units': 'photo-electrons/s/pixel',
        }
        if extra:
            m.update(extra)
        return m

    def event(self, k):
        """Illumination event label of frame ``k``."""
        s = self.cam_z(k)
        seq = self.sequence
        if seq in ('tunnel_exit', 'tunnel_entry', 'tunnel_in_out'):
            z_in, z_out, _ = self.tunnel
            if abs(s - z_out) <= 5:
                return 'exiting'
            if abs(s - z_in) <= 5:
                return 'entering'
            if z_in < s < z_out:
                return 'approaching_exit' if z_out - s < 60 else 'inside'
            return 'approaching_entry' if 0 < z_in - s < 60 else 'outside'
        if seq == 'low_sun':
            if self._sun_px > 0:
                return 'sun_glare'
            az, el = self.sun_dir(k)
            x = self.cx + self.f * math.tan(az)
            y = self.yh - self.f * math.tan(el)
            return 'sun_occluded' if 0 <= x < self.W and 0 <= y < self.H else \
                'sun_out_of_view'
        if seq == 'night_headlights':
            for o in self.objects:
                if o.cls == CAR and o.params.get('front') and 0 < o.z - s < 80 and \
                        o.params['head_level'] > 0:
                    return 'oncoming_headlights'
            return 'none'
        if seq == 'day':
            return 'cloud_shadow' if self.sun_factor(k) < 0.9 else 'none'
        return 'static'


# ---------------------------------------------------------------------------- public

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


def generate_scene(seed: int, scenario: str = None, height: int = DEFAULT_HEIGHT,
                   width: int = DEFAULT_WIDTH) -> Scene:
    """
    Generate one procedural HDR driving scene, deterministic in ``seed``.

    ``scenario`` defaults to :func:`sample_scenario` drawn from the seed. Any size from
    64 x 64 up works (1216 x 1936 included).
    """
    seed, scenario, h, w = _resolve(seed, scenario, height, width)
    world = _World(seed, scenario, h, w)
    rad, boxes, labels = world.render(0)
    return Scene(rad, boxes, labels, scenario, seed, world.meta(0, rad))


def generate_pair(seed: int, scenario: str = None, height: int = DEFAULT_HEIGHT,
                  width: int = DEFAULT_WIDTH, light_change: float = 0.03):
    """
    Two consecutive frames of one scene: small ego and object motion, light within ±3 %.

    The first frame equals :func:`generate_scene` with the same arguments; the second
    is one frame (1/30 s) later, with the global light scaled by a factor drawn from
    ``[1 - light_change, 1 + light_change]``.
    """
    seed, scenario, h, w = _resolve(seed, scenario, height, width)
    world = _World(seed, scenario, h, w)
    rad0, b0, l0 = world.render(0)
    first = Scene(rad0, b0, l0, scenario, seed, world.meta(0, rad0))
    jitter = 1.0 + _u(np.random.default_rng([seed, 1]), -light_change, light_change)
    for o in world.objects:
        world.move(o)
    rad1, b1, l1 = world.render(1, light_jitter=jitter)
    second = Scene(rad1, b1, l1, scenario, seed,
                   world.meta(1, rad1, {'light_jitter': jitter}))
    return first, second


_SEQ_LIGHTING = {'tunnel_exit': 'tunnel_exit', 'tunnel_entry': 'tunnel_interior',
                 'tunnel_in_out': 'tunnel_interior', 'low_sun': 'low_sun_glare',
                 'night_headlights': 'night_headlights', 'day': 'day'}


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
    world = _World(seed, _SEQ_LIGHTING[scenario], h, w, sequence=scenario, n_frames=n)
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


# ----------------------------------------------------------------------------- export

def to_coco(scenes, file_names=None) -> dict:
    """
    COCO detection dictionary for ``scenes`` (image ids 1.., annotation ids 1..).

    ``bbox`` is ``[x, y, w, h]`` in pixels from the xyxy boxes, ``area = w * h``,
    ``iscrowd = 0``; categories are :data:`CLASSES` with ids 1..6. ``file_names``
    defaults to ``scene_{i:06d}.png``. Image sizes come from the radiance, or from
    ``meta['height']`` / ``meta['width']`` where present (so a caller may drop the
    radiance of long runs).
    """
    scenes = list(scenes)
    if file_names is None:
        file_names = [f'scene_{i:06d}.png' for i in range(len(scenes))]
    file_names = list(file_names)
    if len(file_names) != len(scenes):
        raise SceneError(f'{len(scenes)} scenes but {len(file_names)} file names')
    images, annotations = [], []
    ann_id = 1
    for i, (sc, name) in enumerate(zip(scenes, file_names)):
        h, w = (sc.meta['height'], sc.meta['width']) if 'height' in sc.meta else \
            sc.radiance.shape[:2]
        images.append({'id': i + 1, 'file_name': str(name), 'height': int(h),
                       'width': int(w), 'scenario': sc.scenario, 'seed': int(sc.seed)})
        for box, label in zip(np.asarray(sc.boxes).reshape(-1, 4), sc.labels):
            x1, y1, x2, y2 = (float(v) for v in box)
            bw, bh = x2 - x1, y2 - y1
            annotations.append({'id': ann_id, 'image_id': i + 1,
                                'category_id': int(label),
                                'bbox': [x1, y1, bw, bh], 'area': bw * bh,
                                'iscrowd': 0})
            ann_id += 1
    categories = [{'id': i + 1, 'name': n, 'supercategory': 'road'}
                  for i, n in enumerate(CLASSES)]
    return {'images': images, 'annotations': annotations, 'categories': categories}


def from_coco(coco: dict) -> list:
    """
    Inverse of :func:`to_coco` for annotations: one dict per image.

    Each has ``file_name``, ``height``, ``width``, ``boxes`` (float32 xyxy) and
    ``labels`` (int64), in the order of ``coco['images']``.
    """
    try:
        per_image = {img['id']: {'file_name': img['file_name'], 'height': img['height'],
                                 'width': img['width'], 'boxes': [], 'labels': []}
                     for img in coco['images']}
        for ann in coco['annotations']:
            x, y, w, h = ann['bbox']
            rec = per_image[ann['image_id']]
            rec['boxes'].append((x, y, x + w, y + h))
            rec['labels'].append(ann['category_id'])
    except (KeyError, TypeError, ValueError) as err:
        raise SceneError(f'malformed COCO dictionary: {err!r}') from err
    out = []
    for img in coco['images']:
        rec = per_image[img['id']]
        rec['boxes'] = np.asarray(rec['boxes'], np.float32).reshape(-1, 4)
        rec['labels'] = np.asarray(rec['labels'], np.int64)
        out.append(rec)
    return out


def export_brackets(scene: Scene, out_dir, stem: str, exposures_s=None, gains=None,
                    full_well_e: float = 1e4, ratio: float = 16.0,
                    jpeg_quality: int = 95) -> dict:
    """
    Write three bracketed 8-bit JPEGs of ``scene`` and a JSON sidecar; return the sidecar.

    Each bracket is :func:`neural_ae.core.hdr.render_ldr` of the radiance at its
    exposure time and gain with ``full_scale = full_well_e`` (the bracketing camera
    saturates at ``full_well_e`` electrons). Default exposures are
    ``e_mid / ratio, e_mid, e_mid * ratio`` with ``e_mid`` the base exposure
    :func:`neural_ae.core.hdr.e_base_s` of that camera (mean linear value at half
    scale). ``exposures_s='cover'`` instead spans the scene: the shortest bracket puts
    the 99.9th luminance percentile at 90 % of full scale, the longest puts the 1st
    percentile at 5 % (linear), the middle one is their geometric mean; use it for
    scenes whose mean is ruled by the sun or headlights, where brackets around
    ``e_base`` leave the shadows black. Files: ``{stem}_b{i}.jpg`` and ``{stem}.json``
    (``exposure_times_s``, ``gains``, ``full_well_e``, ``files``, ``scenario``,
    ``seed``, ``response``).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rad = np.asarray(scene.radiance, np.float32)
    if exposures_s is None:
        e_mid = hdr.e_base_s(rad, g1_dn_per_e=1.0 / full_well_e, white_level=1.0)
        exposures_s = (e_mid / ratio, e_mid, e_mid * ratio)
    elif isinstance(exposures_s, str):
        if exposures_s != 'cover':
            raise HDRError(f"exposures_s must be None, 'cover' or three times; got "
                           f'{exposures_s!r}')
        lo, hi = np.percentile(hdr.luminance(rad), [1.0, 99.9])
        t_short = 0.9 * full_well_e / max(float(hi), 1e-30)
        t_long = max(0.05 * full_well_e / max(float(lo), 1e-30), t_short)
        exposures_s = (t_short, math.sqrt(t_short * t_long), t_long)
    exposures_s = [float(t) for t in exposures_s]
    gains = [1.0] * len(exposures_s) if gains is None else [float(g) for g in gains]
    if len(gains) != len(exposures_s):
        raise HDRError(f'{len(exposures_s)} exposures but {len(gains)} gains')
    files = []
    for i, (t, g) in enumerate(zip(exposures_s, gains)):
        ldr = hdr.render_ldr(rad, t, g, full_scale=full_well_e)
        name = f'{stem}_b{i}.jpg'
        ok = cv2.imwrite(str(out / name), cv2.cvtColor(ldr, cv2.COLOR_RGB2BGR),
                         [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)])
        if not ok:
            raise HDRError(f'cannot write bracket {out / name}')
        files.append(name)
    side = {'stem': stem, 'files': files, 'exposure_times_s': exposures_s,
            'gains': gains, 'full_well_e': float(full_well_e), 'response': 'srgb',
            'scenario': scene.scenario, 'seed': int(scene.seed),
            'height': int(rad.shape[0]), 'width': int(rad.shape[1])}
    (out / f'{stem}.json').write_text(json.dumps(side, indent=1))
    return side


def load_brackets(directory, stem: str):
    """
    Read brackets written by :func:`export_brackets`.

    Returns ``(images, exposure_times_s, gains, sidecar)`` with RGB uint8 images, ready
    for ``hdr.merge_brackets(images, times, gains, full_scale=sidecar['full_well_e'])``.
    """
    d = Path(directory)
    side_path = d / f'{stem}.json'
    if not side_path.is_file():
        raise FileNotFoundError(f'bracket sidecar not found: {side_path}')
    try:
        side = json.loads(side_path.read_text())
        names = side['files']
        times = np.asarray(side['exposure_times_s'], np.float64)
        gains = np.asarray(side['gains'], np.float64)
    except (ValueError, KeyError, TypeError) as err:
        raise HDRError(f'malformed bracket sidecar {side_path}: {err!r}') from err
    images = []
    for name in names:
        p = d / name
        if not p.is_file():
            raise FileNotFoundError(f'bracket image not found: {p}')
        img = cv2.imread(str(p), cv2.IMREAD_COLOR)
        if img is None:
            raise HDRError(f'cannot decode bracket image {p}')
        images.append(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
    return images, times, gains, side


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
