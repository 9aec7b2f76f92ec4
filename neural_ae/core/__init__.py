"""
ROS-free core of neural_ae: imaging, controllers, models, training, evaluation.

Nothing under this package may import rclpy or ROS message packages; a test enforces it.
"""
