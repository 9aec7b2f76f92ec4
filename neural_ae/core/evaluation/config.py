"""
Settings of ``neural-ae evaluate`` and the held-out seed ranges.

Seeds: the test scenes start at ``test_seed_start`` (2,000,000, the training config's
documented test range); pairs use ``test_seed_start + i``, drives
``test_seed_start + DRIVE_SEED_OFFSET + j``. :func:`check_test_seeds` rejects overlap with
the train/validation ranges of the training configs in use.

:class:`EvalConfig` holds the defaults of ``config/evaluate.yaml``;
:func:`load_eval_config` reads the YAML (and its ``quick:`` section).
"""
from dataclasses import asdict, dataclass, field, fields
import math
from pathlib import Path
from typing import Sequence

from neural_ae.core.errors import EvaluationError
from neural_ae.core.evaluation.methods import method_names
import numpy as np

__all__ = ['check_latencies', 'check_test_seeds', 'DRIVE_SCENARIOS', 'DRIVE_SEED_OFFSET',
           'EvalConfig', 'load_eval_config', 'MAX_LATENCY_FRAMES', 'parse_latencies',
           'seed_ranges', 'SHIFT_LEVELS', 'SMOOTHINGS', 'TEST_SEED_START']

TEST_SEED_START = 2_000_000
"""First test scene seed (``TrainConfig.test_seed_start``); never trained on."""
DRIVE_SEED_OFFSET = 100_000
"""Drive ``j`` uses scene seed ``test_seed_start + DRIVE_SEED_OFFSET + j``."""
SHIFT_LEVELS = (1.5, 4.0, 10.0)
"""The shift levels ``k`` of the paper's Table 1."""
DRIVE_SCENARIOS = ('tunnel_exit', 'tunnel_in_out', 'low_sun', 'night_headlights', 'step10x')
"""Drive scenarios of the drive protocol (``step10x``: :func:`~.drives.step_drive`)."""
SMOOTHINGS = ('ema', 'adaptive', 'stable')
"""Smoothings the trained controllers run with in the drives (once each)."""
MAX_LATENCY_FRAMES = 30
"""Largest actuation latency of the drive protocol [frames]."""


def check_latencies(value, where: str = 'latency_frames') -> tuple:
    """
    Validate actuation latencies: an int or a list of ints in ``[0, MAX_LATENCY_FRAMES]``.

    A single int means a one-element list. Returns a tuple of ints (order kept); raises
    :class:`EvaluationError` for an empty list, a non-integer, a value out of range or a
    repeated value.
    """
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    if not items:
        raise EvaluationError(f'{where}: give at least one latency [frames]')
    out = []
    for v in items:
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise EvaluationError(f'{where}: latencies must be integers [frames], got {v!r}')
        if not 0 <= int(v) <= MAX_LATENCY_FRAMES:
            raise EvaluationError(f'{where}: latency {int(v)} out of range; each must be in '
                                  f'[0, {MAX_LATENCY_FRAMES}] frames')
        if int(v) in out:
            raise EvaluationError(f'{where}: latency {int(v)} given twice')
        out.append(int(v))
    return tuple(out)


def parse_latencies(text: str, where: str = '--latency') -> tuple:
    """Parse a comma-separated latency list (``'0,1,2'``); validated by :func:`check_latencies`."""
    parts = [t.strip() for t in str(text).split(',')]
    values = []
    for t in parts:
        try:
            values.append(int(t, 10))
        except ValueError as err:
            raise EvaluationError(f'{where}: expected comma-separated integers [frames], e.g. '
                                  f'0,1,2; got {text!r}') from err
    return check_latencies(values, where)


def seed_ranges(cfg) -> dict:
    """``{'train': (first, last), 'val': (first, last)}`` seed ranges of a training config."""
    return {'train': (int(cfg.train_seed_start), int(cfg.train_seed_start + cfg.train_size - 1)),
            'val': (int(cfg.val_seed_start), int(cfg.val_seed_start + max(cfg.val_size, 1) - 1))}


