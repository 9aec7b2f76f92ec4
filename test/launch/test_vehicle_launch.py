"""
launch/vehicle.launch.py run for real: installed into an ament prefix, run by LaunchService.

The first tests import the launch file and check how launch arguments become node
parameters (fast, no processes); the others install the package into a temporary ament
prefix, run the installed launch file through ``launch.LaunchService`` in a child process
group and watch the result from this process with its own rclpy node.
"""
import json
from pathlib import Path
import re

from lifecycle_msgs.msg import Transition
from neural_ae.ros.qos import command_qos, image_qos
import pytest
from sensor_msgs.msg import Image
from std_msgs.msg import String
import yaml

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / 'config' / 'vehicle.yaml'
AE, SIM = 'auto_exposure', 'camera_sim'
START_S = 120.0
"""Bound on start-up waits (two Python processes importing torch on a shared machine) [s]."""
HOLD_S = 4.0
"""How long a manually set state must hold (the old handler undid it within ~1 s) [s]."""


def _args(**given) -> dict:
    args = {'params_file': str(SHIPPED), 'use_sim': 'true', 'controller': '',
            'driver_preset': '', 'driver_node': '', 'bag': '', 'large_frames': 'false'}
    args.update(given)
    return args


def _custom_params(path: Path, **ae) -> Path:
    path.write_text(yaml.safe_dump({AE: {'ros__parameters': ae}}))
    return path


# ------------------------------------------------------------------ arguments -> parameters


def test_empty_launch_arguments_keep_the_params_file(vehicle_launch, tmp_path):
    custom = _custom_params(tmp_path / 'p.yaml', controller='gradient', driver_node='cam0',
                            driver_preset='camera_ros')
    setup = vehicle_launch.vehicle_setup(_args(params_file=str(custom), use_sim='false'),
                                         str(ROOT))
    assert setup['ae_overrides'] == {} and setup['sim_overrides'] == {}
    assert setup['params_file'] == str(custom) and setup['use_sim'] is False
    given = vehicle_launch.vehicle_setup(
        _args(params_file=str(custom), use_sim='false', controller='average',
              driver_preset='v4l2_camera', driver_node='cam1', bag='/data/bag'), str(ROOT))
    assert given['ae_overrides'] == {'controller': 'average', 'driver_preset': 'v4l2_camera',
                                     'driver_node': 'cam1'}
    assert given['sim_overrides'] == {'bag': '/data/bag'}


@pytest.mark.parametrize('word', ['true', '1', 'True', 'YES', 'on'])
def test_every_true_spelling_starts_the_simulator_and_commands_it(vehicle_launch, word):
    setup = vehicle_launch.vehicle_setup(_args(use_sim=word), str(ROOT))
    assert setup['use_sim'] is True
    assert setup['ae_overrides'] == {'driver_node': SIM}


@pytest.mark.parametrize('word', ['false', '0', 'False', 'NO', 'off'])
def test_every_false_spelling_drops_the_simulator_name(vehicle_launch, word):
    setup = vehicle_launch.vehicle_setup(_args(use_sim=word), str(ROOT))
    assert setup['use_sim'] is False
    # the shipped YAML names the simulator, which is not started: the preset's node
    assert setup['ae_overrides'] == {'driver_node': ''}


def test_explicit_driver_node_wins_even_with_the_simulator(vehicle_launch):
    setup = vehicle_launch.vehicle_setup(_args(driver_node='other_sim'), str(ROOT))
    assert setup['ae_overrides'] == {'driver_node': 'other_sim'}


def test_large_frames_sets_both_profile_variables(vehicle_launch):
    assert vehicle_launch.vehicle_setup(_args(), str(ROOT))['env'] == {}
    env = vehicle_launch.vehicle_setup(_args(large_frames='yes'), str(ROOT))['env']
    profile = ROOT / 'config' / 'fastdds_large_frames.xml'
    assert env == dict.fromkeys(vehicle_launch.PROFILE_VARIABLES, str(profile))
    assert profile.is_file() and 'is_default_profile="true"' in profile.read_text()


