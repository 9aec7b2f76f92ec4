"""
Deployment of the shipped networks: ONNX export, onnxruntime and TensorRT backends.

- :mod:`.registry`: the exportable kinds (:class:`Exporter`, :func:`register`); the
  shipped ones (``exposure_net``, ``detector``) are in :mod:`.exporters`; a new network
  registers its own exporter there.
- :mod:`.onnx_export`: :func:`export_onnx` (fixed shapes, opset :data:`OPSET`,
  provenance in ``metadata_props``), :func:`artifact_path`.
- :mod:`.runtime`: :class:`OrtSession` (onnxruntime CPU / CUDA execution providers);
  :mod:`.tensorrt_engine`: :func:`build_engine` (FP32 / FP16) and :class:`TrtSession`.
- :mod:`.backends`: :data:`BACKENDS` and the one place that builds a model's inference
  callable for a backend (:func:`exposure_backend`, :func:`attach_detector_backend`),
  with every check done when it is built.
- :mod:`.provenance`, :mod:`.parity`: checkpoint fingerprints; parity figures.

ROS-free, like all of :mod:`neural_ae.core`.
"""
from neural_ae.core.deploy.backends import (attach_detector_backend, BACKENDS, check_backend,
                                            exposure_backend, open_session, warm_up)
from neural_ae.core.deploy.onnx_export import (artifact_path, default_frame_size, export_onnx,
                                               EXPORTER, ExportResult, OPSET)
from neural_ae.core.deploy.registry import (DeployError, Exporter, exporter_kinds, ExportPlan,
                                            ExportRequest, get_exporter, register)
from neural_ae.core.deploy.runtime import OrtSession, Session

__all__ = ['artifact_path', 'attach_detector_backend', 'BACKENDS', 'check_backend',
           'default_frame_size', 'DeployError', 'export_onnx', 'EXPORTER', 'ExportPlan',
           'ExportRequest', 'ExportResult', 'Exporter', 'exporter_kinds', 'exposure_backend',
           'get_exporter', 'open_session', 'OPSET', 'OrtSession', 'register', 'Session', 'warm_up']
