"""
Training engine after torchvision's detection references: epochs, evaluation, the run.

- :func:`train_one_epoch` / :func:`evaluate` (the reference scripts' split), and
  :func:`evaluate_checkpoint` for a saved model;
- :func:`train`: the whole run (``neural-ae train``): seeds, data, DDP when
  ``WORLD_SIZE > 1`` (:mod:`neural_ae.core.training.distributed`; rank 0 alone logs,
  evaluates and writes), ``--resume``, ``--max-minutes``, a JSONL metrics log, a tqdm
  bar, a checkpoint per epoch plus ``final.pt``, the slim ``model.pt``
  (:mod:`neural_ae.core.training.checkpoints`) and ``curve.png``
  (:mod:`neural_ae.core.training.report`).

A non-finite loss stops training with :class:`TrainingError` naming the epoch, step
and every loss term (all ranks stop together: the check is all-reduced).
"""
import json
import logging
import math
from pathlib import Path
import time
from typing import Optional

from neural_ae.core import sensor as S
from neural_ae.core.errors import ConfigError, TrainingError
from neural_ae.core.metrics.detection import DetectionAccumulator
from neural_ae.core.training.checkpoints import (checkpoint_dict, fingerprint,
                                                 init_weights_from, load_checkpoint,
                                                 load_pipeline, probe_batch, save_checkpoint,
                                                 state_hash)
from neural_ae.core.training.config import config_from_dict, TrainConfig
from neural_ae.core.training.data import build_source, collate, to_device, TwoFrameExamples
from neural_ae.core.training.distributed import (all_finite, any_rank, barrier, DistInfo,
                                                 gather, init_distributed, shutdown, unwrap)
from neural_ae.core.training.pipeline import ExposurePipeline, loss_terms, total_loss
from neural_ae.core.training.report import plot_training_curve
from neural_ae.core.training.rng import (loader_generator, rng_state, seed_everything,
                                         set_rng_state)
import torch
from torch.utils.data import DataLoader, DistributedSampler

LOG = logging.getLogger(__name__)


# --------------------------------------------------------------------------- loops


class MetricsLog:
    """Append-only JSONL metrics log (no-op when ``path`` is None)."""

    def __init__(self, path: Optional[Path]):
        """Log to ``path`` (its folder is created), or nowhere when ``path`` is None."""
        self.path = Path(path) if path else None
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, record: dict) -> None:
        """Append ``record`` as one JSON line."""
        if self.path is None:
            return
        with self.path.open('a') as f:
            f.write(json.dumps(record, default=float) + '\n')


def train_one_epoch(model, optimizer, scheduler, loader, epoch: int, cfg: TrainConfig,
                    info: DistInfo, log: MetricsLog, state: dict,
                    deadline: Optional[float] = None, progress: bool = True,
                    start_step: int = 0) -> dict:
    """
    One pass over ``loader``: forward, non-finite check, backward, clip, step.

    ``state['global_step']`` is advanced. Returns ``{'steps', 'loss', 'stopped'}``
    (``stopped``: the ``deadline`` [time.time() seconds] passed inside the epoch).
    """
    model.train()
    total = len(loader) + start_step
    bar = None
    if progress and info.main:
        from tqdm import tqdm
        bar = tqdm(total=total, initial=start_step, desc=f'epoch {epoch + 1}/{cfg.epochs}',
                   unit='step', dynamic_ncols=True)
    losses_sum, n, step = 0.0, 0, start_step
    stopped = False
    t0 = time.time()
    for batch in loader:
        batch = to_device(batch, info.device)
        losses, extra = model(batch)
        loss = total_loss(losses)
        value = float(loss.detach())
        if not all_finite(value, info):
            terms = loss_terms(losses)
            raise TrainingError(f'non-finite loss at epoch {epoch + 1} step {step + 1} '
                                f'(global step {state["global_step"] + 1}): loss {value}; '
                                f'terms ' + ', '.join(f'{k}={v:.4g}' for k, v in terms.items()))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = float('nan')
        if cfg.grad_clip_norm > 0:
            grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(),
                                                             cfg.grad_clip_norm))
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        step += 1
        state['global_step'] += 1
        losses_sum += value
        n += 1
        if info.main:
            u = extra['u'].double()
            rec = {'type': 'step', 'epoch': epoch + 1, 'step': step,
                   'global_step': state['global_step'], 'loss': value,
                   **loss_terms(losses), 'grad_norm': grad_norm,
                   'lr': optimizer.param_groups[0]['lr'],
                   'log10_u_mean': float(u.log10().mean()),
                   'log10_kappa_mean': float(batch['kappa'].log10().mean()),
                   'time_s': time.time() - t0}
            log.write(rec)
            if bar is not None:
                bar.set_postfix(loss=f'{value:.3f}', avg=f'{losses_sum / n:.3f}',
                                lr=f'{rec["lr"]:.1e}')
                bar.update(1)
        if deadline is not None and time.time() > deadline:
            stopped = True
        stopped = any_rank(stopped, info)
        if stopped:
            break
    if bar is not None:
        bar.close()
    return {'steps': step, 'loss': losses_sum / max(n, 1), 'stopped': stopped,
            'complete': not stopped}


