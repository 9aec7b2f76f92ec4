"""
Training checkpoints: build, write, read, rebuild the pipeline, fingerprint.

A checkpoint (:func:`checkpoint_dict`) holds the model (AE net + ISP + detector),
optimizer, scheduler, config, epoch, position within the epoch and the RNG states
(torch, numpy, python) of every rank; it is readable with
``torch.load(weights_only=True)``. The AE network's own state dict is also stored under
``state_dict`` with ``mode`` and ``m_exp``, the layout
:func:`neural_ae.core.controllers.neural.load_exposure_model` reads. The slim
``model.pt`` leaves out optimizer, scheduler and RNG and records a *fingerprint*
(:func:`fingerprint`): outputs on a fixed batch that :func:`compare_fingerprint`
recomputes after loading.

Files are read through :func:`neural_ae.core.checkpoints.read_checkpoint`, the package's
one ``torch.load``.
"""
import hashlib
import os
from pathlib import Path
from typing import Optional

from neural_ae.core import sensor as S
from neural_ae.core.checkpoints import read_checkpoint, TRAIN_FORMAT
from neural_ae.core.errors import TrainingError
from neural_ae.core.training.config import config_from_dict, TrainConfig
from neural_ae.core.training.data import build_source, collate, to_device, TwoFrameExamples
from neural_ae.core.training.distributed import unwrap
from neural_ae.core.training.pipeline import ExposurePipeline
from neural_ae.core.training.rng import rng_state
import torch

CHECKPOINT_FORMAT = TRAIN_FORMAT
"""``format`` key of the checkpoints written here (``load_checkpoint`` requires it)."""


def checkpoint_dict(model, cfg: TrainConfig, optimizer=None, scheduler=None, epoch: int = 0,
                    step_in_epoch: int = 0, global_step: int = 0, rng=None,
                    metrics: Optional[dict] = None, slim: bool = False) -> dict:
    """
    Build a checkpoint dict (weights_only-loadable).

    ``epoch`` counts completed epochs; ``step_in_epoch`` > 0 marks a run stopped inside
    epoch ``epoch`` after that many steps. ``slim`` leaves out optimizer, scheduler and
    RNG (the shipped model).
    """
    pipe = unwrap(model)
    ck = {'format': CHECKPOINT_FORMAT, 'model': pipe.state_dict(), 'config': cfg.to_dict(),
          'ae': cfg.ae, 'epoch': int(epoch), 'step_in_epoch': int(step_in_epoch),
          'global_step': int(global_step), 'sensor': pipe.sensor.to_dict(),
          'metrics': metrics or {}, 'torch_version': str(torch.__version__)}
    if pipe.ae is not None:
        # the layout neural.load_exposure_model reads
        ck['state_dict'] = pipe.ae.state_dict()
        ck['mode'] = pipe.ae.mode
        ck['m_exp'] = pipe.ae.m_exp
        ck['feature_dim'] = pipe.ae.feature_dim
    if not slim:
        ck['optimizer'] = optimizer.state_dict() if optimizer is not None else None
        ck['scheduler'] = scheduler.state_dict() if scheduler is not None else None
        ck['rng'] = rng if rng is not None else [rng_state()]
    return ck


