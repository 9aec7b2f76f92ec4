"""
Training the correction networks (``neural-ae train --config config/train_correction_*.yaml``).

The engine's conventions (:mod:`neural_ae.core.training.engine`): fixed seeds
(:func:`~neural_ae.core.training.rng.seed_everything`), a JSONL metrics log, full
checkpoints (``checkpoint_stepNNNNNN.pt`` every ``checkpoint_every`` steps and
``final.pt``: network, discriminator, both optimizers, step, RNG state) that
``--resume`` continues bit for bit, ``--max-minutes``, a stop with
:class:`~neural_ae.core.errors.TrainingError` naming the step and every loss term on a
non-finite loss, the slim ``model.pt`` (``--export`` copies it), ``curve.png``, and a
folder that holds a run is refused unless resumed.

Batches are deterministic: step ``s`` of a run is batch ``s mod n`` of the permutation of
epoch ``s // n`` (``n`` batches per epoch, permutation seeded by ``(seed, epoch)``), and
every example's draws are seeded by ``(seed, epoch, index)``
(:class:`~neural_ae.core.correction.data.CorrectionPairs`), so a resumed run sees the
same batches as an uninterrupted one.

- ``arch: encdec`` (002): loss ``l1_weight * L1 + tv_weight * TV(output)`` (+
  ``l2_weight * MSE``), Adam.
- ``arch: pix2pix`` (003): generator loss ``adv_weight * LSGAN + content_weight * L1 +
  perceptual_weight * perceptual`` (:class:`~neural_ae.core.correction.losses.
  PerceptualLoss` on the frozen trunk of ``perceptual_from``), discriminator
  :class:`~neural_ae.core.correction.networks.PatchDiscriminator` (``d_layers``), Adam
  ``betas = (0.5, 0.999)`` for both, one D step per G step.
"""
from dataclasses import asdict, dataclass, field, fields
import json
import logging
import math
from pathlib import Path
import time
import typing
from typing import Optional, Union

from neural_ae.core.correction.data import CorrectionPairs, load_isp, SEEDS
from neural_ae.core.correction.losses import (lsgan_d_loss, lsgan_g_loss, PerceptualLoss,
                                              total_variation)
from neural_ae.core.correction.metrics import psnr, ssim
from neural_ae.core.correction.model import CORRECTION_FORMAT, net_kwargs
from neural_ae.core.correction.networks import (CorrectionUNet, param_count,
                                                PatchDiscriminator)
from neural_ae.core.errors import ConfigError, TrainingError
import torch

LOG = logging.getLogger(__name__)

__all__ = ['CorrectionConfig', 'is_correction_config', 'load_correction_config',
           'train_correction']


