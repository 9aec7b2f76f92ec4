"""
Command-line arguments of the vehicle set-up (the ``vehicle`` entry point, ``neural-ae vehicle``).

ROS-free on purpose: the ``neural-ae`` parser imports it without starting rclpy.
"""


def add_arguments(p) -> None:
    """Add the vehicle arguments to parser ``p`` (shared with the ``vehicle`` entry point)."""
    p.add_argument('--config', help='ROS 2 params YAML (default: config/vehicle.yaml)')
    p.add_argument('--bag', help='HDR rosbag2 for the simulator (default: synthetic scenes)')
    p.add_argument('--controller', help='exposure controller (overrides the YAML)')
    p.add_argument('--no-sim', dest='use_sim', action='store_false',
                   help='no simulator: command a real camera driver')
    p.add_argument('--driver-preset', help='generic, v4l2_camera or camera_ros')
    p.add_argument('--executor', choices=('single', 'multi'), default='multi',
                   help='rclpy executor (default: multi-threaded)')
    p.add_argument('--duration', type=float, default=0.0,
                   help='stop after this many seconds (default: run until Ctrl-C)')
    p.add_argument('--exit-when-done', action='store_true',
                   help='stop when the simulated sequence has ended')