def test_bad_arguments_are_one_line_errors(vehicle_launch, tmp_path):
    with pytest.raises(ValueError, match=r"use_sim:='maybe' is not a boolean"):
        vehicle_launch.vehicle_setup(_args(use_sim='maybe'), str(ROOT))
    with pytest.raises(ValueError, match=r"large_frames:='2' is not a boolean"):
        vehicle_launch.vehicle_setup(_args(large_frames='2'), str(ROOT))
    with pytest.raises(ValueError, match='cannot be read'):
        vehicle_launch.vehicle_setup(_args(use_sim='false', params_file=str(tmp_path / 'no')),
                                     str(ROOT))
    bad = tmp_path / 'bad.yaml'
    bad.write_text('auto_exposure: [1, 2\n')
    with pytest.raises(ValueError, match='not valid YAML'):
        vehicle_launch.vehicle_setup(_args(use_sim='false', params_file=str(bad)), str(ROOT))


def test_params_file_value_reads_the_node_section_over_all_nodes(vehicle_launch, tmp_path):
    path = tmp_path / 'p.yaml'
    path.write_text(yaml.safe_dump({'/**': {'ros__parameters': {'driver_node': 'x'}},
                                    '/auto_exposure': {'ros__parameters': {'driver_node': 'y'}}}))
    assert vehicle_launch.params_file_value(str(path), AE, 'driver_node') == 'y'
    assert vehicle_launch.params_file_value(str(path), 'other', 'driver_node') == 'x'
    assert vehicle_launch.params_file_value(str(path), AE, 'controller') is None


# ------------------------------------------------------------------ the real launch


def test_installed_prefix_looks_like_colcon_made_it(prefix):
    assert (prefix.root / 'share/ament_index/resource_index/packages/neural_ae').is_file()
    for path in ('package.xml', 'launch/vehicle.launch.py', 'config/vehicle.yaml',
                 'config/fastdds_large_frames.xml', 'config/sensors/imx249.yaml'):
        assert (prefix.share / path).is_file(), path
    for script in ('auto_exposure_node', 'camera_sim_node', 'vehicle'):
        assert (prefix.lib / script).is_file(), script
    assert (prefix.site_packages / 'neural_ae' / 'nodes' / 'auto_exposure_node.py').is_file()
    assert not list(prefix.share.glob('models/*.pt')), 'the big models were copied'


def test_bad_boolean_stops_the_real_launch_with_one_line(start_launch):
    run = start_launch('use_sim:=maybe')
    run.proc.wait(timeout=START_S)
    out = run.output()
    assert run.proc.returncode != 0, out
    assert "use_sim:='maybe' is not a boolean" in out and 'Traceback' not in out, out
    assert not run.node_pids('auto_exposure_node') and 'process started' not in out, out


def test_failed_start_up_configure_is_reported_and_not_activated(start_launch, ros_client):
    # the prefix holds no model files, so the shipped hybrid_nn cannot configure
    run = start_launch('use_sim:=false', 'controller:=hybrid_nn')
    said = 'auto_exposure: configure ended in'
    assert ros_client.spin_until(lambda: said in run.output(), START_S), run.tail()
    out = run.output()
    assert 'hybrid_demo.pt' in out, out  # the node names the missing model
    assert ros_client.state(AE) == 'unconfigured' and run.node_pids('auto_exposure_node')
    assert run.stop() == 0, run.tail()


