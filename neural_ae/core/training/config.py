"""
Training configuration: one dataclass, :class:`TrainConfig`, holds every default.

A YAML file (``config/train_*.yaml``) overrides some of the fields; unknown keys, wrong
types and out-of-range values are rejected with a one-line :class:`ConfigError`.
``detector`` and ``isp`` are mappings of overrides for
:class:`~neural_ae.core.models.detector.DetectorConfig` and
:class:`~neural_ae.core.isp.ISPConfig` (whose own defaults stand for what is not given);
their keys are checked against those dataclasses.

Seed ranges (procedural scenes): training uses ``train_seed_start ..
train_seed_start + train_size - 1`` (default 0 ..), validation ``val_seed_start ..``
(default 1,000,000 ..), and the evaluation issue's test set starts at
``test_seed_start`` (default 2,000,000); the three never overlap (checked).
"""
from dataclasses import asdict, dataclass, field, fields
import math
from pathlib import Path
import typing
from typing import Optional, Union

from neural_ae.core.controllers import specs
from neural_ae.core.controllers.neural import MAX_FEATURE_DIM, MAX_M_EXP
from neural_ae.core.errors import ConfigError
from neural_ae.core.models.perception import MAX_FRAME_SIDE
import yaml

AE_MODES = tuple(s.train_mode for s in specs() if s.train_mode)
"""Values of ``ae``: the registry's trainable controllers (their ``train_mode``)."""
NEURAL_MODES = tuple(s.train_mode for s in specs(trained=True) if s.train_mode)
"""Modes with a learned exposure network."""
DATA_SOURCES = ('procedural', 'hdr_bag', 'brackets')
OPTIMIZERS = ('adamw', 'sgd')

INT_BOUNDS = {
    'seed': (0, 2 ** 32 - 1), 'height': (64, MAX_FRAME_SIDE), 'width': (64, MAX_FRAME_SIDE),
    'train_seed_start': (0, 2 ** 31 - 1), 'train_size': (1, 10_000_000),
    'val_seed_start': (0, 2 ** 31 - 1), 'val_size': (0, 1_000_000),
    'test_seed_start': (0, 2 ** 31 - 1), 'ae_feature_dim': (1, MAX_FEATURE_DIM),
    'epochs': (1, 100_000), 'batch_size': (1, 4096), 'max_steps_per_epoch': (0, 10_000_000),
    'warmup_steps': (0, 10_000_000), 'log_every': (1, 1_000_000), 'eval_every': (1, 100_000),
    'num_workers': (0, 256), 'num_threads': (0, 1024)}
"""Integer settings: inclusive ``(min, max)``; see :class:`TrainConfig`."""
FLOAT_BOUNDS = {
    'source_t_exp_s': (0.0, 10.0, True), 'kappa_min': (1e-4, 1e4, False),
    'kappa_max': (1e-4, 1e4, False), 'noise_scale_min': (1e-3, 100.0, False),
    'noise_scale_max': (1e-3, 100.0, False), 'm_exp': (1.0, MAX_M_EXP, True),
    'lr': (0.0, 10.0, True), 'ae_lr': (0.0, 10.0, True), 'momentum': (0.0, 1.0, False),
    'weight_decay': (0.0, 10.0, False), 'ae_l2': (0.0, 1000.0, False),
    'min_lr_fraction': (0.0, 1.0, False), 'grad_clip_norm': (0.0, 1e6, False),
    'max_minutes': (0.0, 525_600.0, False)}
"""Number settings: ``(min, max, min excluded)``, finite; see :class:`TrainConfig`."""
MAX_EVAL_FACTORS = 16
"""Most ``eval_exposure_factors`` (each one is a validation pass)."""
EVAL_FACTOR_RANGE = (1e-4, 1e4)
"""Range of each ``eval_exposure_factors`` value [x e_base]."""


