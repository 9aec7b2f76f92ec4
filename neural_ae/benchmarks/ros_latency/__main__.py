"""
Entry of the latency bench's child processes: ``python -m ... CONFIG.json``.

The config's ``role`` picks the camera (:func:`.camera.camera_child`) or the AE process
(:func:`.node.ae_child`); each runs in its own rclpy context on the config's domain and
writes its records (or ``{'error': ...}``) to the config's ``result_file`` atomically.
"""
import json
import os
from pathlib import Path
import sys

from neural_ae.benchmarks.ros_latency.camera import camera_child
from neural_ae.benchmarks.ros_latency.node import ae_child
import rclpy


def child_main(config_path: str) -> int:
    """Run the child of ``config_path``; 0 on success, 1 when it failed (see the result)."""
    cfg = json.loads(Path(config_path).read_text())
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=int(cfg['domain']))
    doc = {}
    try:
        doc = (camera_child if cfg['role'] == 'camera' else ae_child)(cfg, context)
    except Exception as err:  # noqa: BLE001 - reported to the parent through the result
        doc['error'] = f'{type(err).__name__}: {err}'
    finally:
        tmp = cfg['result_file'] + '.tmp'
        Path(tmp).write_text(json.dumps(doc))
        os.replace(tmp, cfg['result_file'])
        rclpy.try_shutdown(context=context)
    return 0 if 'error' not in doc else 1


if __name__ == '__main__':
    raise SystemExit(child_main(sys.argv[1]))