def check_test_seeds(seeds: Sequence[int], configs: Sequence, where: str = 'test',
                     splits: Sequence[str] = ('train', 'val')) -> None:
    """
    Raise :class:`EvaluationError` if a seed lies in a ``splits`` range of ``configs``.

    ``configs`` are :class:`~neural_ae.core.training.config.TrainConfig` objects (of the
    checkpoints evaluated, or of the shipped training YAMLs); ``splits`` ``('train',)``
    checks a validation run (tuning), which may use validation seeds.
    """
    seeds = [int(s) for s in seeds]
    if not seeds:
        return
    lo, hi = min(seeds), max(seeds)
    for cfg in configs:
        for split, (a, b) in seed_ranges(cfg).items():
            if split not in splits:
                continue
            if lo <= b and a <= hi and any(a <= s <= b for s in seeds):
                raise EvaluationError(
                    f'{where} seeds {lo}..{hi} overlap the {split} seeds {a}..{b} of training '
                    f'run {getattr(cfg, "name", "?")!r}; choose seeds >= {TEST_SEED_START}')


@dataclass
class EvalConfig:
    """
    Settings of ``neural-ae evaluate`` (``config/evaluate.yaml``; ``quick:`` overrides).

    ``methods``: controller names among :func:`~.methods.method_names` (default all of
    them). Sizes: ``height`` / ``width`` 0 = the reference checkpoint's training size.
    Counts: ``shift_pairs`` held-out pairs, ``shift_repeats`` repeats; ``oracle_sweep``
    points over ``e_base * 2 ** [-oracle_range_ev, oracle_range_ev]``. ``causal_ceiling``:
    the best single offset from ``e_base`` among ``ceiling_offsets_ev`` [EV], chosen on
    ``ceiling_val_pairs`` validation pairs x ``ceiling_val_repeats`` repeats, scored on the
    test pairs (:func:`~.shift.causal_ceiling`). ``drives``:
    ``[scenario, frames]`` items. Smoothing of the neural controllers in the drives:
    ``ema`` with ``ema_mu`` (paper: 0.9) and ``adaptive`` with ``adaptive_mu`` /
    ``adaptive_scale_ev``. ``assessor_model``: exposure assessor whose score [0-10] is
    reported per method with its correlation to per-image AP (:mod:`.assessor`; default
    the shipped ``assessor_demo.pt`` when present, ``''`` off).
    """

    models_dir: str = 'models'
    methods: tuple = field(default_factory=method_names)
    oracle: bool = True
    fixed_detector: str = 'average'
    oracle_detector: str = 'hybrid_nn'
    height: int = 0
    width: int = 0
    test_seed_start: int = TEST_SEED_START
    cache_dir: str = 'out/cache/scenes'
    noise_seed: int = 0
    shift_pairs: int = 400
    shift_levels: tuple = SHIFT_LEVELS
    shift_repeats: int = 12
    shift_flip: bool = True
    oracle_sweep: int = 17
    oracle_range_ev: float = 5.0
    causal_ceiling: bool = True
    ceiling_offsets_ev: tuple = (-3.0, -2.5, -2.0, -1.5, -1.0, -0.5, 0.0, 0.5, 1.0)
    ceiling_val_pairs: int = 96
    ceiling_val_repeats: int = 2
    drives: tuple = (('tunnel_exit', 90), ('tunnel_entry', 90), ('tunnel_in_out', 120),
                     ('low_sun', 90),
                     ('night_headlights', 90), ('step10x', 90), ('step10x', 90),
                     ('step10x', 90))
    drive_smoothings: tuple = SMOOTHINGS
    ema_mu: float = 0.9
    adaptive_mu: float = 0.9
    adaptive_scale_ev: float = 1.0
    latency_frames: tuple = (0, 1, 2)
    drive_repeats: int = 2
    drive_oracle: bool = True
    drive_oracle_sweep: int = 11
    drive_oracle_range_ev: float = 5.0
    assessor_model: str = 'assessor_demo.pt'

    def __post_init__(self):
        def bad(msg):
            raise EvaluationError(f'evaluate config: {msg}')

        known = method_names()
        self.methods = tuple(self.methods)
        unknown = [m for m in self.methods if m not in known]
        if unknown:
            bad(f'unknown methods {unknown}; choose from {known}')
        self.ceiling_offsets_ev = tuple(float(o) for o in self.ceiling_offsets_ev)
        if not self.ceiling_offsets_ev or any(not math.isfinite(o) or abs(o) > 12
                                              for o in self.ceiling_offsets_ev):
            bad(f'ceiling_offsets_ev must be EV values in [-12, 12], got '
                f'{self.ceiling_offsets_ev}')
        for name in ('shift_pairs', 'shift_repeats', 'oracle_sweep', 'drive_oracle_sweep',
                     'ceiling_val_pairs', 'ceiling_val_repeats', 'drive_repeats'):
            if not (isinstance(getattr(self, name), int) and getattr(self, name) >= 1):
                bad(f'{name} must be an integer >= 1, got {getattr(self, name)!r}')
        self.shift_levels = tuple(float(k) for k in self.shift_levels)
        if not self.shift_levels or min(self.shift_levels) < 1:
            bad(f'shift_levels must be numbers >= 1, got {self.shift_levels}')
        self.drives = tuple((str(d[0]), int(d[1])) for d in self.drives)
        if any(n < 2 for _, n in self.drives):
            bad(f'every drive needs >= 2 frames, got {self.drives}')
        self.latency_frames = check_latencies(self.latency_frames,
                                              'evaluate config: latency_frames')
        self.drive_smoothings = tuple(self.drive_smoothings)
        if any(s not in ('none', 'ema', 'adaptive', 'stable') for s in self.drive_smoothings):
            bad(f'drive_smoothings must be none|ema|adaptive|stable, got '
                f'{self.drive_smoothings}')
        for name in ('ema_mu', 'adaptive_mu'):
            if not 0 <= getattr(self, name) < 1:
                bad(f'{name} must be in [0, 1), got {getattr(self, name)}')
        if self.adaptive_scale_ev <= 0 or self.oracle_range_ev <= 0 or \
                self.drive_oracle_range_ev <= 0:
            bad('adaptive_scale_ev and the oracle ranges must be > 0')
        if self.height < 0 or self.width < 0 or self.height % 2 or self.width % 2:
            bad(f'height and width must be even and >= 0, got {self.height} x {self.width}')
        if not isinstance(self.assessor_model, str):
            bad(f"assessor_model must be a model file name or '' (off), got "
                f'{self.assessor_model!r}')
        if self.fixed_detector not in known or self.oracle_detector not in known:
            bad(f'fixed_detector and oracle_detector must name methods of {known}')

    def smoothing_options(self) -> dict:
        """Return :class:`ControllerOptions` overrides per drive smoothing."""
        return {'ema': {'mu': self.ema_mu},
                'adaptive': {'mu': self.adaptive_mu,
                             'adaptive_scale_ev': self.adaptive_scale_ev},
                'stable': {'mu': self.adaptive_mu,
                           'adaptive_scale_ev': self.adaptive_scale_ev},
                'none': {}}

    def to_dict(self) -> dict:
        """Plain dict (JSON/YAML)."""
        d = asdict(self)
        d['drives'] = [list(x) for x in self.drives]
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def load_eval_config(path=None, quick: bool = False, **overrides) -> EvalConfig:
    """
    Read ``config/evaluate.yaml`` (or ``path``); ``quick`` applies its ``quick:`` section.

    ``overrides`` (not None) win last. Unknown keys raise :class:`EvaluationError`.
    """
    import yaml

    data: dict = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise EvaluationError(f'evaluate config not found: {p}')
        try:
            data = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as err:
            raise EvaluationError(f'evaluate config {p} is not valid YAML: '
                                  f'{str(err).splitlines()[0]}') from err
        if not isinstance(data, dict):
            raise EvaluationError(f'evaluate config {p}: expected a mapping')
    quick_data = data.pop('quick', None) or {}
    names = {f.name for f in fields(EvalConfig)}
    for where, d in (('', data), ('quick.', quick_data), ('override ', overrides)):
        unknown = sorted(set(d) - names)
        if unknown:
            raise EvaluationError(f'evaluate config: unknown {where}key(s) {unknown}; '
                                  f'known: {sorted(names)}')
    values = dict(data)
    if quick:
        values.update(quick_data)
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return EvalConfig(**values)
    except TypeError as err:
        raise EvaluationError(f'evaluate config: {err}') from err
