"""
Background of a scene: ray-casting the static world and shading each surface.

:class:`BackgroundMixin` is the part of :class:`~neural_ae.core.scenes.world.World` that
casts one ray per pixel from the pinhole camera (:data:`~neural_ae.core.scenes.
scenarios.CAM_H` above a flat road) against the road plane, the tunnel walls and
ceiling (or a bridge), the portal or bridge face, the building facades and the sky, and
shades each surface: reflected light (albedo times :meth:`~neural_ae.core.scenes.
lighting.LightingMixin.light`) and emission (tunnel lamps, lit windows, sky, sun). It
reads the world's camera (``H``, ``W``, ``f``, ``cx``, ``yh``), layout and ``noise``.
"""
from dataclasses import dataclass

from neural_ae.core.scenes.scenarios import CAM_H, LANE, ROAD_HALF
import numpy as np

SKY, ROAD, WALL_LEFT, WALL_RIGHT, CEILING, PORTAL, FACADE_LEFT, FACADE_RIGHT = range(8)
"""Surface codes of the background pixels."""

_INF = np.float32(np.inf)


@dataclass
class Hits:
    """
    Where each pixel's ray hits the static world; all ``(H, W)`` but ``dx`` / ``dy``.

    ``depth``: distance along the road, metres (``inf`` for the sky); ``surf``: uint8
    surface code (:data:`SKY` ...); ``xs``, ``ys``, ``zs``: lateral, height and absolute
    along-road coordinates of the hit, and ``zr`` its depth (all 0 for the sky);
    ``dx`` ``(1, W)`` and ``dy`` ``(H, 1)``: ray slopes per pixel column / row.
    """

    depth: np.ndarray
    surf: np.ndarray
    xs: np.ndarray
    ys: np.ndarray
    zs: np.ndarray
    zr: np.ndarray
    dx: np.ndarray
    dy: np.ndarray


def _take_nearer(depth, surf, t, valid, code):
    """Where ``valid`` and nearer than ``depth``, set the depth to ``t`` and the surface."""
    m = valid & (t < depth)
    np.copyto(depth, np.broadcast_to(t, depth.shape), where=m)
    surf[m] = code