def save_checkpoint(path, ck: dict) -> Path:
    """Write ``ck`` atomically (temporary file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f'.{path.name}.{os.getpid()}.tmp')
    torch.save(ck, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(path) -> dict:
    """Read a training checkpoint with ``weights_only=True``; TrainingError if unusable."""
    ck = read_checkpoint(path, 'checkpoint', error=TrainingError)
    if ck.get('format') != CHECKPOINT_FORMAT:
        raise TrainingError(f'{path} is not a neural_ae training checkpoint '
                            f'(format {ck.get("format")!r})')
    return ck


def load_pipeline(path, device='cpu') -> tuple:
    """Rebuild the trained :class:`ExposurePipeline` (eval mode) from a checkpoint."""
    ck = load_checkpoint(path)
    cfg = config_from_dict(ck['config'], source=f'{path} (embedded config)')
    sensor = S.sensor_from_dict(ck['sensor'], source=str(path))
    pipe = ExposurePipeline(cfg, sensor)
    pipe.load_state_dict(ck['model'])
    return pipe.to(device).eval(), cfg, ck


def init_weights_from(pipe: ExposurePipeline, path) -> dict:
    """
    Initialise ``pipe`` from another run's checkpoint (two-stage schedule).

    Every key present in both is loaded; AE-network keys may be missing on either side
    (a detector-only stage 1), any other mismatch is an error.
    """
    ck = load_checkpoint(path)
    own = pipe.state_dict()
    src = ck['model']
    load = {k: v for k, v in src.items() if k in own}
    missing = [k for k in own if k not in src and not k.startswith('ae.')]
    bad = [k for k, v in load.items() if tuple(v.shape) != tuple(own[k].shape)]
    if missing or bad:
        raise TrainingError(f'init_from {path}: model does not match (missing {missing[:3]}, '
                            f'shape mismatch {bad[:3]})')
    pipe.load_state_dict(load, strict=False)
    return {'loaded': len(load), 'from_epoch': ck.get('epoch'),
            'fresh': [k for k in own if k not in src]}


def state_hash(module: torch.nn.Module) -> str:
    """SHA-256 of every tensor of ``module.state_dict()`` (names, dtypes, shapes, bytes)."""
    h = hashlib.sha256()
    for name, t in module.state_dict().items():
        t = t.detach().cpu().contiguous()
        h.update(f'{name}:{t.dtype}:{tuple(t.shape)}'.encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b'')
    return h.hexdigest()


# --------------------------------------------------------------------------- fingerprint


@torch.no_grad()
def fingerprint(pipe: ExposurePipeline, batch: dict, seed: int = 0) -> dict:
    """
    Compute the outputs of ``pipe`` on a fixed batch (eval mode, seeded noise).

    ``u``: the policy's exposure change in closed loop; ``scores`` / ``boxes``: the top
    20 detections of the first frame 2 at ``e_base``; ``layer2_mean``: mean of the
    backbone tap. Stored in the slim ``model.pt``; :func:`compare_fingerprint` recomputes
    it from a loaded checkpoint.
    """
    was = pipe.training
    pipe.eval()
    try:
        gen = torch.Generator(device=batch['phi2'].device)
        gen.manual_seed(seed)
        rgb2, info = pipe.frame2(batch, generator=gen)
        dets, layer2 = pipe.detector(rgb2)
    finally:
        pipe.train(was)
    return {'u': info['u'].detach().cpu().double(),
            'scores': dets[0]['scores'][:20].cpu().double(),
            'boxes': dets[0]['boxes'][:20].cpu().double(),
            'layer2_mean': layer2.mean().cpu().double()}


def probe_batch(cfg: TrainConfig, sensor: S.SensorConfig) -> dict:
    """Return the fixed batch of :func:`fingerprint`: the first (up to) 2 validation pairs."""
    split = 'val' if cfg.val_size else 'train'
    src = build_source(cfg, sensor, split)
    ds = TwoFrameExamples(src, sensor, cfg, train=False)
    return collate([ds[i] for i in range(min(2, len(ds)))])


FINGERPRINT_TOLERANCE = {'u': 1e-5, 'scores': 1e-4, 'boxes': 1e-2, 'layer2_mean': 1e-5}
"""Largest absolute difference per fingerprint entry that :func:`compare_fingerprint`
accepts as the same model: ``u`` [-], detection ``scores`` [-], ``boxes`` [px],
``layer2_mean`` [-]. Another CPU (other SIMD paths, thread counts) changes the last
bits: measured 6e-8 on ``u`` and 8e-6 px on boxes for the same scenes; a model trained
on other scenes differs by 1e-1 or more on ``u``."""


def compare_fingerprint(path, device='cpu') -> dict:
    """
    Reload a slim or full checkpoint and recompute its fingerprint.

    Returns ``{'max_abs_diff': float, 'diffs': {key: float}, 'identical': bool,
    'within_tolerance': bool, 'tolerance': FINGERPRINT_TOLERANCE, 'stored': ...,
    'now': ...}``: ``identical`` is bit equality, ``within_tolerance`` every entry within
    :data:`FINGERPRINT_TOLERANCE` (what ``neural-ae train --verify`` requires).
    """
    pipe, cfg, ck = load_pipeline(path, device)
    stored = ck.get('metrics', {}).get('fingerprint')
    if not stored:
        raise TrainingError(f'{path} holds no fingerprint')
    now = fingerprint(pipe, to_device(probe_batch(cfg, pipe.sensor), device), cfg.seed)
    diffs = {}
    for k, v in stored.items():
        w = now[k]
        if tuple(v.shape) != tuple(w.shape):
            diffs[k] = float('inf')
        else:
            diffs[k] = float((v - w).abs().max()) if v.numel() else 0.0
    identical = all(torch.equal(stored[k], now[k]) for k in stored)
    within = all(d <= FINGERPRINT_TOLERANCE.get(k, 0.0) for k, d in diffs.items())
    return {'max_abs_diff': max(diffs.values()) if diffs else 0.0, 'diffs': diffs,
            'identical': identical, 'within_tolerance': within,
            'tolerance': dict(FINGERPRINT_TOLERANCE), 'stored': stored, 'now': now}
