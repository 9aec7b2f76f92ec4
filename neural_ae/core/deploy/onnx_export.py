"""
ONNX export of the registered kinds, with fixed shapes, stated opset and provenance.

:func:`export_onnx` traces the kind's :class:`~neural_ae.core.deploy.registry.ExportPlan`
with the TorchScript-based exporter, ``torch.onnx.export(..., dynamo=False)``, at opset
:data:`OPSET`. The legacy exporter is used on purpose: it is the path torchvision's own
Faster R-CNN ONNX tests take (its ``NonMaxSuppression`` / ``RoiAlign`` symbolics,
data-dependent detection counts) and it exports the detector here in seconds with
torch/onnxruntime parity well inside the tolerances; the dynamo exporter goes through
``torch.export``, which must capture the detector's data-dependent control flow (box
filtering, per-level top-k, NMS): one attempt on the shipped detector did not finish
within 10 minutes (on a loaded 2-core machine). Input and output names are the kind's
(:mod:`neural_ae.core.deploy.exporters`); every dimension is fixed.

The written file is checked with ``onnx.checker`` and carries ``metadata_props``:
:func:`~neural_ae.core.deploy.provenance.checkpoint_provenance` of the checkpoint plus
``neural_ae.kind``, ``neural_ae.opset``, ``neural_ae.exporter``, ``neural_ae.torch_version``,
``neural_ae.frame_size`` and the kind's own keys (``neural_ae.detector_input``,
``neural_ae.mode``...). After writing, the export runs the file in onnxruntime on the plan's
inputs (a procedural scene frame) and reports the difference to torch (``check``).
"""
from dataclasses import dataclass, field
import os
from pathlib import Path
import tempfile
import time
from typing import Dict, Optional, Sequence, Tuple, Union
import warnings

from neural_ae.core.deploy.provenance import checkpoint_provenance, PREFIX
from neural_ae.core.deploy.registry import DeployError, ExportRequest, get_exporter
import torch

__all__ = ['artifact_path', 'default_frame_size', 'export_model', 'export_onnx', 'ExportResult',
           'EXPORTER', 'OPSET']

OPSET = 17
"""ONNX opset of every export (torchvision's detection models export from opset 11 on)."""
EXPORTER = 'torch.onnx.export(dynamo=False) (TorchScript-based)'
FORMATS = ('onnx', 'tensorrt')


def artifact_path(checkpoint, kind: str, fmt: str = 'onnx', precision: Optional[str] = None,
                  deploy_dir=None) -> Path:
    """
    Where the ``fmt`` artifact of ``kind`` exported from ``checkpoint`` lives.

    ``<deploy_dir or the checkpoint's folder>/<stem>.<kind>.onnx`` (``.fp16.onnx`` for the
    half-precision graph of a TensorRT 11 FP16 build), and ``<stem>.<kind>.<precision>.engine``
    for TensorRT engines.
    """
    checkpoint = Path(checkpoint)
    folder = Path(deploy_dir) if deploy_dir else checkpoint.parent
    if fmt == 'onnx':
        suffix = '.fp16.onnx' if precision == 'fp16' else '.onnx'
    elif fmt == 'tensorrt':
        suffix = f'.{precision or "fp16"}.engine'
    else:
        raise DeployError(f'format must be one of {FORMATS}, got {fmt!r}')
    return folder / f'{checkpoint.stem}.{kind}{suffix}'


def default_frame_size(ckpt: dict) -> Tuple[int, int]:
    """Return the training frame size of a checkpoint (``config.height``, ``config.width``)."""
    from neural_ae.core.scenes.scenarios import DEFAULT_HEIGHT, DEFAULT_WIDTH

    config: dict = ckpt['config'] if isinstance(ckpt.get('config'), dict) else {}
    h, w = config.get('height', DEFAULT_HEIGHT), config.get('width', DEFAULT_WIDTH)
    if not (isinstance(h, int) and isinstance(w, int)):
        return DEFAULT_HEIGHT, DEFAULT_WIDTH
    return h, w


@dataclass
class ExportResult:
    """One written artifact: path, kind, opset, shapes, metadata, timing and its check."""

    path: Path
    kind: str
    opset: int
    inputs: Dict[str, list]
    outputs: Tuple[str, ...]
    meta: Dict[str, str]
    seconds: float
    check: Dict[str, object] = field(default_factory=dict)

    def summary(self) -> dict:
        """JSON-ready figures (the command prints them)."""
        return {'path': str(self.path), 'kind': self.kind, 'opset': self.opset,
                'inputs': self.inputs, 'outputs': list(self.outputs),
                'bytes': self.path.stat().st_size if self.path.is_file() else None,
                'checkpoint_sha256': self.meta.get(PREFIX + 'checkpoint_sha256', ''),
                'frame_size': self.meta.get(PREFIX + 'frame_size', ''),
                'detector_input': self.meta.get(PREFIX + 'detector_input', ''),
                'precision': self.meta.get(PREFIX + 'precision', 'fp32'),
                'seconds': round(self.seconds, 2), 'check': self.check}


