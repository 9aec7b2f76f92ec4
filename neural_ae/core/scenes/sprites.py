"""
Sprites of the scene objects: their kinds, state, shapes and drawing.

An object is drawn as a flat billboard in metres (``u`` right of its foot centre, ``v``
up) into a :class:`Sprite` patch at its pixel scale with OpenCV primitives: albedo,
emission, coverage and the mask its box is measured on. Object kinds are the detector
labels of :mod:`neural_ae.core.classes` plus :data:`LAMP_POST` (drawn, never annotated).
"""
from dataclasses import dataclass, field
import math

import cv2
from neural_ae.core.classes import CATEGORY_IDS, CLASSES
from neural_ae.core.scenes.sampling import value_noise
from neural_ae.core.scenes.scenarios import TINT
import numpy as np

BIKE, BUS, CAR, PERSON, TLIGHT, SIGN = (CATEGORY_IDS[name] for name in CLASSES)
LAMP_POST = 0  # drawn, never annotated
ROAD_USERS = (CAR, BUS, PERSON, BIKE)
"""Kinds that stand on the road and cast shadows."""


class Sprite:
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
        n = value_noise(rng, h, w, (cells, cells * 3))
        self.alb *= (1.0 + amp * n)[..., None]


def emission(level, colour) -> np.ndarray:
    """Return the radiance a lamp emits: RGB ``colour`` times ``level`` (e-/s), float32."""
    return np.asarray(colour, np.float32) * np.float32(level)


def draw_car(sp, o, rng):
    """Car or van, front (headlights, wet-road glow) or rear (tail lights)."""
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
        e = emission(p['head_level'], TINT['halogen'] if not p['led'] else TINT['led'])
        for sgn in (-1, 1):
            sp.ellipse(sgn * (hw - 0.25), ly, 0.17, 0.08, (0.7, 0.7, 0.7), e)
            if p['wet']:
                u = sgn * (hw - 0.25)
                for frac, gain in ((1.0, 0.0005), (0.55, 0.0015), (0.25, 0.003)):
                    sp.add_glow([(u - 0.12, 0.0), (u + 0.12, 0.0),
                                 (u + 0.12 - 0.08 * frac, -1.6 * hgt * frac),
                                 (u - 0.12 + 0.08 * frac, -1.6 * hgt * frac)], e * gain)
    else:
        e = emission(p['tail_level'], (1.0, 0.05, 0.03))
        for sgn in (-1, 1):
            sp.rect(sgn * (hw - 0.05), ly - 0.08, sgn * (hw - 0.38), ly + 0.08,
                    (0.45, 0.04, 0.03), e)
    sp.texture(rng, 0.12, 0.3)


def draw_bus(sp, o, rng):
    """Bus (windows, lit destination display) or truck (ribbed container)."""
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
        disp = emission(p['display_level'], (1.0, 0.6, 0.1))
        sp.rect(-hw + 0.3, hgt - 0.45, hw - 0.3, hgt - 0.12, (0.03, 0.03, 0.03))
        for i in range(8):
            x = -hw + 0.4 + i * (w - 0.8) / 8
            sp.rect(x, hgt - 0.4, x + (w - 0.8) / 14, hgt - 0.17, (0.3, 0.2, 0.05), disp)
        sp.rect(-hw, 0.75, hw, 0.9, col * 0.5)
    sp.rect(-0.26, 0.55, 0.26, 0.67, (0.85, 0.85, 0.8))
    for i in range(5):
        sp.rect(-0.21 + i * 0.09, 0.575, -0.16 + i * 0.09, 0.645, (0.04, 0.04, 0.04))
    if p['front']:
        e = emission(p['head_level'], TINT['halogen'])
        for sgn in (-1, 1):
            sp.rect(sgn * (hw - 0.15), 0.6, sgn * (hw - 0.5), 0.78, (0.7, 0.7, 0.7), e)
    else:
        e = emission(p['tail_level'], (1.0, 0.05, 0.03))
        for sgn in (-1, 1):
            sp.rect(sgn * (hw - 0.05), 0.6, sgn * (hw - 0.25), 1.1, (0.45, 0.04, 0.03), e)
    sp.texture(rng, 0.1, 0.4)


def draw_person(sp, o, rng):
    """Pedestrian or rider (drawn ``o.lift`` metres above the road), walking phase."""
    p = o.params
    lift = o.lift
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


def draw_bike(sp, o, rng):
    """Bicycle seen from the side or from behind (tail light)."""
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
                emission(p['tail_level'], (1.0, 0.05, 0.03)))
        sp.line(-0.3, 1.02, 0.3, 1.02, 0.035, (0.1, 0.1, 0.1))  # handlebar
        sp.rect(-0.09, 0.86, 0.09, 0.92, (0.05, 0.05, 0.05))
    sp.texture(rng, 0.08, 0.1)


def draw_traffic_light(sp, o, rng):
    """Traffic light on its pole (not in the box), one lamp lit."""
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
        e = emission(p['level'], c) if lit else None
        sp.circle(0.0, v, 0.11, np.asarray(c, np.float32) * (0.6 if lit else 0.08), e)
        sp.rect(-0.13, v + 0.11, 0.13, v + 0.14, (0.02, 0.02, 0.02))  # visor


def draw_sign(sp, o, rng):
    """Road sign on its pole: circle, triangle, octagon or rectangular panel."""
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


def draw_lamp_post(sp, o, rng):
    """Street lamp (never annotated), lit at night."""
    p = o.params
    hgt = p['h']
    sp.rect(-0.07, 0.0, 0.07, hgt, (0.3, 0.3, 0.3), box=False)
    arm = -p['side'] * 1.5
    sp.line(0.0, hgt, arm, hgt + 0.2, 0.08, (0.3, 0.3, 0.3), box=False)
    sp.ellipse(arm, hgt + 0.12, 0.35, 0.1, (0.2, 0.2, 0.2), box=False)
    if p['level'] > 0:
        sp.ellipse(arm, hgt + 0.05, 0.28, 0.06, (0.8, 0.8, 0.8),
                   emission(p['level'], p['tint']), box=False)


DRAW = {CAR: draw_car, BUS: draw_bus, PERSON: draw_person, BIKE: draw_bike,
        TLIGHT: draw_traffic_light, SIGN: draw_sign, LAMP_POST: draw_lamp_post}
"""Drawing function of each object kind: ``fn(sprite, obj, rng)``."""


def draw(sp, o, rng) -> None:
    """Draw object ``o`` into sprite ``sp`` with the function of its kind."""
    DRAW[o.cls](sp, o, rng)


@dataclass
class SceneObject:
    """State of one object: kind, position and velocity on the road, look parameters."""

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