@dataclass
class CorrectionConfig:
    """
    Every setting of a correction run; the defaults are the only defaults.

    Bounds (outside them a one-line :class:`ConfigError`): sizes even in [32, 8192] px and
    crops multiples of 16 no larger than the frames; ``steps`` in [1, 10,000,000];
    ``batch_size`` in [1, 1024]; sizes of the seed ranges in [1, 1,000,000] pairs, the
    train / val ranges disjoint; ``1 < kappa_min <= kappa_max <= 1000``; weights in
    [0, 1e4]; learning rates in (0, 1]; ``d_layers`` in [1, 6]; ``max_minutes`` in
    [0, 525,600].
    """

    task: str = 'correction'
    name: str = 'correction'
    arch: str = 'encdec'
    seed: int = 0
    sensor: str = 'imx249'
    height: int = 192
    width: int = 320
    crop_height: int = 128
    crop_width: int = 128
    isp_from: str = 'models/hybrid_demo.pt'
    perceptual_from: str = 'models/hybrid_demo.pt'
    cache_dir: str = 'out/cache/scenes'
    train_seed_start: int = SEEDS['train']
    train_size: int = 600
    val_seed_start: int = SEEDS['val']
    val_size: int = 8
    val_kappas: tuple = (0.1, 0.25, 4.0, 10.0)
    kappa_min: float = 1.5
    kappa_max: float = 12.0
    near_fraction: float = 0.1
    widths: tuple = (16, 32, 64, 96, 128)
    leak: float = 0.3
    global_context: bool = True
    residual: bool = False
    l1_weight: float = 1.0
    l2_weight: float = 0.0
    tv_weight: float = 0.02
    tv_beta: float = 1.0
    adv_weight: float = 1.0
    content_weight: float = 20.0
    perceptual_weight: float = 1.0
    perceptual_layers: tuple = (1, 2)
    d_layers: int = 4
    d_width: int = 32
    lr: float = 2e-3
    d_lr: float = 2e-4
    min_lr_fraction: float = 0.05
    batch_size: int = 8
    steps: int = 1000
    eval_every: int = 250
    checkpoint_every: int = 250
    grad_clip_norm: float = 5.0
    max_minutes: float = 0.0
    num_threads: int = 1
    device: str = 'cpu'
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        def bad(msg):
            raise ConfigError(f'correction config: {msg}')

        if self.task != 'correction':
            bad(f"task must be 'correction', got {self.task!r}")
        if self.arch not in ('encdec', 'pix2pix'):
            bad(f'arch must be encdec|pix2pix, got {self.arch!r}')
        for k in ('height', 'width'):
            v = getattr(self, k)
            if not (32 <= v <= 8192 and v % 2 == 0):
                bad(f'{k} must be even in [32, 8192], got {v}')
        m = 2 ** (len(self.widths) - 1)
        for k, lim in (('crop_height', self.height), ('crop_width', self.width)):
            v = getattr(self, k)
            if not (m <= v <= lim and v % m == 0):
                bad(f'{k} must be a multiple of {m} in [{m}, {lim}], got {v}')
        if not 2 <= len(self.widths) <= 8 or not all(1 <= w <= 1024 for w in self.widths):
            bad(f'widths must be 2..8 channel counts in [1, 1024], got {self.widths}')
        for k in ('steps',):
            if not 1 <= getattr(self, k) <= 10_000_000:
                bad(f'{k} must be in [1, 10000000]')
        if not 1 <= self.batch_size <= 1024:
            bad(f'batch_size must be in [1, 1024], got {self.batch_size}')
        for k in ('train_size', 'val_size'):
            if not 1 <= getattr(self, k) <= 1_000_000:
                bad(f'{k} must be in [1, 1000000], got {getattr(self, k)}')
        tr = (self.train_seed_start, self.train_seed_start + self.train_size)
        va = (self.val_seed_start, self.val_seed_start + self.val_size)
        if tr[0] < va[1] and va[0] < tr[1]:
            bad(f'train seeds {tr[0]}..{tr[1] - 1} overlap val seeds {va[0]}..{va[1] - 1}')
        if not 1.0 < self.kappa_min <= self.kappa_max <= 1000.0:
            bad(f'need 1 < kappa_min <= kappa_max <= 1000, got {self.kappa_min}, '
                f'{self.kappa_max}')
        if not 0.0 <= self.near_fraction <= 1.0:
            bad(f'near_fraction must be in [0, 1], got {self.near_fraction}')
        for k in ('l1_weight', 'l2_weight', 'tv_weight', 'adv_weight', 'content_weight',
                  'perceptual_weight'):
            v = getattr(self, k)
            if not (math.isfinite(v) and 0.0 <= v <= 1e4):
                bad(f'{k} must be in [0, 1e4], got {v}')
        for k in ('lr', 'd_lr'):
            v = getattr(self, k)
            if not (math.isfinite(v) and 0.0 < v <= 1.0):
                bad(f'{k} must be in (0, 1], got {v}')
        if not 0.0 < self.leak <= 1.0:
            bad(f'leak must be in (0, 1], got {self.leak}')
        if not 1 <= self.d_layers <= 6:
            bad(f'd_layers must be in [1, 6], got {self.d_layers}')
        if not 0.0 <= self.max_minutes <= 525_600:
            bad(f'max_minutes must be in [0, 525600], got {self.max_minutes}')
        if not all(0.0 < k for k in self.val_kappas) or not self.val_kappas:
            bad(f'val_kappas must be positive numbers, got {self.val_kappas}')
        if self.eval_every < 1 or self.checkpoint_every < 1:
            bad('eval_every and checkpoint_every must be >= 1')

    def to_dict(self) -> dict:
        """Plain dict (lists for tuples) for checkpoints and the saved config."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def is_correction_config(path: Union[str, Path]) -> bool:
    """Tell whether the YAML at ``path`` is a correction config (``task: correction``)."""
    from neural_ae.core.training.config import config_task

    return config_task(path) == 'correction'


def correction_config_from_dict(data: dict, source: str = 'dict') -> CorrectionConfig:
    """Build a config from a mapping; unknown keys and wrong types are one-line errors."""
    hints = typing.get_type_hints(CorrectionConfig)
    names = {f.name for f in fields(CorrectionConfig)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f'correction config {source}: unknown key(s) {unknown}')
    values = {}
    for key, value in data.items():
        hint = hints[key]
        ok = False
        if hint is bool:
            ok = isinstance(value, bool)
        elif hint is int:
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif hint is float:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            value = float(value) if ok else value
        elif hint is str:
            ok = isinstance(value, str) or value is None
            value = value or ''
        elif hint is tuple:
            ok = isinstance(value, (list, tuple)) and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
            value = tuple(value) if ok else value
        else:
            ok = isinstance(value, dict) or value is None
            value = value or {}
        if not ok:
            raise ConfigError(f'correction config {source}: {key} must be '
                              f'{getattr(hint, "__name__", hint)}, got {value!r}')
        values[key] = value
    try:
        return CorrectionConfig(**values)
    except ConfigError as err:
        raise ConfigError(f'{err} ({source})') from err


def load_correction_config(path: Union[str, Path], **overrides) -> CorrectionConfig:
    """Read a correction YAML; ``overrides`` that are not None replace its values."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f'correction config not found: {path}')
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f'correction config {path} is not valid YAML: '
                          f'{str(err).splitlines()[0]}') from err
    if not isinstance(data, dict):
        raise ConfigError(f'correction config {path}: expected a mapping')
    data.update({k: v for k, v in overrides.items() if v is not None})
    return correction_config_from_dict(data, str(path))


