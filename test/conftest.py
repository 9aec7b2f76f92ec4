"""Test-wide settings: deterministic, thread-limited torch and loopback-only DDS."""
import gc
import os

import pytest

os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
os.environ.setdefault('ROS_DOMAIN_ID', str(100 + os.getpid() % 100))

try:
    import torch

    torch.set_num_threads(2)
    torch.manual_seed(0)
except ImportError:  # pragma: no cover - torch is a hard dependency
    pass


@pytest.fixture(scope='module', autouse=True)
def collect_ros_garbage():
    """
    Free unreachable rclpy objects after each module, in this process.

    Otherwise a later ``fork()`` without ``exec`` (flake8's multiprocessing pool in the
    lint tests) inherits them and its garbage collector finalizes DDS handles in the
    child, which segfaults.
    """
    yield
    gc.collect()
