"""Detections out: JSON fallback where vision_msgs is missing (as here), said once."""
import json
import time

from neural_ae.ros import detections as D
from neural_ae.ros.qos import command_qos
import numpy as np
import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from std_msgs.msg import Header, String


def test_detections_to_dict_filters_and_names_classes():
    dets = D.detections_to_dict([[1, 2, 30, 40], [0, 0, 5, 5]], [3, 9], [0.9, 0.2],
                                score_threshold=0.5)
    assert dets == [{'class_id': 'car_van', 'label': 3, 'score': 0.9,
                     'bbox_xyxy': [1.0, 2.0, 30.0, 40.0]}]
    assert D.detections_to_dict([[0, 0, 1, 1]], [9], [1.0])[0]['class_id'] == '9'
    assert D.detections_to_dict(*D.empty_detections()) == []


@pytest.mark.skipif(D.have_vision_msgs(), reason='vision_msgs installed: no fallback')
def test_fallback_publishes_json_and_warns_once():
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    try:
        node = rclpy.create_node('detections_test', context=ctx)
        warnings = []

        class Logger:
            def warning(self, text):
                warnings.append(text)

        pub = D.DetectionPublisher(node.create_publisher, 'detections', command_qos(),
                                   Logger(), score_threshold=0.1)
        assert pub.topic == 'detections_json' and not pub.standard
        assert len(warnings) == 1 and 'vision_msgs' in warnings[0]
        got = []
        node.create_subscription(String, 'detections_json', got.append, command_qos())
        ex = SingleThreadedExecutor(context=ctx)
        ex.add_node(node)
        header = Header(frame_id='camera')
        header.stamp.sec = 7
        end = time.monotonic() + 5.0
        while not got and time.monotonic() < end:
            pub.publish(header, np.array([[1, 2, 3, 4]]), np.array([4]), np.array([0.8]))
            ex.spin_once(timeout_sec=0.05)
        doc = json.loads(got[0].data)
        assert doc['stamp']['sec'] == 7 and doc['frame_id'] == 'camera'
        assert doc['detections'][0]['class_id'] == 'person'
        assert len(warnings) == 1
        ex.shutdown()
        node.destroy_node()
    finally:
        rclpy.try_shutdown(context=ctx)