@dataclass
class TrainConfig:
    """
    Every setting of ``neural-ae train``; the defaults are the only defaults.

    Units are in the names or in the comments of ``config/train_*.yaml``. Bounds (generous
    but finite; outside them, or with the wrong type, a one-line :class:`ConfigError`):

    - ``height``, ``width``: even integers in [64, 8192] px;
    - ``seed`` in [0, 2**32 - 1]; ``*_seed_start`` in [0, 2**31 - 1], the three seed ranges
      disjoint; ``train_size`` in [1, 10,000,000], ``val_size`` in [0, 1,000,000] pairs;
    - ``epochs`` in [1, 100,000]; ``batch_size`` in [1, 4096]; ``max_steps_per_epoch`` and
      ``warmup_steps`` in [0, 10,000,000]; ``log_every`` in [1, 1,000,000];
      ``eval_every`` in [1, 100,000]; ``num_workers`` in [0, 256]; ``num_threads`` in
      [0, 1024];
    - ``ae_feature_dim`` in [1, 4096]; ``m_exp`` in (1, 1000] (the controllers' bound);
    - ``lr``, ``ae_lr`` in (0, 10]; ``momentum`` and ``min_lr_fraction`` in [0, 1];
      ``weight_decay`` in [0, 10]; ``ae_l2`` in [0, 1000]; ``grad_clip_norm`` in
      [0, 1e6]; ``max_minutes`` in [0, 525,600] (a year);
    - ``source_t_exp_s`` in (0, 10] s; ``kappa_min`` <= ``kappa_max``, both in [1e-4, 1e4];
      ``noise_scale_min`` <= ``noise_scale_max``, both in [1e-3, 100];
      ``eval_exposure_factors``: 1 to 16 numbers in [1e-4, 1e4];
    - ``detector`` / ``isp``: known keys, values as
      :func:`~neural_ae.core.models.perception.check_detector_values` /
      :func:`~neural_ae.core.models.perception.check_isp_values` bound them (channels
      <= 4096, sizes <= 8192 px, box counts <= 100,000, finite numbers).

    The tables are :data:`INT_BOUNDS` and :data:`FLOAT_BOUNDS`.
    """

    name: str = 'train'
    seed: int = 0
    ae: str = 'hybrid'
    sensor: str = 'imx249'
    height: int = 192
    width: int = 320
    # data
    data_source: str = 'procedural'
    data_path: str = ''
    source_sensor: str = ''
    source_t_exp_s: float = 0.01
    cache_dir: str = 'out/cache/scenes'
    train_seed_start: int = 0
    train_size: int = 1000
    val_seed_start: int = 1_000_000
    val_size: int = 48
    test_seed_start: int = 2_000_000
    kappa_min: float = 0.1
    kappa_max: float = 10.0
    noise: bool = True
    noise_augment: bool = True
    noise_scale_min: float = 0.75
    noise_scale_max: float = 1.5
    hflip: bool = True
    # models
    m_exp: float = 10.0
    ae_feature_dim: int = 64
    isp_learnable: bool = True
    detector: dict = field(default_factory=dict)
    isp: dict = field(default_factory=dict)
    init_from: str = ''
    # optimisation
    epochs: int = 10
    batch_size: int = 4
    max_steps_per_epoch: int = 0
    optimizer: str = 'adamw'
    lr: float = 1e-3
    ae_lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 1e-4
    ae_l2: float = 1e-4
    warmup_steps: int = 100
    min_lr_fraction: float = 0.05
    grad_clip_norm: float = 10.0
    # run
    max_minutes: float = 0.0
    log_every: int = 10
    eval_every: int = 1
    eval_exposure_factors: tuple = (1.0, 10.0, 0.1)
    num_workers: int = 0
    num_threads: int = 0
    device: str = 'auto'

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        """Raise :class:`ConfigError` (one line) on an inconsistent or out-of-range setting."""
        def bad(msg):
            raise ConfigError(f'train config: {msg}')

        if self.ae not in AE_MODES:
            bad(f'ae must be one of {"|".join(AE_MODES)}, got {self.ae!r}')
        if self.data_source not in DATA_SOURCES:
            bad(f'data_source must be one of {"|".join(DATA_SOURCES)}, got '
                f'{self.data_source!r}')
        if self.data_source != 'procedural' and not self.data_path:
            bad(f'data_source {self.data_source!r} needs data_path')
        if self.optimizer not in OPTIMIZERS:
            bad(f'optimizer must be one of {"|".join(OPTIMIZERS)}, got {self.optimizer!r}')
        sizes = (self.height, self.width)
        if all(isinstance(v, int) for v in sizes) and \
                (min(sizes) < 64 or self.height % 2 or self.width % 2):
            bad(f'height and width must be even and >= 64, got {self.height} x {self.width}')
        for name, (ilo, ihi) in INT_BOUNDS.items():
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not ilo <= v <= ihi:
                bad(f'{name} must be an integer in [{ilo:,}, {ihi:,}], got {v!r}')
        for name, (flo, fhi, lo_open) in FLOAT_BOUNDS.items():
            v = getattr(self, name)
            ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            if not (ok and (flo < v if lo_open else flo <= v) and v <= fhi):
                span = f'{"(" if lo_open else "["}{flo:g}, {fhi:g}]'
                bad(f'{name} must be a finite number in {span}, got {v!r}')
        if not self.kappa_min <= self.kappa_max:
            bad(f'need 0 < kappa_min <= kappa_max, got {self.kappa_min}, {self.kappa_max}')
        if not self.noise_scale_min <= self.noise_scale_max:
            bad(f'need 0 < noise_scale_min <= noise_scale_max, got {self.noise_scale_min}, '
                f'{self.noise_scale_max}')
        factors = self.eval_exposure_factors
        if not 1 <= len(factors) <= MAX_EVAL_FACTORS or not all(
                math.isfinite(f) and EVAL_FACTOR_RANGE[0] <= f <= EVAL_FACTOR_RANGE[1]
                for f in factors):
            bad(f'eval_exposure_factors must be 1 to {MAX_EVAL_FACTORS} finite numbers in '
                f'[{EVAL_FACTOR_RANGE[0]:g}, {EVAL_FACTOR_RANGE[1]:g}], got {factors}')
        ranges = sorted([('train', self.train_seed_start, self.train_size),
                         ('val', self.val_seed_start, self.val_size),
                         ('test', self.test_seed_start, 1)], key=lambda r: r[1])
        for (n1, s1, c1), (n2, s2, _) in zip(ranges, ranges[1:]):
            if s1 + c1 > s2:
                bad(f'{n1} seeds {s1}..{s1 + c1 - 1} overlap the {n2} seeds starting at {s2}')
        _check_sub('detector', self.detector)
        _check_sub('isp', self.isp)

    @property
    def neural(self) -> bool:
        """Whether the exposure policy is a trained network."""
        return self.ae in NEURAL_MODES

    def to_dict(self) -> dict:
        """Plain dict of builtins (YAML/JSON/checkpoint safe; tuples become lists)."""
        def plain(v):
            if isinstance(v, (list, tuple)):
                return [plain(x) for x in v]
            if isinstance(v, dict):
                return {k: plain(x) for k, x in v.items()}
            return v
        return plain(asdict(self))

    def detector_config(self):
        """Return the :class:`DetectorConfig` of this run (input size = image size by default)."""
        from neural_ae.core.models.detector import detector_config_for

        try:
            return detector_config_for(self.height, self.width, self.detector)
        except (TypeError, ValueError) as err:
            raise ConfigError(f'train config: detector: {err}') from err

    def isp_config(self, sensor):
        """Return the :class:`ISPConfig` of this run (levels and pattern from ``sensor``)."""
        from neural_ae.core.isp import ISPConfig

        values = {'learnable': self.isp_learnable}
        values.update({k: _tupled(v) for k, v in self.isp.items()})
        try:
            return ISPConfig.from_sensor(sensor, **values)
        except (TypeError, ValueError) as err:
            raise ConfigError(f'train config: isp: {err}') from err


