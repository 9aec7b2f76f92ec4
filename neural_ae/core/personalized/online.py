"""
Online personalization: feedback on published frames -> policy-gradient updates -> a file.

:class:`OnlinePersonalizer` keeps a bounded ring of recent states (the policy input of a
frame, uint8 ``(S, S, 3)``, and the action taken, keyed by the frame's stamp [ns]). A
feedback ``(stamp, 'under' | 'well' | 'over')`` for a frame in the ring queues one
labelled original; :meth:`OnlinePersonalizer.update` (called off the decision thread, at
most ``max_updates_per_s`` times a second) runs ``steps_per_update`` REINFORCE steps on
the queued originals. As in the paper (Sec. 5.3) each original is augmented with
exposure variants ``v`` in -2..+2 EV (0.2 EV steps) synthesised from the 8-bit frame
(linearised by gamma 2.2, scaled by ``2 ** v``, clipped, re-encoded); a variant's
return action is ``Y = -v`` and the reward follows Fig. 6
(:mod:`~neural_ae.core.personalized.rewards`). Only the metering heads train (Adam,
``lr``); the updated heads are copied into the running controller's network under its
lock, so a decision never sees half-written weights.

Bad feedback never raises into the caller's loop: :meth:`feedback` returns a reason
string (unknown stamp, bad label, flood: more than ``max_feedback_per_s``) that the node
turns into a throttled warning. :meth:`save` writes the personalised model atomically
and refuses to overwrite the base model file.

:class:`JudgeFeedback` turns any :class:`~neural_ae.core.personalized.rewards.
FeedbackSource` (for example issue 13's ``ExposureJudge``) into automatic feedback.
"""
from collections import deque, OrderedDict
import copy
import logging
import math
import os
from pathlib import Path
import threading
import time
from typing import Optional

from neural_ae.core.errors import ModelError
from neural_ae.core.personalized.data import VARIANTS_EV
from neural_ae.core.personalized.policy import rgb_input, save_policy
from neural_ae.core.personalized.rewards import label_code, LABELS, reinforce_loss, reward
import numpy as np
import torch

LOG = logging.getLogger(__name__)

__all__ = ['JudgeFeedback', 'OnlinePersonalizer', 'synth_variants']


def synth_variants(rgb_uint8: np.ndarray, variants_ev=VARIANTS_EV,
                   gamma: float = 2.2) -> np.ndarray:
    """Exposure variants ``(V, H, W, 3)`` uint8 of an 8-bit frame (the paper's gamma trick)."""
    lin = (np.asarray(rgb_uint8, np.float32) / 255.0) ** gamma
    out = np.empty((len(variants_ev),) + lin.shape, np.uint8)
    for k, v in enumerate(variants_ev):
        out[k] = np.rint(255.0 * np.clip(lin * 2.0 ** float(v), 0, 1) ** (1 / gamma))
    return out