class _Half(torch.nn.Module):
    """Run ``module`` in float16 behind float32 inputs and outputs."""

    def __init__(self, module):
        super().__init__()
        self.module = module.half()

    def forward(self, *xs):
        outs = self.module(*[x.half() for x in xs])
        return tuple(o.float() if o.is_floating_point() else o for o in outs)


def _write_metadata(tmp: Path, out: Path, meta: Dict[str, str], doc: str) -> None:
    import onnx

    model = onnx.load(str(tmp))
    onnx.checker.check_model(model)
    del model.metadata_props[:]
    for key in sorted(meta):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, str(meta[key])
    model.doc_string = doc
    model.producer_name = 'neural_ae'
    onnx.save(model, str(out))


def export_onnx(checkpoint: Union[str, Path], kind: str, out: Union[None, str, Path] = None,
                frame_size: Optional[Sequence[int]] = None, sensor=None, opset: int = OPSET,
                half: bool = False, device: str = 'cpu', check: bool = True) -> ExportResult:
    """
    Export network ``kind`` of ``checkpoint`` to ONNX; return the :class:`ExportResult`.

    ``out``: the file (default :func:`artifact_path`); ``frame_size``: ``(H, W)`` of the
    raw frames it will see (default: the training frame size); ``sensor``: for the ISP of a
    plain detector checkpoint (default IMX249; training checkpoints carry theirs);
    ``half``: a float16 graph (for TensorRT 11 FP16, traced on ``device='cuda'``);
    ``check``: run the file in onnxruntime and compare with torch (float32 graphs only).
    Raises :class:`DeployError` (one line) when the checkpoint holds no such network or
    the export fails.
    """
    from neural_ae.core.checkpoints import read_checkpoint
    from neural_ae.core.sensor import load_sensor

    exporter = get_exporter(kind)
    checkpoint = Path(checkpoint)
    ckpt = read_checkpoint(checkpoint, f'checkpoint to export ({kind})')
    reason = exporter.applies(ckpt)
    if reason:
        raise DeployError(f'cannot export {kind} from {checkpoint}: it {reason}')
    size = tuple(int(v) for v in (frame_size or default_frame_size(ckpt)))
    if len(size) != 2 or min(size) < 64 or size[0] % 2 or size[1] % 2:
        raise DeployError(f'frame size must be two even integers >= 64 (H, W), got {size}')
    sensor = sensor or load_sensor('imx249')
    t0 = time.perf_counter()
    plan = exporter.plan(ExportRequest(checkpoint, ckpt, (size[0], size[1]), sensor))
    module, inputs = plan.module, tuple(t for _, t in plan.inputs)
    if half:
        module, inputs = _Half(module.to(device)).eval(), tuple(t.to(device) for t in inputs)
    out = Path(out) if out else artifact_path(checkpoint, kind, 'onnx',
                                              'fp16' if half else None)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = checkpoint_provenance(checkpoint, ckpt)
    meta.update(plan.meta)
    meta.update({PREFIX + 'kind': kind, PREFIX + 'opset': str(opset),
                 PREFIX + 'exporter': EXPORTER, PREFIX + 'torch_version': torch.__version__,
                 PREFIX + 'frame_size': '%dx%d' % size,
                 PREFIX + 'precision': 'fp16' if half else 'fp32',
                 PREFIX + 'inputs': ';'.join(f'{n}={list(t.shape)}' for n, t in plan.inputs),
                 PREFIX + 'outputs': ','.join(plan.outputs)})
    fd, tmp_name = tempfile.mkstemp(suffix='.onnx', dir=str(out.parent))
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # tracing a fixed-shape graph: the tracer's "treated as a constant" warnings and
            # torchvision's copy-construct warnings are expected, not actionable
            warnings.simplefilter('ignore')
            try:
                torch.onnx.export(module, inputs, str(tmp),
                                  input_names=[n for n, _ in plan.inputs],
                                  output_names=list(plan.outputs), opset_version=opset,
                                  do_constant_folding=True, dynamo=False)
            except Exception as err:  # noqa: BLE001 - the exporter raises many types
                text = str(err).strip().splitlines()[0] if str(err).strip() else ''
                raise DeployError(f'ONNX export of {kind} from {checkpoint} failed: '
                                  f'{type(err).__name__}: {text}') from err
        _write_metadata(tmp, out, meta, f'neural_ae {kind} exported from {checkpoint.name}')
    finally:
        tmp.unlink(missing_ok=True)
    seconds = time.perf_counter() - t0
    result = ExportResult(out, kind, opset, {n: list(t.shape) for n, t in plan.inputs},
                          plan.outputs, meta, seconds)
    if check and not half:
        result.check = _check(plan, out)
    return result


