"""
Inference sessions over exported networks: onnxruntime, and TensorRT engines.

A session is what a backend runs: ``inputs`` (name -> fixed shape), ``outputs`` (names),
``meta`` (the provenance recorded at export), ``describe`` (one line: file, backend,
providers) and ``run(feeds) -> {name: tensor}`` taking and returning torch tensors.

- :class:`OrtSession`: ``onnxruntime.InferenceSession`` with the CPU execution provider,
  or, for ``device='cuda'``, the CUDA execution provider (and the TensorRT one, when
  asked for with ``providers=``) where the installed onnxruntime has them; the CPU
  provider stays as the fallback onnxruntime uses for unsupported nodes. CPU threads:
  torch's current count (the same budget as the torch backend).
- :class:`TrtSession`: a serialized TensorRT engine (:mod:`neural_ae.core.deploy.tensorrt`
  builds them) run on the current CUDA device with torch tensors as buffers; outputs
  whose size is known only after the run (the detections after NMS) are allocated
  through an ``IOutputAllocator``.
"""
from pathlib import Path
from typing import Dict, Optional, Sequence

from neural_ae.core.deploy.registry import DeployError
import torch

__all__ = ['OrtSession', 'ort_providers', 'require_onnxruntime', 'Session']


class Session:
    """Base of the sessions; see the module docstring."""

    path: Path
    inputs: Dict[str, tuple]
    outputs: tuple
    meta: Dict[str, str]
    backend: str = ''

    def run(self, feeds: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        raise NotImplementedError

    @property
    def describe(self) -> str:
        """One line: backend and file."""
        return f'{self.backend} {self.path}'

    def _check_feeds(self, feeds: Dict[str, torch.Tensor]) -> None:
        missing = [n for n in self.inputs if n not in feeds]
        if missing:
            raise DeployError(f'{self.path}: missing input(s) {missing}; the network takes '
                              f'{dict(self.inputs)}')
        for name, shape in self.inputs.items():
            got = tuple(feeds[name].shape)
            if got != tuple(shape):
                raise DeployError(f'{self.path}: input {name} must have shape {tuple(shape)} '
                                  f'(fixed at export), got {got}')


def require_onnxruntime():
    """Import and return ``onnxruntime``; :class:`DeployError` with the fix if missing."""
    try:
        import onnxruntime
    except ImportError as err:
        raise DeployError('backend onnxruntime: the onnxruntime package is not installed '
                          '(pip install -r requirements.txt)') from err
    return onnxruntime


def ort_providers(device: str = 'cpu', providers: Optional[Sequence[str]] = None) -> list:
    """
    Return the execution providers for ``device``: CPU, or CUDA (+ CPU) where installed.

    ``providers``: an explicit preference list (e.g. ``['TensorrtExecutionProvider',
    'CUDAExecutionProvider', 'CPUExecutionProvider']``), filtered to the installed ones.
    Raises :class:`DeployError` when ``device='cuda'`` and no GPU provider is installed.
    """
    ort = require_onnxruntime()
    have = ort.get_available_providers()
    if providers is None:
        providers = (['CUDAExecutionProvider', 'CPUExecutionProvider'] if device == 'cuda'
                     else ['CPUExecutionProvider'])
    chosen = [p for p in providers if p in have]
    if device == 'cuda' and not any(p != 'CPUExecutionProvider' for p in chosen):
        raise DeployError(f'backend onnxruntime on cuda: this onnxruntime has no GPU '
                          f'execution provider (available: {have}); install onnxruntime-gpu '
                          f'or use device cpu')
    if not chosen:
        raise DeployError(f'backend onnxruntime: none of {list(providers)} is available '
                          f'(available: {have})')
    return chosen


class OrtSession(Session):
    """An ``onnxruntime.InferenceSession`` over an ONNX file; see the module docstring."""

    backend = 'onnxruntime'

    def __init__(self, path, device: str = 'cpu', providers: Optional[Sequence[str]] = None,
                 threads: Optional[int] = None):
        ort = require_onnxruntime()
        self.path = Path(path)
        if not self.path.is_file():
            raise DeployError(f'ONNX file not found: {self.path}')
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(threads or torch.get_num_threads())
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        chosen = ort_providers(device, providers)
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=chosen)
        except Exception as err:  # noqa: BLE001 - onnxruntime raises its own types
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise DeployError(f'onnxruntime cannot load {self.path}: {first}') from err
        self.providers = self.session.get_providers()
        self.device = device
        self.inputs = {i.name: tuple(i.shape) for i in self.session.get_inputs()}
        self.outputs = tuple(o.name for o in self.session.get_outputs())
        self.meta = dict(self.session.get_modelmeta().custom_metadata_map)
        if any(not isinstance(d, int) for s in self.inputs.values() for d in s):
            raise DeployError(f'{self.path}: inputs must have fixed shapes, got '
                              f'{self.inputs} (export with neural-ae export)')

    @property
    def describe(self) -> str:
        return f'onnxruntime {self.path} ({", ".join(self.providers)})'

    def run(self, feeds: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """Run on torch (or numpy) inputs; return torch CPU tensors (the input's device)."""
        import numpy as np

        self._check_feeds(feeds)
        device = next(iter(feeds.values())).device if feeds and torch.is_tensor(
            next(iter(feeds.values()))) else torch.device('cpu')
        arrays = {k: (v.detach().to('cpu', torch.float32).contiguous().numpy()
                      if torch.is_tensor(v) else np.ascontiguousarray(v, np.float32))
                  for k, v in feeds.items() if k in self.inputs}
        out = self.session.run(None, arrays)
        return {name: torch.from_numpy(np.asarray(value)).to(device)
                for name, value in zip(self.outputs, out)}
