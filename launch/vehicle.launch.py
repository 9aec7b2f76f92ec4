"""
Launch the camera simulator (optional) and the auto-exposure lifecycle node.

Launch arguments (an empty value keeps what ``params_file`` says):

  params_file:=PATH      parameters (default: share/neural_ae/config/vehicle.yaml)
  use_sim:=BOOL          start camera_sim_node (default true); false = command a real driver
  controller:=NAME       fixed, average, gradient, histogram_nn, semantic_nn, hybrid_nn
  driver_preset:=NAME    generic, v4l2_camera, camera_ros
  driver_node:=NAME      driver node the AE node commands
  bag:=PATH              HDR rosbag2 for the simulator
  large_frames:=BOOL     Fast DDS profile for full-resolution frames (default false)

Booleans accept true/false, 1/0, yes/no, on/off in any case; anything else stops the
launch with a one-line error.

Which driver the auto-exposure node commands: ``driver_node:=NAME`` if given; else with the
simulator ``camera_sim`` (the simulator started here); else the params file's
``driver_node``, except that the simulator's name there (as in the shipped vehicle.yaml)
becomes empty, i.e. the preset's node name (``camera`` for generic and camera_ros,
``v4l2_camera`` for v4l2_camera).

The auto-exposure node is configured at start-up, then activated once that first
configure transition succeeds. Later transitions are left to the operator: a manual
deactivate (which gives exposure back to the driver) stays deactivated, and a manual
configure is not followed by an activate.

``large_frames:=true`` sets ``FASTRTPS_DEFAULT_PROFILES_FILE`` and
``FASTDDS_DEFAULT_PROFILES_FILE`` to share/neural_ae/config/fastdds_large_frames.xml for
both nodes (shared memory sized for 16 frames of 4.7 MB, UDP on loopback only).

In a plain Python environment without ``launch``, ``neural-ae vehicle`` runs the same
set-up from the same YAML.
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, EmitEvent, LogInfo, OpaqueFunction
from launch.actions import RegisterEventHandler
from launch.events import matches_action
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode, Node
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState
from lifecycle_msgs.msg import Transition
import yaml

PACKAGE = 'neural_ae'
SIM_NAME = 'camera_sim'
AE_NAME = 'auto_exposure'
PROFILE = 'fastdds_large_frames.xml'
PROFILE_VARIABLES = ('FASTRTPS_DEFAULT_PROFILES_FILE', 'FASTDDS_DEFAULT_PROFILES_FILE')
TRUE_WORDS = ('true', '1', 'yes', 'on')
FALSE_WORDS = ('false', '0', 'no', 'off')
ARGUMENTS = ('params_file', 'use_sim', 'controller', 'driver_preset', 'driver_node', 'bag',
             'large_frames')
"""Launch arguments; ``use_sim``, ``large_frames`` are booleans, for the others "" = the YAML's."""


def as_bool(name: str, text: str) -> bool:
    """Return the boolean a launch argument spells; raise ValueError for other words."""
    word = str(text).strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ValueError(f'launch argument {name}:={text!r} is not a boolean '
                     '(true/false, 1/0, yes/no, on/off)')


def params_file_value(path: str, node_name: str, key: str):
    """
    Return ``key`` of ``node_name`` in a ROS 2 params file, or None where it is not set.

    The node's own section (``name`` or ``/name``) wins over ``/**``. A missing or
    malformed file raises ValueError with one line that names it.
    """
    try:
        with open(path, encoding='utf-8') as f:
            data = yaml.safe_load(f) or {}
    except OSError as err:
        raise ValueError(f'params_file {path!r} cannot be read: {err.strerror}') from err
    except yaml.YAMLError as err:
        raise ValueError(f'params_file {path!r} is not valid YAML') from err
    if not isinstance(data, dict):
        raise ValueError(f'params_file {path!r}: expected a mapping of node names')
    value = None
    for section in ('/**', '**', node_name, '/' + node_name):
        body = data.get(section)
        params = body.get('ros__parameters') if isinstance(body, dict) else None
        if isinstance(params, dict) and key in params:
            value = params[key]
    return value


