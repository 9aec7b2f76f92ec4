"""
rosbag2 read/write through the ``rosbags`` library (ROS-free).

Modules: ``reader`` (:func:`open_hdr_bag`, :class:`HDRBag`, :func:`decode_radiance`),
``writer`` (:class:`HDRBagWriter`), ``labels`` (COCO ``labels.json``), ``salvage``
(damaged MCAP files) and ``common`` (topics, message types, JSON); this package
re-exports the public names, so ``from neural_ae.core.bags import ...`` is the API.

Message types come from rosbags' own typestore (ROS 2 kilted), never from the ROS message
packages, so this module works without a ROS install.

Layout of an HDR bag written by :class:`HDRBagWriter`:

- ``/hdr/image`` (configurable): ``sensor_msgs/msg/Image``, encoding ``32FC3``, linear
  scene radiance in RGB order, little endian, ``step = width * 12``; the bag timestamp and
  the header stamp are both ``t_ns``.
- any number of raw-frame topics (``sensor_msgs/msg/Image``, ``bayer_rggb16`` ...) and
  per-frame JSON topics (``std_msgs/msg/String`` holding one JSON document each: settings,
  detections, metrics).
- labels: a COCO JSON file ``labels.json`` *inside* the bag directory (next to
  ``metadata.yaml``), so it travels with the bag; rosbag2 tools ignore files not listed in
  ``metadata.yaml``. Every COCO image carries ``frame_index`` (0-based position on the
  radiance topic) and ``t_ns`` (that frame's timestamp).

Crash safety: a writer never opens an existing path (bags are write-once, so a closed bag
stays intact), and leaving the ``with`` block through an exception still *closes* the bag
(index and ``metadata.yaml`` are written), so every message written before the exception
stays readable. A process that dies without closing leaves an MCAP file without index or
footer and no ``metadata.yaml``: rosbags cannot open that, so :func:`open_hdr_bag` falls
back to scanning the file record by record and recovers every complete chunk (rosbags
buffers about 1 MiB of messages per chunk in memory; the open chunk is lost). SQLite3 bags
are written in one transaction and have no such recovery.
"""

from neural_ae.core.bags.common import (IMAGE_MSGTYPE, LABELS_FILENAME, RADIANCE_TOPIC,
                                        STORAGES, STRING_MSGTYPE)
from neural_ae.core.bags.labels import write_coco_labels
from neural_ae.core.bags.reader import decode_radiance, HDRBag, open_hdr_bag, RADIANCE_ENCODINGS
from neural_ae.core.bags.writer import HDRBagWriter

__all__ = [
    'HDRBag',
    'HDRBagWriter',
    'IMAGE_MSGTYPE',
    'LABELS_FILENAME',
    'RADIANCE_ENCODINGS',
    'RADIANCE_TOPIC',
    'STORAGES',
    'STRING_MSGTYPE',
    'decode_radiance',
    'open_hdr_bag',
    'write_coco_labels',
]
