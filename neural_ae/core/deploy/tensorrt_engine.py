"""
TensorRT engines built from the exported ONNX files, with the ``tensorrt`` Python API.

:func:`build_engine` follows TensorRT's documented flow: ``Builder`` -> network
definition -> ``OnnxParser.parse_from_file`` -> ``BuilderConfig`` (workspace pool limit;
``BuilderFlag.FP16`` for FP16 where the installed TensorRT still has it, i.e. 10.x) ->
``build_serialized_network``. TensorRT 11 removed ``BuilderFlag.FP16`` (networks are
strongly typed), so there FP16 means an FP16 graph: ``neural-ae export --format tensorrt
--precision fp16`` exports a half-precision ONNX (the module in float16 on the GPU, float32
inputs and outputs) and builds it as is. The engine's provenance (the ONNX's metadata plus
the ONNX file's SHA-256, precision, TensorRT version and GPU) is written beside it as
``<engine>.json``; a TensorRT engine is only valid for the TensorRT version and GPU it was
built with, which :class:`TrtSession` checks too.

Used only where a CUDA GPU and the ``tensorrt`` package exist (:func:`require_tensorrt`
says which is missing).
"""
import json
from pathlib import Path
from typing import Dict, Optional

from neural_ae.core.deploy.provenance import file_sha256
from neural_ae.core.deploy.registry import DeployError
from neural_ae.core.deploy.runtime import Session
import torch

__all__ = ['build_engine', 'fp16_flag_available', 'PRECISIONS', 'require_tensorrt',
           'sidecar_path', 'TrtSession']

PRECISIONS = ('fp32', 'fp16')


def require_tensorrt():
    """Import and return ``tensorrt``; :class:`DeployError` naming what is missing."""
    try:
        import tensorrt
    except ImportError as err:
        raise DeployError('backend tensorrt: the tensorrt package is not installed (pip '
                          'install tensorrt, on a machine with an NVIDIA GPU)') from err
    if not torch.cuda.is_available():
        raise DeployError('backend tensorrt needs a CUDA GPU; torch sees none')
    return tensorrt


def fp16_flag_available() -> bool:
    """Whether the installed TensorRT has ``BuilderFlag.FP16`` (10.x; removed in 11)."""
    trt = require_tensorrt()
    return hasattr(trt.BuilderFlag, 'FP16')


def sidecar_path(engine: Path) -> Path:
    """Return the JSON file holding an engine's provenance."""
    return Path(str(engine) + '.json')


def _logger(trt):
    return trt.Logger(trt.Logger.WARNING)


def build_engine(onnx_path, engine_path, precision: str = 'fp16', meta: Optional[dict] = None,
                 workspace_mib: int = 4096) -> dict:
    """
    Build and write a serialized engine from ``onnx_path``; return its provenance dict.

    ``precision``: ``'fp32'`` or ``'fp16'`` (see the module docstring); ``meta``: the
    ONNX's ``metadata_props`` (copied into the sidecar). Raises :class:`DeployError`
    with TensorRT's first parser error when the ONNX cannot be parsed.
    """
    if precision not in PRECISIONS:
        raise DeployError(f'precision must be one of {PRECISIONS}, got {precision!r}')
    trt = require_tensorrt()
    logger = _logger(trt)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise DeployError(f'TensorRT cannot parse {onnx_path}: '
                          f'{errors[0] if errors else "unknown error"}'
                          f'{f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""}')
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_mib) << 20)
    if precision == 'fp16' and hasattr(trt.BuilderFlag, 'FP16'):
        config.set_flag(trt.BuilderFlag.FP16)
    blob = builder.build_serialized_network(network, config)
    if blob is None:
        raise DeployError(f'TensorRT could not build an engine from {onnx_path} (see its log '
                          f'above)')
    engine_path = Path(engine_path)
    engine_path.parent.mkdir(parents=True, exist_ok=True)
    engine_path.write_bytes(bytes(blob))
    info = dict(meta or {})
    info.update({'neural_ae.onnx_sha256': file_sha256(onnx_path),
                 'neural_ae.onnx_name': Path(onnx_path).name,
                 'neural_ae.precision': precision,
                 'neural_ae.tensorrt_version': str(trt.__version__),
                 'neural_ae.gpu': torch.cuda.get_device_name(0)})
    sidecar_path(engine_path).write_text(json.dumps(info, indent=1, sort_keys=True) + '\n')
    return info


_DTYPES = {'FLOAT': torch.float32, 'HALF': torch.float16, 'INT32': torch.int32,
           'INT64': torch.int64, 'BOOL': torch.bool, 'INT8': torch.int8, 'UINT8': torch.uint8}


