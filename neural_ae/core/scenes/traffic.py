"""
Traffic of a scene: sampling the objects of each kind, placing them, moving them.

:class:`TrafficMixin` is the part of :class:`~neural_ae.core.scenes.world.World` that
creates :class:`~neural_ae.core.scenes.sprites.SceneObject` instances (vehicles in
lanes, pedestrians, bikes with riders, traffic lights, signs, street lamps at night)
and advances them frame by frame, replacing those that leave the view. It reads the
world's layout (``tunnel``, ``aw``, ``lamp_phase``, ``lamp_period``), its lighting
levels (``head_level``, ``tail_level``, ...) and ``speed``; every draw comes from the
``rng`` it is given, in a fixed order, so a seed gives the same traffic.
"""
import math

from neural_ae.core.scenes.sampling import uniform as _u
from neural_ae.core.scenes.scenarios import LANE
from neural_ae.core.scenes.sprites import (BIKE, BUS, CAR, LAMP_POST, PERSON, SceneObject,
                                           SIGN, TLIGHT)

CAR_COLOURS = ((0.6, 0.6, 0.62), (0.05, 0.05, 0.06), (0.55, 0.06, 0.05),
               (0.08, 0.15, 0.45), (0.75, 0.75, 0.72), (0.25, 0.27, 0.3),
               (0.6, 0.45, 0.1), (0.1, 0.3, 0.12), (0.35, 0.2, 0.12))
BUS_COLOURS = ((0.85, 0.85, 0.8), (0.7, 0.1, 0.08), (0.1, 0.25, 0.55), (0.8, 0.65, 0.1))
CLOTHES = ((0.05, 0.05, 0.08), (0.5, 0.1, 0.08), (0.1, 0.2, 0.5), (0.55, 0.55, 0.5),
           (0.15, 0.35, 0.15), (0.7, 0.6, 0.2), (0.3, 0.2, 0.35), (0.8, 0.8, 0.8))
SKIN = ((0.6, 0.42, 0.33), (0.45, 0.3, 0.22), (0.25, 0.16, 0.11), (0.7, 0.55, 0.45))
VEHICLES = (CAR, BUS)
LANE_GAP_M = 9.0
"""Closest spacing of two vehicles in one lane, metres."""


