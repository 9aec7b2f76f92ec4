"""
Lighting of a scene: the light sources drawn from the scenario, and the light at a point.

:class:`LightingMixin` is the part of :class:`~neural_ae.core.scenes.world.World` that
draws the light levels of its scenario (:data:`~neural_ae.core.scenes.scenarios.
DARK_LIGHTING`, :data:`~neural_ae.core.scenes.scenarios.DAYLIGHT`), a low sun in view,
the shadow direction, passing clouds and the tunnel lights, and answers
:meth:`~LightingMixin.light`: the light falling on a white surface at world points (sun
and sky by day; ambient, street-lamp pools and the ego headlights by night; the tunnel
or the shade of a bridge wherever the point lies inside one). It reads the world's
layout (``tunnel``, ``aw``, ``lamp_spacing``, ``lamp_phase``, ``lamp_period``,
``shadow_x``).
"""
import math

from neural_ae.core.scenes.sampling import log_uniform as _logu, uniform as _u
from neural_ae.core.scenes.scenarios import (DARK_LIGHTING, DAYLIGHT, E_SUNLIT_WHITE,
                                             tint as _tint)
import numpy as np

_SKY_AMBIENT = {'ground': 1.0, 'front': 0.6, 'left': 0.6, 'right': 0.6, 'ceiling': 0.3}
_TUNNEL_FACTOR = {'ground': 1.0, 'front': 0.7, 'left': 0.8, 'right': 0.8, 'ceiling': 0.4}


