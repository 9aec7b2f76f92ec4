"""``neural-ae vehicle``: camera simulator + auto-exposure node in one process (needs rclpy)."""


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


def add_parser(sub) -> None:
    """Register ``vehicle``."""
    p = sub.add_parser('vehicle', help='simulator + auto-exposure node in one process (ROS 2)',
                       description='Run camera_sim_node and auto_exposure_node in one '
                       'process from config/vehicle.yaml, like launch/vehicle.launch.py.')
    add_arguments(p)
    p.set_defaults(func=run)


def run(args) -> int:
    """Run the vehicle set-up until interrupted; print the summary."""
    from neural_ae.nodes.vehicle import run_from_args

    return run_from_args(args)
