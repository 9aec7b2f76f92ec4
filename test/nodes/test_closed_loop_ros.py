"""
camera_sim_node and auto_exposure_node in two processes close the loop over ROS 2.

Lockstep simulation of a static scene whose light steps up 16x at frame 14, latency one
frame: the Average AE answers each frame with one SetParameters call, the simulator
applies it one frame late, and exposure drops by about 16x after the step.
"""
import json

from diagnostic_msgs.msg import DiagnosticArray
from neural_ae.ros.qos import image_qos
import numpy as np
import pytest
from rclpy.parameter import Parameter
from rclpy.parameter_client import AsyncParameterClient
from sensor_msgs.msg import Image
from std_msgs.msg import String

N_FRAMES = 30
STEP = 14
LATENCY = 1


def test_simulator_applies_ae_commands_with_latency_and_exposure_follows_the_light(
        ros_side, node_processes):
    side = ros_side
    docs, diags = {}, []
    side.node.create_subscription(
        String, 'camera/exposure', lambda m: docs.__setitem__(
            json.loads(m.data)['frame_index'], json.loads(m.data)), 100)
    side.node.create_subscription(DiagnosticArray, '/diagnostics', diags.append, 10)
    side.node.create_subscription(Image, 'camera/image_raw', lambda m: None, image_qos(1))
    sim = node_processes('neural_ae.nodes.camera_sim_node', 'camera_sim', {
        'scenario': 'step', 'mode': 'lockstep', 'n_frames': N_FRAMES, 'step_frame': STEP,
        'step_factor': 16.0, 'height': 64, 'width': 96, 'latency_frames': LATENCY,
        'lockstep_timeout_s': 5.0, 'exposure_time': 2000.0, 'seed': 3,
        'wait_for_subscribers': 2})
    ae = node_processes('neural_ae.nodes.auto_exposure_node', 'auto_exposure', {
        'autostart': True, 'controller': 'average', 'driver_node': 'camera_sim',
        'latency_frames': LATENCY, 'diagnostics_period_s': 0.2})

    done = side.spin_until(lambda: N_FRAMES - 1 in docs or not (sim.alive() and ae.alive()),
                           timeout=75.0)
    assert sim.alive() and ae.alive(), sim.output()[-2000:] + ae.output()[-2000:]
    assert done, f'only frames {sorted(docs)} seen\n{sim.output()[-1500:]}'
    assert len(docs) >= N_FRAMES - 3

    # Latency: the setting of frame k is the command that arrived after frame k - 1 - L.
    for k, doc in docs.items():
        if k >= 4:
            assert doc['command_from_frame'] == k - 1 - LATENCY, (k, doc)
            assert doc['latency_frames'] == LATENCY

    e = {k: d['e_s'] for k, d in docs.items()}
    # Bright step at STEP: frames STEP and STEP + 1 still carry commands decided on dark
    # frames; the command after the first bright frame acts at STEP + 1 + LATENCY.
    settled_dark = float(np.median([e[k] for k in range(STEP - 4, STEP) if k in e]))
    assert e[STEP + 1] == pytest.approx(settled_dark, rel=0.3)
    assert e[STEP + 1 + LATENCY] < settled_dark / 1.5  # saturated frame: a partial step
    settled_bright = float(np.median([e[k] for k in range(N_FRAMES - 4, N_FRAMES) if k in e]))
    assert settled_bright == pytest.approx(settled_dark / 16, rel=0.35)

    # The AE node reports through /diagnostics that it reaches the driver: wait for the
    # report that counts every frame, then read that one.
    def final_report():
        for d in reversed(diags):
            values = {kv.key: kv.value for kv in d.status[0].values}
            if values.get('frames_processed') == str(N_FRAMES) and \
                    int(values.get('commands_succeeded', 0)) >= N_FRAMES - 3:
                return values
        return None

    assert side.spin_until(lambda: final_report() is not None, timeout=20.0), (
        [{kv.key: kv.value for kv in d.status[0].values} for d in diags[-1:]],
        ae.output()[-2000:])
    last = final_report()
    assert last['driver_reachable'] == 'true'
    assert last['used_setting_source'] == 'feedback'
    assert int(last['commands_succeeded']) >= N_FRAMES - 3

    # The simulator's own parameters: out-of-range commands are rejected with a reason.
    client = AsyncParameterClient(side.node, 'camera_sim')
    assert client.wait_for_services(timeout_sec=10.0)
    for name, value in (('exposure_time', 5e9), ('gain', -3.0), ('gain', 99.0)):
        res = side.call(client.set_parameters([Parameter(name, value=value)]))
        assert res is not None and not res.results[0].successful, (name, value)
        assert res.results[0].reason
    res = side.call(client.set_parameters([Parameter('gain', value=3.0)]))
    assert res.results[0].successful
    assert sim.alive() and ae.alive()