class OnlinePersonalizer:
    """Ring of states, feedback queue, bounded-rate updates, atomic save (see module doc)."""

    def __init__(self, controller, ring_size: int = 64, max_feedback_per_s: float = 5.0,
                 max_updates_per_s: float = 2.0, steps_per_update: int = 4,
                 lr: float = 1e-3, sigma_ev: float = 0.1, delta_ev: float = 0.1,
                 max_queue: int = 32, seed: int = 0, base_model: Optional[str] = None):
        if not (1 <= int(ring_size) <= 10_000):
            raise ModelError(f'ring_size must be in [1, 10000], got {ring_size}')
        self.controller = controller
        self.base_model = Path(base_model).resolve() if base_model else None
        self.net = copy.deepcopy(controller.model).cpu()
        for p in self.net.backbone.parameters():
            p.requires_grad_(False)
        self.opt = torch.optim.Adam(self.net.head_parameters(), lr=lr)
        self.ring: OrderedDict = OrderedDict()
        self.ring_size = int(ring_size)
        self.queue: deque = deque(maxlen=int(max_queue))
        self.max_feedback_per_s = float(max_feedback_per_s)
        self.min_update_period_s = 1.0 / max_updates_per_s if max_updates_per_s > 0 else 0.0
        self.steps_per_update = int(steps_per_update)
        self.sigma_ev, self.delta_ev = float(sigma_ev), float(delta_ev)
        self._recent: deque = deque()
        self._last_update = -math.inf
        self._lock = threading.Lock()
        self._gen = torch.Generator().manual_seed(seed)
        self.updates = 0
        self.feedback_used = 0
        self.labels_seen = dict.fromkeys(LABELS, 0)

    # -- decision thread

    def record(self, stamp_ns: int, rgb_uint8: Optional[np.ndarray], dev: float) -> None:
        """Remember the state of a frame the node decided on (oldest dropped)."""
        if rgb_uint8 is None:
            return
        with self._lock:
            self.ring[int(stamp_ns)] = (rgb_uint8, float(dev))
            self.ring.move_to_end(int(stamp_ns))
            while len(self.ring) > self.ring_size:
                self.ring.popitem(last=False)

    # -- feedback

    def feedback(self, stamp_ns: int, label: str, now: Optional[float] = None) -> Optional[str]:
        """Queue feedback for a recorded frame; ``None`` if accepted, else the reason."""
        now = time.monotonic() if now is None else now
        if label not in LABELS:
            return f'feedback label must be one of {LABELS}, got {str(label)[:40]!r}'
        with self._lock:
            while self._recent and now - self._recent[0] > 1.0:
                self._recent.popleft()
            if len(self._recent) >= self.max_feedback_per_s:
                return (f'feedback flood: more than {self.max_feedback_per_s:g} messages per '
                        f'second; dropped')
            self._recent.append(now)
            state = self.ring.get(int(stamp_ns))
            if state is None:
                return (f'feedback for unknown frame stamp {stamp_ns} (not among the last '
                        f'{len(self.ring)} decided frames)')
            self.queue.append((state[0], label_code(label)))
            self.labels_seen[label] += 1
        return None

    # -- worker thread

    def due(self, now: Optional[float] = None) -> bool:
        """Whether queued feedback waits and the rate limit allows an update now."""
        now = time.monotonic() if now is None else now
        return bool(self.queue) and now - self._last_update >= self.min_update_period_s

    def update(self, now: Optional[float] = None, force: bool = False) -> int:
        """Run one bounded update on the queued feedback; returns the originals used."""
        now = time.monotonic() if now is None else now
        if not force and not self.due(now):
            return 0
        with self._lock:
            items = list(self.queue)
            self.queue.clear()
        if not items:
            return 0
        self._last_update = now
        x, code, back = [], [], []
        for rgb, c in items:
            x.append(rgb_input(synth_variants(rgb)))
            code += [c] * len(VARIANTS_EV)
            back += list(-VARIANTS_EV)
        xb = torch.cat(x)
        code_t = torch.tensor(code, dtype=torch.float32)
        back_t = torch.tensor(back, dtype=torch.float32)
        with torch.no_grad():
            self.net.eval()
            feats = self.net.features(xb)
        self.net.train()
        for _ in range(self.steps_per_update):
            mean = self.net.head(feats)[0]
            a = mean.detach() + self.sigma_ev * torch.randn(mean.shape, generator=self._gen)
            r = reward(code_t, a, back_t, self.delta_ev)
            loss = reinforce_loss(mean, a, r, self.sigma_ev)
            if not torch.isfinite(loss):
                LOG.warning('online personalization: non-finite loss; update skipped')
                return 0
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()
        self.net.eval()
        heads = {k: v.detach().clone() for k, v in self.net.state_dict().items()
                 if not k.startswith('backbone.')}
        with self.controller.lock:
            self.controller.model.load_state_dict(heads, strict=False)
        self.updates += 1
        self.feedback_used += len(items)
        return len(items)

    # -- files

    def save(self, path) -> Path:
        """Write the personalised policy atomically; never onto the base model file."""
        path = Path(path)
        if self.base_model is not None and path.resolve() == self.base_model:
            raise ModelError(f'refusing to overwrite the base model {path}; choose another '
                             f'personalized_model_path')
        meta = {'stage': 'online', 'updates': self.updates, 'feedback': self.feedback_used,
                'labels': dict(self.labels_seen),
                'base_model': str(self.base_model) if self.base_model else ''}
        with self.controller.lock:
            net = copy.deepcopy(self.controller.model).cpu()
        out = save_policy(path, net, meta)
        os.chmod(out, 0o644)
        return out

    def stats(self) -> dict:
        """Counters for diagnostics."""
        return {'ring': len(self.ring), 'queued': len(self.queue), 'updates': self.updates,
                'feedback_used': self.feedback_used, **{f'labels_{k}': v for k, v in
                                                        self.labels_seen.items()}}


class JudgeFeedback:
    """Automatic feedback: ``source.label(rgb)`` for recorded frames, at most ``rate_hz``."""

    def __init__(self, source, rate_hz: float = 1.0):
        if not callable(getattr(source, 'label', None)):
            raise ModelError(f'feedback source {type(source).__name__} has no label(rgb) method')
        self.source = source
        self.period = 1.0 / rate_hz if rate_hz > 0 else math.inf
        self._last = -math.inf

    def maybe_label(self, rgb_uint8: np.ndarray, now: Optional[float] = None) -> Optional[str]:
        """Return the source's label of ``rgb_uint8`` when due, else ``None``."""
        now = time.monotonic() if now is None else now
        if now - self._last < self.period:
            return None
        self._last = now
        return str(self.source.label(rgb_uint8))
