"""
``neural-ae evaluate`` under torchrun: two gloo processes give exactly the one-process figures.

Tiny untrained checkpoints (the figures are meaningless, the comparison is exact): the
shift protocol with oracle and causal ceiling, and the drive protocol at two latencies
with repeats, once in one process and once sharded over two ranks; every figure in
``results.json`` must be equal, and rank 0 alone writes.
"""
import json
from pathlib import Path
import socket
import subprocess
import sys

from neural_ae.core import sensor as S
from neural_ae.core.errors import EvaluationError
from neural_ae.core.evaluation.distributed import Shard, single_process
from neural_ae.core.training.checkpoints import checkpoint_dict, save_checkpoint
from neural_ae.core.training.config import TrainConfig
from neural_ae.core.training.pipeline import ExposurePipeline
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
TINY = {'widths': [8, 8, 128, 16, 16], 'fpn_channels': 16, 'representation_size': 32,
        'rpn_pre_nms_top_n_test': 50, 'rpn_post_nms_top_n_test': 20}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_shard_indices_and_merge():
    a, b = Shard(0, 2), Shard(1, 2)
    assert list(a.indices(5)) == [0, 2, 4] and list(b.indices(5)) == [1, 3]
    one = single_process()
    assert one.main and list(one.indices(3)) == [0, 1, 2]
    assert one.merge({0: 'x', 2: 'y'}) == {0: 'x', 2: 'y'}
    with pytest.raises(EvaluationError, match='rank'):
        Shard(2, 2)


def _figures(results: dict) -> dict:
    shift = results['shift']

    def untimed(summary):                  # wall-clock timings differ run to run
        return {k: v for k, v in summary.items() if not k.endswith(('_ms_median', '_ms_p90'))}

    drives = [[{k: (r['ap'], untimed(r['metrics']['summary']), r['map50_repeats'],
                    r['per_frame']['e_s'], r.get('assessor'),
                    r['per_frame'].get('assessor_score')) for k, r in d['runs'].items()}
               for d in lat['drives']] for lat in results['drives_by_latency']]
    return {'methods': shift['methods'], 'oracle': shift['oracle'],
            'offsets': shift['offsets'], 'ceiling': shift['causal_ceiling'],
            'assessor': shift.get('assessor'),
            'drives': drives, 'targets': results['targets']}


@pytest.mark.slow
def test_two_process_evaluate_matches_one_process(tmp_path):
    sensor = S.load_sensor('imx249')
    models = tmp_path / 'models'
    models.mkdir()
    cfg = TrainConfig(name='average_tiny', ae='average', height=64, width=96, detector=TINY)
    save_checkpoint(models / 'average_tiny.pt',
                    checkpoint_dict(ExposurePipeline(cfg, sensor), cfg, slim=True))
    ev = {'models_dir': str(models), 'methods': ['fixed', 'average'],
          'fixed_detector': 'average', 'oracle_detector': 'average', 'oracle': True,
          'cache_dir': str(tmp_path / 'cache'), 'shift_pairs': 3, 'shift_repeats': 2,
          'shift_levels': [4, 10], 'oracle_sweep': 3, 'oracle_range_ev': 2.0,
          'causal_ceiling': True, 'ceiling_offsets_ev': [-1.0, 0.0],
          'ceiling_val_pairs': 2, 'ceiling_val_repeats': 1,
          'drives': [['step10x', 12], ['tunnel_exit', 8], ['night_headlights', 8]],
          'drive_smoothings': ['stable'], 'latency_frames': [0, 1], 'drive_repeats': 2,
          'drive_oracle': False}
    conf = tmp_path / 'eval.yaml'
    conf.write_text(yaml.safe_dump(ev))
    args = ['-m', 'neural_ae.cli', 'evaluate', '--config', str(conf), '--no-progress',
            '--threads', '1']
    one = subprocess.run([sys.executable] + args + ['-o', str(tmp_path / 'one')],
                         capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert one.returncode == 0, (one.stdout + one.stderr)[-3000:]
    two = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node',
                          '2', '--master_addr', '127.0.0.1', '--master_port',
                          str(_free_port())] + args + ['-o', str(tmp_path / 'two')],
                         capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert two.returncode == 0, (two.stdout + two.stderr)[-3000:]
    a = json.loads((tmp_path / 'one' / 'results.json').read_text())
    b = json.loads((tmp_path / 'two' / 'results.json').read_text())
    assert b['context']['settings']['processes'] == 2
    assert 'processes' not in a['context']['settings']
    assert _figures(a) == _figures(b)
    assert len(a['drives_by_latency']) == 2 and a['shift']['causal_ceiling']['offset_ev'] in (
        -1.0, 0.0)
    assert two.stdout.count('report:') == 1                    # rank 0 alone printed
    if (ROOT / 'models' / 'assessor_demo.pt').is_file():       # the default assessor ran
        assert a['shift']['assessor']['all']['n_frames'] > 0
