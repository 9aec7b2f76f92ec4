"""
The scene builder: camera, static layout and objects of one scene or sequence; frames.

:class:`World` draws everything of a scene from its seed in a fixed order (camera,
lighting, layout, background noise, traffic) and renders frame ``k``: the ray-cast
background (:class:`~neural_ae.core.scenes.background.BackgroundMixin`), the objects'
ground shadows, the objects as sprites painted far to near with a depth test, each lit
by the light where it stands (:class:`~neural_ae.core.scenes.lighting.LightingMixin`),
a small bloom around bright sources, and the boxes of the objects that stay visible.
Objects and their motion are :class:`~neural_ae.core.scenes.traffic.TrafficMixin`.
"""
import math
from typing import NamedTuple

import cv2
from neural_ae.core import hdr
from neural_ae.core.scenes.background import BackgroundMixin, ROAD
from neural_ae.core.scenes.lighting import LightingMixin
from neural_ae.core.scenes.sampling import log_uniform as _logu, uniform as _u, value_noise
from neural_ae.core.scenes.scenarios import (BLOOM_THRESHOLD, CAM_H, E_SUNLIT_WHITE,
                                             MIN_BOX_PX, MIN_VISIBLE, RADIANCE_FLOOR,
                                             scenario_group)
from neural_ae.core.scenes.sprites import (BIKE, BUS, CAR, draw, LAMP_POST, ROAD_USERS,
                                           SIGN, Sprite)
from neural_ae.core.scenes.traffic import TrafficMixin
import numpy as np


class _Placed(NamedTuple):
    """An object in view at one frame: depth, object, pixels per metre, foot pixel."""

    zr: float
    o: object
    scale: float
    xf: float
    yf: float