@torch.no_grad()
def evaluate(model, loader, cfg: TrainConfig, device='cpu', progress: bool = False) -> dict:
    """
    mAP@0.5 on held-out pairs: frame 2 at fixed multiples of its ``e_base`` (no AE).

    For every factor of ``cfg.eval_exposure_factors`` (default 1, 10, 0.1: correct, 10x
    over- and 10x under-exposed) and, under key ``'ae'``, closed loop: frame 1 at
    ``kappa * e_base`` (``kappa`` log-uniform in [kappa_min, kappa_max], fixed per pair),
    the run's policy, frame 2 at ``e1 * u``. Sensor noise is seeded per batch, so the
    figures are reproducible. Returns ``{key: ap_result}`` (see
    :mod:`neural_ae.core.metrics.detection`) plus ``'summary'`` ``{key: map50}``.
    """
    pipe = unwrap(model)
    was = pipe.training
    pipe.eval()
    keys = [('x%g' % f, f) for f in cfg.eval_exposure_factors] + [('ae', None)]
    accs = {k: DetectionAccumulator() for k, _ in keys}
    it = loader
    if progress:
        from tqdm import tqdm
        it = tqdm(loader, desc='evaluate', unit='batch', dynamic_ncols=True)
    try:
        for b, batch in enumerate(it):
            batch = to_device(batch, device)
            for k, factor in keys:
                gen = torch.Generator(device=batch['phi2'].device)
                gen.manual_seed(cfg.seed * 100003 + b)
                dets, _ = pipe.detect(batch, factor, generator=gen)
                for d, gb, gl in zip(dets, batch['boxes'], batch['labels']):
                    accs[k].add(gb, gl, d['boxes'], d['scores'], d['labels'],
                                width=cfg.width, height=cfg.height)
    finally:
        pipe.train(was)
    out = {k: acc.compute() for k, acc in accs.items()}
    out['summary'] = {k: out[k]['map50'] for k, _ in keys}
    return out


def evaluate_checkpoint(path, val_size: Optional[int] = None,
                        val_seed_start: Optional[int] = None, device: str = 'cpu',
                        progress: bool = True, batch_size: Optional[int] = None) -> dict:
    """
    Load a checkpoint (slim or full) and run :func:`evaluate` on held-out pairs.

    ``val_size`` / ``val_seed_start`` override the run's validation set (procedural
    seeds; keep them outside the training range, which the config check enforces).
    Returns :func:`evaluate`'s dict plus ``'config'`` (the evaluation config).
    """
    pipe, cfg, _ = load_pipeline(path, device)
    over = {}
    if val_size is not None:
        over['val_size'] = int(val_size)
    if val_seed_start is not None:
        over['val_seed_start'] = int(val_seed_start)
    if batch_size is not None:
        over['batch_size'] = int(batch_size)
    cfg = config_from_dict(over, source=f'{path} + overrides', base=cfg)
    if cfg.val_size < 1:
        raise ConfigError('evaluation needs val_size >= 1')
    src = build_source(cfg, pipe.sensor, 'val')
    src.prepare(progress=progress)
    loader = DataLoader(TwoFrameExamples(src, pipe.sensor, cfg, train=False),
                        batch_size=cfg.batch_size, shuffle=False, collate_fn=collate,
                        generator=loader_generator(cfg.seed))
    out = evaluate(pipe, loader, cfg, device, progress=progress)
    out['config'] = cfg.to_dict()
    return out


