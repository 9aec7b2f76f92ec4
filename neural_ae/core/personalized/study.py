"""
The paper's Tables 3-6 and Fig. 8 on our data: one study, one process, one JSON.

From one stage-1 model (and optionally a no-importance ablation) and the variant sets:

- backbone features of the training / test scenes are computed once (stage 2 trains the
  metering heads, :mod:`~neural_ae.core.personalized.training`);
- per expert: **RL+PT** (REINFORCE from the stage-1 heads), **FSL** (fully supervised
  heads, same scenes, optimiser and steps), **RL** (REINFORCE from fresh heads on a
  fresh, random backbone: no pre-training at all) and **PT** (the stage-1 model as is);
- the cross-expert matrix: the MAE of each expert's RL+PT model against every expert's
  ground truth (rows: model, columns: ground truth);
- nearest-expert percentages: the share of test images (scene x variant) where a
  model's prediction is nearest to its own expert's ideal among the six (ties count for
  every tied expert);
- labels: MAE of RL+PT per expert for ``n_labels`` in ``label_counts``;
- judge (issue 13, with ``judge``): RL+PT on the under / well / over labels of the
  exposure assessor (:class:`~neural_ae.core.assessment.judge.ExposureJudge`) instead of
  an expert's, on the same originals as the mid-grey expert's labels (same seed), scored
  against every expert's ground truth; with the judge's agreement [%] with each expert's
  labels of those originals.

MAE is over every test scene and variant, in EV.
"""
import copy
from dataclasses import replace
import logging
from typing import Dict, Optional, Sequence

from neural_ae.core.personalized.config import PersonalizedConfig
from neural_ae.core.personalized.data import VariantSet
from neural_ae.core.personalized.policy import PolicyNet
from neural_ae.core.personalized.rewards import check_labels, LABELS, labels_of
from neural_ae.core.personalized.training import (config_originals, features, mae_ev,
                                                  personalize, predict_heads)
import numpy as np
import torch

LOG = logging.getLogger(__name__)
METHODS = ('RL', 'RL+PT', 'FSL', 'PT')


def nearest_share(pred: np.ndarray, truths: np.ndarray, own: int) -> float:
    """Share [%] of samples where ``pred`` is nearest to ``truths[own]`` (ties count)."""
    err = np.abs(truths - pred[None])
    return float(100.0 * np.mean(err[own] <= err.min(axis=0) + 1e-6))


def run_study(base: PolicyNet, cfg: PersonalizedConfig, train: VariantSet, test: VariantSet,
              experts: Sequence[str], label_counts: Sequence[int] = (),
              scratch_seed: int = 1, log=LOG.info, judge=None) -> dict:
    """Run the study (see the module docstring); returns tables as plain dicts."""
    n = min(cfg.n_labels, len(train))
    tr_feats = features(base, train.images[:n])
    te_feats = features(base, test.images)
    torch.manual_seed(scratch_seed)
    scratch = PolicyNet(base.metering, base.scale_ev, cfg.dropout)
    tr_scratch = features(scratch, train.images[:n])
    te_scratch = features(scratch, test.images)
    truths = np.stack([test.ideal(e) for e in test.experts])
    pt_pred = predict_heads(base, te_feats)
    mae: Dict[str, Dict[str, float]] = {}
    preds: Dict[str, np.ndarray] = {}
    logs: Dict[str, dict] = {}
    for e in experts:
        ideal = train.ideal(e)[:n]
        row = {'PT': mae_ev(pt_pred, test.ideal(e))}
        for method, net0, ftr, fte, sup in (
                ('RL+PT', base, tr_feats, te_feats, 'rl'),
                ('FSL', base, tr_feats, te_feats, 'supervised'),
                ('RL', scratch, tr_scratch, te_scratch, 'rl')):
            net = copy.deepcopy(net0)
            lg = personalize(net, replace(cfg, supervision=sup), ideal,
                             train.actual_ev[:n], ftr)
            pred = predict_heads(net, fte)
            row[method] = mae_ev(pred, test.ideal(e))
            if method == 'RL+PT':
                preds[e] = pred
                logs[e] = lg['labels']
        mae[e] = row
        log(f'{e}: ' + ', '.join(f'{m} {row[m]:.3f}' for m in METHODS))
    cross = {e: {g: mae_ev(preds[e], test.ideal(g)) for g in test.experts} for e in experts}
    nearest = {e: nearest_share(preds[e], truths, test.experts.index(e)) for e in experts}
    sweep: Dict[str, Dict[int, float]] = {}
    for count in label_counts:
        if count > len(train):
            continue
        for e in experts:
            net = copy.deepcopy(base)
            personalize(net, replace(cfg, n_labels=count), train.ideal(e)[:count],
                        train.actual_ev[:count], tr_feats[:count])
            sweep.setdefault(e, {})[int(count)] = mae_ev(predict_heads(net, te_feats),
                                                         test.ideal(e))
        log(f'N={count}: ' + ', '.join(f'{e} {sweep[e][count]:.3f}' for e in experts))
    out = {'mae': mae, 'cross': cross, 'nearest': nearest, 'labels_sweep': sweep,
           'feedback_labels': logs, 'n_labels': n, 'test_scenes': len(test),
           'test_variants': len(test.variants_ev)}
    if judge is not None:
        judged = judge_study(base, cfg, train, test, tr_feats[:n], te_feats, judge, n)
        out['judge'] = judged
        log('judge: ' + ', '.join(f'{g} {v:.3f}' for g, v in judged['mae'].items()))
    return out