def vehicle_setup(args: dict, share_dir: str) -> dict:
    """
    Turn launch argument values into what the nodes get.

    ``args`` maps the arguments of :data:`ARGUMENTS` to their text (``params_file`` already
    resolved to a path). Returns ``use_sim`` (bool), ``params_file``, ``sim_overrides`` and
    ``ae_overrides`` (only the arguments that were given, applied after the params file)
    and ``env`` (extra environment of both nodes).
    """
    def given(name):
        return str(args.get(name) or '').strip()

    use_sim = as_bool('use_sim', args.get('use_sim', 'true'))
    large_frames = as_bool('large_frames', args.get('large_frames', 'false'))
    params_file = given('params_file')
    ae_overrides = {k: given(k) for k in ('controller', 'driver_preset') if given(k)}
    if given('driver_node'):
        ae_overrides['driver_node'] = given('driver_node')
    elif use_sim:
        ae_overrides['driver_node'] = SIM_NAME
    elif params_file_value(params_file, AE_NAME, 'driver_node') == SIM_NAME:
        ae_overrides['driver_node'] = ''
    sim_overrides = {'bag': given('bag')} if given('bag') else {}
    env = {}
    if large_frames:
        profile = os.path.join(share_dir, 'config', PROFILE)
        env = {variable: profile for variable in PROFILE_VARIABLES}
    return {'use_sim': use_sim, 'params_file': params_file, 'sim_overrides': sim_overrides,
            'ae_overrides': ae_overrides, 'env': env}


def _activate_after_first_configure(context, auto_exposure):
    """Activate when the start-up configure succeeded; say so when it failed."""
    event = context.locals.event
    if event.goal_state == 'inactive':
        return [EmitEvent(event=ChangeState(
            lifecycle_node_matcher=matches_action(auto_exposure),
            transition_id=Transition.TRANSITION_ACTIVATE))]
    return [LogInfo(msg=f'{AE_NAME}: configure ended in {event.goal_state!r}, not activating '
                        '(see its log; configure and activate it by hand once fixed)')]


def _nodes(context, share_dir):
    """Build the nodes from the launch arguments' values (run by the OpaqueFunction)."""
    args = {name: LaunchConfiguration(name).perform(context) for name in ARGUMENTS}
    setup = vehicle_setup(args, share_dir)
    params_file = setup['params_file']
    actions = []
    if setup['use_sim']:
        sim_params = [params_file] + ([setup['sim_overrides']] if setup['sim_overrides']
                                      else [])
        actions.append(Node(
            package='neural_ae', executable='camera_sim_node', name=SIM_NAME,
            output='screen', parameters=sim_params, additional_env=setup['env']))
    ae_params = [params_file] + ([setup['ae_overrides']] if setup['ae_overrides'] else [])
    auto_exposure = LifecycleNode(
        package='neural_ae', executable='auto_exposure_node', name=AE_NAME,
        namespace='', output='screen', parameters=ae_params, additional_env=setup['env'])
    # Only the start-up configure is followed by an activate (handle_once): a manual
    # deactivate or a later configure must not be undone by the launch file.
    activate_once = RegisterEventHandler(OnStateTransition(
        target_lifecycle_node=auto_exposure, start_state='configuring', handle_once=True,
        entities=[OpaqueFunction(function=_activate_after_first_configure,
                                 args=[auto_exposure])]))
    configure = EmitEvent(event=ChangeState(
        lifecycle_node_matcher=matches_action(auto_exposure),
        transition_id=Transition.TRANSITION_CONFIGURE))
    return actions + [activate_once, auto_exposure, configure]


def generate_launch_description():
    """Return the simulator + auto-exposure node, both parameterised from vehicle.yaml."""
    share_dir = get_package_share_directory(PACKAGE)
    default_params = os.path.join(share_dir, 'config', 'vehicle.yaml')
    keep = '; "" = the params file\'s'
    return LaunchDescription([
        DeclareLaunchArgument('params_file', default_value=default_params,
                              description='parameter YAML'),
        DeclareLaunchArgument('use_sim', default_value='true',
                              description='start the camera simulator {true, false}'),
        DeclareLaunchArgument('controller', default_value='',
                              description='exposure controller' + keep),
        DeclareLaunchArgument('driver_preset', default_value='',
                              description='camera driver preset' + keep),
        DeclareLaunchArgument('driver_node', default_value='',
                              description='driver node to command; "" = camera_sim with the '
                                          "simulator, else the params file's"),
        DeclareLaunchArgument('bag', default_value='',
                              description='HDR rosbag2 for the simulator' + keep),
        DeclareLaunchArgument('large_frames', default_value='false',
                              description='Fast DDS profile for full-resolution frames '
                                          '{true, false}'),
        OpaqueFunction(function=_nodes, args=[share_dir]),
    ])
