"""
``'stable'`` smoothing under actuation latency: no double correction, no ringing.

A test double of a network (:class:`GainPolicy`) sees the true exposure error of the frame
(the scene's ideal exposure is known) and asks for ``gain`` times the full correction;
frames are exposed by the command issued ``latency + 1`` frames earlier, as in the
closed-loop simulator. ``gain`` > 1 is an over-correcting network, ``jitter`` a network
whose estimate wobbles frame to frame.
"""
import math

from neural_ae.core.controllers import (AdaptiveSmoothing, Controller, ControllerOptions,
                                        ExposureSetting, make_smoothing, StableSmoothing)
import numpy as np
import pytest

IDEAL_E_S = 2e-3
"""Exposure value [s] the test scene wants."""


class GainPolicy(Controller):
    """Asks for ``gain`` x the correction to :data:`IDEAL_E_S` (+ alternating jitter)."""

    name = 'gain_policy'
    default_smoothing = 'stable'
    ideal_e_s = IDEAL_E_S

    def __init__(self, gain: float, jitter_ev: float = 0.0, **kw):
        super().__init__(ControllerOptions(**kw))
        self.gain, self.jitter_ev = gain, jitter_ev

    def propose(self, raw, used, features, info):
        err_ev = math.log2(self.ideal_e_s / used.e_s)
        wobble = self.jitter_ev * (1 if self.frame_index % 2 else -1)
        return used.e_s * 2.0 ** (self.gain * err_ev + wobble)


def run_loop(ctrl: Controller, latency: int, start_e_s: float, n: int = 30) -> np.ndarray:
    """Exposure [EV vs ideal] in force per frame, commands landing ``latency + 1`` later."""
    t0 = start_e_s
    start = ExposureSetting(t0 * 1e6, 0.0)
    ctrl.reset(start)
    pending = [start] * (latency + 1)
    raw = np.full((8, 8), 500, np.uint16)
    in_force = []
    for _ in range(n):
        used = pending.pop(0)
        in_force.append(math.log2(used.e_s / IDEAL_E_S))
        pending.append(ctrl.step(raw, used).setting)
    return np.asarray(in_force)


def sign_changes(ev: np.ndarray, thr: float = 0.1) -> int:
    s = [np.sign(x) for x in ev if abs(x) > thr]
    return int(sum(a != b for a, b in zip(s[:-1], s[1:])))


def frames_to_converge(ev: np.ndarray, tol: float = 1 / 3) -> int:
    inside = np.abs(ev) <= tol
    for k in range(len(ev)):
        if inside[k:].all():
            return k
    return len(ev)


@pytest.mark.parametrize('latency', [0, 1, 2])
def test_full_correction_lands_once_whatever_the_latency(latency):
    # a 10x over-exposure undone in one landing: L + 1 frames, no overshoot (in-flight
    # corrections are not applied twice)
    ev = run_loop(GainPolicy(1.0, smoothing='stable', adaptive_scale_ev=0.5), latency,
                  10 * IDEAL_E_S)
    assert frames_to_converge(ev) == latency + 1
    assert np.all(ev >= -1e-9) and sign_changes(ev) == 0


@pytest.mark.parametrize('latency', [1, 2])
def test_over_correcting_network_rings_with_adaptive_not_with_stable(latency):
    ring = run_loop(GainPolicy(1.7, smoothing='adaptive', adaptive_scale_ev=0.5), latency,
                    10 * IDEAL_E_S)
    calm = run_loop(GainPolicy(1.7, smoothing='stable', adaptive_scale_ev=0.5), latency,
                    10 * IDEAL_E_S)
    assert sign_changes(ring) >= 2
    # the second landing knows the loop gain from two observations (secant) and lands
    assert sign_changes(calm) <= 1
    assert frames_to_converge(calm) == 2 * (latency + 1) < frames_to_converge(ring)


@pytest.mark.parametrize('latency', [0, 1, 2])
def test_under_correcting_network_is_never_amplified(latency):
    # the loop gain is only lowered: a net that asks for 80 % of the correction gets it,
    # monotonically, and no secant extrapolation overshoots
    ev = run_loop(GainPolicy(0.8, smoothing='stable', adaptive_scale_ev=0.5), latency,
                  10 * IDEAL_E_S)
    assert ev[latency + 1] == pytest.approx(0.2 * math.log2(10), abs=0.02)
    assert sign_changes(ev) == 0 and np.all(np.diff(ev) <= 1e-9) and abs(ev[-1]) < 0.15


@pytest.mark.parametrize('latency', [1, 2])
def test_dead_time_holds_the_command_in_flight(latency):
    ctrl = GainPolicy(1.0, smoothing='stable', adaptive_scale_ev=0.5)
    start = ExposureSetting(10 * IDEAL_E_S * 1e6, 0.0)
    ctrl.reset(start)
    raw = np.full((8, 8), 500, np.uint16)
    cmds = [ctrl.step(raw, start).setting.e_s for _ in range(latency + 1)]
    # frames still exposed by the old setting: the first command is held, not crept on
    assert cmds == [pytest.approx(IDEAL_E_S, rel=1e-6)] * (latency + 1)
    # the scene changes while waiting (target moves > hold_ev): followed at once
    ctrl.ideal_e_s = IDEAL_E_S / 4
    assert ctrl.step(raw, start).setting.e_s == pytest.approx(IDEAL_E_S / 4, rel=1e-6)


class ClippedPolicy(GainPolicy):
    """Right near the target, but asks for only -1 EV while the frame is clipped (> 2 EV over)."""

    def propose(self, raw, used, features, info):
        err_ev = math.log2(self.ideal_e_s / used.e_s)
        return used.e_s * 2.0 ** (-1.0 if err_ev < -2.0 else err_ev)