def judge_study(base: PolicyNet, cfg: PersonalizedConfig, train: VariantSet,
                test: VariantSet, tr_feats, te_feats, judge, n: int) -> dict:
    """RL+PT on the judge's labels of the mid-grey expert's originals (module docstring)."""
    ideal = train.ideal('mid_grey')[:n]
    t0, _ = config_originals(ideal, cfg)   # the originals the mid-grey labels are of
    names = [judge.label(img) for img in train.images[np.arange(n), t0]]
    code = np.array(check_labels(names), np.int8)
    net = copy.deepcopy(base)
    personalize(net, cfg, ideal, train.actual_ev[:n], tr_feats, feedback=(t0, code))
    pred = predict_heads(net, te_feats)
    agree = {}
    for g in train.experts:
        theirs = labels_of(train.ideal(g)[np.arange(n), t0], cfg.delta_ev)
        agree[g] = float(100.0 * np.mean(theirs == code))
    return {'mae': {g: mae_ev(pred, test.ideal(g)) for g in test.experts},
            'agreement': agree, 'labels': {x: names.count(x) for x in LABELS},
            'model': str(getattr(judge, 'meta', {}).get('path', '')),
            'thresholds': [judge.under_threshold, judge.over_threshold]}


def _fmt(v: Optional[float], digits: int = 3) -> str:
    return '-' if v is None or not np.isfinite(v) else f'{v:.{digits}f}'


