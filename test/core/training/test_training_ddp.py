"""
``neural-ae train`` under torchrun: two CPU processes on gloo end with identical weights.

Each rank hashes its full state dict at the end of training; rank 0 gathers the hashes
(``all_gather_object``) into the summary and the metrics log. The test also checks that
rank 0 alone wrote the outputs and that ``final.pt`` holds the same weights.
"""
import json
from pathlib import Path
import socket
import subprocess
import sys

from neural_ae.core import sensor as S
from neural_ae.core.training import checkpoints
from neural_ae.core.training.config import config_from_dict
from neural_ae.core.training.pipeline import ExposurePipeline
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_process_torchrun_gloo_identical_weights(tmp_path):
    cfg = {'name': 'ddp', 'ae': 'hybrid', 'height': 64, 'width': 96, 'train_size': 8,
           'val_size': 2, 'batch_size': 2, 'epochs': 1, 'num_threads': 1, 'device': 'cpu',
           'cache_dir': str(tmp_path / 'cache'),
           'detector': {'widths': [8, 8, 128, 16, 16], 'fpn_channels': 16,
                        'representation_size': 32, 'rpn_pre_nms_top_n_train': 100,
                        'rpn_post_nms_top_n_train': 50, 'rpn_pre_nms_top_n_test': 50,
                        'rpn_post_nms_top_n_test': 20, 'box_batch_size_per_image': 32}}
    path = tmp_path / 'ddp.yaml'
    path.write_text(yaml.safe_dump(cfg))
    out = tmp_path / 'out'
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2',
           '--master_addr', '127.0.0.1', '--master_port', str(_free_port()),
           '-m', 'neural_ae.cli', 'train', '--config', str(path), '--output', str(out),
           '--no-progress']
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=240, cwd=ROOT)
    assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]
    end = [json.loads(line) for line in (out / 'metrics.jsonl').read_text().splitlines()]
    start = next(r for r in end if r['type'] == 'start')
    assert start['world_size'] == 2 and start['steps_per_epoch'] == 2   # 8 pairs / 2 ranks / 2
    final = next(r for r in end if r['type'] == 'end')
    hashes = final['rank_state_hashes']
    assert len(hashes) == 2 and hashes[0] == hashes[1]
    steps = [r for r in end if r['type'] == 'step']
    assert [r['global_step'] for r in steps] == [1, 2]        # rank 0 alone logged
    ck = checkpoints.load_checkpoint(out / 'final.pt')
    sensor = S.sensor_from_dict(ck['sensor'])
    pipe = ExposurePipeline(config_from_dict(ck['config']), sensor)
    pipe.load_state_dict(ck['model'])
    assert checkpoints.state_hash(pipe) == hashes[0]