# --------------------------------------------------------------------------- parts


def _sources(cfg: CorrectionConfig):
    from neural_ae.core.training.data import ProceduralPairs

    train = ProceduralPairs(cfg.train_seed_start, cfg.train_size, cfg.height, cfg.width,
                            cfg.cache_dir or None)
    val = ProceduralPairs(cfg.val_seed_start, cfg.val_size, cfg.height, cfg.width,
                          cfg.cache_dir or None)
    return train, val


def _lr_at(cfg: CorrectionConfig, step: int) -> float:
    """Cosine from ``lr`` to ``min_lr_fraction * lr`` over ``steps`` (as a factor)."""
    t = min(1.0, step / max(1, cfg.steps))
    return cfg.min_lr_fraction + (1 - cfg.min_lr_fraction) * 0.5 * (1 + math.cos(math.pi * t))


def _perceptual(cfg: CorrectionConfig, sensor) -> Optional[PerceptualLoss]:
    if cfg.arch != 'pix2pix' or cfg.perceptual_weight <= 0:
        return None
    from neural_ae.core.checkpoints import resolve_model_path
    from neural_ae.core.models.perception import load_perception

    perception = load_perception(resolve_model_path(cfg.perceptual_from), sensor)
    t = perception.detector.transform
    return PerceptualLoss(perception.detector.backbone.body, cfg.perceptual_layers,
                          tuple(t.image_mean), tuple(t.image_std))


def _generator_losses(cfg, out, batch, disc, perc) -> dict:
    tgt = batch['target']
    losses = {'l1': (out - tgt).abs().mean()}
    if cfg.arch == 'encdec':
        losses['tv'] = total_variation(out, cfg.tv_beta)
        if cfg.l2_weight > 0:
            losses['l2'] = ((out - tgt) ** 2).mean()
        return losses
    losses['adv'] = lsgan_g_loss(disc(batch['input'], out))
    if perc is not None:
        losses['perceptual'] = perc(out, tgt)
    return losses


def _weighted(cfg, losses: dict) -> torch.Tensor:
    w = {'l1': cfg.l1_weight if cfg.arch == 'encdec' else cfg.content_weight,
         'tv': cfg.tv_weight, 'l2': cfg.l2_weight, 'adv': cfg.adv_weight,
         'perceptual': cfg.perceptual_weight}
    return torch.stack([w[k] * v for k, v in losses.items()]).sum()


def validate(net, val_set, device, batch_size: int = 4) -> dict:
    """Mean PSNR / SSIM of ``net`` on ``val_set`` (full frames), and of the identity."""
    net.eval()
    p, s, p0 = [], [], []
    with torch.no_grad():
        for i0 in range(0, len(val_set), batch_size):
            items = [val_set[i] for i in range(i0, min(len(val_set), i0 + batch_size))]
            x = torch.stack([it['input'] for it in items]).to(device)
            y = torch.stack([it['target'] for it in items]).to(device)
            out = net(x)
            p += psnr(out, y).tolist()
            s += ssim(out, y).tolist()
            p0 += psnr(x, y).tolist()
    net.train()
    return {'psnr': sum(p) / len(p), 'ssim': sum(s) / len(s), 'psnr_identity': sum(p0) / len(p0)}


