"""Test-directory settings for the ROS helper tests."""
import gc

import pytest


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
