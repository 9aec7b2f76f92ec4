"""
Training of the exposure assessor, with the conventions of the detector training engine.

``neural-ae train --config config/train_assessor.yaml``; conventions of
:mod:`neural_ae.core.training.engine`:

- **Full checkpoints** every epoch (``checkpoint_epochNNN.pt``) and at the end
  (``final.pt``): model, optimizer, scheduler, config, completed epochs, RNG states;
  ``torch.load(weights_only=True)``-readable. ``model.pt`` is the slim file the judge, the
  monitor node and ``neural-ae evaluate`` load (:func:`neural_ae.core.assessment.judge.
  load_assessor`), with the judge thresholds tuned on the validation seeds.
- ``--resume CKPT`` continues a run (same output folder); a folder that already holds a
  run is refused otherwise.
- A non-finite loss stops the run with :class:`~neural_ae.core.errors.TrainingError`
  (the last good checkpoint stays).
- Fixed seeds: weights from ``seed``; the examples of epoch ``k`` are drawn from
  ``numpy.random.default_rng([seed, k, i])`` per index ``i`` (scene seed, shift, gain,
  noise), so a resumed run sees the data an uninterrupted one would.

Optimiser (paper Sec. 3.3 / other-papers.md): Adam, step decay x``lr_gamma`` every
``lr_step_epochs``; the paper's lr 3e-5 with batch 36 is for hours on a GPU, the CPU demo
uses a larger lr (its config says which). Loss: L1 between predicted and true residual
maps (Eq. 7).
"""
from dataclasses import asdict, dataclass, field, fields
import logging
import math
from pathlib import Path
import time
from typing import Any, Callable, Dict, List, Optional, Sequence

from neural_ae.core import sensor as S
from neural_ae.core.assessment.errors import AssessmentError
from neural_ae.core.assessment.labels import (random_spec, render_example, TEST_SEED_START,
                                              test_specs, TRAIN_SEED_START,
                                              VAL_SEED_START)
from neural_ae.core.assessment.network import (AssessorConfig, build_assessor,
                                               parameter_count)
from neural_ae.core.checkpoints import read_checkpoint
from neural_ae.core.errors import ConfigError, TrainingError
from neural_ae.core.training.rng import rng_state, seed_everything, set_rng_state
import numpy as np
import torch
import yaml

__all__ = ['ASSESSOR_FORMAT', 'AssessorTrainConfig', 'is_assessor_config',
           'load_assessor_config', 'predict_maps', 'train_assessor']

log = logging.getLogger(__name__)
ASSESSOR_FORMAT = 'neural_ae.assessor/1'
TASK = 'assessor'


