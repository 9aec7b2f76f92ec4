"""Cooperative stop of a node's spin: a signal only sets a flag, the teardown race is quiet."""
import os
import signal

from neural_ae.ros.stopping import spin_until_stopped, StopRequest
import pytest
import rclpy
from rclpy.node import Node


@pytest.fixture
def context():
    ctx = rclpy.context.Context()
    rclpy.init(context=ctx)
    yield ctx
    rclpy.try_shutdown(context=ctx)


class _RacingExecutor:
    """spin_once raises what rclpy raises when a signal lands in take_message."""

    def __init__(self, stop, set_first: bool):
        self.stop, self.set_first, self.calls = stop, set_first, 0

    def add_node(self, node):
        pass

    def remove_node(self, node):
        pass

    def spin_once(self, timeout_sec=None):
        self.calls += 1
        if self.set_first:
            self.stop.request()
        raise RuntimeError("Unable to convert call argument '0' to Python object")


def test_sigint_sets_the_flag_and_the_spin_returns_without_an_exception(context):
    node = Node('stopping_test', context=context)
    stop = StopRequest().install()
    try:
        ticks = []

        def tick():
            ticks.append(1)
            if len(ticks) == 3:
                os.kill(os.getpid(), signal.SIGINT)  # no KeyboardInterrupt raised

        node.create_timer(0.01, tick)
        spin_until_stopped(node, stop)
        assert stop.is_set() and len(ticks) >= 3
    finally:
        stop.restore()
        node.destroy_node()
    assert signal.getsignal(signal.SIGINT) is not stop._handle


def test_runtime_error_after_the_stop_request_ends_the_spin_quietly(context):
    node = Node('stopping_race', context=context)
    try:
        stop = StopRequest()
        exe = _RacingExecutor(stop, set_first=True)
        spin_until_stopped(node, stop, executor=exe)
        assert exe.calls == 1
    finally:
        node.destroy_node()


def test_runtime_error_without_a_stop_request_propagates(context):
    node = Node('stopping_error', context=context)
    try:
        stop = StopRequest()
        with pytest.raises(RuntimeError):
            spin_until_stopped(node, stop, executor=_RacingExecutor(stop, set_first=False))
    finally:
        node.destroy_node()
