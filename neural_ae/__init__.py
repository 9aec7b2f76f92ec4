"""neural_ae: learned camera auto-exposure for object detection (ROS 2)."""

__version__ = '0.1.0'