def _check(plan, path: Path) -> dict:
    """Run ``path`` in onnxruntime on the plan's inputs; compare with torch."""
    from neural_ae.core.deploy.parity import match_detections, relative_error
    from neural_ae.core.deploy.runtime import OrtSession

    session = OrtSession(path)
    with torch.no_grad():
        ref = plan.module(*[t for _, t in plan.inputs])
    got = session.run(dict(plan.inputs))
    ref = dict(zip(plan.outputs, ref))
    if set(plan.outputs) >= {'boxes', 'scores', 'labels'}:
        out = match_detections(ref, got)
        if 'layer2' in ref:
            out['layer2_max_abs_diff'] = float((ref['layer2'] - got['layer2']).abs().max())
        return out
    return {f'{name}_max_rel_diff': relative_error(ref[name], got[name]) for name in ref}


def export_model(checkpoint, fmt: str = 'onnx', kinds: Optional[Sequence[str]] = None,
                 out_dir=None, frame_size: Optional[Sequence[int]] = None,
                 precisions: Sequence[str] = ('fp16',), device: str = 'cpu',
                 opset: int = OPSET) -> list:
    """
    Export every registered kind ``checkpoint`` holds (or ``kinds``); return summaries.

    ``fmt='onnx'``: one ONNX per kind (:func:`export_onnx`). ``fmt='tensorrt'``: the ONNX,
    then one engine per precision in ``precisions`` (``'fp32'``, ``'fp16'``) with
    :func:`neural_ae.core.deploy.tensorrt_engine.build_engine` (FP16 on TensorRT >= 11:
    from a float16 ONNX traced on the GPU). ``out_dir``: default the checkpoint's folder.
    A kind the checkpoint does not hold is skipped when ``kinds`` is not given, and an
    error when it is.
    """
    from neural_ae.core.checkpoints import read_checkpoint
    from neural_ae.core.deploy.registry import exporter_kinds

    if fmt not in FORMATS:
        raise DeployError(f'format must be one of {FORMATS}, got {fmt!r}')
    checkpoint = Path(checkpoint)
    if fmt == 'tensorrt':
        from neural_ae.core.deploy.tensorrt_engine import PRECISIONS, require_tensorrt

        require_tensorrt()
        bad = [p for p in precisions if p not in PRECISIONS]
        if bad:
            raise DeployError(f'precision must be one of {PRECISIONS}, got {bad[0]!r}')
    ckpt = read_checkpoint(checkpoint, 'checkpoint to export')
    chosen = list(kinds) if kinds else [k for k in exporter_kinds()
                                        if get_exporter(k).applies(ckpt) is None]
    if not chosen:
        raise DeployError(f'{checkpoint} holds no exportable network (kinds: '
                          f'{", ".join(exporter_kinds())})')
    results = []
    for kind in chosen:
        onnx_path = artifact_path(checkpoint, kind, 'onnx', None, out_dir)
        res = export_onnx(checkpoint, kind, onnx_path, frame_size, opset=opset)
        results.append(res.summary())
        if fmt == 'tensorrt':
            results.extend(_engines(checkpoint, kind, res, precisions, out_dir, frame_size,
                                    opset))
    return results


def _engines(checkpoint: Path, kind: str, res: ExportResult, precisions, out_dir, frame_size,
             opset: int) -> list:
    from neural_ae.core.deploy.tensorrt_engine import build_engine, fp16_flag_available

    out = []
    for precision in precisions:
        source, meta = res.path, dict(res.meta)
        if precision == 'fp16' and not fp16_flag_available():
            half = export_onnx(checkpoint, kind, artifact_path(checkpoint, kind, 'onnx', 'fp16',
                                                               out_dir),
                               frame_size, opset=opset, half=True, device='cuda', check=False)
            source, meta = half.path, dict(half.meta)
        engine = artifact_path(checkpoint, kind, 'tensorrt', precision, out_dir)
        t0 = time.perf_counter()
        info = build_engine(source, engine, precision, meta)
        out.append({'path': str(engine), 'kind': kind, 'format': 'tensorrt',
                    'precision': precision, 'from_onnx': str(source),
                    'tensorrt_version': info['neural_ae.tensorrt_version'],
                    'gpu': info['neural_ae.gpu'], 'bytes': engine.stat().st_size,
                    'seconds': round(time.perf_counter() - t0, 2)})
    return out