class BackgroundMixin:
    """Ray-casting and shading of the static world (see the module docstring)."""

    def background(self, k):
        """Ray-cast the static world: (depth, refl, emis, surface code, x, z_abs)."""
        H, W = self.H, self.W
        hits = self._raycast(k)
        refl = np.zeros((H, W, 3), np.float32)
        emis = np.zeros((H, W, 3), np.float32)
        self._shade_road(hits, k, refl)
        self._shade_walls(hits, k, refl, emis)
        self._shade_ceiling(hits, k, refl, emis)
        self._shade_portal(hits, k, refl)
        self._shade_facades(hits, k, refl, emis)
        self._shade_sky(hits, k, emis)
        return hits.depth, refl, emis, hits.surf, hits.xs, hits.zs

    # ---- geometry ------------------------------------------------------------------
    def _raycast(self, k):
        """Nearest surface of each pixel's ray at frame ``k``."""
        H, W, f = self.H, self.W, self.f
        s = self.cam_z(k)
        h = CAM_H
        dx = ((np.arange(W, dtype=np.float32) + 0.5 - self.cx) / f)[None, :]
        dy = ((np.arange(H, dtype=np.float32) + 0.5 - self.yh) / f)[:, None]
        with np.errstate(divide='ignore', invalid='ignore'):
            t_road = np.where(dy > 1e-4, h / dy, _INF).astype(np.float32)
            depth = np.broadcast_to(t_road, (H, W)).copy()
            surf = np.where(np.isfinite(depth), ROAD, SKY).astype(np.uint8)
            if self.tunnel is not None:
                self._cast_tunnel(dx, dy, s, depth, surf)
            if self.facades:
                self._cast_facades(dx, dy, s, depth, surf)
            x = dx * depth
            y = h - dy * depth
            z_abs = s + depth
        finite = np.isfinite(depth)
        xs = np.where(finite, x, 0).astype(np.float32)
        zs = np.where(finite, z_abs, 0).astype(np.float32)
        ys = np.where(finite, y, 0).astype(np.float32)
        zr = np.where(finite, depth, 0).astype(np.float32)
        return Hits(depth, surf, xs, ys, zs, zr, dx, dy)

    def _cast_tunnel(self, dx, dy, s, depth, surf):
        """Tunnel walls and ceiling (or a bridge's underside) and the portal face."""
        h = CAM_H
        z_in, z_out, walls = self.tunnel
        if walls:
            for code, sgn in ((WALL_LEFT, -1.0), (WALL_RIGHT, 1.0)):
                t_w = np.where(sgn * dx > 1e-5, self.aw / (sgn * dx), _INF)
                y_w = h - dy * t_w
                z_w = s + t_w
                _take_nearer(depth, surf, t_w, (y_w >= 0) & (y_w <= self.t_h)
                             & (z_w >= z_in) & (z_w <= z_out), code)
        t_c = np.where(dy < -1e-5, (self.t_h - h) / -dy, _INF)
        x_c = dx * t_c
        z_c = s + t_c
        across = (np.abs(x_c) <= self.aw) | (not walls)   # a bridge spans all x
        _take_nearer(depth, surf, t_c, across & (z_c >= z_in) & (z_c <= z_out), CEILING)
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
            _take_nearer(depth, surf, t_p, valid, PORTAL)

    def _cast_facades(self, dx, dy, s, depth, surf):
        """Cast the building blocks on both sides (gaps where a block has no height)."""
        h = CAM_H
        for code, sgn, dist in ((FACADE_LEFT, -1.0, self.fac_l),
                                (FACADE_RIGHT, 1.0, self.fac_r)):
            t_f = np.where(sgn * dx > 1e-5, dist / (sgn * dx), _INF)
            y_f = h - dy * t_f
            z_f = s + t_f
            side = 0 if sgn < 0 else 1
            idx = np.mod(np.floor(z_f / self.block_len), self.block_h.shape[1])
            idx = np.where(np.isfinite(idx), idx, 0).astype(np.int32)
            hb = self.block_h[side][idx]
            valid = (y_f >= 0) & (y_f <= hb) & (t_f < self.fac_far)
            if self.tunnel is not None and self.tunnel[2]:
                valid &= ~((z_f >= self.tunnel[0] - 1) & (z_f <= self.tunnel[1]))
            _take_nearer(depth, surf, t_f, valid, code)

    # ---- shading -------------------------------------------------------------------
    def _shade_road(self, hits, k, refl):
        """Asphalt with lane marks, crosswalk, kerb and sidewalk; keeps the direct sun."""
        m = hits.surf == ROAD
        if not m.any():
            return
        noise = self.noise
        xr, zz = hits.xs[m], hits.zs[m]
        ax = np.abs(xr)
        alb = np.full(xr.shape, self.road_alb, np.float32) * (1 + 0.18 * noise[m])
        dash = (np.mod(zz + self.dash_phase, 12.0) < 4.5)
        for xl in (-LANE / 2, LANE / 2):
            alb = np.where((np.abs(xr - xl) < 0.075) & dash, 0.55, alb)
        alb = np.where((np.abs(ax - ROAD_HALF) < 0.08), 0.6, alb)
        if self.crosswalk is not None:
            cw = (zz > self.crosswalk) & (zz < self.crosswalk + 3.0) & \
                (ax < ROAD_HALF) & (np.mod(xr, 1.0) < 0.5)
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
        total, direct = self.light(xr, zz, hits.zr[m], 'ground', k, split=True)
        refl[m] = alb[:, None] * total
        self._road_direct = (m, alb[:, None] * direct)
        # road shininess in wet conditions: reflect the sky a little
        if self.wet:
            refl[m] += 0.05 * np.float32(self.sky_horizon) * self.sky_tint

    def _shade_walls(self, hits, k, refl, emis):
        """Tiled tunnel walls with a dark base, a white band and green exit signs."""
        noise = self.noise
        for code, kind in ((WALL_LEFT, 'left'), (WALL_RIGHT, 'right')):
            m = hits.surf == code
            if not m.any():
                continue
            yy, zz = hits.ys[m], hits.zs[m]
            alb = np.full(yy.shape, 0.42, np.float32) * (1 + 0.12 * noise[m])
            grout = (np.mod(yy, 0.3) < 0.025) | (np.mod(zz, 0.3) < 0.025)
            alb = np.where(grout, 0.25, alb)
            alb = np.where(yy < 0.9, 0.03 * (1 + 0.3 * noise[m]), alb)
            alb = np.where((yy > 0.9) & (yy < 1.0), 0.6, alb)
            refl[m] = alb[:, None] * self.light(hits.xs[m], zz, hits.zr[m], kind, k)
            sign_band = (yy > 2.2) & (yy < 2.8) & (np.mod(zz, 60.0) < 1.2)
            emis[m] += np.where(sign_band, 3e5, 0.0)[:, None] * np.float32([0.1, 1.0, 0.3])

    def _shade_ceiling(self, hits, k, refl, emis):
        """Tunnel ceiling with its row of lamps (or a bridge's underside)."""
        m = hits.surf == CEILING
        if not m.any():
            return
        xr, zz = hits.xs[m], hits.zs[m]
        alb = np.full(xr.shape, 0.12, np.float32) * (1 + 0.2 * self.noise[m])
        refl[m] = alb[:, None] * self.light(xr, zz, hits.zr[m], 'ceiling', k)
        if self.tunnel[2]:
            lamp = (np.abs(xr - self.lamp_x) < 0.15) & \
                (np.mod(zz, self.lamp_spacing) < 1.6)
            emis[m] += np.where(lamp, self.tunnel_lamp, 0.0)[:, None] * self.tunnel_tint

    def _shade_portal(self, hits, k, refl):
        """Portal face around the tunnel mouth (or a bridge's side), lit as it faces us."""
        m = hits.surf == PORTAL
        if not m.any():
            return
        noise = self.noise
        yy, xr = hits.ys[m], hits.xs[m]
        alb = np.full(yy.shape, 0.32, np.float32) * (1 + 0.15 * noise[m])
        if self.tunnel[2]:
            alb = np.where(yy > self.t_h + 2.5, 0.07 * (1 + 0.4 * noise[m]), alb)
            alb = np.where((np.abs(xr) < self.aw + 0.6) & (yy < self.t_h + 0.6), 0.45,
                           alb)
        refl[m] = alb[:, None] * self.light(xr, hits.zs[m] - 0.5, hits.zr[m] - 0.5,
                                            'front', k)

    def _shade_facades(self, hits, k, refl, emis):
        """Coloured building blocks with dark windows, some lit at night."""
        for code, kind, side in ((FACADE_LEFT, 'left', 0), (FACADE_RIGHT, 'right', 1)):
            m = hits.surf == code
            if not m.any():
                continue
            yy, zz = hits.ys[m], hits.zs[m]
            blk = np.mod(np.floor(zz / self.block_len), self.block_h.shape[1]).astype(
                np.int32)
            alb = self.block_col[side][blk] * (1 + 0.12 * self.noise[m])[:, None]
            wz = np.mod(zz, 3.0)
            wy = np.mod(yy, 3.2)
            win = (wz > 0.7) & (wz < 2.3) & (wy > 0.9) & (wy < 2.4) & (yy > 0.6)
            alb = np.where(win[:, None], np.float32(0.03), alb)
            refl[m] = alb * self.light(hits.xs[m], zz, hits.zr[m], kind, k)
            if self.window_level > 0:
                cz = np.floor(zz / 3.0).astype(np.int64)
                cy = np.floor(yy / 3.2).astype(np.int64)
                hsh = ((cz * 73856093) ^ (cy * 19349663) ^ (side * 83492791)) % 1000
                lit = win & (hsh < 350)
                lvl = self.window_level * (0.5 + hsh / 700.0)
                emis[m] += np.where(lit, lvl, 0.0)[:, None] * np.float32([1.1, 0.95, 0.7])

    def _shade_sky(self, hits, k, emis):
        """Sky gradient (clouds by day), with the sun's disk and glow when in view."""
        m = hits.surf == SKY
        if not m.any():
            return
        H, W, f = self.H, self.W, self.f
        yy_pix = np.broadcast_to(hits.dy, (H, W))[m]
        xx_pix = np.broadcast_to(hits.dx, (H, W))[m]
        el = np.arctan(-yy_pix)
        a = np.clip(el / 0.6, 0, 1) ** 0.6
        lvl = self.sky_horizon * (1 - a) + self.sky_zenith * a
        if not self.outside_dark:
            lvl = lvl * (1 + 0.25 * self.noise[m])
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