class TrafficMixin:
    """Object sampling, placement and motion of a world (see the module docstring)."""

    # ---- one object ----------------------------------------------------------------
    def _new_obj(self, rng, cls, z_rel_range, s=0.0, lane=None):
        """Sample an object of kind ``cls`` at ``s + U(z_rel_range)`` metres along the road."""
        o = SceneObject(cls=cls, x=0.0, z=0.0, seed=int(rng.integers(2 ** 31)))
        z_rel = _u(rng, *z_rel_range)
        if cls in VEHICLES:
            self._sample_vehicle(rng, o, lane)
        elif cls == PERSON:
            self._sample_person(rng, o)
        elif cls == BIKE:
            self._sample_bike(rng, o)
        elif cls == TLIGHT:
            self._sample_traffic_light(rng, o)
        elif cls == SIGN:
            self._sample_sign(rng, o)
        else:
            self._sample_lamp_post(rng, o)
        o.z = s + z_rel
        return o

    def _sample_vehicle(self, rng, o, lane):
        """Car or bus: lane (< 0 oncoming), lights, speed, then its body."""
        p = o.params
        night_lights = self.outside_dark or self.tunnel is not None
        lane = lane if lane is not None else int(rng.choice([-1, 0, 1], p=[0.35, 0.35, 0.3]))
        if self.tunnel is not None and self.tunnel[2]:
            lane = max(lane, 0) if rng.random() < 0.7 else lane
        o.x = lane * LANE + _u(rng, -0.4, 0.4)
        p['front'] = lane < 0
        p['lane'] = lane
        p['colour'] = CAR_COLOURS[int(rng.integers(len(CAR_COLOURS)))]
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
        if o.cls == CAR:
            self._sample_car_body(rng, p)
        else:
            self._sample_bus_body(rng, p)

    @staticmethod
    def _sample_car_body(rng, p):
        p['van'] = rng.random() < 0.25
        p['w'] = _u(rng, 1.9, 2.05) if p['van'] else _u(rng, 1.7, 1.88)
        p['h'] = _u(rng, 1.9, 2.3) if p['van'] else _u(rng, 1.35, 1.55)

    def _sample_bus_body(self, rng, p):
        p['truck'] = rng.random() < 0.5
        p['w'] = _u(rng, 2.45, 2.55)
        p['h'] = _u(rng, 3.4, 3.9) if p['truck'] else _u(rng, 2.9, 3.3)
        p['display_level'] = self.window_level * 3 if self.outside_dark else 0.0
        p['colour'] = BUS_COLOURS[int(rng.integers(4))]

    def _sample_person(self, rng, o):
        """Pedestrian on the sidewalk (or crossing the road), clothes and gait."""
        crossing = rng.random() < 0.25 and self.tunnel is None
        side = 1 if rng.random() < 0.5 else -1
        if self.tunnel is not None and self.tunnel[2]:
            o.x = side * (self.aw - _u(rng, 0.4, 0.9))
        else:
            o.x = _u(rng, -4.5, 4.5) if crossing else side * _u(rng, 5.9, 8.5)
        o.vx = side * _u(rng, 0.03, 0.05) if crossing else 0.0
        o.vz = 0.0 if crossing else _u(rng, -0.05, 0.05)
        o.params.update(h=_u(rng, 1.55, 1.95), phase=_u(rng, 0, 2 * math.pi), riding=False,
                        shirt=CLOTHES[int(rng.integers(len(CLOTHES)))],
                        pants=CLOTHES[int(rng.integers(len(CLOTHES)))],
                        skin=SKIN[int(rng.integers(len(SKIN)))],
                        hair=(0.04, 0.03, 0.02) if rng.random() < 0.7 else (0.4, 0.3, 0.15),
                        pattern=('plain', 'stripes', 'check', 'vest')[int(rng.integers(4))],
                        bag=rng.random() < 0.3)

    def _sample_bike(self, rng, o):
        """Bike riding along the road edge or parked side-on on the sidewalk."""
        p = o.params
        side = 1 if rng.random() < 0.5 else -1
        p['side'] = rng.random() < 0.4
        o.x = side * _u(rng, 4.3, 5.0) if not p['side'] else side * _u(rng, 5.9, 8)
        p['colour'] = CAR_COLOURS[int(rng.integers(len(CAR_COLOURS)))]
        p['tail_level'] = self.tail_level * 0.3 if self.outside_dark else 0.0
        o.vz = 0.0 if p['side'] else _u(rng, 0.1, 0.25)

    def _sample_traffic_light(self, rng, o):
        """Traffic light, overhead or at the roadside, in one of its three states."""
        p = o.params
        overhead = rng.random() < 0.3
        side = 1 if rng.random() < 0.5 else -1
        o.x = _u(rng, -2, 4) if overhead else side * _u(rng, 5.8, 7.0)
        p['mount'] = _u(rng, 5.0, 5.6) if overhead else _u(rng, 2.6, 3.4)
        p['state'] = int(rng.integers(3))
        p['level'] = self.tl_level * _u(rng, 0.7, 1.4)

    def _sample_sign(self, rng, o):
        """Road sign at the roadside (or on a tunnel wall): shape, size, mount height."""
        p = o.params
        side = 1 if rng.random() < 0.7 else -1
        in_tunnel = self.tunnel is not None and self.tunnel[2]
        o.x = side * (self.aw - 0.3 if in_tunnel else _u(rng, 5.8, 7.5))
        p['shape'] = ('circle', 'triangle', 'octagon', 'rect')[int(rng.integers(4))]
        p['size'] = _u(rng, 0.6, 0.9) if p['shape'] != 'rect' else _u(rng, 0.8, 1.4)
        p['mount'] = _u(rng, 1.9, 2.6)
        p['text'] = int(rng.integers(3))
        p['retro'] = 0.0

    def _sample_lamp_post(self, rng, o):
        """Street lamp at the roadside, lit at the world's lamp level."""
        side = 1 if rng.random() < 0.5 else -1
        o.x = side * _u(rng, 6.0, 7.0)
        o.params.update(h=_u(rng, 7, 9), side=side, level=self.lamp_head,
                        tint=tuple(self.lamp_tint))

    # ---- the first frame -----------------------------------------------------------
    def _populate(self, rng):
        """Fill the first frame: drawn counts per kind, riders, oncoming cars, lamps."""
        in_tunnel = self.tunnel is not None and self.tunnel[2] and self.tunnel[0] < 0
        headlights = (self.scenario == 'night_headlights'
                      or self.sequence == 'night_headlights')
        counts = self._object_counts(rng, in_tunnel, headlights)
        lane_z = {}
        near = 6.0
        for cls, count in counts.items():
            for _ in range(count):
                zr = (near, 75.0) if cls in VEHICLES else (5.0, 55.0)
                o = self._new_obj(rng, cls, zr)
                if cls in VEHICLES:
                    lane = o.params['lane']
                    if any(abs(o.z - z) < LANE_GAP_M for z in lane_z.get(lane, [])):
                        continue
                    lane_z.setdefault(lane, []).append(o.z)
                self.objects.append(o)
                if cls == BIKE:
                    self._add_rider(rng, o)
        if headlights:
            o = self._new_obj(rng, CAR, (10.0, 30.0), lane=-1)
            if all(abs(o.z - z) > LANE_GAP_M for z in lane_z.get(-1, [])):
                self.objects.append(o)
        if self.outside_dark and not in_tunnel:
            self._add_street_lamps(rng)

    @staticmethod
    def _object_counts(rng, in_tunnel, headlights):
        """Draw how many objects of each kind to try (fewer in a tunnel, more cars at night)."""
        counts = {
            CAR: int(rng.integers(2, 8)), BUS: int(rng.integers(0, 3)),
            PERSON: int(rng.integers(0, 5)), BIKE: int(rng.integers(0, 3)),
            TLIGHT: int(rng.integers(0, 3)), SIGN: int(rng.integers(0, 4)),
        }
        if in_tunnel:
            counts[TLIGHT] = 0
            counts[BIKE] = 0
            counts[PERSON] = int(rng.integers(0, 2))
        if headlights:
            counts[CAR] = max(counts[CAR], 3)
        return counts

    def _add_street_lamps(self, rng):
        """Lamp posts on both sides, staggered by half the lamp period, 4..160 m ahead."""
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
        """Put a rider on every side-on bike and on 85 % of the others."""
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

    # ---- motion --------------------------------------------------------------------
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
            near = 6.0 if o.cls in VEHICLES else 3.0
            if near <= zr <= 180 and abs(o.x) <= 10:
                continue
            self.objects[i] = self._respawn(rng, o, s, zr, near)

    def _respawn(self, rng, o, s, zr, near):
        """Sample a new ``o.cls`` object to replace ``o``, which left the view from ``s``."""
        overtaking = o.cls in VEHICLES and not o.params['front'] and zr < near
        far = (8.0, 12.0) if overtaking and o.vz > self.speed else (70.0, 110.0)
        lane = None
        if self.sequence == 'night_headlights' and o.cls == CAR and rng.random() < 0.6:
            lane = -1                      # keep oncoming traffic coming
        new = self._new_obj(rng, o.cls, far, s=s, lane=lane)
        if new.cls in VEHICLES:
            lane = new.params['lane']
            for other in self.objects:
                if other is not o and other.cls in VEHICLES and \
                        other.params['lane'] == lane and abs(other.z - new.z) < LANE_GAP_M:
                    new.z = other.z + (12.0 if new.z >= other.z else -12.0)
        if new.cls == BIKE:
            self._add_rider(rng, new)
        return new
