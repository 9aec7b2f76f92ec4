"""
Training the personalized policy: stage 1 (supervised, Eq. 2) and stage 2 (REINFORCE).

Stage 1 (:func:`train_stage1`): the whole network from scratch on exposure variants of
the training scenes, MSE between ``dEV / scale_ev`` and the expert's ideal correction
``y / scale_ev`` (labels normalised to [-1, 1] as in the paper); SGD momentum 0.9,
lr 0.003, weight decay 2e-4, lr halved every 15 epochs; an epoch shows every training
scene ``variants_per_scene`` times (random variants, random horizontal flip).

Stage 2 (:func:`train_stage2`, :func:`personalize`): from the stage-1 model (or a fresh
one, ``init: scratch``), ``n_labels`` labelled originals of one expert: per scene one
original variant ``t0`` (with probability ``p_well`` the variant nearest the expert's
ideal, which is then "well", otherwise a random one) labelled under / well / over from
its ideal correction; every variant ``t`` of the scene gives a state with the reward of
:mod:`~neural_ae.core.personalized.rewards` (``Y_t = v_t0 - v_t``); a Gaussian policy
``N(F(s), sigma^2)`` with ``samples`` actions per state and a leave-one-out reward
baseline (``baseline: leave_one_out``; ``none`` is the paper's plain REINFORCE), Adam.
``supervision: supervised`` is the fully supervised
reference (MSE to the exact ideal corrections of the same scenes, same optimiser and
steps). By default only the metering heads train (``train_backbone: false``): the
backbone's features are computed once; this is also what the node's online updates do.

Both write full checkpoints (model, optimiser, scheduler, progress, RNG, curve) after
every epoch (stage 1) or ``eval_every`` steps (stage 2), resume from one, stop on a
non-finite loss (:class:`TrainingError`) and seed everything from ``seed``.
"""
import json
import logging
import math
import os
from pathlib import Path
import time
from typing import Optional

from neural_ae.core.errors import ConfigError, TrainingError
from neural_ae.core.personalized.config import PersonalizedConfig
from neural_ae.core.personalized.data import load_variants, VariantSet, VariantSpec
from neural_ae.core.personalized.policy import (load_policy, policy_checkpoint, PolicyNet,
                                                save_policy)
from neural_ae.core.personalized.rewards import advantage, labels_of, reinforce_loss, reward
import numpy as np
import torch

LOG = logging.getLogger(__name__)
RUN_FORMAT = 'neural_ae.personalized.train/1'


def variant_spec(cfg: PersonalizedConfig) -> VariantSpec:
    """Return the variant cache description of ``cfg``."""
    from neural_ae.core.checkpoints import resolve_model_path

    return VariantSpec(cfg.height, cfg.width, cfg.size, cfg.sensor,
                       str(resolve_model_path(cfg.detector_model)))


def load_split(cfg: PersonalizedConfig, split: str, count: Optional[int] = None) -> VariantSet:
    """Variants of ``split`` (``count`` scenes; the config's size by default)."""
    n = count if count is not None else getattr(cfg, f'{split}_size')
    return load_variants(split, n, variant_spec(cfg), cfg.cache_dir)


def to_batch(images: np.ndarray, flip: Optional[np.ndarray] = None) -> torch.Tensor:
    """uint8 ``(B, S, S, 3)`` -> float ``(B, 3, S, S)``, rows of ``flip`` mirrored."""
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255.0
    if flip is not None and flip.any():
        idx = torch.from_numpy(np.nonzero(flip)[0])
        x[idx] = x[idx].flip(-1)
    return x


@torch.no_grad()
def predict(net: PolicyNet, images: np.ndarray, batch: int = 256) -> np.ndarray:
    """``dEV`` [EV] of ``images`` ``(..., S, S, 3)`` (eval mode), shape ``images.shape[:-3]``."""
    net.eval()
    flat = images.reshape((-1,) + images.shape[-3:])
    out = [net(to_batch(flat[i:i + batch])).numpy() for i in range(0, len(flat), batch)]
    return np.concatenate(out).reshape(images.shape[:-3]) if out else np.zeros(0)


@torch.no_grad()
def features(net: PolicyNet, images: np.ndarray, batch: int = 256) -> torch.Tensor:
    """Backbone features ``(..., 384, h, w)`` float16 of ``images`` (eval mode)."""
    net.eval()
    flat = images.reshape((-1,) + images.shape[-3:])
    out = [net.features(to_batch(flat[i:i + batch])).half() for i in range(0, len(flat), batch)]
    f = torch.cat(out)
    return f.reshape(tuple(images.shape[:-3]) + tuple(f.shape[1:]))


