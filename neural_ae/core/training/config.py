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
from neural_ae.core.errors import ConfigError
import yaml

AE_MODES = tuple(s.train_mode for s in specs() if s.train_mode)
"""Values of ``ae``: the registry's trainable controllers (their ``train_mode``)."""
NEURAL_MODES = tuple(s.train_mode for s in specs(trained=True) if s.train_mode)
"""Modes with a learned exposure network."""
DATA_SOURCES = ('procedural', 'hdr_bag', 'brackets')
OPTIMIZERS = ('adamw', 'sgd')


@dataclass
class TrainConfig:
    """
    Every setting of ``neural-ae train``; the defaults are the only defaults.

    Units are in the names or in the comments of ``config/train_*.yaml``.
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
        """Raise :class:`ConfigError` (one line) on an inconsistent setting."""
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
        if self.height < 64 or self.width < 64 or self.height % 2 or self.width % 2:
            bad(f'height and width must be even and >= 64, got {self.height} x {self.width}')
        for name in ('train_size', 'epochs', 'batch_size', 'log_every', 'eval_every'):
            if getattr(self, name) < 1:
                bad(f'{name} must be >= 1, got {getattr(self, name)}')
        for name in ('val_size', 'max_steps_per_epoch', 'warmup_steps', 'num_workers',
                     'num_threads', 'train_seed_start', 'val_seed_start', 'test_seed_start',
                     'seed'):
            if getattr(self, name) < 0:
                bad(f'{name} must be >= 0, got {getattr(self, name)}')
        for name in ('lr', 'ae_lr', 'm_exp', 'source_t_exp_s'):
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0):
                bad(f'{name} must be a finite number > 0, got {v}')
        if self.m_exp <= 1:
            bad(f'm_exp must be > 1, got {self.m_exp}')
        for name in ('weight_decay', 'ae_l2', 'max_minutes', 'grad_clip_norm', 'momentum'):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                bad(f'{name} must be a finite number >= 0, got {v}')
        if not 0 <= self.min_lr_fraction <= 1:
            bad(f'min_lr_fraction must be in [0, 1], got {self.min_lr_fraction}')
        if not 0 < self.kappa_min <= self.kappa_max:
            bad(f'need 0 < kappa_min <= kappa_max, got {self.kappa_min}, {self.kappa_max}')
        if not 0 < self.noise_scale_min <= self.noise_scale_max:
            bad(f'need 0 < noise_scale_min <= noise_scale_max, got {self.noise_scale_min}, '
                f'{self.noise_scale_max}')
        if not self.eval_exposure_factors or min(self.eval_exposure_factors) <= 0:
            bad(f'eval_exposure_factors must be positive numbers, got '
                f'{self.eval_exposure_factors}')
        ranges = sorted([('train', self.train_seed_start, self.train_size),
                         ('val', self.val_seed_start, self.val_size),
                         ('test', self.test_seed_start, 1)], key=lambda r: r[1])
        for (n1, s1, c1), (n2, s2, _) in zip(ranges, ranges[1:]):
            if s1 + c1 > s2:
                bad(f'{n1} seeds {s1}..{s1 + c1 - 1} overlap the {n2} seeds starting at {s2}')
        _check_sub('detector', self.detector, _detector_fields())
        _check_sub('isp', self.isp, _isp_fields())

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


def _detector_fields() -> set:
    from neural_ae.core.models.detector import DetectorConfig
    return {f.name for f in fields(DetectorConfig)}


def _isp_fields() -> set:
    from neural_ae.core.isp import ISPConfig
    return {f.name for f in fields(ISPConfig)}


def _check_sub(name: str, value, allowed: set) -> None:
    if not isinstance(value, dict):
        raise ConfigError(f'train config: {name} must be a mapping, got {type(value).__name__}')
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise ConfigError(f'train config: unknown {name} key(s) {unknown}; allowed: '
                          f'{sorted(allowed)}')


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
        values[key] = _coerce(key, hints[key], value)
    try:
        return TrainConfig(**values)
    except ConfigError as err:
        raise ConfigError(f'{err} ({source})') from err


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
