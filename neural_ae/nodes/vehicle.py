"""
vehicle: every node of the package in one process, configured from ``config/vehicle.yaml``.

The same YAML serves ``launch/vehicle.launch.py`` on a full ROS 2 install; here (no
``launch``/``ros2 launch``) this entry point composes the nodes itself: it parses the
standard ROS 2 params layout (``node_name: ros__parameters: {...}``, ``/**`` applies to
every node) with PyYAML, passes typed ``parameter_overrides``, spins a single- or
multi-threaded executor and drives the auto-exposure lifecycle node through configure and
activate. On exit (Ctrl-C, SIGTERM, ``--duration``, or ``--exit-when-done`` once the
simulator's sequence ended) it deactivates the node (the driver's own auto exposure is
restored when configured), destroys the nodes and shuts rclpy down.

Command-line overrides mirror the launch arguments: ``--bag``, ``--controller``,
``--no-sim`` (``use_sim:=false``: command a real driver), ``--driver-preset``.
"""
import argparse
import logging
from pathlib import Path
import sys
import threading
import time
from typing import Optional

from neural_ae.core.errors import ConfigError, NeuralAEError
from neural_ae.core.paths import config_dir
from neural_ae.core.sensor import load_sensor
from neural_ae.nodes.vehicle_args import add_arguments
from neural_ae.ros import params as P
from neural_ae.ros.stopping import StopRequest
import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.executors import SingleThreadedExecutor
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.signals import SignalHandlerOptions
import yaml

__all__ = ['load_params_yaml', 'main', 'node_overrides', 'run_vehicle']

LOG = logging.getLogger(__name__)
SIM_NAME = 'camera_sim'
AE_NAME = 'auto_exposure'


def default_config() -> Path:
    """Return the package's ``config/vehicle.yaml``."""
    return config_dir() / 'vehicle.yaml'


