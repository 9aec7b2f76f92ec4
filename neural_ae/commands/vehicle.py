"""``neural-ae vehicle``: camera simulator + auto-exposure node in one process (needs rclpy)."""
from neural_ae.nodes.vehicle_args import add_arguments


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