@torch.no_grad()
def predict_heads(net: PolicyNet, feats: torch.Tensor, batch: int = 2048) -> np.ndarray:
    """``dEV`` from cached features ``(..., C, h, w)`` (eval mode)."""
    net.eval()
    lead = tuple(feats.shape[:-3])
    flat = feats.reshape((-1,) + tuple(feats.shape[-3:]))
    out = [net.head(flat[i:i + batch].float())[0] for i in range(0, len(flat), batch)]
    return torch.cat(out).numpy().reshape(lead)


def mae_ev(pred: np.ndarray, ideal: np.ndarray) -> float:
    """Mean absolute error [EV]."""
    return float(np.mean(np.abs(np.asarray(pred) - np.asarray(ideal))))


def _write_json(path: Path, data) -> None:
    tmp = path.with_name(f'.{path.name}.{os.getpid()}.tmp')
    tmp.write_text(json.dumps(data, indent=1, default=float))
    os.replace(tmp, path)


def _save(path: Path, ck: dict) -> None:
    tmp = path.with_name(f'.{path.name}.{os.getpid()}.tmp')
    torch.save(ck, tmp)
    os.replace(tmp, path)


def _prepare_out(out: Path, resume) -> None:
    if resume is None and (out / 'final.pt').exists():
        raise TrainingError(f'{out} holds a finished run; use --resume or another --out')
    out.mkdir(parents=True, exist_ok=True)


def _load_run(resume) -> dict:
    from neural_ae.core.checkpoints import read_checkpoint

    ck = read_checkpoint(resume, 'personalized training checkpoint', error=TrainingError)
    if ck.get('format') != RUN_FORMAT:
        raise TrainingError(f'{resume} is not a personalized training checkpoint')
    return ck


def _check_finite(loss: torch.Tensor, where: str) -> None:
    if not torch.isfinite(loss):
        raise TrainingError(f'non-finite loss {float(loss)} at {where}; stopped (lower lr?)')


# --------------------------------------------------------------------------- stage 1


