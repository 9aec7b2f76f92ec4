"""
Reports of a training run: the training curve (``curve.png``) from its metrics log.

Reads only the JSONL log the engine writes (:class:`neural_ae.core.training.engine.
MetricsLog`), so a curve can be redrawn for any finished or interrupted run.
"""
import json
from pathlib import Path
from typing import Optional

import numpy as np


def plot_training_curve(path: Path, log_path: Path) -> Optional[Path]:
    """
    Plot loss over steps and validation mAP@0.5 over epochs from the metrics log.

    ``log_path`` is the run's ``metrics.jsonl`` (``step`` and ``eval`` records); the
    figure goes to ``path`` (PNG). Returns ``path``, or None when there is no log.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    steps, losses, evals = [], [], []
    if not log_path.is_file():
        return None
    for line in log_path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if rec.get('type') == 'step':
            steps.append(rec['global_step'])
            losses.append(rec['loss'])
        elif rec.get('type') == 'eval':
            evals.append(rec)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    if steps:
        a1.plot(steps, losses, lw=0.6, alpha=0.4, label='loss per step')
        k = max(1, min(50, len(losses) // 10))
        if len(losses) >= k:
            smooth = np.convolve(losses, np.ones(k) / k, mode='valid')
            a1.plot(steps[k - 1:], smooth, lw=1.5, label=f'mean of {k} steps')
        a1.set_yscale('log')
    a1.set_xlabel('step')
    a1.set_ylabel('detector loss + AE L2')
    a1.legend()
    a1.grid(alpha=0.3)
    if evals:
        keys = list(evals[-1]['summary'])
        for key in keys:
            xs = [e['epoch'] for e in evals]
            ys = [e['summary'].get(key, float('nan')) for e in evals]
            a2.plot(xs, ys, 'o-', label={'x1': 'frame 2 at e_base', 'x10': '10x over',
                                         'x0.1': '10x under', 'ae': 'closed loop (AE)'
                                         }.get(key, key))
    a2.set_xlabel('epoch')
    a2.set_ylabel('val mAP@0.5')
    a2.legend()
    a2.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