def load_params_yaml(path) -> dict:
    """
    Parse a ROS 2 params YAML into ``{node_name: {param: value}}``.

    ``/**`` entries (all nodes) are kept under the key ``'/**'``; leading slashes of node
    names are dropped. Malformed files raise :class:`ConfigError`.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f'parameter file not found: {path}')
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f'{path} is not valid YAML: {err}') from err
    if not isinstance(data, dict):
        raise ConfigError(f'{path}: expected a mapping of node names, got {type(data).__name__}')
    out = {}
    for name, body in data.items():
        if not isinstance(body, dict) or not isinstance(body.get('ros__parameters'), dict):
            raise ConfigError(f'{path}: node {name!r} needs a "ros__parameters" mapping')
        key = name if name == '/**' else str(name).lstrip('/')
        out.setdefault(key, {}).update(body['ros__parameters'])
    return out


def node_overrides(config: dict, node_name: str, specs, extra: Optional[dict] = None,
                   where: str = 'vehicle.yaml') -> list:
    """Typed overrides for ``node_name``: ``/**`` values, the node's own, then ``extra``."""
    names = {s.name for s in specs}
    values = {k: v for k, v in config.get('/**', {}).items() if k in names}
    values.update(config.get(node_name, {}))
    values.update(extra or {})
    return P.overrides_from_dict(specs, values, where=f'{where}: {node_name}')


def _sensor_name(config: dict, node_name: str, extra: dict) -> str:
    for source in (extra, config.get(node_name, {}), config.get('/**', {})):
        if source.get('sensor'):
            return source['sensor']
    return 'imx249'


def run_vehicle(config_path=None, *, controller: Optional[str] = None,
                bag: Optional[str] = None, use_sim: bool = True,
                driver_preset: Optional[str] = None, executor: str = 'multi',
                duration_s: float = 0.0, exit_when_done: bool = False,
                ros_args: Optional[list] = None) -> dict:
    """
    Build, start and spin the nodes until interrupted; return a small summary dict.

    ``duration_s`` > 0 stops after that many seconds; ``exit_when_done`` stops when the
    simulator's sequence ended. Raises :class:`ConfigError` for a bad parameter file.
    """
    from neural_ae.nodes.auto_exposure_node import (ae_parameter_specs, AutoExposureNode,
                                                    shutdown_node)
    from neural_ae.nodes.camera_sim_node import CameraSimNode, sim_parameter_specs

    path = Path(config_path) if config_path else default_config()
    where = path.name
    config = load_params_yaml(path)
    sim_extra, ae_extra = {}, {}
    if bag is not None:
        sim_extra['bag'] = bag
    if controller is not None:
        ae_extra['controller'] = controller
    if driver_preset is not None:
        ae_extra['driver_preset'] = driver_preset
    if not use_sim and 'driver_node' not in ae_extra:
        own = config.get(AE_NAME, {}).get('driver_node', '')
        if own == SIM_NAME:
            ae_extra['driver_node'] = ''
    ae_sensor = load_sensor(_sensor_name(config, AE_NAME, ae_extra))
    ae_overrides = node_overrides(config, AE_NAME, ae_parameter_specs(ae_sensor), ae_extra,
                                  where)
    sim_overrides = None
    if use_sim:
        sim_sensor = load_sensor(_sensor_name(config, SIM_NAME, sim_extra))
        sim_overrides = node_overrides(config, SIM_NAME, sim_parameter_specs(sim_sensor),
                                       sim_extra, where)

    rclpy.init(args=ros_args, signal_handler_options=SignalHandlerOptions.NO)
    # SIGINT / SIGTERM only request the stop (no KeyboardInterrupt inside rclpy's calls);
    # the loop below returns between callbacks and the nodes are torn down quietly.
    stop = StopRequest()
    if threading.current_thread() is threading.main_thread():
        stop.install()
    nodes, sim, ae, exe = [], None, None, None
    summary = {'config': str(path), 'use_sim': use_sim}
    try:
        if use_sim:
            sim = CameraSimNode(SIM_NAME, parameter_overrides=sim_overrides)
            nodes.append(sim)
        ae = AutoExposureNode(AE_NAME, parameter_overrides=ae_overrides)
        nodes.append(ae)
        exe = MultiThreadedExecutor(num_threads=3) if executor == 'multi' \
            else SingleThreadedExecutor()
        for node in nodes:
            exe.add_node(node)
        if ae.trigger_configure() != TransitionCallbackReturn.SUCCESS:
            raise ConfigError(f'{AE_NAME}: configure failed: {ae.diagnostics().status[0].message}')
        if ae.trigger_activate() != TransitionCallbackReturn.SUCCESS:
            raise ConfigError(f'{AE_NAME}: activate failed')
        start = time.monotonic()
        while rclpy.ok() and not stop.is_set():
            try:
                exe.spin_once(timeout_sec=0.1)
            except RuntimeError:
                if not stop.is_set():
                    raise
                break  # the teardown race after a stop request
            if duration_s > 0 and time.monotonic() - start >= duration_s:
                break
            if exit_when_done and sim is not None and sim.finished:
                break
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if threading.current_thread() is threading.main_thread():
            stop.ignore_further()
        if ae is not None:
            summary['frames_processed'] = ae.frames_processed
            summary['diagnostics'] = {kv.key: kv.value for kv in ae.diagnostics().status[0].values}
            shutdown_node(ae, exe)
        if sim is not None:
            summary['frames_published'] = sim.frames_published
            summary['commands_received'] = sim.commands_received
            sim.destroy_node()
        if exe is not None:
            exe.shutdown()
        rclpy.try_shutdown()
        stop.restore()
    return summary


def build_parser(parser: Optional[argparse.ArgumentParser] = None) -> argparse.ArgumentParser:
    """Build the arguments of the vehicle entry point (shared with ``neural-ae vehicle``)."""
    p = parser or argparse.ArgumentParser(
        prog='vehicle', description='camera simulator + auto-exposure node in one process')
    add_arguments(p)
    return p


def run_from_args(args, ros_args=None) -> int:
    """Run with parsed arguments; print the summary; exit code."""
    import json

    summary = run_vehicle(args.config, controller=args.controller, bag=args.bag,
                          use_sim=args.use_sim, driver_preset=args.driver_preset,
                          executor=args.executor, duration_s=args.duration,
                          exit_when_done=args.exit_when_done, ros_args=ros_args)
    print(json.dumps(summary, indent=1))
    return 0


def main(argv=None) -> int:
    """Console entry point ``vehicle``; ROS arguments after ``--ros-args`` go to rclpy."""
    argv = list(sys.argv[1:] if argv is None else argv)
    ros_args = None
    if '--ros-args' in argv:
        i = argv.index('--ros-args')
        argv, ros_args = argv[:i], ['vehicle'] + argv[i:]
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(levelname)s %(name)s: %(message)s')
    try:
        return run_from_args(args, ros_args)
    except (NeuralAEError, FileNotFoundError) as err:
        sys.stderr.write(f'vehicle: error: {err}\n')
        return 2


if __name__ == '__main__':
    sys.exit(main())
