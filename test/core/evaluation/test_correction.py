"""The correction protocol (issue 14): mechanics on one small scene, FP counting, tables."""
from neural_ae.core.correction.model import Corrector
from neural_ae.core.correction.networks import CorrectionUNet
from neural_ae.core.evaluation.correction import (clipped_false_positives,
                                                  run_correction_protocol, tables,
                                                  write_figure)
from neural_ae.core.isp import ISP, ISPConfig
from neural_ae.core.models.detector import build_detector, detector_config_for
from neural_ae.core.models.perception import Perception
from neural_ae.core.sensor import load_sensor
import numpy as np
import torch

SENSOR = load_sensor('imx249')


def test_clipped_false_positives_counts_only_unmatched_boxes_on_clipped_pixels():
    clipped = np.zeros((40, 40), bool)
    clipped[:20, :20] = True
    gt = np.array([[0, 0, 10, 10]], np.float32)
    dets = {'boxes': np.array([[0, 0, 10, 10],       # matches the ground truth
                               [10, 10, 20, 20],     # false, on clipped pixels
                               [25, 25, 35, 35],     # false, not clipped
                               [12, 0, 20, 8]]),     # false, clipped, but a low score
            'scores': np.array([0.9, 0.9, 0.9, 0.2])}
    assert clipped_false_positives(dets, gt, clipped) == 1
    assert clipped_false_positives(dets, gt, clipped, score=0.1) == 2
    assert clipped_false_positives({'boxes': np.zeros((0, 4)), 'scores': np.zeros(0)}, gt,
                                   clipped) == 0


def test_protocol_runs_every_method_and_writes_tables_and_figure(tmp_path):
    torch.manual_seed(0)
    torch.set_num_threads(1)
    isp = ISP(ISPConfig.from_sensor(SENSOR))
    det = build_detector(detector_config_for(64, 64, {'widths': (8, 8, 128, 16, 16),
                                                      'fpn_channels': 16,
                                                      'representation_size': 32}))
    perception = Perception(det, isp, 'cpu', 'untrained test detector')
    corrector = Corrector(CorrectionUNet((4, 8, 8)), isp, 'encdec', 'untrained')
    res = run_correction_protocol({'net': corrector}, perception, SENSOR, None, n_scenes=1,
                                  levels=(4.0,), height=64, width=64,
                                  cache_dir=str(tmp_path / 'cache'), figure_frames=1)
    q = res['quality']
    assert set(q) == {'identity', 'trivial_inverse', 'global_gain', 'global_gamma', 'net',
                      'debevec_reinhard'}
    under = {n: q[n]['4']['under']['psnr']['mean'] for n in q}
    assert all(np.isfinite(v) for v in under.values())
    # knowing kappa undoes most of a 4x under-exposure
    assert under['trivial_inverse'] > under['identity'] + 3.0
    assert set(res['detection_map50']) == {'uncorrected', 'trivial_inverse', 'global_gain',
                                           'global_gamma', 'net', 'reference'}
    assert all(isinstance(v['4'], int) for v in res['clipped_false_positives'].values())
    assert 0.0 <= res['clipped_fraction_over']['4'] <= 1.0
    assert set(res['gamma_clip']) == {'identity', 'trivial_inverse', 'global_gain',
                                      'global_gamma', 'net'}
    text = tables(res)
    for name in ('trivial_inverse', 'debevec_reinhard', 'reference', "003's protocol"):
        assert name in text
    fig = write_figure(res, tmp_path / 'figure.png')
    assert fig and (tmp_path / 'figure.png').stat().st_size > 1000
