"""
Names and small helpers the bag reader, writer and labels share.

Topics, message types, storage plugins, the rosbags typestore (ROS 2 kilted), the
timestamp check and the strict JSON encoding used for per-frame JSON topics and labels.
"""
from functools import lru_cache
import json
from pathlib import Path

from neural_ae.core.errors import BagFormatError
import numpy as np
from rosbags.rosbag2 import StoragePlugin
from rosbags.typesys import get_typestore, Stores

RADIANCE_TOPIC = '/hdr/image'
LABELS_FILENAME = 'labels.json'
IMAGE_MSGTYPE = 'sensor_msgs/msg/Image'
STRING_MSGTYPE = 'std_msgs/msg/String'
STORAGES = {'mcap': StoragePlugin.MCAP, 'sqlite3': StoragePlugin.SQLITE3}
TYPESTORE = Stores.ROS2_KILTED


@lru_cache(maxsize=1)
def default_typestore():
    """Return the shared rosbags typestore of ROS 2 kilted (built once)."""
    return get_typestore(TYPESTORE)


def check_t_ns(t_ns) -> int:
    """Return ``t_ns`` as an int; :class:`BagFormatError` unless it is in [0, 2**63) ns."""
    if isinstance(t_ns, bool) or not isinstance(t_ns, (int, np.integer)) or not (
            0 <= int(t_ns) < 2**63):
        raise BagFormatError(f'timestamp must be an int in [0, 2**63) ns, got {t_ns!r}')
    return int(t_ns)


def _json_default(obj):
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (np.integer, np.floating, np.bool_)):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f'{type(obj).__name__} is not JSON serializable')


def dumps(obj) -> str:
    """Strict JSON of ``obj`` (numpy scalars/arrays and paths converted, no NaN/inf)."""
    return json.dumps(obj, default=_json_default, allow_nan=False)
