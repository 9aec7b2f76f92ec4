"""
auto_exposure_node started with invalid parameters: one line on stderr, exit code 2.

Three processes: out of a descriptor's range and of the wrong type (rclpy's
ParameterException), and a combination only the node checks (ConfigError). The other
start-up checks are the same code path, exercised in this process.
"""
from pathlib import Path
import subprocess
import sys

from neural_ae.core.errors import ConfigError
from neural_ae.nodes.auto_exposure_node import AutoExposureNode
import pytest
from rclpy.parameter import Parameter

ROOT = Path(__file__).resolve().parents[2]

CASES = [
    (['-p', 'average_level:=5.0'], 'average_level out of range'),
    (['-p', 'average_level:=abc'], "'average_level'"),
    (['-p', 'bit_depth:=14', '-p', 'bit_shift:=4'], 'exceeds the 16 bits'),
]


def test_invalid_start_up_parameters_end_the_node_with_one_line(child_env):
    procs = [subprocess.Popen(
        [sys.executable, '-m', 'neural_ae.nodes.auto_exposure_node', '--ros-args', *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env,
        cwd=str(ROOT)) for args, _ in CASES]
    for proc, (args, needle) in zip(procs, CASES):
        try:
            out, err = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        assert proc.returncode == 2, (args, proc.returncode, out[-2000:], err[-2000:])
        assert 'Traceback' not in out + err, (args, err[-3000:])
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith('auto_exposure_node: error: '), lines
        assert needle in lines[0], (needle, lines[0])


@pytest.mark.parametrize('name, value, needle', [
    ('controller', 'bogus', "controller: 'bogus' is not one of"),
    ('min_exposure_us', 20000.0, 'min_exposure_us 20000.0 > max_exposure_us'),
    ('bit_shift', 5, 'exceeds the 16 bits'),
])
def test_invalid_start_up_values_are_one_config_error(ros_side, name, value, needle):
    with pytest.raises(ConfigError, match=needle):
        AutoExposureNode('ae_bad_start', context=ros_side.context,
                         parameter_overrides=[Parameter(name, value=value)])
