"""config/vehicle.yaml, the launch file, and the one-process vehicle entry point."""
import json
from pathlib import Path
import py_compile
import re
import subprocess
import sys

from neural_ae.core.errors import ConfigError
from neural_ae.core.sensor import load_sensor
from neural_ae.nodes import vehicle
from neural_ae.nodes.auto_exposure_node import ae_parameter_specs
from neural_ae.nodes.camera_sim_node import sim_parameter_specs
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / 'config' / 'vehicle.yaml'
LAUNCH = ROOT / 'launch' / 'vehicle.launch.py'
SENSOR = load_sensor('imx249')


def test_launch_file_compiles_and_references_existing_config(tmp_path):
    py_compile.compile(str(LAUNCH), cfile=str(tmp_path / 'launch.pyc'), doraise=True)
    text = LAUNCH.read_text()
    assert "'vehicle.yaml'" in text and CONFIG.is_file()
    for arg in ('bag', 'controller', 'use_sim', 'driver_preset'):
        assert f"DeclareLaunchArgument('{arg}'" in text
    assert "executable='auto_exposure_node'" in text and "executable='camera_sim_node'" in text


def test_every_yaml_key_has_a_comment_with_a_unit():
    for line in CONFIG.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith('#') or stripped.endswith(':'):
            continue
        assert re.search(r'#.*\[[^\]]+\]', line), f'no "# ... [unit]" comment: {line!r}'


def test_yaml_values_are_valid_parameters_of_both_nodes():
    config = vehicle.load_params_yaml(CONFIG)
    assert set(config) == {'camera_sim', 'auto_exposure'}
    sim = vehicle.node_overrides(config, 'camera_sim', sim_parameter_specs(SENSOR))
    ae = vehicle.node_overrides(config, 'auto_exposure', ae_parameter_specs(SENSOR))
    assert {p.name for p in sim} == set(config['camera_sim'])
    assert {p.name for p in ae} == set(config['auto_exposure'])
    assert yaml.safe_load(CONFIG.read_text())['auto_exposure']['ros__parameters'][
        'flicker'] == 'off'


def test_bad_parameter_files_are_config_errors(tmp_path):
    bad = tmp_path / 'bad.yaml'
    bad.write_text('camera_sim:\n  ros__parameters:\n    rate_hz: fast\n')
    config = vehicle.load_params_yaml(bad)
    with pytest.raises(ConfigError, match='rate_hz'):
        vehicle.node_overrides(config, 'camera_sim', sim_parameter_specs(SENSOR))
    bad.write_text('camera_sim: 3\n')
    with pytest.raises(ConfigError, match='ros__parameters'):
        vehicle.load_params_yaml(bad)
    with pytest.raises(ConfigError, match='not found'):
        vehicle.load_params_yaml(tmp_path / 'missing.yaml')


def test_vehicle_runs_sim_and_ae_in_one_process(tmp_path, child_env):
    config = yaml.safe_load(CONFIG.read_text())
    sim = config['camera_sim']['ros__parameters']
    sim.update(mode='lockstep', scenario='step', n_frames=20, height=64, width=96,
               loop=False, lockstep_timeout_s=2.0)
    config['auto_exposure']['ros__parameters']['publish_debug_image'] = True
    path = tmp_path / 'vehicle.yaml'
    path.write_text(yaml.safe_dump(config))
    proc = subprocess.run(
        [sys.executable, '-m', 'neural_ae.nodes.vehicle', '--config', str(path),
         '--controller', 'gradient', '--exit-when-done', '--duration', '60',
         '--executor', 'single'],
        env=child_env, cwd=str(ROOT), capture_output=True, text=True, timeout=90)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    summary = json.loads(proc.stdout[proc.stdout.index('{'):])
    assert summary['frames_published'] == 20
    assert summary['commands_received'] >= 18
    assert summary['diagnostics']['controller'] == 'gradient'
    assert summary['diagnostics']['driver_reachable'] == 'true'


def test_vehicle_reports_a_bad_config_in_one_line(tmp_path, child_env):
    path = tmp_path / 'bad.yaml'
    path.write_text('auto_exposure:\n  ros__parameters:\n    controller: magic\n')
    proc = subprocess.run([sys.executable, '-m', 'neural_ae.nodes.vehicle', '--config',
                           str(path)], env=child_env, cwd=str(ROOT), capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith('vehicle: error:')
    assert 'magic' in proc.stderr


def test_vehicle_stops_cleanly_on_sigint(tmp_path, child_env):
    """SIGINT ends the run between callbacks: exit 0, the summary, no traceback."""
    import signal
    import time

    config = yaml.safe_load(CONFIG.read_text())
    config['camera_sim']['ros__parameters'].update(
        mode='lockstep', scenario='step', n_frames=20, height=64, width=96, loop=True,
        lockstep_timeout_s=0.5)
    path = tmp_path / 'vehicle.yaml'
    path.write_text(yaml.safe_dump(config))
    log = tmp_path / 'vehicle.log'
    with log.open('w') as err:
        proc = subprocess.Popen(
            [sys.executable, '-m', 'neural_ae.nodes.vehicle', '--config', str(path),
             '--controller', 'gradient', '--executor', 'multi'],
            env=child_env, cwd=str(ROOT), stdout=subprocess.PIPE, stderr=err, text=True)
        try:
            end = time.monotonic() + 60
            while time.monotonic() < end and 'active' not in log.read_text():
                time.sleep(0.2)
            time.sleep(1.0)   # frames flow
            proc.send_signal(signal.SIGINT)
            out, _ = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
    stderr = log.read_text()
    assert proc.returncode == 0, stderr[-3000:]
    assert 'Traceback' not in stderr, stderr[-3000:]
    summary = json.loads(out[out.index('{'):])
    assert summary['frames_published'] > 0