@pytest.mark.parametrize('latency', [0, 1, 2])
def test_a_saturated_answer_is_not_extrapolated(latency):
    # the secant between two clipped frames (f constant) or across the clip (f not
    # monotone) would send the exposure far past the target; it falls back to gain 1
    ev = run_loop(ClippedPolicy(1.0, smoothing='stable', adaptive_scale_ev=0.5), latency,
                  10 * IDEAL_E_S)
    assert sign_changes(ev) == 0 and np.all(ev >= -0.1)
    assert frames_to_converge(ev) <= 3 * (latency + 1)


@pytest.mark.parametrize('latency', [0, 1, 2])
def test_jittering_network_flickers_less_with_stable(latency):
    def settled_std(smoothing):
        ev = run_loop(GainPolicy(1.0, jitter_ev=0.3, smoothing=smoothing,
                                 adaptive_scale_ev=0.5), latency, IDEAL_E_S, n=40)
        return float(np.std(ev[-10:]))
    assert settled_std('stable') < 0.05 <= settled_std('adaptive')


def test_stable_is_the_networks_default_and_resets():
    from neural_ae.core.controllers.neural import NeuralController

    assert NeuralController.default_smoothing == 'stable'
    sm = make_smoothing('stable', 0.9, 0.5)
    assert sm.min_gain == 1.0 and sm.max_gain == 4.0
    assert isinstance(sm, StableSmoothing) and isinstance(sm, AdaptiveSmoothing)
    plain = AdaptiveSmoothing(0.9, 0.5)
    up, _ = sm(1.0, 8.0, 1.0)                              # +3 EV: an event, taken at once
    assert up == pytest.approx(8.0, rel=1e-3) and sm.loop_gain == 1.0
    down, _ = sm(8.0, 1.0, 1.0)                            # -3 EV reversal: too big to damp
    assert down == pytest.approx(1.0, rel=1e-3)
    sm.reset()
    a, _ = sm(1.0, 2.0 ** 0.8, 1.0)                        # small steps: jitter
    b, mu = sm(a, 1.0, 1.0)                                # reversal at the same exposure
    undamped = math.log2(plain(a, 1.0)[0] / a)
    assert math.log2(b / a) == pytest.approx(0.5 * undamped, rel=1e-6) and mu > 0.5
    c, _ = sm(b, 2.0 ** 0.8, 1.0)                          # second reversal: quartered
    assert math.log2(c / b) == pytest.approx(0.25 * math.log2(plain(b, 2.0 ** 0.8)[0] / b),
                                             rel=1e-6)
    sm.reset()
    assert sm(8.0, 1.0)[0] == pytest.approx(1.0, rel=1e-3)  # no memory after reset
    # loop gain from two observations 3 EV apart: the policy asked for 2x the correction
    sm.reset()
    sm(8.0, 8.0 * 2.0 ** -6, 8.0)                          # at x = 3: f = -6 (x* = 0, g = 2)
    new, _ = sm(1.0, 1.0, 1.0)                             # at x = 0: f = 0
    assert sm.loop_gain == pytest.approx(2.0) and new == pytest.approx(1.0)
    sm(1.0, 1.0, 0.5)                                      # at x = -1: f = +1 (g = 1)
    assert sm.loop_gain == pytest.approx(1.0)
    sm(1.0, 2.0 ** 3, 2.0)                                 # at x = 1: f = +2 (g = -0.5 < 0)
    assert sm.loop_gain == 1.0                             # not monotone: trust the policy
    ctrl = GainPolicy(1.0)
    ctrl.reset(ExposureSetting(1000.0, 0.0))
    ctrl.step(np.full((8, 8), 500, np.uint16))
    assert ctrl.smoothing._last_step_ev != 0
    ctrl.reset(ExposureSetting(1000.0, 0.0))
    assert ctrl.smoothing._last_step_ev == 0 and ctrl.smoothing._reversals == 0


@pytest.mark.parametrize('latency', [0, 1, 2])
def test_stable_commands_stay_inside_bounds_and_step_limits(latency):
    ctrl = GainPolicy(3.0, jitter_ev=2.0, smoothing='stable', max_step_ev=1.0,
                      max_exposure_us=8000.0, max_gain_db=6.0, latency_frames=latency)
    ctrl.reset(ExposureSetting(1000.0, 0.0))
    last = ctrl.last_command
    for _ in range(30):
        s = ctrl.step(np.full((8, 8), 500, np.uint16)).setting
        assert s.exposure_time_us <= 8000.0 + 1e-9 and 0.0 <= s.gain_db <= 6.0 + 1e-9
        assert abs(math.log2(s.e_s / last.e_s)) <= 1.0 + 1e-9
        last = s


def test_a_scene_change_is_corrected_as_the_policy_asks():
    ctrl = GainPolicy(2.0, smoothing='stable', adaptive_scale_ev=0.5)
    start = ExposureSetting(10 * IDEAL_E_S * 1e6, 0.0)
    ctrl.reset(start)
    raw = np.full((8, 8), 500, np.uint16)
    used = start
    for _ in range(6):                                      # latency 0: learns g = 2
        used = ctrl.step(raw, used).setting
    assert ctrl.smoothing.loop_gain == pytest.approx(2.0)
    assert used.e_s == pytest.approx(IDEAL_E_S, rel=1e-3)
    ctrl.gain, ctrl.ideal_e_s = 1.0, IDEAL_E_S / 10          # new scene, now a right policy
    used = ctrl.step(raw, used).setting                      # same exposure, target -3.3 EV
    assert used.e_s == pytest.approx(IDEAL_E_S / 10, rel=1e-3)   # not halved by g = 2