@dataclass
class AssessorTrainConfig:
    """
    Settings of an assessor run (every key of ``config/train_assessor.yaml``).

    Bounds: ``height``/``width`` even in [64, 1024] px; ``epochs`` in [1, 1000];
    ``batch_size`` in [1, 512]; ``examples_per_epoch`` in [1, 1e6]; ``train_size`` /
    ``val_size`` / ``test_size`` scenes in [1, 1e5]; ``lr`` in (0, 1]; ``lr_gamma`` in
    (0, 1]; ``lr_step_epochs`` in [1, 1000]; seed ranges must not overlap.
    """

    name: str = 'assessor_demo'
    task: str = TASK
    seed: int = 0
    sensor: str = 'imx249'
    height: int = 128
    width: int = 128
    train_seed_start: int = TRAIN_SEED_START
    train_size: int = 2000
    val_seed_start: int = VAL_SEED_START
    val_size: int = 24
    val_shifts: List[float] = field(default_factory=lambda: [-3.0, -1.5, -0.5, 0.0, 0.5,
                                                             1.5, 3.0])
    test_seed_start: int = TEST_SEED_START
    test_size: int = 96
    model: Dict[str, Any] = field(default_factory=dict)
    epochs: int = 5
    batch_size: int = 8
    examples_per_epoch: int = 640
    lr: float = 1e-3
    lr_gamma: float = 0.1
    lr_step_epochs: int = 4
    weight_decay: float = 0.0
    num_threads: int = 1
    device: str = 'cpu'

    def __post_init__(self):
        def bad(key, rule):
            raise ConfigError(f'assessor config: {key} {rule}, got {getattr(self, key)!r}')

        if self.task != TASK:
            bad('task', f"must be '{TASK}'")
        for key, lo, hi in (('height', 64, 1024), ('width', 64, 1024)):
            v = getattr(self, key)
            if not isinstance(v, int) or not lo <= v <= hi or v % 2:
                bad(key, f'must be an even integer in [{lo}, {hi}]')
        for key, lo, hi in (('epochs', 1, 1000), ('batch_size', 1, 512),
                            ('examples_per_epoch', 1, 10 ** 6), ('train_size', 1, 10 ** 5),
                            ('val_size', 1, 10 ** 5), ('test_size', 1, 10 ** 5),
                            ('lr_step_epochs', 1, 1000), ('num_threads', 1, 256),
                            ('seed', 0, 2 ** 31 - 1)):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                bad(key, f'must be an integer in [{lo}, {hi}]')
        for key in ('lr', 'lr_gamma'):
            v = getattr(self, key)
            if not isinstance(v, (int, float)) or not (0 < v <= 1):
                bad(key, 'must be a number in (0, 1]')
        if not isinstance(self.weight_decay, (int, float)) or not 0 <= self.weight_decay <= 1:
            bad('weight_decay', 'must be a number in [0, 1]')
        ranges = [('train', self.train_seed_start, self.train_size),
                  ('val', self.val_seed_start, self.val_size),
                  ('test', self.test_seed_start, self.test_size)]
        for i, (a, sa, na) in enumerate(ranges):
            for b, sb, nb in ranges[i + 1:]:
                if sa < sb + nb and sb < sa + na:
                    raise ConfigError(f'assessor config: {a} seeds {sa}..{sa + na - 1} overlap '
                                      f'{b} seeds {sb}..{sb + nb - 1}')
        if not self.val_shifts or not all(isinstance(s, (int, float)) and abs(s) <= 8
                                          for s in self.val_shifts):
            bad('val_shifts', 'must be a non-empty list of shifts in [-8, 8] EV')
        try:
            AssessorConfig.from_dict(self.model)
        except AssessmentError as err:
            raise ConfigError(f'assessor config: model: {err}') from err

    @property
    def net(self) -> AssessorConfig:
        """Return the network config."""
        return AssessorConfig.from_dict(self.model)

    def to_dict(self) -> Dict[str, Any]:
        """Plain dict (checkpoints)."""
        return asdict(self)


def is_assessor_config(path) -> bool:
    """Whether the YAML at ``path`` is an assessor config (``task: assessor``)."""
    from neural_ae.core.training.config import config_task

    return config_task(path) == TASK


