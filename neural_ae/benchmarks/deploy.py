"""
Inference backends per shipped network: torch vs onnxruntime (CPU), torch CUDA vs TensorRT.

For each shipped network (the Histogram / Semantic / Hybrid NN exposure nets, and the
detector with its ``layer2`` tap from the Hybrid NN's model file) the suite exports the
ONNX into a temporary folder (``neural-ae export``'s code path), then times one call of
the network alone on the same inputs: the export plan's inputs, built from a procedural
scene frame at the training size (histograms, ``layer2`` map, ISP output). torch and
onnxruntime run in interleaved rounds after warm-up with the same CPU thread count
(torch's); the figures are median / p90 [ms] and ``ratio_ort_vs_torch`` = onnxruntime
median / torch median (< 1: onnxruntime faster), measured in the same run. Where a CUDA GPU
and ``tensorrt`` exist, torch on CUDA and the TensorRT FP16 engine are timed the same way
(``ratio_trt_fp16_vs_torch_cuda``). Shipped models that are missing are reported as such.
"""
import tempfile
import time
import warnings

from neural_ae.benchmarks._common import ratio, shipped_model, summary_ms
import torch

NETWORKS = (('histogram_nn', 'histogram_nn', 'exposure_net'),
            ('semantic_nn', 'semantic_nn', 'exposure_net'),
            ('hybrid_nn', 'hybrid_nn', 'exposure_net'),
            ('detector', 'hybrid_nn', 'detector'))
"""``(key, controller whose shipped model holds it, export kind)`` of the timed networks."""


def _time(calls: dict, reps: int) -> dict:
    for fn in calls.values():
        for _ in range(3):
            fn()
    times = {k: [] for k in calls}
    for _ in range(reps):
        for key, fn in calls.items():
            t0 = time.perf_counter()
            fn()
            times[key].append((time.perf_counter() - t0) * 1e3)
    return {k: summary_ms(v) for k, v in times.items()}


def _sync(device: str):
    if device == 'cuda':
        torch.cuda.synchronize()


def _case(ck, kind: str, folder: str, reps: int, gpu: bool) -> dict:
    from neural_ae.core.deploy import artifact_path, export_onnx, get_exporter, OrtSession
    from neural_ae.core.deploy.tensorrt_engine import build_engine, TrtSession

    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        res = export_onnx(ck, kind, artifact_path(ck, kind, deploy_dir=folder))
    from neural_ae.core.checkpoints import read_checkpoint
    from neural_ae.core.deploy import default_frame_size
    from neural_ae.core.deploy.registry import ExportRequest
    from neural_ae.core.sensor import load_sensor

    ckpt = read_checkpoint(ck)
    plan = get_exporter(kind).plan(ExportRequest(ck, ckpt, default_frame_size(ckpt),
                                                 load_sensor('imx249')))
    module, inputs = plan.module, [t for _, t in plan.inputs]
    session = OrtSession(res.path)
    feeds = dict(plan.inputs)

    def torch_call():
        with torch.no_grad():
            module(*inputs)

    out = {'inputs': res.inputs, 'check': res.check}
    out.update(_time({'torch_cpu': torch_call, 'onnxruntime_cpu': lambda: session.run(feeds)},
                     reps))
    out['ratio_ort_vs_torch'] = ratio(out['onnxruntime_cpu']['median_ms'],
                                      out['torch_cpu']['median_ms'])
    if gpu:
        engine = artifact_path(ck, kind, 'tensorrt', 'fp16', folder)
        try:
            build_engine(res.path, engine, 'fp16', res.meta)
            trt = TrtSession(engine)
        except Exception as err:  # noqa: BLE001 - report, keep the CPU figures
            out['tensorrt'] = f'unavailable: {type(err).__name__}: {err}'
            return out
        cuda_module = module.to('cuda')
        cuda_inputs = [t.to('cuda') for t in inputs]
        cuda_feeds = {k: v.to('cuda') for k, v in feeds.items()}

        def torch_cuda():
            with torch.no_grad():
                cuda_module(*cuda_inputs)
            _sync('cuda')

        out.update(_time({'torch_cuda': torch_cuda,
                          'tensorrt_fp16': lambda: trt.run(cuda_feeds)}, reps))
        out['ratio_trt_fp16_vs_torch_cuda'] = ratio(out['tensorrt_fp16']['median_ms'],
                                                    out['torch_cuda']['median_ms'])
    return out


def run(quick: bool = False) -> dict:
    """Time every shipped network on each backend; see the module docstring."""
    import importlib.util

    reps = 10 if quick else 50
    gpu = torch.cuda.is_available() and importlib.util.find_spec('tensorrt') is not None
    out = {'torch_threads': torch.get_num_threads(), 'repeats': reps, 'gpu': gpu}
    if importlib.util.find_spec('onnxruntime') is None:
        out['note'] = 'onnxruntime is not installed: nothing to compare'
        return out
    import onnxruntime

    out['onnxruntime'] = onnxruntime.__version__
    with tempfile.TemporaryDirectory(prefix='neural_ae_bench_deploy_') as folder:
        for key, controller, kind in NETWORKS:
            ck = shipped_model(controller)
            if not ck.is_file():
                out[key] = f'unavailable: shipped model {ck} is missing'
                continue
            out[key] = _case(ck, kind, folder, reps, gpu)
    return out
