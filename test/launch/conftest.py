"""
Helpers for running ``launch/vehicle.launch.py`` for real.

- :func:`launch_pythonpath`: the system's ``launch``/``launch_ros`` where importable, else
  the vendored copies in ``shared/vendor/ros2_launch`` (found relative to this file: the
  checkout's own ``shared/`` or the one beside it, ``../shared``).
- :func:`install_prefix`: installs the package into a temporary ament prefix the way colcon
  does (``setup.py egg_info build install --prefix --single-version-externally-managed``);
  the large model files are left out unless asked for.
- :class:`LaunchRun`: ``run_launch.py`` (a ``LaunchService``) in its own process group;
  :meth:`LaunchRun.stop` interrupts it like Ctrl-C, then kills whatever is left.
- :class:`RosClient`: the test's own rclpy context with lifecycle and parameter clients.
"""
import gc
import importlib.util
import os
from pathlib import Path
import signal
import subprocess
import sys
import time
import uuid

from lifecycle_msgs.msg import State, Transition
from lifecycle_msgs.srv import ChangeState, GetState
import pytest
from rcl_interfaces.srv import GetParameters
import rclpy
from rclpy.executors import SingleThreadedExecutor

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
RUNNER = HERE / 'run_launch.py'
VENDOR = Path('vendor') / 'ros2_launch'
PROFILE_VARIABLES = ('FASTRTPS_DEFAULT_PROFILES_FILE', 'FASTDDS_DEFAULT_PROFILES_FILE')
"""Removed from the launched processes' environment unless the launch file sets them."""
MARKER = 'NEURAL_AE_LAUNCH_TEST'
"""Environment variable that tags every process a launch test starts (leftover check)."""
STATE_NAMES = {State.PRIMARY_STATE_UNCONFIGURED: 'unconfigured',
               State.PRIMARY_STATE_INACTIVE: 'inactive', State.PRIMARY_STATE_ACTIVE: 'active',
               State.PRIMARY_STATE_FINALIZED: 'finalized'}


def _find_launch() -> tuple:
    """Return (folders for PYTHONPATH, reason to skip or '') as found before any change."""
    if importlib.util.find_spec('launch_ros') is not None:
        return [], ''
    for shared in (ROOT / 'shared', ROOT.parent / 'shared'):
        vendor = shared / VENDOR
        if (vendor / 'launch_ros' / '__init__.py').is_file():
            break
    else:
        return [], 'launch_ros is not installed and shared/vendor/ros2_launch is not found'
    if importlib.util.find_spec('osrf_pycommon') is None:
        return [], ('osrf_pycommon (the vendored launch needs it) is not installed: '
                    'pip install osrf-pycommon')
    return [str(vendor), str(vendor / 'stubs')], ''


_LAUNCH = _find_launch()


def launch_pythonpath() -> list:
    """
    Return the folders to put on PYTHONPATH so that ``launch_ros`` imports.

    Empty where the system's ``launch_ros`` imports; the vendored copy (and its stubs)
    otherwise; skips the test where neither exists or ``osrf_pycommon`` is missing.
    """
    folders, skip = _LAUNCH
    if skip:
        pytest.skip(skip)
    return list(folders)


