"""
How the latency bench's processes find each other: names, domain, file handshake.

The orchestrator (:mod:`.measure`) writes one ``CONFIG.json`` per child and starts it as
``python -m neural_ae.benchmarks.ros_latency CONFIG.json`` (:data:`CHILD_MODULE`). The
processes signal each other by files appearing in one temporary folder (``*.ready``,
``start``, ``published``, ``stop``, ``finish``, ``*.json`` results); :func:`wait` polls
for one.
"""
import os
from pathlib import Path
import time

CHILD_MODULE = 'neural_ae.benchmarks.ros_latency'
"""Module run by ``python -m`` in each child process."""
DRIVER = 'bench_camera'
"""Node name of the camera / driver stand-in (the node's ``driver_node``)."""
AE_NODE = 'auto_exposure'
"""Node name of the auto-exposure node under test."""


def private_domain() -> int:
    """``ROS_DOMAIN_ID`` of this run: 150 + pid % 50."""
    return 150 + os.getpid() % 50


def wait(predicate, timeout: float, procs=()) -> bool:
    """Poll ``predicate`` until true or ``timeout`` [s], or until one of ``procs`` exited."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        if any(p.poll() is not None for p in procs):
            return bool(predicate())
        time.sleep(0.02)
    return bool(predicate())


def tail(path: Path, n: int = 2000) -> str:
    """Return the last ``n`` characters of a text file ('' when unreadable)."""
    try:
        return path.read_text()[-n:]
    except OSError:
        return ''
