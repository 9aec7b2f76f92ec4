"""
Cooperative stop on SIGINT / SIGTERM for a node's ``main``.

Python's default SIGINT handler raises ``KeyboardInterrupt`` at whatever bytecode the main
thread runs, including inside rclpy's C++ calls (``take_message`` converting its
arguments), where it turns into ``RuntimeError: Unable to convert call argument '0'``
and a traceback. :class:`StopRequest` instead only records the signal and wakes the
executor through a guard condition; :func:`spin_until_stopped` returns once it is set,
between two callbacks, so a lifecycle transition in progress finishes and the node is
torn down from a quiet state.
"""
import logging
import signal
import threading
from typing import Optional

from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor

__all__ = ['StopRequest', 'spin_until_stopped']

LOG = logging.getLogger(__name__)
_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequest:
    """Set by SIGINT / SIGTERM (or :meth:`set`); restores the previous handlers on exit."""

    def __init__(self):
        self._event = threading.Event()
        self._previous = {}
        self._guard = None

    def install(self) -> 'StopRequest':
        """Install the handlers (main thread only)."""
        for sig in _SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def ignore_further(self) -> None:
        """Ignore later signals (a second Ctrl-C must not cut the teardown short)."""
        for sig in _SIGNALS:
            signal.signal(sig, signal.SIG_IGN)

    def restore(self) -> None:
        """Restore the handlers found by :meth:`install`."""
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous = {}

    def _handle(self, signum, frame) -> None:
        self.request()

    def request(self) -> None:
        """Request the stop and wake the executor."""
        self._event.set()
        guard = self._guard
        if guard is not None:
            try:
                guard.trigger()
            except Exception:  # noqa: BLE001 - the guard may already be destroyed
                pass

    def is_set(self) -> bool:
        """Return True once a stop was requested."""
        return self._event.is_set()


def spin_until_stopped(node, stop: StopRequest, executor=None,
                       timeout_s: float = 0.1) -> None:
    """
    Spin ``node`` until ``stop`` is set or the context shuts down.

    A ``RuntimeError`` from rclpy after the stop was requested (the teardown race) is
    logged at debug level and ends the spin; one before it propagates.
    """
    own: Optional[SingleThreadedExecutor] = None
    if executor is None:
        executor = own = SingleThreadedExecutor(context=node.context)
    executor.add_node(node)
    stop._guard = node.create_guard_condition(lambda: None)
    try:
        while not stop.is_set() and node.context.ok():
            try:
                executor.spin_once(timeout_sec=timeout_s)
            except ExternalShutdownException:
                break
            except RuntimeError as err:
                if not stop.is_set() and node.context.ok():
                    raise
                LOG.debug('spin ended during shutdown: %s', err)
                break
    finally:
        guard, stop._guard = stop._guard, None
        try:
            node.destroy_guard_condition(guard)
        except Exception:  # noqa: BLE001 - best effort at exit
            pass
        executor.remove_node(node)
        if own is not None:
            own.shutdown(timeout_sec=0.5)
