"""
The ``ros_latency`` suite: its cases, their models and the suite's JSON document.

Cases (:func:`latency_cases`): the bare-subscriber references (large shared-memory
segment and rmw defaults), the Average AE and the Histogram NN with and without the
debug image, and the Hybrid NN with its ISP + detector. Model files are the registry's
defaults of each controller (:func:`~neural_ae.benchmarks._common.shipped_model`); when
the Histogram NN's is missing an untrained network stands in (latency does not depend on
the weights).
"""
from pathlib import Path
import tempfile

from neural_ae.benchmarks._common import shipped_model
from neural_ae.benchmarks.ros_latency.measure import measure_latency
from neural_ae.benchmarks.ros_latency.protocol import private_domain
from neural_ae.benchmarks.ros_latency.stats import latency_ratios, queue_summary
from neural_ae.core.controllers import get_spec

CONTROLLERS = ('average', 'histogram_nn', 'hybrid_nn')
"""Controllers of the suite's node cases."""


def _histogram_model(folder: Path) -> tuple:
    """``(path, note)``: the shipped Histogram NN, else an untrained one saved to ``folder``."""
    import torch
    from neural_ae.core.models.exposure_nets import ExposureNet

    shipped = shipped_model('histogram_nn')
    if shipped.is_file():
        return str(shipped), f'{shipped.name}: shipped checkpoint'
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = ExposureNet('histogram')
    path = folder / shipped.name
    torch.save({'state_dict': net.state_dict(), 'mode': 'histogram', 'm_exp': 10.0}, path)
    return str(path), (f'untrained ExposureNet(histogram) (no {shipped.name} found; '
                       'latency does not depend on the weights)')


def _case(controller: str, seconds: float, model: str = '', **kw) -> dict:
    """``measure_latency`` keywords of a node case: ``model`` as the registry says it is used."""
    spec = get_spec(controller)
    case = {'controller': controller, 'seconds': seconds}
    if spec.trained:
        case['model_path'] = model
    if spec.needs_features:
        case['detector_path'] = model
    case.update(kw)
    return case


def latency_cases(quick: bool, histogram_model: str, hybrid_model: str,
                  controllers=CONTROLLERS) -> dict:
    """``name -> measure_latency keyword arguments`` of the suite."""
    def secs(quick_s, full_s):
        return quick_s if quick else full_s

    no_debug = {'node_parameters': {'publish_debug_image': False}}
    cases = {'bare_delivery': {'controller': 'none', 'seconds': secs(2.0, 5.0)},
             'bare_delivery_rmw_default': {'controller': 'none', 'seconds': secs(2.0, 5.0),
                                           'transport': 'rmw_default'}}
    if 'average' in controllers:
        cases['average'] = _case('average', secs(4.0, 20.0))
        cases['average_no_debug_image'] = _case('average', secs(4.0, 20.0), **no_debug)
    if 'histogram_nn' in controllers:
        cases['histogram_nn'] = _case('histogram_nn', secs(4.0, 20.0), histogram_model)
        cases['histogram_nn_no_debug_image'] = _case('histogram_nn', secs(3.0, 20.0),
                                                     histogram_model, **no_debug)
    if 'hybrid_nn' in controllers:
        cases['hybrid_nn'] = _case('hybrid_nn', secs(6.0, 30.0), hybrid_model)
    return cases


def run(quick: bool = False) -> dict:
    """Latency and queue figures; see :mod:`neural_ae.benchmarks.ros_latency`."""
    return run_suite(quick)


def run_suite(quick: bool, height: int = 1216, width: int = 1936,
              controllers=CONTROLLERS) -> dict:
    """Run the suite at ``height`` x ``width`` (smaller in tests) for ``controllers``."""
    hybrid = shipped_model('hybrid_nn')
    out = {'resolution': [height, width], 'encoding': 'bayer_rggb16 (12-bit data)',
           'input_rate_hz': 60.0, 'domain_id': private_domain(),
           'processes': 'camera (publisher + driver parameters), AE node, orchestrator: '
                        'three processes on one host; wall-clock stamps',
           'latency': {}, 'notes': {}}
    with tempfile.TemporaryDirectory(prefix='ros_latency_models_') as tmp:
        hist_path, out['notes']['histogram_nn'] = _histogram_model(Path(tmp))
        out['notes']['hybrid_nn'] = (f'{hybrid.name}: its ISP + detector (layer2 from the '
                                     'same backbone pass) and hybrid AE net, CPU')
        cases = latency_cases(quick, hist_path, str(hybrid), controllers)
        for name, kw in cases.items():
            try:
                out['latency'][name] = measure_latency(height, width, **kw)
            except Exception as err:  # noqa: BLE001 - report a failed case, run the rest
                out['latency'][name] = {'error': f'{type(err).__name__}: {err}'[:3000]}
    out['ratios'] = latency_ratios(out['latency'])
    out['queue'] = queue_summary(out['latency'])
    return out
