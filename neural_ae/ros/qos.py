"""
QoS profiles used by the package's nodes, named after what they carry.

- images: sensor-data QoS (best effort, volatile) with depth 1, so a slow subscriber
  always gets the newest frame and nothing queues up;
- commands and per-frame metadata (exposure feedback, detections): reliable, depth 10;
- diagnostics: reliable, depth 10 (what ``diagnostic_aggregator`` expects).

Parameter services use rclpy's own service QoS and are not listed here.
"""
from rclpy.qos import (DurabilityPolicy, HistoryPolicy, qos_profile_sensor_data, QoSProfile,
                       ReliabilityPolicy)

__all__ = ['command_qos', 'diagnostics_qos', 'image_qos']


def image_qos(depth: int = 1) -> QoSProfile:
    """Sensor-data QoS (best effort, keep last ``depth``, volatile) for camera images."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=int(depth),
                      reliability=qos_profile_sensor_data.reliability,
                      durability=qos_profile_sensor_data.durability)


def command_qos(depth: int = 10) -> QoSProfile:
    """Reliable, volatile, keep last ``depth``: commands and per-frame metadata."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=int(depth),
                      reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.VOLATILE)


def diagnostics_qos() -> QoSProfile:
    """Reliable, depth 10, volatile: ``/diagnostics``."""
    return command_qos(10)