class LightingMixin:
    """Light sources of a world and the light at world points (see the module docstring)."""

    # ---- drawing the light sources -------------------------------------------------
    def _setup_light(self, rng):
        """Draw every light level of the scenario, in a fixed order from ``rng``."""
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
        if self.outside_dark:
            self._setup_dark_light(rng, DARK_LIGHTING['night' if night else 'dusk'])
            if night:
                self.wet = sc == 'night_headlights' and rng.random() < 0.7
        else:
            self._setup_daylight(rng)
        self._setup_low_sun(rng)
        self._setup_shadow_direction(rng)
        if self.sequence == 'day':
            self._setup_clouds(rng)
        self.tunnel_light = E_SUNLIT_WHITE * _logu(rng, 5e-4, 2e-3)
        self.tunnel_lamp = _logu(rng, 5e7, 3e8)
        self.tunnel_tint = _tint('sodium' if rng.random() < 0.4 else 'led')
        self.under_bridge = E_SUNLIT_WHITE * _logu(rng, 2e-4, 2e-3)

    def _setup_dark_light(self, rng, t):
        """Night or dusk levels from the table entry ``t`` (a ``DarkLighting``)."""
        E = E_SUNLIT_WHITE
        self.amb = E * _logu(rng, *t.ambient)
        self.sky_horizon, self.sky_zenith = self.amb * t.sky_horizon, self.amb * t.sky_zenith
        self.sky_tint = _tint(t.sky_tint)
        self.lamp_pool = E * _logu(rng, *t.lamp_pool)
        self.lamp_head = _logu(rng, *t.lamp_head)
        self.lamp_tint = _tint('sodium' if rng.random() < 0.5 else 'led')
        self.ego_beam = E * _logu(rng, *t.ego_beam)
        self.head_level = _logu(rng, *t.head_level)
        self.tail_level = _logu(rng, *t.tail_level)
        self.window_level = _logu(rng, *t.window_level)
        self.tl_level = _logu(rng, *t.traffic_light_level)
        self.retro = t.retro

    def _setup_daylight(self, rng):
        """Sun and sky levels (weaker for a low sun), daytime running lights."""
        E, t = E_SUNLIT_WHITE, DAYLIGHT
        low = self.scenario in ('low_sun_glare', 'tunnel_exit') or self.sequence == 'low_sun'
        strength = _u(rng, *(t.low_sun_strength if low else t.strength))
        self.sun = t.sun * E * strength
        self.sky_amb = t.sky_ambient * E * strength
        self.amb = 0.0
        self.sky_horizon = t.sky_horizon * E * strength
        self.sky_zenith = t.sky_zenith * E * strength
        self.sky_tint = _tint('sky')
        self.lamp_pool = 0.0
        self.lamp_head = 0.0
        self.lamp_tint = _tint('led')
        self.ego_beam = 0.0
        self.head_level = _logu(rng, *t.head_level)
        self.tail_level = _logu(rng, *t.tail_level)
        self.window_level = 0.0
        self.tl_level = _logu(rng, *t.traffic_light_level)
        self.retro = 0.0

    def _setup_low_sun(self, rng):
        """Put a low sun in view (objects backlit) for the scenarios that want one."""
        sc = self.scenario
        want_sun = (sc == 'low_sun_glare' or self.sequence == 'low_sun'
                    or (sc == 'tunnel_exit' and not self.sequence and rng.random() < 0.8))
        if not want_sun or self.outside_dark:
            return
        self.sun_in_view = True
        self.face = _u(rng, 0.0, 0.08)   # backlit
        self.sun_tint = _tint('low_sun')
        self.sun_el = math.radians(_u(rng, 0.8, 6.0))
        self.sun_az = math.radians(_u(rng, -18, 18))
        self.sun_radiance = E_SUNLIT_WHITE * _logu(rng, 2e3, 1e4)
        if self.sequence == 'low_sun':
            self.sun_az_amp = math.radians(_u(rng, 15, 30))
            self.sun_az_period = _u(rng, 80, 200)

    def _setup_shadow_direction(self, rng):
        """Ground direction and elevation of cast shadows (towards us for a sun in view)."""
        if self.sun_in_view:
            self.shadow_dir = (-math.sin(self.sun_az), -math.cos(self.sun_az))
            self.shadow_el = max(self.sun_el, math.radians(2.0))
        else:
            az = math.radians(180 + _u(rng, -70, 70))
            self.shadow_dir = (-math.sin(az), -math.cos(az))
            self.shadow_el = math.radians(_u(rng, 30, 65))

    def _setup_clouds(self, rng):
        """Clouds over the sun in a ``day`` sequence: ``(first, last, depth)`` frames."""
        self.cloud = []
        k = int(rng.integers(10, 60))
        while k < self.n_frames:
            length = int(rng.integers(20, 80))
            self.cloud.append((k, k + length, _u(rng, 0.1, 0.35)))
            k += length + int(rng.integers(30, 150))

    # ---- light at world points -----------------------------------------------------
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
            direct_rgb = self._add_daylight(out, x, shape, kind, sunf)
        else:
            self._add_dark_light(out, x, z_abs, z_rel, shape, kind)
        if self.tunnel is not None:
            inside = self._in_tunnel(x, z_abs)
            if np.any(inside):
                inner = self._tunnel_light(x, z_abs, shape, kind, sunf)
                out = np.where(inside[..., None], inner, out)
                if direct_rgb is not None:
                    direct_rgb = np.where(inside[..., None], 0.0, direct_rgb)
        if split:
            return out, (direct_rgb if direct_rgb is not None else np.zeros_like(out))
        return out

    def _add_daylight(self, out, x, shape, kind, sunf):
        """Add sun (left of ``shadow_x`` in shade) and sky light to ``out``; return the sun."""
        direct = {'ground': 1.0, 'front': self.face, 'left': self.side_l,
                  'right': self.side_r, 'ceiling': 0.0}[kind]
        amb = _SKY_AMBIENT[kind]
        sun = np.full(shape, self.sun * direct * sunf, np.float32)
        if self.shadow_x is not None and kind in ('ground', 'front'):
            sun = np.where(x < self.shadow_x, 0.0, sun)
        direct_rgb = sun[..., None] * self.sun_tint
        out += direct_rgb
        out += np.float32(self.sky_amb * amb * (0.5 + 0.5 * sunf)) * _tint('sky')
        return direct_rgb

    def _add_dark_light(self, out, x, z_abs, z_rel, shape, kind):
        """Add ambient, street-lamp pools and the ego headlight beam to ``out``."""
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

    def _tunnel_light(self, x, z_abs, shape, kind, sunf):
        """Light inside the tunnel (lamps, daylight leaking at the portals) or bridge."""
        z_in, z_out, walls = self.tunnel
        if walls:
            ripple = 1.0 + 0.25 * np.cos(2 * np.pi * z_abs / self.lamp_spacing)
            lvl = self.tunnel_light * _TUNNEL_FACTOR[kind] * ripple
            if not self.outside_dark:
                d = np.minimum(np.abs(z_abs - z_in), np.abs(z_out - z_abs))
                lvl = lvl + 0.03 * self.sun * sunf * np.exp(-d / 4.0)
            return lvl[..., None] * self.tunnel_tint
        return np.broadcast_to(
            np.float32(self.under_bridge if not self.outside_dark
                       else self.amb * 0.3) * _tint('sky'), shape + (3,))

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
