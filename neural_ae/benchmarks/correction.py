"""
Exposure-correction latency (issue 14): CPU ms per frame at the detector's input size.

Measured in the same run, interleaved, on one 192 x 320 RGB frame (the shipped detector's
input size): each correction network (``models/correction_encdec.pt``,
``models/correction_pix2pix.pt``; a missing file is replaced by an untrained network of
the same config, flagged ``untrained``), and the shipped Hybrid model's detector on the
same RGB frame (the reference). Figures: median / p90 [ms] and ``over_detector``, the
ratio of the medians.

192 x 320 is also the node's working size: with ``auto_exposure_node``'s
``correction_model`` the full-size frame is binned to the detector's input size before
the ISP and the correction (:mod:`neural_ae.core.correction.perception`). So one Histogram
NN decision on the full-size raw frame (1216 x 1936: histogram + network + smoothing +
split) is timed in the same rounds, and ``over_histogram_nn`` is each network's median
over it.
"""
import time

from neural_ae.benchmarks._common import ratio, summary_ms
import torch

HEIGHT, WIDTH = 192, 320


def _corrector(name: str, sensor):
    from neural_ae.core.checkpoints import resolve_model_path
    from neural_ae.core.correction.model import Corrector, load_corrector, net_kwargs
    from neural_ae.core.correction.networks import CorrectionUNet
    from neural_ae.core.correction.train import load_correction_config
    from neural_ae.core.isp import ISP, ISPConfig
    from neural_ae.core.paths import config_dir

    path = resolve_model_path(f'correction_{name}.pt')
    if path.is_file():
        return load_corrector(path, sensor), False
    cfg = load_correction_config(config_dir() / f'train_correction_{name}.yaml')
    return Corrector(CorrectionUNet(**net_kwargs(cfg)), ISP(ISPConfig.from_sensor(sensor)),
                     name, 'untrained'), True


def run(quick: bool = False) -> dict:
    """Time the correction networks and the detector on one frame; return the figures."""
    from neural_ae.benchmarks._common import shipped_model
    from neural_ae.core.models.detector import detector_inference
    from neural_ae.core.models.perception import load_perception
    from neural_ae.core.sensor import load_sensor

    sensor = load_sensor('imx249')
    repeats = 5 if quick else 20
    torch.manual_seed(0)
    rgb = torch.rand(1, 3, HEIGHT, WIDTH)
    from neural_ae.benchmarks._common import histogram_nn_decision

    perception = load_perception(shipped_model('hybrid_nn'), sensor)
    decide = histogram_nn_decision(sensor)
    cases = {'detector': lambda: detector_inference(perception.detector, rgb),
             'histogram_nn': decide}
    flags = {}
    for name in ('encdec', 'pix2pix'):
        corr, untrained = _corrector(name, sensor)
        flags[name] = {'untrained': untrained, 'source': corr.source,
                       'params': sum(p.numel() for p in corr.net.parameters())}
        cases[name] = (lambda c: lambda: c.correct(rgb))(corr)
    times = {n: [] for n in cases}
    for fn in cases.values():
        fn()
    for _ in range(repeats):
        for n, fn in cases.items():
            t0 = time.perf_counter()
            fn()
            times[n].append((time.perf_counter() - t0) * 1e3)
    out = {'frame': [HEIGHT, WIDTH], 'threads': torch.get_num_threads(),
           'detector': summary_ms(times['detector']),
           'histogram_nn': {**summary_ms(times['histogram_nn']),
                            'raw_frame': [sensor.height, sensor.width]}}
    for name in ('encdec', 'pix2pix'):
        s = summary_ms(times[name])
        out[name] = {**s, **flags[name],
                     'over_detector': ratio(s['median_ms'], out['detector']['median_ms']),
                     'over_histogram_nn': ratio(s['median_ms'],
                                                out['histogram_nn']['median_ms'])}
    return out