def load_assessor_config(path, **overrides) -> AssessorTrainConfig:
    """Read ``config/train_assessor.yaml``-style YAML; ``overrides`` (not None) win."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f'assessor config not found: {path}')
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f'assessor config {path} is not valid YAML: '
                          f'{str(err).splitlines()[0]}') from err
    if not isinstance(data, dict):
        raise ConfigError(f'assessor config {path}: expected a mapping')
    data.update({k: v for k, v in overrides.items() if v is not None})
    known = {f.name for f in fields(AssessorTrainConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f'assessor config {path}: unknown keys {unknown}')
    return AssessorTrainConfig(**data)


def _batch(specs, cfg: AssessorTrainConfig, sensor) -> tuple:
    exs = [render_example(s, cfg.height, cfg.width, sensor) for s in specs]
    x = torch.from_numpy(np.stack([e.rgb for e in exs])).permute(0, 3, 1, 2).contiguous()
    y = torch.from_numpy(np.stack([e.residual for e in exs]))[:, None]
    return x, y, exs


def epoch_specs(cfg: AssessorTrainConfig, epoch: int) -> list:
    """Draw the training examples of ``epoch`` (deterministic in ``cfg.seed``)."""
    out = []
    for i in range(cfg.examples_per_epoch):
        rng = np.random.default_rng([cfg.seed, epoch, i])
        seed = cfg.train_seed_start + int(rng.integers(cfg.train_size))
        out.append(random_spec(rng, seed))
    return out


def predict_maps(model: torch.nn.Module, rgbs: Sequence[np.ndarray],
                 batch_size: int = 16) -> np.ndarray:
    """Residual maps ``(N, H, W)`` of float RGB images ``(H, W, 3)`` in [0, 1]."""
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(rgbs), batch_size):
            x = torch.from_numpy(np.stack(rgbs[i:i + batch_size])).permute(0, 3, 1, 2)
            out.append(model(x.float().contiguous())[:, 0].numpy())
    return np.concatenate(out) if out else np.zeros((0, 0, 0), np.float32)


def _val_loss(model, cfg, sensor) -> float:
    specs = test_specs(cfg.val_seed_start, cfg.val_size, cfg.val_shifts)
    _, y, exs = _batch(specs, cfg, sensor)
    pred = predict_maps(model, [e.rgb for e in exs])
    return float(np.abs(pred - y[:, 0].numpy()).mean())


def _save(path: Path, model, opt, sched, cfg, epoch, history) -> None:
    ck = {'format': ASSESSOR_FORMAT, 'kind': 'training', 'model': model.state_dict(),
          'assessor_config': cfg.net.to_dict(), 'config': cfg.to_dict(), 'epoch': int(epoch),
          'optimizer': opt.state_dict(), 'scheduler': sched.state_dict(),
          'rng': rng_state(), 'history': history, 'torch_version': str(torch.__version__)}
    tmp = path.with_name(path.name + '.tmp')
    torch.save(ck, tmp)
    tmp.replace(path)


def train_assessor(cfg: AssessorTrainConfig, output, resume: Optional[str] = None,
                   max_minutes: Optional[float] = None, progress: Optional[Callable] = None,
                   export: Optional[str] = None) -> dict:
    """
    Train ``cfg``; write checkpoints, ``final.pt`` and ``model.pt`` under ``output``.

    Returns a summary dict (parameters, epochs, wall time, loss curve, validation MAE).
    ``progress`` (optional) is called with a status string once per step.
    """
    from neural_ae.core.assessment.judge import calibrate_and_export

    out = Path(output)
    if resume is None and (out / 'final.pt').exists() or \
            resume is None and any(out.glob('checkpoint_epoch*.pt')):
        raise TrainingError(f'{out} already holds a run; pass --resume or another --out')
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(cfg.num_threads)
    sensor = S.load_sensor(cfg.sensor)
    seed_everything(cfg.seed)
    model = build_assessor(cfg.net)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.StepLR(opt, cfg.lr_step_epochs, cfg.lr_gamma)
    start, history = 0, []
    if resume:
        ck = read_checkpoint(resume, 'assessor checkpoint', error=TrainingError)
        if ck.get('format') != ASSESSOR_FORMAT or ck.get('kind') != 'training':
            raise TrainingError(f'{resume} is not an assessor training checkpoint')
        model.load_state_dict(ck['model'])
        opt.load_state_dict(ck['optimizer'])
        sched.load_state_dict(ck['scheduler'])
        set_rng_state(ck['rng'])
        start, history = int(ck['epoch']), list(ck.get('history', []))
    t0 = time.monotonic()
    stopped = False
    for epoch in range(start, cfg.epochs):
        model.train()
        specs = epoch_specs(cfg, epoch)
        losses = []
        for i in range(0, len(specs), cfg.batch_size):
            x, y, _ = _batch(specs[i:i + cfg.batch_size], cfg, sensor)
            loss = (model(x) - y).abs().mean()                           # Eq. 7
            if not math.isfinite(loss.item()):
                raise TrainingError(f'non-finite loss {loss.item()} at epoch {epoch}, step '
                                    f'{i // cfg.batch_size}; last good checkpoint kept')
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
            if progress:
                progress(f'epoch {epoch + 1}/{cfg.epochs} step {i // cfg.batch_size + 1} '
                         f'loss {float(loss):.4f}')
            if max_minutes is not None and time.monotonic() - t0 > 60 * max_minutes:
                stopped = True
                break
        sched.step()
        val = _val_loss(model, cfg, sensor)
        history.append({'epoch': epoch + 1, 'train_l1': float(np.mean(losses)),
                        'val_mae': val, 'lr': opt.param_groups[0]['lr'],
                        'seconds': time.monotonic() - t0})
        log.info('assessor epoch %d: train L1 %.4f, val MAE %.4f', epoch + 1,
                 history[-1]['train_l1'], val)
        _save(out / f'checkpoint_epoch{epoch + 1:03d}.pt', model, opt, sched, cfg, epoch + 1,
              history)
        if stopped:
            break
    _save(out / 'final.pt', model, opt, sched, cfg, len(history), history)
    model_path = calibrate_and_export(model, cfg, out / 'model.pt', history, sensor)
    if export:
        Path(export).parent.mkdir(parents=True, exist_ok=True)
        Path(export).write_bytes(model_path.read_bytes())
    return {'name': cfg.name, 'variant': cfg.net.variant, 'parameters': parameter_count(model),
            'epochs_done': len(history), 'stopped_early': stopped,
            'wall_s': time.monotonic() - t0, 'curve': history, 'model': str(model_path),
            'batch_size': cfg.batch_size, 'examples_per_epoch': cfg.examples_per_epoch,
            'size': [cfg.height, cfg.width]}