def _torch_dtype(trt_dtype) -> torch.dtype:
    name = str(trt_dtype).rsplit('.', 1)[-1].upper()
    if name not in _DTYPES:
        raise DeployError(f'TensorRT tensor type {trt_dtype} is not supported here')
    return _DTYPES[name]


def _output_allocator(trt):
    class OutputAllocator(trt.IOutputAllocator):
        """Torch-owned device buffers for outputs whose size is known only at run time."""

        def __init__(self):
            trt.IOutputAllocator.__init__(self)
            self.buffers: Dict[str, torch.Tensor] = {}
            self.shapes: Dict[str, tuple] = {}

        def reallocate_output(self, tensor_name, memory, size, alignment):
            return self.reallocate_output_async(tensor_name, memory, size, alignment, None)

        def reallocate_output_async(self, tensor_name, memory, size, alignment, stream):
            buf = self.buffers.get(tensor_name)
            if buf is None or buf.numel() < size:
                buf = torch.empty(max(int(size), 1), dtype=torch.uint8, device='cuda')
                self.buffers[tensor_name] = buf
            return buf.data_ptr()

        def notify_shape(self, tensor_name, shape):
            self.shapes[tensor_name] = tuple(shape)

    return OutputAllocator()


class TrtSession(Session):
    """A serialized TensorRT engine with its sidecar provenance; see the module docstring."""

    backend = 'tensorrt'

    def __init__(self, path):
        trt = require_tensorrt()
        self.path = Path(path)
        side = sidecar_path(self.path)
        if not self.path.is_file():
            raise DeployError(f'TensorRT engine not found: {self.path}')
        if not side.is_file():
            raise DeployError(f'{self.path} has no provenance file {side.name}: build it with '
                              f'neural-ae export --format tensorrt')
        try:
            self.meta = {str(k): str(v) for k, v in json.loads(side.read_text()).items()}
        except (OSError, ValueError, AttributeError) as err:
            raise DeployError(f'cannot read {side}: {err}') from err
        built = self.meta.get('neural_ae.tensorrt_version')
        if built and built != str(trt.__version__):
            raise DeployError(f'{self.path} was built with TensorRT {built}, this is '
                              f'{trt.__version__}: build it again (neural-ae export --format '
                              f'tensorrt)')
        self._trt = trt
        self.engine = trt.Runtime(_logger(trt)).deserialize_cuda_engine(self.path.read_bytes())
        if self.engine is None:
            raise DeployError(f'TensorRT cannot deserialize {self.path} (another GPU or '
                              f'TensorRT version?): build it again')
        self.context = self.engine.create_execution_context()
        self.allocator = _output_allocator(trt)
        self.inputs, outputs, self._static = {}, [], {}
        self._dtypes = {}
        for i in range(self.engine.num_io_tensors):
            name = self.engine.get_tensor_name(i)
            shape = tuple(self.engine.get_tensor_shape(name))
            self._dtypes[name] = _torch_dtype(self.engine.get_tensor_dtype(name))
            if self.engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                self.inputs[name] = shape
            else:
                outputs.append(name)
                if all(d >= 0 for d in shape):
                    self._static[name] = torch.empty(shape, dtype=self._dtypes[name],
                                                     device='cuda')
                    self.context.set_tensor_address(name, self._static[name].data_ptr())
                else:
                    self.context.set_output_allocator(name, self.allocator)
        self.outputs = tuple(outputs)

    @property
    def describe(self) -> str:
        return (f'tensorrt {self.path} ({self.meta.get("neural_ae.precision", "?")}, '
                f'TensorRT {self._trt.__version__})')

    def run(self, feeds: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """Run on the current CUDA stream; return CUDA tensors (copies)."""
        self._check_feeds(feeds)
        keep = {}
        for name in self.inputs:
            t = feeds[name].to('cuda', self._dtypes[name]).contiguous()
            keep[name] = t
            self.context.set_tensor_address(name, t.data_ptr())
        stream = torch.cuda.current_stream()
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise DeployError(f'TensorRT execution of {self.path} failed')
        stream.synchronize()
        out = {}
        for name in self.outputs:
            if name in self._static:
                out[name] = self._static[name].clone()
                continue
            shape = self.allocator.shapes[name]
            dtype = self._dtypes[name]
            count = 1
            for d in shape:
                count *= int(d)
            nbytes = count * torch.empty((), dtype=dtype).element_size()
            buf = self.allocator.buffers[name][:nbytes]
            out[name] = buf.view(dtype)[:count].reshape(shape).clone()
        return out
