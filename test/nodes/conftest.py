"""Helpers for tests that run ROS 2 nodes in child processes, on loopback, in their own domain."""
import gc
import os
from pathlib import Path
import signal
import subprocess
import sys
import threading
import time

import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
import yaml

ROOT = Path(__file__).resolve().parents[2]


def domain_for(offset: int) -> int:
    """Return a ROS_DOMAIN_ID for one test module: the session's (conftest) + ``offset``."""
    base = int(os.environ.get('ROS_DOMAIN_ID', '100'))
    return 1 + (base + offset) % 200


def ros_env(domain: int) -> dict:
    """Environment for child processes: loopback discovery, the test's domain."""
    env = dict(os.environ)
    env.update(ROS_DOMAIN_ID=str(domain), ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST',
               PYTHONUNBUFFERED='1', OMP_NUM_THREADS='1')
    env['PYTHONPATH'] = str(ROOT) + os.pathsep + env.get('PYTHONPATH', '')
    return env


class NodeProcess:
    """``python -m <module> --ros-args --params-file <yaml>``, killed in :meth:`stop`."""

    def __init__(self, module: str, node_name: str, params: dict, tmp_path: Path,
                 domain: int):
        self.node_name = node_name
        params_file = tmp_path / f'{node_name}.params.yaml'
        params_file.write_text(yaml.safe_dump({node_name: {'ros__parameters': params}}))
        self.log_path = tmp_path / f'{node_name}.log'
        self._log = self.log_path.open('w')
        self.proc = subprocess.Popen(
            [sys.executable, '-m', module, '--ros-args', '--params-file', str(params_file)],
            stdout=self._log, stderr=subprocess.STDOUT, env=ros_env(domain), cwd=str(ROOT))

    def alive(self) -> bool:
        """Whether the process still runs."""
        return self.proc.poll() is None

    def output(self) -> str:
        """Everything the process logged so far."""
        self._log.flush()
        return self.log_path.read_text()

    def stop(self, timeout: float = 8.0) -> int:
        """SIGINT, then SIGKILL after ``timeout`` seconds; return the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._log.close()
        return self.proc.returncode


class RosSide:
    """The test's own rclpy context, node and executor in ``domain``."""

    def __init__(self, domain: int, name: str):
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain)
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)

    def spin_for(self, seconds: float) -> None:
        """Spin for ``seconds``."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.executor.spin_once(timeout_sec=0.02)

    def spin_until(self, predicate, timeout: float) -> bool:
        """Spin until ``predicate()`` is true or ``timeout`` seconds passed."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if predicate():
                return True
            self.executor.spin_once(timeout_sec=0.02)
        return bool(predicate())

    def call(self, future, timeout: float = 10.0):
        """Spin until ``future`` is done; return its result (None on timeout)."""
        self.spin_until(future.done, timeout)
        return future.result() if future.done() else None

    def release(self, *nodes) -> None:
        """
        Take ``nodes`` off the executor and destroy them, in order.

        A lifecycle node (the AE node) is deactivated first when active, then cleaned up.
        """
        for node in nodes:
            self.executor.remove_node(node)
        for node in nodes:
            if hasattr(node, 'trigger_cleanup'):
                if node.lifecycle_state() == 'active':
                    node.trigger_deactivate()
                node.trigger_cleanup()
            node.destroy_node()

    def close(self) -> None:
        """Destroy everything of this side."""
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)
        gc.collect()


@pytest.fixture(scope='module')
def ros_domain(request) -> int:
    """Pick this test module's ROS_DOMAIN_ID (session domain + a per-module offset)."""
    name = request.module.__name__.rsplit('.', 1)[-1]
    return domain_for(sum(name.encode()) % 50 + 1)


@pytest.fixture(scope='module')
def ros_side(ros_domain):
    """Give the test its own rclpy context, node and executor, in the module's domain."""
    side = RosSide(ros_domain, 'test_side')
    yield side
    side.close()


@pytest.fixture(scope='module')
def node_processes(tmp_path_factory, ros_domain):
    """``start(module, node_name, params)`` starts a node process; all stop at module end."""
    started = []
    tmp_path = tmp_path_factory.mktemp('nodes')

    def start(module: str, node_name: str, params: dict) -> NodeProcess:
        proc = NodeProcess(module, node_name, params, tmp_path, ros_domain)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()


@pytest.fixture(scope='module')
def child_env(ros_domain) -> dict:
    """Environment for a child process of this module (loopback, the module's domain)."""
    return ros_env(ros_domain)


@pytest.fixture
def hold(monkeypatch):
    """
    Make a module function block until the test releases it.

    The fixture's value, called with ``(module, name)``, returns ``(entered, release)``.
    The replacement sets ``entered`` when called, waits for ``release`` (at most 20 s),
    then calls the original; the test controls how long a thread sits in that call.
    """
    made = []

    def patch(module, name):
        entered, release = threading.Event(), threading.Event()
        real = getattr(module, name)

        def held(*args, **kwargs):
            entered.set()
            release.wait(20.0)
            return real(*args, **kwargs)

        monkeypatch.setattr(module, name, held)
        made.append(release)
        return entered, release

    yield patch
    for release in made:
        release.set()