def test_with_simulator_images_flow_ae_activates_and_commands_reach_the_sim(
        start_launch, ros_client, vehicle_launch):
    run = start_launch('use_sim:=true', 'controller:=average')
    images, feedback = [], []
    ros_client.node.create_subscription(Image, '/camera/image_raw', images.append,
                                        image_qos(1))
    ros_client.node.create_subscription(String, '/camera/exposure',
                                        lambda m: feedback.append(json.loads(m.data)),
                                        command_qos(50))
    assert ros_client.spin_until(lambda: len(images) >= 10, START_S), run.tail()
    assert images[-1].encoding == 'bayer_rggb16' and (images[-1].height, images[-1].width) \
        == (192, 320)
    assert ros_client.wait_state(AE, 'active', START_S) == 'active', run.tail()

    # the AE node commands the simulator: frames made with its settings, the sim's
    # parameters moved off the YAML's start values (5000 us, 0 dB)
    def commanded():
        return [f for f in feedback if f['command_from_frame'] >= 0
                and (f['exposure_time_us'], f['gain_db']) != (5000.0, 0.0)]
    assert ros_client.spin_until(lambda: commanded(), START_S), run.tail()
    sim = ros_client.parameters(SIM, ['exposure_time', 'gain'])
    assert (sim['exposure_time'], sim['gain']) != (5000.0, 0.0), sim
    assert all(f['exposure_time_us'] <= 15000.0 for f in feedback)  # the YAML's maximum
    ae = ros_client.parameters(AE, ['controller', 'driver_node', 'driver_preset',
                                    'max_exposure_us', 'model_path'])
    assert ae == {'controller': 'average', 'driver_node': SIM, 'driver_preset': 'generic',
                  'max_exposure_us': 15000.0, 'model_path': 'hybrid_demo.pt'}, ae
    [env] = run.node_envs('auto_exposure_node')
    assert not set(vehicle_launch.PROFILE_VARIABLES) & set(env)

    # a manual deactivate stays: the launch file activates after the start-up only
    assert ros_client.transition(AE, Transition.TRANSITION_DEACTIVATE), run.tail()
    assert ros_client.wait_state(AE, 'inactive', 10.0) == 'inactive'
    assert ros_client.wait_state(AE, 'active', HOLD_S) == 'inactive', run.tail()
    # ... and so does a later configure
    assert ros_client.transition(AE, Transition.TRANSITION_CLEANUP), run.tail()
    assert ros_client.transition(AE, Transition.TRANSITION_CONFIGURE), run.tail()
    assert ros_client.wait_state(AE, 'active', HOLD_S) == 'inactive', run.tail()

    assert run.stop() == 0, run.tail()
    out = run.output()
    assert 'Traceback' not in out, out[-6000:]
    for name in ('camera_sim_node', 'auto_exposure_node'):
        assert re.search(rf'\[{name}-\d+\]: process has finished cleanly', out), out[-4000:]


def test_without_simulator_custom_params_are_kept(start_launch, ros_client, prefix, tmp_path,
                                                  vehicle_launch):
    custom = _custom_params(tmp_path / 'custom.yaml', controller='average',
                            driver_node='my_camera', driver_preset='v4l2_camera',
                            average_level=0.35, max_exposure_us=12000.0,
                            publish_debug_image=False)
    run = start_launch('use_sim:=false', f'params_file:={custom}', 'large_frames:=true')
    assert ros_client.wait_state(AE, 'active', START_S) == 'active', run.tail()
    ae = ros_client.parameters(AE, ['controller', 'driver_node', 'driver_preset',
                                    'average_level', 'max_exposure_us',
                                    'publish_debug_image'])
    assert ae == {'controller': 'average', 'driver_node': 'my_camera',
                  'driver_preset': 'v4l2_camera', 'average_level': 0.35,
                  'max_exposure_us': 12000.0, 'publish_debug_image': False}, ae
    # every action of the launch file has run by now (the sim would start first)
    assert run.node_pids('camera_sim_node') == [], run.tail()
    assert 'camera_sim_node' not in run.output()
    assert SIM not in ros_client.node.get_node_names()
    [env] = run.node_envs('auto_exposure_node')
    profile = prefix.share / 'config' / 'fastdds_large_frames.xml'
    variables = vehicle_launch.PROFILE_VARIABLES
    assert {name: env.get(name) for name in variables} == dict.fromkeys(variables, str(profile))
    assert run.stop() == 0, run.tail()
    out = run.output()
    assert 'Traceback' not in out, out[-6000:]
    assert re.search(r'\[auto_exposure_node-\d+\]: process has finished cleanly', out), out
