"""
The one place that turns a model and a backend into the inference callable.

``backend`` is one of :data:`BACKENDS`:

- ``'torch'``: the torch modules as loaded (nothing here runs);
- ``'onnxruntime'``: the ONNX file ``neural-ae export MODEL --format onnx`` wrote
  (:func:`~neural_ae.core.deploy.onnx_export.artifact_path`), in onnxruntime
  (:class:`~neural_ae.core.deploy.runtime.OrtSession`: CPU, or CUDA on ``device='cuda'``);
- ``'tensorrt'``: the engine ``neural-ae export MODEL --format tensorrt`` built (FP16 if
  present, else FP32), on the GPU.

:func:`open_session` does every check when the callable is *built* (the node's configure,
the start of replay / evaluate), never at the first frame: the backend's package (and
GPU) present, the artifact there, of the right kind, not stale (its recorded checkpoint
SHA-256 equals the checkpoint's now), exported for the detector input size the frames
will have. Each failure is one :class:`~neural_ae.core.deploy.registry.DeployError` line
that says what to run.
"""
from pathlib import Path
from typing import Optional, Tuple

from neural_ae.core.deploy.onnx_export import artifact_path
from neural_ae.core.deploy.provenance import PREFIX, stale_reason
from neural_ae.core.deploy.registry import DeployError, get_exporter
from neural_ae.core.deploy.runtime import OrtSession, require_onnxruntime, Session

__all__ = ['attach_detector_backend', 'BACKENDS', 'check_backend', 'exposure_backend',
           'open_session', 'warm_up']

BACKENDS = ('torch', 'onnxruntime', 'tensorrt')
"""Inference backends of the node (``backend`` parameter), replay and evaluate."""


def check_backend(backend: str, device: str = 'cpu') -> None:
    """Raise :class:`DeployError` unless ``backend`` is known and can run on ``device``."""
    if backend not in BACKENDS:
        raise DeployError(f'backend must be one of {"|".join(BACKENDS)}, got {backend!r}')
    if backend == 'onnxruntime':
        from neural_ae.core.deploy.runtime import ort_providers

        require_onnxruntime()
        ort_providers(device)
    elif backend == 'tensorrt':
        from neural_ae.core.deploy.tensorrt_engine import require_tensorrt

        require_tensorrt()


def _artifact(checkpoint: Path, kind: str, backend: str, deploy_dir) -> Path:
    if backend == 'onnxruntime':
        path = artifact_path(checkpoint, kind, 'onnx', None, deploy_dir)
        if not path.is_file():
            raise DeployError(f'backend onnxruntime: no {kind} ONNX for {checkpoint}: {path} '
                              f'not found; run neural-ae export {checkpoint} --format onnx'
                              f'{f" --out {deploy_dir}" if deploy_dir else ""}')
        return path
    for precision in ('fp16', 'fp32'):
        path = artifact_path(checkpoint, kind, 'tensorrt', precision, deploy_dir)
        if path.is_file():
            return path
    raise DeployError(f'backend tensorrt: no {kind} engine for {checkpoint}: neither '
                      f'{artifact_path(checkpoint, kind, "tensorrt", "fp16", deploy_dir)} nor '
                      f'the fp32 one; run neural-ae export {checkpoint} --format tensorrt')


def open_session(checkpoint, kind: str, backend: str, device: str = 'cpu', deploy_dir=None,
                 detector_input: Optional[Tuple[int, int]] = None) -> Session:
    """
    Open and check the ``kind`` artifact of ``checkpoint`` for ``backend``.

    ``detector_input``: ``(h, w)`` the detector will be fed (refuses an artifact exported
    for another size); ``None`` skips that check.
    """
    check_backend(backend, device)
    if backend == 'torch':
        raise DeployError('open_session: the torch backend runs the modules themselves')
    if checkpoint is None:
        raise DeployError(f'backend {backend} needs the model file the network was loaded '
                          f'from (to find and check its exported {kind})')
    checkpoint = Path(checkpoint)
    path = _artifact(checkpoint, kind, backend, deploy_dir)
    if backend == 'onnxruntime':
        session: Session = OrtSession(path, device)
    else:
        from neural_ae.core.deploy.tensorrt_engine import TrtSession

        session = TrtSession(path)
    meta = session.meta
    stale = stale_reason(meta, checkpoint, path)
    if stale:
        raise DeployError(f'backend {backend}: {stale} (neural-ae export {checkpoint} --format '
                          f'{"onnx" if backend == "onnxruntime" else "tensorrt"})')
    if meta.get(PREFIX + 'kind') != kind:
        raise DeployError(f'backend {backend}: {path} holds a {meta.get(PREFIX + "kind")!r} '
                          f'network, expected {kind!r}')
    recorded = meta.get(PREFIX + 'detector_input')
    if detector_input is not None and recorded:
        wanted = '%dx%d' % tuple(detector_input)
        if recorded != wanted:
            raise DeployError(
                f'backend {backend}: {path} was exported for detector input {recorded} '
                f'(frames {meta.get(PREFIX + "frame_size", "?")}), these frames give {wanted}: '
                f'export again with --frame-size HxW of these frames')
    return session


def exposure_backend(checkpoint, backend: str, device: str = 'cpu', deploy_dir=None,
                     detector_input: Optional[Tuple[int, int]] = None):
    """Return the exposure net of ``checkpoint`` on ``backend``: ``(hist, features) -> u``."""
    session = open_session(checkpoint, 'exposure_net', backend, device, deploy_dir,
                           detector_input)
    return get_exporter('exposure_net').adapt(session, session.meta)


def attach_detector_backend(perception, checkpoint, backend: str, device: str = 'cpu',
                            deploy_dir=None, frame_size: Optional[Tuple[int, int]] = None):
    """
    Run ``perception``'s detector on ``backend`` (the ISP stays in torch); return it.

    ``frame_size``: ``(H, W)`` of the raw frames (checks the artifact's input size).
    Sets ``perception.infer`` (``rgb -> (detections, layer2)``) and
    ``perception.backend`` (a one-line description).
    """
    if backend == 'torch':
        perception.infer, perception.backend = None, 'torch'
        return perception
    from neural_ae.core.deploy.exporters import detector_input_for

    wanted = detector_input_for(perception, frame_size) if frame_size else None
    session = open_session(checkpoint, 'detector', backend, device, deploy_dir, wanted)
    perception.infer = get_exporter('detector').adapt(session, session.meta)
    perception.backend = session.describe
    return perception


def warm_up(step, frame_size: Tuple[int, int], backend: str) -> None:
    """
    Run ``step``'s networks once on a black ``frame_size`` frame (no controller state).

    Catches what only a run shows (the semantic input's shape against the detector's
    ``layer2``, a provider failing on a node) when a backend is set up, not at the first
    frame, and takes the sessions' first-run cost there. Raises :class:`DeployError`.
    """
    import numpy as np

    if backend == 'torch':
        return
    raw = np.zeros(tuple(int(v) for v in frame_size), dtype=np.uint16)
    try:
        seen = step.perception.run(raw) if step.perception is not None else None
        predict = getattr(step.controller, 'predict_u', None)
        if predict is not None:
            predict(raw, seen.layer2 if (step.needs_features and seen is not None) else None)
    except Exception as err:  # noqa: BLE001 - any failure here is the backend's
        raise DeployError(f'backend {backend}: a trial run on a {frame_size[0]}x'
                          f'{frame_size[1]} frame failed: {" ".join(str(err).split())}'
                          ) from err