def tables_markdown(res: dict) -> str:
    """Return the study's tables as Markdown (what ``neural-ae personalize study`` prints)."""
    experts = list(res['mae'])
    lines = [f'MAE [EV] on {res["test_scenes"]} test scenes x {res["test_variants"]} '
             f'variants, {res["n_labels"]} labelled scenes per expert', '',
             '| expert | ' + ' | '.join(METHODS) + ' |', '|---' * (len(METHODS) + 1) + '|']
    for e in experts:
        lines.append(f'| {e} | ' + ' | '.join(_fmt(res['mae'][e][m]) for m in METHODS) + ' |')
    means = {m: float(np.mean([res['mae'][e][m] for e in experts])) for m in METHODS}
    lines.append('| **mean** | ' + ' | '.join(_fmt(means[m]) for m in METHODS) + ' |')
    gts = list(next(iter(res['cross'].values())))
    lines += ['', 'Cross-expert MAE [EV] (rows: RL+PT model of, columns: ground truth of)', '',
              '| model \\ truth | ' + ' | '.join(gts) + ' |', '|---' * (len(gts) + 1) + '|']
    for e in experts:
        row = res['cross'][e]
        best = min(row, key=row.get)
        lines.append(f'| {e} | ' + ' | '.join(
            (f'**{_fmt(row[g])}**' if g == best else _fmt(row[g])) for g in gts) + ' |')
    lines += ['', 'Nearest-expert share [%] (prediction nearest to its own expert, ties count)',
              '', '| ' + ' | '.join(experts) + ' |', '|---' * len(experts) + '|',
              '| ' + ' | '.join(_fmt(res['nearest'][e], 1) for e in experts) + ' |']
    if res['labels_sweep']:
        counts = sorted({c for d in res['labels_sweep'].values() for c in d})
        lines += ['', 'RL+PT MAE [EV] vs labelled scenes N', '',
                  '| expert | ' + ' | '.join(f'N={c}' for c in counts) + ' |',
                  '|---' * (len(counts) + 1) + '|']
        for e, d in res['labels_sweep'].items():
            lines.append(f'| {e} | ' + ' | '.join(_fmt(d.get(c)) for c in counts) + ' |')
        mean = [float(np.mean([d[c] for d in res['labels_sweep'].values() if c in d]))
                for c in counts]
        lines.append('| **mean** | ' + ' | '.join(_fmt(m) for m in mean) + ' |')
    if res.get('judge'):
        j = res['judge']
        gts = list(j['mae'])
        labels = ', '.join(f'{k} {v}' for k, v in j['labels'].items())
        lines += ['', 'Judge-driven personalization (issue 13): RL+PT on the labels of the '
                  f'assessor ({j["model"]}, thresholds under {j["thresholds"][0]:.2f} / over '
                  f'{j["thresholds"][1]:.2f}; {labels}) of the originals of the mid-grey expert, '
                  'against label-driven RL+PT', '',
                  '| | ' + ' | '.join(gts) + ' |', '|---' * (len(gts) + 1) + '|',
                  '| judge-driven MAE [EV] | ' + ' | '.join(_fmt(j['mae'][g]) for g in gts)
                  + ' |',
                  '| label-driven RL+PT MAE [EV] | ' + ' | '.join(
                      _fmt(res['mae'][g]['RL+PT']) if g in res['mae'] else '-' for g in gts)
                  + ' |',
                  '| judge agrees with the label of the expert [%] | ' + ' | '.join(
                      _fmt(j['agreement'][g], 1) for g in gts) + ' |']
    return '\n'.join(lines) + '\n'


def ablation_plot(curves: Dict[str, list], path) -> None:
    """Fig. 8: validation MAE per epoch of stage 1, one line per metering."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2))
    for name, curve in curves.items():
        ax.plot([c['epoch'] for c in curve], [c['val_mae_ev'] for c in curve], label=name)
    ax.set_xlabel('stage-1 epoch')
    ax.set_ylabel('validation MAE [EV]')
    ax.set_title('adaptive metering vs exposure map only')
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def maps_figure(net: PolicyNet, images: np.ndarray, titles: Sequence[str], path) -> None:
    """Fig. 9: frame, exposure map and importance map of a few test images (rows)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from neural_ae.core.personalized.training import to_batch

    net.eval()
    with torch.no_grad():
        dev, em, im = net.maps(to_batch(images))
    rows = len(images)
    fig, axes = plt.subplots(rows, 3, figsize=(7.5, 2.3 * rows), squeeze=False)
    for r in range(rows):
        axes[r, 0].imshow(images[r])
        axes[r, 0].set_title(f'{titles[r]}  dEV {float(dev[r]):+.2f}', fontsize=8)
        a = axes[r, 1].imshow(em[r, 0].numpy(), cmap='coolwarm', vmin=-1, vmax=1)
        axes[r, 1].set_title('exposure map (tanh)', fontsize=8)
        b = axes[r, 2].imshow(im[r, 0].numpy(), cmap='viridis', vmin=0, vmax=1)
        axes[r, 2].set_title('importance map (sigmoid)', fontsize=8)
        fig.colorbar(a, ax=axes[r, 1], fraction=0.046)
        fig.colorbar(b, ax=axes[r, 2], fraction=0.046)
        for ax in axes[r]:
            ax.axis('off')
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
