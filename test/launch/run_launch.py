"""
Run a launch file through ``launch.LaunchService``, the way ``ros2 launch`` does.

Usage: ``python run_launch.py FILE [name:=value ...]``. Exit code: the service's.
The tests start it in its own process group with the prefix and the ``launch`` packages
on ``PYTHONPATH`` and stop it like Ctrl-C does (SIGINT to the group); it is not a test.
"""
import signal
import sys

from launch import LaunchDescription, LaunchService
from launch.actions import IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource


def main(argv) -> int:
    """Include ``argv[0]`` with the ``name:=value`` arguments that follow; run until done."""
    # A shell that runs a job in the background hands it SIGINT ignored (and Python then
    # keeps it ignored): take Ctrl-C back, so the tests' SIGINT stops the service and its
    # nodes (which inherit the default on exec) as in a terminal.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    path, arguments = argv[0], argv[1:]
    pairs = []
    for text in arguments:
        name, sep, value = text.partition(':=')
        if not sep:
            sys.stderr.write(f'run_launch: expected name:=value, got {text!r}\n')
            return 2
        pairs.append((name, value))
    # interactive, as ``ros2 launch`` in a terminal: Ctrl-C reaches the whole process group
    # and the service does not send a second SIGINT to the nodes
    service = LaunchService(argv=arguments)
    service.include_launch_description(LaunchDescription([IncludeLaunchDescription(
        PythonLaunchDescriptionSource(path), launch_arguments=pairs)]))
    return service.run()


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
