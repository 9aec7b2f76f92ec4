"""
Launch the camera simulator (optional) and the auto-exposure lifecycle node.

Launch arguments:

  bag:=PATH            HDR rosbag2 for the simulator ("" = synthetic scenes)
  controller:=NAME     fixed, average, gradient, histogram_nn, semantic_nn, hybrid_nn
  use_sim:=true|false  start camera_sim_node; false = command a real camera driver
  driver_preset:=NAME  generic, v4l2_camera, camera_ros
  params_file:=PATH    parameters (default: share/neural_ae/config/vehicle.yaml)

The auto-exposure node is configured, then activated, by lifecycle events. Without the
simulator its ``driver_node`` falls back to the preset's node name (``camera`` for
generic and camera_ros, ``v4l2_camera`` for v4l2_camera). In a plain Python environment
without ``launch``, ``neural-ae vehicle`` runs the same set-up from the same YAML.
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, EmitEvent, RegisterEventHandler
from launch.conditions import IfCondition
from launch.events import matches_action
from launch.substitutions import LaunchConfiguration, PythonExpression
from launch_ros.actions import LifecycleNode, Node
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState
from lifecycle_msgs.msg import Transition


def generate_launch_description():
    """Return the simulator + auto-exposure node, both parameterised from vehicle.yaml."""
    default_params = os.path.join(get_package_share_directory('neural_ae'), 'config',
                                  'vehicle.yaml')
    bag = LaunchConfiguration('bag')
    controller = LaunchConfiguration('controller')
    use_sim = LaunchConfiguration('use_sim')
    driver_preset = LaunchConfiguration('driver_preset')
    params_file = LaunchConfiguration('params_file')
    driver_node = PythonExpression(["'camera_sim' if '", use_sim, "'.lower() == 'true' else ''"])

    camera_sim = Node(
        package='neural_ae', executable='camera_sim_node', name='camera_sim',
        output='screen', condition=IfCondition(use_sim),
        parameters=[params_file, {'bag': bag}])
    auto_exposure = LifecycleNode(
        package='neural_ae', executable='auto_exposure_node', name='auto_exposure',
        namespace='', output='screen',
        parameters=[params_file, {'controller': controller, 'driver_preset': driver_preset,
                                  'driver_node': driver_node}])
    configure = EmitEvent(event=ChangeState(
        lifecycle_node_matcher=matches_action(auto_exposure),
        transition_id=Transition.TRANSITION_CONFIGURE))
    activate_when_configured = RegisterEventHandler(OnStateTransition(
        target_lifecycle_node=auto_exposure, goal_state='inactive',
        entities=[EmitEvent(event=ChangeState(
            lifecycle_node_matcher=matches_action(auto_exposure),
            transition_id=Transition.TRANSITION_ACTIVATE))]))

    return LaunchDescription([
        DeclareLaunchArgument('bag', default_value='',
                              description='HDR rosbag2 for the simulator ("" = synthetic)'),
        DeclareLaunchArgument('controller', default_value='hybrid_nn',
                              description='exposure controller'),
        DeclareLaunchArgument('use_sim', default_value='true',
                              description='start the camera simulator'),
        DeclareLaunchArgument('driver_preset', default_value='generic',
                              description='camera driver preset'),
        DeclareLaunchArgument('params_file', default_value=default_params,
                              description='parameter YAML'),
        camera_sim,
        activate_when_configured,
        auto_exposure,
        configure,
    ])