def train_stage1(cfg: PersonalizedConfig, out, resume=None, progress: bool = False,
                 train: Optional[VariantSet] = None, val: Optional[VariantSet] = None) -> dict:
    """Stage 1 (see the module docstring); returns the summary written to summary.json."""
    out = Path(out)
    _prepare_out(out, resume)
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    train = train if train is not None else load_split(cfg, 'train')
    val = val if val is not None else load_split(cfg, 'val')
    torch.manual_seed(cfg.seed)
    net = PolicyNet(cfg.metering, cfg.scale_ev, cfg.dropout)
    opt = torch.optim.SGD(net.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                          weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.StepLR(opt, cfg.lr_step_epochs, cfg.lr_gamma)
    curve: list = []
    start = 0
    if resume is not None:
        ck = _load_run(resume)
        net.load_state_dict(ck['policy']['state_dict'])
        opt.load_state_dict(ck['optimizer'])
        sched.load_state_dict(ck['scheduler'])
        start, curve = int(ck['epoch']), list(ck['curve'])
    ideal_tr = train.ideal(cfg.expert)
    val_ideal = val.ideal(cfg.expert)
    t0 = time.monotonic()
    for epoch in range(start, cfg.epochs):
        rng = np.random.default_rng([cfg.seed, epoch])
        torch.manual_seed(cfg.seed * 100_003 + epoch)
        scenes = np.repeat(np.arange(len(train)), cfg.variants_per_scene)
        rng.shuffle(scenes)
        var = rng.integers(0, len(train.variants_ev), len(scenes))
        flip = rng.random(len(scenes)) < 0.5
        net.train()
        losses = []
        for b in range(0, len(scenes), cfg.batch_size):
            i, j = scenes[b:b + cfg.batch_size], var[b:b + cfg.batch_size]
            x = to_batch(train.images[i, j], flip[b:b + cfg.batch_size])
            y = torch.from_numpy(ideal_tr[i, j].astype(np.float32)) / cfg.scale_ev
            y = y.clamp(-1.0, 1.0)
            loss = torch.mean((net(x) / cfg.scale_ev - y) ** 2)
            _check_finite(loss, f'epoch {epoch + 1} batch {b // cfg.batch_size}')
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        sched.step()
        val_mae = mae_ev(predict(net, val.images), val_ideal)
        curve.append({'epoch': epoch + 1, 'loss': float(np.mean(losses)), 'val_mae_ev': val_mae,
                      'lr': opt.param_groups[0]['lr'], 'minutes': (time.monotonic() - t0) / 60})
        LOG.info('stage 1 %s epoch %d: loss %.4f, val MAE %.3f EV', cfg.metering, epoch + 1,
                 curve[-1]['loss'], val_mae)
        ck = {'format': RUN_FORMAT, 'policy': policy_checkpoint(net, {'stage': 1}),
              'optimizer': opt.state_dict(), 'scheduler': sched.state_dict(),
              'epoch': epoch + 1, 'config': cfg.to_dict(), 'curve': curve}
        _save(out / 'checkpoint.pt', ck)
        with (out / 'metrics.jsonl').open('a') as fh:
            fh.write(json.dumps(curve[-1]) + '\n')
        if cfg.max_minutes and (time.monotonic() - t0) / 60 >= cfg.max_minutes:
            LOG.warning('stage 1: max_minutes %.1f reached after epoch %d', cfg.max_minutes,
                        epoch + 1)
            break
    _save(out / 'final.pt', ck)
    meta = {'stage': 1, 'expert': cfg.expert, 'epochs': curve[-1]['epoch'],
            'val_mae_ev': curve[-1]['val_mae_ev'], 'train_scenes': len(train),
            'seeds': 'train 3,700,000.., val 3,800,000..'}
    save_policy(out / 'policy.pt', net, meta)
    summary = {'name': cfg.name, 'out': str(out), 'curve': curve, **meta}
    _write_json(out / 'summary.json', summary)
    return summary


# --------------------------------------------------------------------------- stage 2


def feedback_originals(ideal: np.ndarray, p_well: float, rng: np.random.Generator,
                       delta: float = 0.1) -> tuple:
    """
    One labelled original per scene: ``(t0 (N,), code (N,))`` from ideal ``(N, V)`` [EV].

    With probability ``p_well`` the variant nearest the ideal, else a uniform one.
    """
    n, v = ideal.shape
    nearest = np.argmin(np.abs(ideal), axis=1)
    t0 = np.where(rng.random(n) < p_well, nearest, rng.integers(0, v, n))
    code = labels_of(ideal[np.arange(n), t0], delta)
    return t0, code


def config_originals(ideal: np.ndarray, cfg: PersonalizedConfig) -> tuple:
    """Draw the labelled originals :func:`personalize` uses for ``cfg`` (seed ``[seed, 2]``)."""
    return feedback_originals(ideal, cfg.p_well, np.random.default_rng([cfg.seed, 2]),
                              cfg.delta_ev)


def personalize(net: PolicyNet, cfg: PersonalizedConfig, ideal: np.ndarray,
                variants_ev: np.ndarray, feats: Optional[torch.Tensor] = None,
                images: Optional[np.ndarray] = None, state: Optional[dict] = None,
                on_eval=None, feedback: Optional[tuple] = None) -> dict:
    """
    Stage 2 on ``N`` scenes: ``ideal`` ``(N, V)`` [EV] of the expert; returns the log.

    ``variants_ev``: the offsets the variants were captured at, ``(V,)`` for all scenes
    or ``(N, V)`` per scene (:attr:`VariantSet.actual_ev`, after the sensor's clamp).

    ``feats`` (cached backbone features ``(N, V, C, h, w)``, heads only) or ``images``
    (``(N, V, S, S, 3)``, with ``cfg.train_backbone``) are the states. ``state`` resumes
    (``{'step', 'optimizer'}``); ``on_eval(step, net, opt)`` is called every
    ``eval_every`` steps and at the end. ``feedback`` ``(t0 (N,), code (N,))`` replaces
    the labels drawn from ``ideal`` (:func:`feedback_originals`): another source's
    under / well / over (-1 / 0 / 1) of the originals ``t0`` (issue 13's judge);
    ``ideal`` is then only read for the supervised reference.
    """
    if feedback is None:
        t0, code = config_originals(ideal, cfg)
    else:
        t0, code = (np.asarray(a) for a in feedback)
        if t0.shape != (ideal.shape[0],) or code.shape != t0.shape:
            raise ConfigError(f'feedback needs t0 and code of shape ({ideal.shape[0]},), '
                              f'got {t0.shape} and {code.shape}')
    n, v = ideal.shape
    vev = np.broadcast_to(np.asarray(variants_ev, np.float32), (n, v))
    back = (vev[np.arange(n), t0][:, None] - vev).astype(np.float32)
    params = list(net.parameters()) if cfg.train_backbone else net.head_parameters()
    if not cfg.train_backbone:
        for p in net.backbone.parameters():
            p.requires_grad_(False)
    opt = torch.optim.Adam(params, lr=cfg.lr)
    step = 0
    if state:
        opt.load_state_dict(state['optimizer'])
        step = int(state['step'])
    curve_log: list = []
    log = {'labels': {lab: int(np.sum(code == c)) for lab, c in
                      (('under', -1), ('well', 0), ('over', 1))}, 'curve': curve_log}
    gen = torch.Generator().manual_seed(cfg.seed * 7919 + step)
    torch.manual_seed(cfg.seed * 104_729 + step)
    ideal_t = torch.from_numpy(ideal.astype(np.float32))
    code_t = torch.from_numpy(code.astype(np.float32))
    back_t = torch.from_numpy(back)
    losses = []
    while step < cfg.steps:
        brng = np.random.default_rng([cfg.seed, 3, step])
        i = brng.integers(0, n, cfg.batch_size)
        j = brng.integers(0, v, cfg.batch_size)
        net.train()
        if cfg.train_backbone:
            assert images is not None
            mean = net(to_batch(images[i, j], brng.random(len(i)) < 0.5))
        else:
            assert feats is not None
            mean = net.head(feats[torch.from_numpy(i), torch.from_numpy(j)].float())[0]
        if cfg.supervision == 'supervised':
            y = ideal_t[i, j] / cfg.scale_ev
            loss = torch.mean((mean / cfg.scale_ev - y.clamp(-1, 1)) ** 2)
        else:
            k = cfg.samples
            a = mean.detach()[:, None] + cfg.sigma_ev * torch.randn(
                (len(i), k), generator=gen)
            r = reward(code_t[i][:, None].expand(-1, k), a, back_t[i, j][:, None].expand(-1, k),
                       cfg.delta_ev)
            if cfg.baseline == 'none':
                loss = reinforce_loss(mean[:, None], a, r, cfg.sigma_ev)
            else:
                adv = advantage(r, cfg.baseline)
                loss = torch.mean(adv * (mean[:, None] - a) ** 2) / (2.0 * cfg.sigma_ev ** 2)
        _check_finite(loss, f'step {step}')
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        step += 1
        if step % cfg.eval_every == 0 or step == cfg.steps:
            curve_log.append({'step': step, 'loss': float(np.mean(losses))})
            losses = []
            if on_eval is not None:
                on_eval(step, net, opt)
    for p in net.parameters():
        p.requires_grad_(True)
    return log


def init_policy(cfg: PersonalizedConfig) -> PolicyNet:
    """Return the starting network of stage 2: the stage-1 file or a fresh seeded one."""
    if cfg.init == 'stage1':
        net = load_policy(cfg.init_from)
        net.dropout.p = cfg.dropout
        return net
    torch.manual_seed(cfg.seed)
    return PolicyNet(cfg.metering, cfg.scale_ev, cfg.dropout)


def train_stage2(cfg: PersonalizedConfig, out, resume=None, progress: bool = False) -> dict:
    """Stage 2 for ``cfg.expert`` on ``cfg.n_labels`` training scenes; test MAE in summary."""
    out = Path(out)
    _prepare_out(out, resume)
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    net = init_policy(cfg)
    state = None
    curve: list = []
    if resume is not None:
        ck = _load_run(resume)
        net.load_state_dict(ck['policy']['state_dict'])
        state = {'step': ck['step'], 'optimizer': ck['optimizer']}
        curve = list(ck['curve'])
    train = load_split(cfg, 'train', cfg.n_labels)
    val = load_split(cfg, 'val')
    feats = None if cfg.train_backbone else features(net, train.images)
    val_feats = None if cfg.train_backbone else features(net, val.images)
    ideal = train.ideal(cfg.expert)
    val_ideal = val.ideal(cfg.expert)

    def on_eval(step, model, opt):
        pred = predict(model, val.images) if cfg.train_backbone else \
            predict_heads(model, val_feats)
        curve.append({'step': step, 'val_mae_ev': mae_ev(pred, val_ideal)})
        LOG.info('stage 2 %s %s step %d: val MAE %.3f EV', cfg.expert, cfg.supervision, step,
                 curve[-1]['val_mae_ev'])
        _save(out / 'checkpoint.pt', {
            'format': RUN_FORMAT, 'policy': policy_checkpoint(model, {'stage': 2}),
            'optimizer': opt.state_dict(), 'step': step, 'config': cfg.to_dict(),
            'curve': curve})

    log = personalize(net, cfg, ideal, train.actual_ev, feats, train.images, state, on_eval)
    os.replace(out / 'checkpoint.pt', out / 'final.pt')
    meta = {'stage': 2, 'expert': cfg.expert, 'supervision': cfg.supervision,
            'init': cfg.init, 'n_labels': cfg.n_labels, 'labels': log['labels'],
            'val_mae_ev': curve[-1]['val_mae_ev']}
    save_policy(out / 'policy.pt', net, meta)
    summary = {'name': cfg.name, 'out': str(out), 'curve': curve, **meta}
    _write_json(out / 'summary.json', summary)
    return summary


def run_config(cfg: PersonalizedConfig, out, resume=None, progress: bool = False) -> dict:
    """Dispatch on ``cfg.task``."""
    if cfg.task == 'personalized_stage1':
        return train_stage1(cfg, out, resume, progress)
    return train_stage2(cfg, out, resume, progress)


def finite(x: float) -> bool:
    """``math.isfinite`` for tables."""
    return math.isfinite(x)