def import_launch_file(path: Path):
    """Import a launch file as a module (``launch`` found as :func:`launch_pythonpath`)."""
    for folder in reversed(launch_pythonpath()):
        if folder not in sys.path:
            sys.path.insert(0, folder)
    spec = importlib.util.spec_from_file_location('vehicle_launch_under_test', str(path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_SETUP_WITHOUT_MODELS = """
import runpy, sys, setuptools
keep = sys.argv.pop(1) == 'models'
setup = setuptools.setup
def without_models(**kw):
    if not keep:
        kw['data_files'] = [(d, f) for d, f in kw.get('data_files', [])
                            if not d.rstrip('/').endswith('/models')]
    return setup(**kw)
setuptools.setup = without_models
sys.argv[0] = 'setup.py'
runpy.run_path('setup.py', run_name='__main__')
"""


class Prefix:
    """An ament prefix holding the installed package."""

    def __init__(self, root: Path):
        self.root = root
        self.share = root / 'share' / 'neural_ae'
        self.lib = root / 'lib' / 'neural_ae'
        found = sorted(root.glob('lib/python*/site-packages'))
        self.site_packages = found[0] if found else root / 'lib' / 'site-packages'
        self.launch_file = self.share / 'launch' / 'vehicle.launch.py'

    def env(self, domain: int, marker: str) -> dict:
        """Environment for a process that uses the prefix (loopback DDS, ``domain``)."""
        env = {k: v for k, v in os.environ.items()
               if k not in PROFILE_VARIABLES and k != 'AMENT_PREFIX_PATH'}
        path = [str(self.site_packages)] + launch_pythonpath()
        env.update(AMENT_PREFIX_PATH=str(self.root), PYTHONPATH=os.pathsep.join(path),
                   ROS_DOMAIN_ID=str(domain), ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST',
                   PYTHONUNBUFFERED='1', OMP_NUM_THREADS='1', RCUTILS_COLORIZED_OUTPUT='0')
        env[MARKER] = marker
        return env


def install_prefix(work: Path, models: bool = False) -> Prefix:
    """
    Install the checkout into ``work/install`` as colcon's ament_python build does.

    ``setup.py egg_info build install --prefix --single-version-externally-managed``: the
    ament index marker, package.xml, launch, config and (with ``models``) models under
    ``share``, the console scripts in ``lib/neural_ae`` (setup.cfg's install_scripts), the
    Python package in ``lib/pythonX.Y/site-packages``.
    """
    root = work / 'install'
    cmd = [sys.executable, '-c', _SETUP_WITHOUT_MODELS, 'models' if models else 'no-models',
           'egg_info', '--egg-base', str(work), 'build', '--build-base', str(work / 'build'),
           'install', '--prefix', str(root), '--single-version-externally-managed',
           '--record', str(work / 'install_manifest.txt')]
    proc = subprocess.run(cmd, cwd=str(ROOT), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return Prefix(root)


def processes_with(marker: str) -> dict:
    """Return ``{pid: command line}`` of every live process whose environment has ``marker``."""
    found = {}
    needle = f'{MARKER}={marker}'.encode()
    for entry in Path('/proc').iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle not in (entry / 'environ').read_bytes().split(b'\0'):
                continue
            if (entry / 'stat').read_text().rsplit(')', 1)[1].split()[0] == 'Z':
                continue
            cmdline = (entry / 'cmdline').read_bytes().replace(b'\0', b' ').decode()
        except OSError:  # gone meanwhile, or not ours
            continue
        found[int(entry.name)] = cmdline.strip()
    return found


def process_env(pid: int) -> dict:
    """Return the environment of process ``pid``."""
    out = {}
    for item in Path(f'/proc/{pid}/environ').read_bytes().split(b'\0'):
        key, sep, value = item.decode(errors='replace').partition('=')
        if sep:
            out[key] = value
    return out


class LaunchRun:
    """``run_launch.py <launch file> args...`` in a new session, logged to a file."""

    def __init__(self, prefix: Prefix, args: list, domain: int, log_path: Path):
        self.marker = uuid.uuid4().hex
        self.log_path = log_path
        self._log = log_path.open('w')
        env = prefix.env(domain, self.marker)
        # launch_ros's parameter files and the ROS logs stay in the test's folder
        env.update(TMPDIR=str(log_path.parent), ROS_LOG_DIR=str(log_path.parent / 'ros_log'))
        self.proc = subprocess.Popen(
            [sys.executable, str(RUNNER), str(prefix.launch_file)] + list(args),
            stdout=self._log, stderr=subprocess.STDOUT, env=env, cwd=str(log_path.parent),
            start_new_session=True)
        self.pgid = self.proc.pid

    def output(self) -> str:
        """Return what the launch service and its nodes printed so far."""
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors='replace')

    def tail(self, n: int = 4000) -> str:
        """Return the last ``n`` characters of :meth:`output` (for assertion messages)."""
        return self.output()[-n:]

    def node_pids(self, executable: str) -> list:
        """Return the process ids of this run whose command line names ``executable``."""
        return [pid for pid, cmd in processes_with(self.marker).items()
                if f'/{executable} ' in cmd + ' ']

    def node_envs(self, executable: str) -> list:
        """Return the environments of this run's processes running ``executable``."""
        return [process_env(pid) for pid in self.node_pids(executable)]

    def stop(self, timeout: float = 30.0) -> int:
        """
        Ctrl-C (SIGINT to the process group), wait up to ``timeout`` s, then SIGKILL it.

        Returns the launch process's exit code (negative: killed).
        """
        if self.proc.poll() is None:
            try:
                os.killpg(self.pgid, signal.SIGINT)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        for pid in processes_with(self.marker):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            os.killpg(self.pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if self.proc.poll() is None:
            self.proc.wait(timeout=10)
        self._log.close()
        return self.proc.returncode


class RosClient:
    """The test's own rclpy context, node and executor, with lifecycle/parameter helpers."""

    def __init__(self, domain: int, name: str = 'launch_test_side'):
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain)
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._clients = {}

    def spin_until(self, predicate, timeout: float) -> bool:
        """Spin until ``predicate()`` is true or ``timeout`` seconds passed; its last value."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if predicate():
                return True
            self.executor.spin_once(timeout_sec=0.02)
        return bool(predicate())

    def _client(self, srv_type, name: str):
        if name not in self._clients:
            self._clients[name] = self.node.create_client(srv_type, name)
        return self._clients[name]

    def call(self, srv_type, name: str, request, timeout: float = 10.0):
        """Call service ``name`` once it is available; its response, or None on timeout."""
        client = self._client(srv_type, name)
        end = time.monotonic() + timeout
        if not self.spin_until(client.service_is_ready, timeout):
            return None
        future = client.call_async(request)
        self.spin_until(future.done, max(0.1, end - time.monotonic()))
        return future.result() if future.done() else None

    def state(self, node: str, timeout: float = 5.0):
        """Return the lifecycle state label of ``node`` ('active', ...), None if no answer."""
        response = self.call(GetState, f'/{node}/get_state', GetState.Request(), timeout)
        if response is None:
            return None
        state = response.current_state
        return STATE_NAMES.get(state.id, state.label)

    def wait_state(self, node: str, wanted: str, timeout: float) -> str:
        """Poll ``node``'s state until it is ``wanted`` or ``timeout`` s passed; the last one."""
        end = time.monotonic() + timeout
        seen = None
        while time.monotonic() < end:
            seen = self.state(node, timeout=max(0.5, min(5.0, end - time.monotonic())))
            if seen == wanted:
                break
            self.spin_until(lambda: False, 0.1)
        return seen

    def transition(self, node: str, transition_id: int, timeout: float = 15.0) -> bool:
        """Request lifecycle transition ``transition_id`` of ``node``; whether it succeeded."""
        request = ChangeState.Request(transition=Transition(id=transition_id))
        response = self.call(ChangeState, f'/{node}/change_state', request, timeout)
        return bool(response is not None and response.success)

    def parameters(self, node: str, names: list, timeout: float = 10.0) -> dict:
        """Read parameters ``names`` of ``node``: a dict of plain Python values."""
        response = self.call(GetParameters, f'/{node}/get_parameters',
                             GetParameters.Request(names=list(names)), timeout)
        assert response is not None, f'/{node}/get_parameters did not answer'
        return {name: rclpy.parameter.parameter_value_to_python(value)
                for name, value in zip(names, response.values)}

    def close(self) -> None:
        """Destroy everything of this side."""
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)
        gc.collect()


@pytest.fixture(scope='module')
def vehicle_launch():
    """Import the checkout's ``launch/vehicle.launch.py`` as a module."""
    return import_launch_file(ROOT / 'launch' / 'vehicle.launch.py')


@pytest.fixture(scope='module')
def prefix(tmp_path_factory) -> Prefix:
    """Install the package once per module into a temporary ament prefix, models left out."""
    launch_pythonpath()
    start = time.monotonic()
    installed = install_prefix(tmp_path_factory.mktemp('ament'))
    installed.install_s = time.monotonic() - start
    return installed


@pytest.fixture
def launch_domain() -> int:
    """ROS_DOMAIN_ID of the launched processes and the test's subscriber: the session's."""
    return int(os.environ.get('ROS_DOMAIN_ID', '0'))


@pytest.fixture
def start_launch(prefix, tmp_path, launch_domain):
    """``start(args...)`` runs the installed launch file; every run is stopped afterwards."""
    runs = []

    def start(*args) -> LaunchRun:
        run = LaunchRun(prefix, list(args), launch_domain, tmp_path / f'launch{len(runs)}.log')
        runs.append(run)
        return run

    yield start
    for run in runs:
        run.stop()
        assert not processes_with(run.marker), 'processes left over after the launch test'


@pytest.fixture
def ros_client(launch_domain):
    """Give the test its own rclpy side in the launch's domain."""
    client = RosClient(launch_domain)
    yield client
    client.close()