def _save(path: Path, ck: dict) -> None:
    tmp = path.with_name(f'.{path.name}.tmp')
    torch.save(ck, tmp)
    tmp.replace(path)


def _curve(out: Path) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    steps, loss, ev = [], [], []
    for line in (out / 'metrics.jsonl').read_text().splitlines():
        rec = json.loads(line)
        if rec['type'] == 'step':
            steps.append(rec['step'])
            loss.append(rec['loss'])
        elif rec['type'] == 'eval':
            ev.append(rec)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.6))
    a1.plot(steps, loss, lw=0.6)
    a1.set_yscale('log')
    a1.set_xlabel('step')
    a1.set_ylabel('generator loss')
    a1.grid(alpha=0.3)
    if ev:
        a2.plot([e['step'] for e in ev], [e['psnr'] for e in ev], 'o-', label='network')
        a2.plot([e['step'] for e in ev], [e['psnr_identity'] for e in ev], 'k--',
                label='no correction')
        a2.legend()
    a2.set_xlabel('step')
    a2.set_ylabel('val PSNR [dB]')
    a2.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / 'curve.png', dpi=100)
    plt.close(fig)


def train_correction(cfg: CorrectionConfig, output: Union[str, Path],
                     resume: Optional[str] = None, max_minutes: Optional[float] = None,
                     progress: bool = True, export: Optional[str] = None) -> dict:
    """Run (or resume) one correction training; return a JSON-ready summary."""
    from neural_ae.core.checkpoints import read_checkpoint
    from neural_ae.core.sensor import load_sensor
    from neural_ae.core.training.rng import rng_state, seed_everything, set_rng_state

    out = Path(output)
    if resume is None and out.exists() and any(out.glob('*.pt')):
        raise ConfigError(f'{out} already holds a training run; pass --resume '
                          f'{out / "final.pt"} or another --out')
    out.mkdir(parents=True, exist_ok=True)
    if cfg.num_threads > 0:
        torch.set_num_threads(cfg.num_threads)
    device = torch.device('cuda' if cfg.device == 'auto' and torch.cuda.is_available()
                          else ('cpu' if cfg.device == 'auto' else cfg.device))
    seed_everything(cfg.seed)
    sensor = load_sensor(cfg.sensor)
    isp = load_isp(cfg.isp_from, sensor)
    train_src, val_src = _sources(cfg)
    for src in (train_src, val_src):
        src.prepare(progress=progress)
    train_set = CorrectionPairs(train_src, sensor, isp, cfg.seed,
                                crop=(cfg.crop_height, cfg.crop_width),
                                kappa_min=cfg.kappa_min, kappa_max=cfg.kappa_max,
                                near_fraction=cfg.near_fraction)
    val_set = CorrectionPairs(val_src, sensor, isp, cfg.seed + 1, kappas=cfg.val_kappas)
    net = CorrectionUNet(**net_kwargs(cfg)).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr,
                           betas=(0.9, 0.999) if cfg.arch == 'encdec' else (0.5, 0.999))
    disc: Optional[PatchDiscriminator] = None
    d_opt: Optional[torch.optim.Optimizer] = None
    if cfg.arch == 'pix2pix':
        disc = PatchDiscriminator(cfg.d_layers, cfg.d_width).to(device)
        d_opt = torch.optim.Adam(disc.parameters(), lr=cfg.d_lr, betas=(0.5, 0.999))
    perc = _perceptual(cfg, sensor)
    if perc is not None:
        perc = perc.to(device)
    step = 0
    if resume:
        ck = read_checkpoint(resume, 'correction checkpoint')
        if ck.get('format') != CORRECTION_FORMAT or 'optimizer' not in ck:
            raise ConfigError(f'--resume {resume}: not a correction training checkpoint')
        net.load_state_dict(ck['model'])
        opt.load_state_dict(ck['optimizer'])
        if disc is not None and d_opt is not None:
            disc.load_state_dict(ck['disc'])
            d_opt.load_state_dict(ck['disc_optimizer'])
        step = int(ck['step'])
        set_rng_state(ck['rng'])
        LOG.info('resumed %s at step %d', resume, step)
    (out / 'config.json').write_text(json.dumps(cfg.to_dict(), indent=1))
    log_path = out / 'metrics.jsonl'
    n_batches = max(1, len(train_set) // cfg.batch_size)
    limit = cfg.max_minutes if max_minutes is None else max_minutes
    deadline = time.time() + 60.0 * limit if limit and limit > 0 else None
    t0 = time.time()
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=cfg.steps, initial=step, desc=cfg.name, unit='step')

    def checkpoint(full: bool) -> dict:
        ck = {'format': CORRECTION_FORMAT, 'arch': cfg.arch, 'net': net_kwargs(cfg),
              'model': {k: v.detach().cpu() for k, v in net.state_dict().items()},
              'isp': {k: v.detach().cpu() for k, v in isp.state_dict().items()},
              'config': cfg.to_dict(), 'step': step, 'params': param_count(net),
              'torch': str(torch.__version__)}
        if full:
            ck.update({'optimizer': opt.state_dict(), 'rng': rng_state()})
            if disc is not None and d_opt is not None:
                ck.update({'disc': disc.state_dict(), 'disc_optimizer': d_opt.state_dict()})
        return ck

    last_eval: dict = {}
    net.train()
    stopped = False
    with log_path.open('a') as log:
        while step < cfg.steps:
            epoch, b = divmod(step, n_batches)
            train_set.set_epoch(epoch)
            gen = torch.Generator()
            gen.manual_seed(cfg.seed * 100_003 + epoch)
            perm = torch.randperm(len(train_set), generator=gen)
            idx = perm[b * cfg.batch_size:(b + 1) * cfg.batch_size].tolist()
            items = [train_set[i] for i in idx]
            batch = {k: torch.stack([it[k] for it in items]).to(device)
                     for k in ('input', 'target')}
            factor = _lr_at(cfg, step)
            for g in opt.param_groups:
                g['lr'] = cfg.lr * factor
            out_img = net(batch['input'])
            terms = {}
            if disc is not None and d_opt is not None:
                for g in d_opt.param_groups:
                    g['lr'] = cfg.d_lr * factor
                d_loss = lsgan_d_loss(disc(batch['input'], batch['target']),
                                      disc(batch['input'], out_img.detach()))
                if not math.isfinite(float(d_loss.detach())):
                    raise TrainingError(f'non-finite discriminator loss at step {step + 1}: '
                                        f'{float(d_loss.detach())}')
                d_opt.zero_grad(set_to_none=True)
                d_loss.backward()
                d_opt.step()
                terms['d'] = float(d_loss.detach())
            losses = _generator_losses(cfg, out_img, batch, disc, perc)
            loss = _weighted(cfg, losses)
            value = float(loss.detach())
            terms.update({k: float(v.detach()) for k, v in losses.items()})
            if not math.isfinite(value):
                raise TrainingError(f'non-finite loss at step {step + 1} (epoch {epoch + 1}): '
                                    f'loss {value}; terms ' +
                                    ', '.join(f'{k}={v:.4g}' for k, v in terms.items()))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip_norm > 0:
                torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip_norm)
            opt.step()
            step += 1
            log.write(json.dumps({'type': 'step', 'step': step, 'epoch': epoch + 1,
                                  'loss': value, **terms, 'lr': cfg.lr * factor,
                                  'time_s': time.time() - t0}) + '\n')
            log.flush()
            if bar is not None:
                bar.set_postfix(loss=f'{value:.4f}')
                bar.update(1)
            timed_out = deadline is not None and time.time() > deadline
            if step % cfg.eval_every == 0 or step == cfg.steps or timed_out:
                last_eval = validate(net, val_set, device)
                log.write(json.dumps({'type': 'eval', 'step': step, **last_eval}) + '\n')
                log.flush()
                LOG.info('step %d: val PSNR %.2f dB (identity %.2f), SSIM %.3f', step,
                         last_eval['psnr'], last_eval['psnr_identity'], last_eval['ssim'])
            if step % cfg.checkpoint_every == 0:
                _save(out / f'checkpoint_step{step:06d}.pt', checkpoint(True))
            if timed_out:
                stopped = True
                break
    if bar is not None:
        bar.close()
    _save(out / 'final.pt', checkpoint(True))
    slim = checkpoint(False)
    _save(out / 'model.pt', slim)
    if export:
        Path(export).parent.mkdir(parents=True, exist_ok=True)
        _save(Path(export), slim)
    _curve(out)
    return {'name': cfg.name, 'arch': cfg.arch, 'steps': step, 'stopped_by_time': stopped,
            'params': param_count(net),
            'd_params': param_count(disc) if disc is not None else 0,
            'd_receptive_field_px': disc.receptive_field if disc is not None else None,
            'batch_size': cfg.batch_size, 'crop': [cfg.crop_height, cfg.crop_width],
            'wall_s': round(time.time() - t0, 1), 'val': last_eval, 'output': str(out),
            'export': export}