def _tupled(v):
    if isinstance(v, list):
        return tuple(_tupled(x) for x in v)
    return v


def _check_sub(name: str, value) -> None:
    """Check the ``detector`` / ``isp`` overrides: known keys, types, bounded values."""
    from neural_ae.core.models.perception import check_detector_values, check_isp_values

    check = check_detector_values if name == 'detector' else check_isp_values
    check(value, 'train config', error=ConfigError)


def _coerce(name: str, hint, value):
    """Check/convert one YAML value to the field's type; raise ConfigError otherwise."""
    origin = typing.get_origin(hint)
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif hint is str:
        if isinstance(value, str):
            return value
        if value is None:
            return ''
    elif hint is dict or origin is dict:
        if value is None:
            return {}
        if isinstance(value, dict):
            return value
    elif hint is tuple or origin is tuple:
        if isinstance(value, (list, tuple)) and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
            return tuple(float(v) for v in value)
    raise ConfigError(f'train config: {name} must be {getattr(hint, "__name__", hint)}, got '
                      f'{value!r} ({type(value).__name__})')


def config_from_dict(data: Optional[dict], source: str = 'dict',
                     base: Optional[TrainConfig] = None) -> TrainConfig:
    """Build a :class:`TrainConfig` from overrides, rejecting unknown keys (one line)."""
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise ConfigError(f'train config {source}: expected a mapping at the top level, got '
                          f'{type(data).__name__}')
    hints = typing.get_type_hints(TrainConfig)
    names = [f.name for f in fields(TrainConfig)]
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ConfigError(f'train config {source}: unknown key(s) {unknown} (see '
                          f'TrainConfig for the allowed keys)')
    values = base.to_dict() if base is not None else {}
    values = {k: _tupled(v) if k == 'eval_exposure_factors' else v for k, v in values.items()}
    for key, value in data.items():
        try:
            values[key] = _coerce(key, hints[key], value)
        except ConfigError as err:
            raise ConfigError(f'{err} ({source})') from err
    try:
        return TrainConfig(**values)
    except ConfigError as err:
        raise ConfigError(f'{err} ({source})') from err


EXPOSURE_TASK = 'exposure'
"""``task`` of a training YAML without a ``task`` key: the exposure pipeline (TrainConfig)."""


def config_task(path: Union[str, Path]) -> Optional[str]:
    """
    Return which trainer a training YAML is for: its ``task`` key.

    :data:`EXPOSURE_TASK` without one; ``None`` when the file cannot be read or is not a
    mapping.
    """
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError):
        return None
    data = {} if data is None else data
    if not isinstance(data, dict):
        return None
    task = data.get('task', EXPOSURE_TASK)
    return task if isinstance(task, str) else None


def load_config(path: Union[str, Path], **overrides) -> TrainConfig:
    """Read a YAML training config; ``overrides`` (not None) replace its values."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f'train config not found: {path}')
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ConfigError(f'train config {path} is not valid YAML: {first}') from err
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise ConfigError(f'train config {path}: expected a mapping at the top level, got '
                          f'{type(data).__name__}')
    data.update({k: v for k, v in overrides.items() if v is not None})
    return config_from_dict(data, source=str(path))
