"""
``neural-ae export MODEL --format onnx|tensorrt``: export a checkpoint's networks.

Every registered kind the checkpoint holds (:func:`neural_ae.core.deploy.exporter_kinds`:
the exposure net, the detector with its ``layer2`` tap, and the kinds later networks
register) is written as ``<out>/<stem>.<kind>.onnx`` (opset 17, TorchScript-based
exporter, fixed shapes, the checkpoint's SHA-256 and training fingerprint in its
``metadata_props``), checked in onnxruntime against torch on a procedural scene frame;
``--format tensorrt`` also builds ``<stem>.<kind>.<precision>.engine`` (needs a CUDA GPU
and the ``tensorrt`` package). Prints one JSON document with every file written.
"""
import json

from neural_ae.commands._args import add_device, add_out, apply_device_threads
from neural_ae.core.errors import ConfigError


def _frame_size(text: str) -> tuple:
    try:
        h, w = (int(v) for v in text.lower().split('x'))
    except ValueError:
        raise ConfigError(f'--frame-size must be HxW, e.g. 1216x1936, got {text!r}') from None
    return h, w


def add_parser(sub) -> None:
    """Register ``export``."""
    p = sub.add_parser('export', help="export a model file's networks to ONNX / TensorRT")
    p.add_argument('model', metavar='MODEL',
                   help="checkpoint (path, or a name in the package's models/)")
    p.add_argument('--format', choices=('onnx', 'tensorrt'), default='onnx',
                   help='onnx (default), or tensorrt: ONNX plus TensorRT engines (GPU)')
    p.add_argument('--kind', action='append',
                   help='network kind to export (repeatable; default: every kind the '
                        'checkpoint holds: exposure_net, detector, ...)')
    p.add_argument('--frame-size', type=_frame_size, default=None, metavar='HxW',
                   help='raw frame size the networks will see, e.g. 1216x1936 for the '
                        "node at the IMX249's full resolution (default: the training size)")
    p.add_argument('--precision', action='append', choices=('fp32', 'fp16'),
                   help='TensorRT engine precision (repeatable; default: fp16)')
    p.add_argument('--opset', type=int, default=17, help='ONNX opset (default: 17)')
    add_out(p, text="folder for the files (default: the checkpoint's folder, where the "
                    'backends look by default)', metavar='DIR')
    add_device(p, 'cpu', what='tracing (tensorrt fp16 on TensorRT >= 11 traces on cuda)')
    p.set_defaults(func=run)


def run(args) -> int:
    """Export and print the JSON summary."""
    from neural_ae.core.checkpoints import resolve_model_path
    from neural_ae.core.deploy.onnx_export import export_model

    device = apply_device_threads(args)
    path = resolve_model_path(args.model)
    if not path.is_file():
        raise ConfigError(f'model file not found: {path}')
    results = export_model(path, args.format, args.kind, args.out, args.frame_size,
                           tuple(args.precision or ('fp16',)), device or 'cpu', args.opset)
    print(json.dumps({'model': str(path), 'format': args.format, 'files': results}, indent=2))
    return 0
