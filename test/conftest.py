"""Test-wide settings: deterministic, thread-limited torch and loopback-only DDS."""
import os

os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
os.environ.setdefault('ROS_DOMAIN_ID', str(100 + os.getpid() % 100))

try:
    import torch

    torch.set_num_threads(2)
    torch.manual_seed(0)
except ImportError:  # pragma: no cover - torch is a hard dependency
    pass