# --------------------------------------------------------------------------- schedule


def lr_lambda(cfg: TrainConfig, total_steps: int):
    """Linear warm-up from 10 % over ``warmup_steps``, then cosine to ``min_lr_fraction``."""
    warm = cfg.warmup_steps
    floor = cfg.min_lr_fraction

    def f(step: int) -> float:
        if warm and step < warm:
            return 0.1 + 0.9 * step / warm
        span = max(total_steps - warm, 1)
        p = min(max(step - warm, 0) / span, 1.0)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * p))
    return f


def build_optimizer(pipe: ExposurePipeline, cfg: TrainConfig):
    """Build AdamW (default) or SGD over the pipeline's parameter groups."""
    groups = pipe.trainable_groups(cfg)
    if cfg.optimizer == 'sgd':
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum)
    return torch.optim.AdamW(groups, lr=cfg.lr)


# --------------------------------------------------------------------------- run


RUN_FILES = ('metrics.jsonl', 'config.yaml', 'final.pt', 'model.pt', 'curve.png')
"""Files that mark a folder as holding a training run (plus ``checkpoint_epoch*.pt``)."""


def check_output(output, resume: Optional[str] = None) -> None:
    """
    Refuse to start a new run in a folder that holds one (nothing is ever overwritten).

    A run continues in its own folder only through ``resume`` (its log is appended to, as
    the run it continues); any other existing run folder raises :class:`TrainingError`
    naming the files and the two ways out.
    """
    out = Path(output)
    if out.exists() and not out.is_dir():
        raise TrainingError(f'train output {out} exists and is not a folder')
    if resume or not out.is_dir():
        return
    found = sorted(p.name for p in out.iterdir()
                   if p.name in RUN_FILES or (p.name.startswith('checkpoint_epoch')
                                              and p.suffix == '.pt'))
    if found:
        resumable = out / 'final.pt'
        hint = (f'resume it with --resume {resumable}' if resumable.is_file()
                else 'it has no final.pt to resume from')
        raise TrainingError(f'train output {out} holds a training run already '
                            f'({", ".join(found[:4])}{", ..." if len(found) > 4 else ""}); '
                            f'{hint}, or choose another --out')


def train(cfg: TrainConfig, output, resume: Optional[str] = None,
          max_minutes: Optional[float] = None, progress: bool = True,
          export: Optional[str] = None) -> dict:
    """
    Run a whole training (``neural-ae train``); returns a summary dict (rank 0).

    Writes to ``output``: ``metrics.jsonl``, ``config.yaml``, ``checkpoint_epochNNN.pt``
    per epoch, ``final.pt`` (full state, resumable), ``model.pt`` (slim: model, config,
    metrics) and ``curve.png``. ``export`` also copies ``model.pt`` there. A folder that
    holds a run already is refused unless the run is resumed (:func:`check_output`).
    """
    t_start = time.time()
    check_output(output, resume)  # every rank, before the rendezvous: nothing written yet
    info = init_distributed(cfg.device)
    try:
        return _train(cfg, Path(output), resume, max_minutes, progress, export, info, t_start)
    finally:
        shutdown(info)