class World(LightingMixin, BackgroundMixin, TrafficMixin):
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
        self.noise = value_noise(rng, height, width, (6, 24, 96))
        self.objects = []
        self._populate(rng)

    # ---- layout --------------------------------------------------------------------
    def _setup_structures(self, rng):
        """Tunnel or bridge, street (facades, marks, lamps, shade), then aim a low sun."""
        self._setup_tunnel(rng)
        self._setup_street(rng)
        self._aim_low_sun(rng)

    def _setup_tunnel(self, rng):
        """``tunnel = (z_in, z_out, walls)`` (no walls: a bridge) and its dimensions."""
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

    def _setup_street(self, rng):
        """Facade blocks, road marks and albedo, street-lamp spacing, a shaded side."""
        sc, seq = self.scenario, self.sequence
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

    def _aim_low_sun(self, rng):
        """Keep a low sun where the street canyon or the tunnel exit lets it be seen."""
        sc = self.scenario
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
                              math.atan((self.t_h - CAM_H) / dist) * _u(rng, 0.2, 0.7))

    def cam_z(self, k):
        """Camera position along the road at frame ``k``, metres."""
        return self.speed * k

    # ---- frame ---------------------------------------------------------------------
    def render(self, k, light_jitter=0.0):
        """Render frame ``k``: ``(radiance (H, W, 3) float32, boxes (N, 4), labels (N,))``."""
        H, W = self.H, self.W
        self._road_direct = None
        self._sun_px = 0
        depth, refl, emis, surf, _, _ = self.background(k)
        ids = np.zeros((H, W), np.int32)
        items = self._in_view(self.cam_z(k))
        self._shadows(items, surf, refl)
        records = self._draw_objects(items, k, depth, refl, emis, ids)
        self._bloom(emis)
        rad = refl + emis
        if light_jitter:
            rad *= np.float32(light_jitter)
        np.maximum(rad, np.float32(RADIANCE_FLOOR), out=rad)
        boxes, labels = self._visible_boxes(records, ids, len(items))
        return rad, boxes, labels

    def _in_view(self, s):
        """Objects (and riders) in view from camera position ``s``, far to near."""
        H, W, f = self.H, self.W, self.f
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
            yf = self.yh + f * CAM_H / zr
            if xf + half_w * scale < 0 or xf - half_w * scale > W or \
                    yf - top * scale > H or yf < 0:
                continue
            items.append(_Placed(zr, o, scale, xf, yf))
        items.sort(key=lambda it: -it[0])
        return items

    def _draw_objects(self, items, k, depth, refl, emis, ids):
        """Paint ``items`` far to near; ``[(id, class, (box, n_box_pixels))]`` annotated."""
        records = []
        for n, (zr, o, scale, xf, yf) in enumerate(items):
            half_w, top = o.extent()
            sp = Sprite(half_w, top, scale, below_m=0.1 if not (
                o.cls == CAR and o.params.get('wet')) else 1.7 * o.params['h'])
            rng = np.random.default_rng(o.seed)
            if o.cls == SIGN and self.outside_dark:
                self._set_sign_retro(o, zr, k, rng)
            draw(sp, o, rng)
            light = self.light(o.x, o.z, zr, 'front', k).reshape(3)
            rec = self._composite(sp, xf, yf, zr, light, n + 1, depth, refl, emis, ids)
            if rec is not None and o.cls != LAMP_POST:
                records.append((n + 1, o.cls, rec))
        return records

    def _set_sign_retro(self, o, zr, k, rng):
        """Make a sign glow at night by retro-reflecting the headlights (some are lit)."""
        beam = self.light(o.x, o.z, zr, 'front', k).mean()
        retro = self.retro * 40.0 * beam
        if o.params['shape'] == 'rect' and rng.random() < 0.3:
            retro = max(retro, 1e6)
        o.params['retro'] = float(retro)

    def _bloom(self, emis):
        """Add a small optical bloom around sources above the bloom threshold."""
        H, W = self.H, self.W
        lum = emis @ hdr.LUMA_RGB
        src = np.where((lum > BLOOM_THRESHOLD)[..., None], emis, 0.0).astype(np.float32)
        if src.any():
            d = max(2, W // 160)
            small = cv2.resize(src, (max(1, W // d), max(1, H // d)),
                               interpolation=cv2.INTER_AREA)
            b1 = cv2.GaussianBlur(small, (0, 0), max(0.6, 0.004 * W / d))
            b2 = cv2.GaussianBlur(small, (0, 0), 0.025 * W / d)
            bloom = cv2.resize(0.001 * b1 + 0.0002 * b2, (W, H),
                               interpolation=cv2.INTER_LINEAR)
            emis += bloom

    @staticmethod
    def _visible_boxes(records, ids, n_items):
        """Boxes and labels of the records large and visible enough to annotate."""
        counts = np.bincount(ids.reshape(-1), minlength=n_items + 2)
        boxes, labels = [], []
        for idx, cls, (box, n_drawn) in records:
            x1, y1, x2, y2 = box
            if x2 - x1 < MIN_BOX_PX or y2 - y1 < MIN_BOX_PX:
                continue
            if counts[idx] < MIN_VISIBLE * n_drawn:
                continue
            boxes.append(box)
            labels.append(cls)
        return np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(labels, np.int64)

    # ---- shadows and compositing ---------------------------------------------------
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
                         self.yh + self.f * CAM_H / z_rel], axis=-1)

    def _shadows(self, items, surf, refl):
        """Darken the road under objects and in their cast shadows (direct sun only)."""
        H, W = self.H, self.W
        amb = np.ones((H, W), np.float32)
        sun = np.ones((H, W), np.float32)
        any_sun = False
        for zr, o, scale, xf, yf in items:
            if o.cls not in ROAD_USERS or o.lift:
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
        road = surf == ROAD
        if any_sun and self._road_direct is not None:
            m, direct = self._road_direct
            refl[m] -= direct * (1.0 - sun[m])[:, None]
        refl[road] *= amb[road][:, None]

    def _composite(self, sp, xf, yf, zr, light, idx, depth, refl, emis, ids):
        """Paint sprite ``sp`` with its foot at ``(xf, yf)``; ``(box, n_box_px)`` or None."""
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

    # ---- metadata ------------------------------------------------------------------
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
            'horizon_px': float(self.yh), 'camera_height_m': CAM_H,
            'sun_in_view': bool(self.sun_in_view), 'sun_visible_px': int(self._sun_px),
            'units': 'photo-electrons/s/pixel',
        }
        if extra:
            m.update(extra)
        return m

    def event(self, k):
        """Illumination event label of frame ``k``."""
        seq = self.sequence
        if seq in ('tunnel_exit', 'tunnel_entry', 'tunnel_in_out'):
            return self._tunnel_event(self.cam_z(k))
        if seq == 'low_sun':
            return self._sun_event(k)
        if seq == 'night_headlights':
            return self._headlights_event(self.cam_z(k))
        if seq == 'day':
            return 'cloud_shadow' if self.sun_factor(k) < 0.9 else 'none'
        return 'static'

    def _tunnel_event(self, s):
        """Where the camera at ``s`` is relative to the tunnel's entry and exit."""
        z_in, z_out, _ = self.tunnel
        if abs(s - z_out) <= 5:
            return 'exiting'
        if abs(s - z_in) <= 5:
            return 'entering'
        if z_in < s < z_out:
            return 'approaching_exit' if z_out - s < 60 else 'inside'
        return 'approaching_entry' if 0 < z_in - s < 60 else 'outside'

    def _sun_event(self, k):
        """Whether the low sun is visible, hidden inside the frame, or out of view."""
        if self._sun_px > 0:
            return 'sun_glare'
        az, el = self.sun_dir(k)
        x = self.cx + self.f * math.tan(az)
        y = self.yh - self.f * math.tan(el)
        return 'sun_occluded' if 0 <= x < self.W and 0 <= y < self.H else \
            'sun_out_of_view'

    def _headlights_event(self, s):
        """Whether a lit oncoming car is within 80 m of the camera at ``s``."""
        for o in self.objects:
            if o.cls == CAR and o.params.get('front') and 0 < o.z - s < 80 and \
                    o.params['head_level'] > 0:
                return 'oncoming_headlights'
        return 'none'