def _train(cfg, output: Path, resume, max_minutes, progress, export, info: DistInfo,
           t_start: float) -> dict:
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    minutes = cfg.max_minutes if max_minutes is None else max_minutes
    deadline = t_start + 60.0 * minutes if minutes and minutes > 0 else None
    sensor = S.load_sensor(cfg.sensor)
    ck = load_checkpoint(resume) if resume else None
    log = MetricsLog(output / 'metrics.jsonl' if info.main else None)

    seed_everything(cfg.seed)        # identical initial weights on every rank
    pipe = ExposurePipeline(cfg, sensor).to(info.device)
    init_note = None
    if cfg.init_from and ck is None:
        init_note = init_weights_from(pipe, cfg.init_from)
    if ck is not None:
        pipe.load_state_dict(ck['model'])
    seed_everything(cfg.seed * 1000 + 1 + info.rank)     # per-rank noise stream

    # data (rank 0 fills the cache, the others wait)
    train_src = build_source(cfg, sensor, 'train')
    val_src = build_source(cfg, sensor, 'val') if cfg.val_size else None
    if info.main:
        for src in (train_src, val_src):
            if src is not None:
                src.prepare(progress=progress)
    barrier(info)
    train_set = TwoFrameExamples(train_src, sensor, cfg, train=True)
    sampler: DistributedSampler = DistributedSampler(
        train_set, num_replicas=info.world, rank=info.rank, shuffle=True, seed=cfg.seed,
        drop_last=True)
    per_rank = len(sampler) // cfg.batch_size
    steps_per_epoch = min(per_rank, cfg.max_steps_per_epoch or per_rank)
    if steps_per_epoch < 1:
        raise ConfigError(f'train config: {len(train_set)} training pairs give no full batch '
                          f'of {cfg.batch_size} on each of {info.world} process(es)')
    val_loader = None
    if val_src is not None and info.main:
        val_loader = DataLoader(TwoFrameExamples(val_src, sensor, cfg, train=False),
                                batch_size=cfg.batch_size, shuffle=False,
                                num_workers=cfg.num_workers, collate_fn=collate,
                                generator=loader_generator(cfg.seed))

    model: torch.nn.Module = pipe
    if info.initialised:
        model = torch.nn.parallel.DistributedDataParallel(
            pipe, device_ids=[info.device.index] if info.device.type == 'cuda' else None,
            find_unused_parameters=False)
    optimizer = build_optimizer(pipe, cfg)
    total_steps = steps_per_epoch * cfg.epochs
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg, total_steps))
    start_epoch, start_step, state = 0, 0, {'global_step': 0}
    metrics_hist = []
    if ck is not None:
        optimizer.load_state_dict(ck['optimizer'])
        if ck.get('scheduler') is not None:
            scheduler.load_state_dict(ck['scheduler'])
        start_epoch, start_step = int(ck['epoch']), int(ck.get('step_in_epoch', 0))
        state['global_step'] = int(ck['global_step'])
        rngs = ck.get('rng') or []
        if info.rank < len(rngs):
            set_rng_state(rngs[info.rank])
        metrics_hist = list(ck.get('metrics', {}).get('history', []))
    if info.main:
        output.mkdir(parents=True, exist_ok=True)
        import yaml
        (output / 'config.yaml').write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
        log.write({'type': 'start', 'time': time.time(), 'world_size': info.world,
                   'device': str(info.device), 'resume': str(resume) if resume else None,
                   'start_epoch': start_epoch, 'start_step': start_step,
                   'steps_per_epoch': steps_per_epoch, 'train_pairs': len(train_set),
                   'init_from': init_note, 'num_threads': torch.get_num_threads()})
        LOG.info('training %s (ae=%s): %d pairs, %d steps/epoch x %d epochs, world %d, %s',
                 cfg.name, cfg.ae, len(train_set), steps_per_epoch, cfg.epochs, info.world,
                 info.device)

    def snapshot(epoch_done, step_in_epoch, last_metrics):
        rng = gather(rng_state(), info)
        return checkpoint_dict(model, cfg, optimizer, scheduler, epoch_done, step_in_epoch,
                               state['global_step'], rng,
                               {'last': last_metrics, 'history': metrics_hist})

    last_eval = metrics_hist[-1] if metrics_hist else {}
    done_steps, stopped, ck_out = start_step, False, None
    for epoch in range(start_epoch, cfg.epochs):
        train_set.set_epoch(epoch)
        sampler.set_epoch(epoch)
        skip = start_step if epoch == start_epoch else 0
        order = list(iter(sampler))[:steps_per_epoch * cfg.batch_size][skip * cfg.batch_size:]
        # own generator: iterating a loader must not draw from the global RNG stream,
        # or a resumed run (new loader mid-epoch) would see different noise
        loader = DataLoader(train_set, batch_size=cfg.batch_size, sampler=order,
                            num_workers=cfg.num_workers, collate_fn=collate, drop_last=True,
                            generator=loader_generator(cfg.seed * 1000 + epoch))
        t_epoch = time.time()
        res = train_one_epoch(model, optimizer, scheduler, loader, epoch, cfg, info, log,
                              state, deadline, progress, start_step=skip)
        done_steps, stopped = res['steps'], res['stopped']
        complete = done_steps >= steps_per_epoch
        ev = None
        if info.main and val_loader is not None and (
                complete and ((epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs)
                or stopped):
            t_eval = time.time()
            ev = evaluate(model, val_loader, cfg, info.device, progress=False)
            last_eval = {'epoch': epoch + 1 if complete else epoch + done_steps /
                         steps_per_epoch, 'summary': ev['summary'],
                         'ap50': {k: ev[k]['ap50'] for k in ev if k != 'summary'},
                         'eval_s': time.time() - t_eval}
            metrics_hist.append(last_eval)
            log.write({'type': 'eval', **last_eval})
            LOG.info('epoch %d val mAP@0.5: %s', epoch + 1,
                     ', '.join(f'{k} {v:.3f}' for k, v in ev['summary'].items()))
        if info.main:
            log.write({'type': 'epoch', 'epoch': epoch + 1, 'loss': res['loss'],
                       'steps': done_steps, 'complete': complete,
                       'epoch_s': time.time() - t_epoch,
                       'elapsed_s': time.time() - t_start})
        ck_out = snapshot(epoch + 1 if complete else epoch, 0 if complete else done_steps,
                          last_eval)
        if info.main:
            save_checkpoint(output / f'checkpoint_epoch{epoch + 1:03d}.pt', ck_out)
        if stopped:
            LOG.info('stopping: --max-minutes %.1f reached in epoch %d after %d steps',
                     minutes, epoch + 1, done_steps)
            break
    if ck_out is None:            # no epoch ran (resumed a finished run)
        ck_out = snapshot(cfg.epochs, 0, last_eval)
    hashes = gather(state_hash(pipe), info)
    summary = {'output': str(output), 'epochs_completed': ck_out['epoch'],
               'rank_state_hashes': hashes,
               'step_in_epoch': ck_out['step_in_epoch'], 'global_step': state['global_step'],
               'stopped_by_time': stopped, 'elapsed_s': time.time() - t_start,
               'world_size': info.world, 'last_eval': last_eval}
    if info.main:
        save_checkpoint(output / 'final.pt', ck_out)
        fp = fingerprint(pipe, to_device(probe_batch(cfg, sensor), info.device), cfg.seed)
        slim = checkpoint_dict(model, cfg, epoch=ck_out['epoch'],
                               step_in_epoch=ck_out['step_in_epoch'],
                               global_step=state['global_step'],
                               metrics={'last': last_eval, 'history': metrics_hist,
                                        'train_time_s': time.time() - t_start,
                                        'world_size': info.world, 'fingerprint': fp},
                               slim=True)
        save_checkpoint(output / 'model.pt', slim)
        if export:
            save_checkpoint(export, slim)
            summary['export'] = str(export)
        summary['curve'] = str(plot_training_curve(output / 'curve.png',
                                                   output / 'metrics.jsonl'))
        log.write({'type': 'end', **{k: v for k, v in summary.items() if k != 'last_eval'}})
    barrier(info)
    return summary
