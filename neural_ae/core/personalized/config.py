"""
Settings of the personalized policy's two training stages: one dataclass, one default each.

``config/train_personalized_stage1.yaml`` / ``..._stage2.yaml`` override some fields
(``task`` says which stage; ``neural-ae train --config`` dispatches on it). Unknown keys,
wrong types and values out of range are one-line :class:`ConfigError`.
"""
from dataclasses import asdict, dataclass, fields
import math
from pathlib import Path
from typing import Optional

from neural_ae.core.errors import ConfigError
from neural_ae.core.personalized.experts import EXPERTS
from neural_ae.core.personalized.policy import METERINGS
import yaml

TASKS = ('personalized_stage1', 'personalized_stage2')
STAGE2_INITS = ('stage1', 'scratch')
STAGE2_SUPERVISIONS = ('rl', 'supervised')
BASELINES = ('leave_one_out', 'none')

_INTS = {'seed': (0, 2 ** 31 - 1), 'size': (32, 512), 'height': (64, 2048),
         'width': (64, 2048), 'train_size': (1, 100_000), 'val_size': (1, 100_000),
         'test_size': (1, 100_000), 'epochs': (1, 10_000), 'batch_size': (1, 4096),
         'variants_per_scene': (1, 21), 'lr_step_epochs': (1, 10_000),
         'n_labels': (1, 100_000), 'samples': (1, 256), 'steps': (1, 10_000_000),
         'eval_every': (1, 1_000_000),
         'num_threads': (0, 1024)}
_FLOATS = {'lr': (0.0, 10.0), 'momentum': (0.0, 1.0), 'weight_decay': (0.0, 1.0),
           'lr_gamma': (0.0, 1.0), 'scale_ev': (0.0, 16.0), 'dropout': (0.0, 1.0),
           'sigma_ev': (0.0, 4.0), 'delta_ev': (0.0, 4.0), 'p_well': (0.0, 1.0),
           'max_minutes': (0.0, 525_600.0)}


@dataclass
class PersonalizedConfig:
    """
    Every setting of both stages (units in ``config/train_personalized_stage*.yaml``).

    Bounds: ``size`` in [32, 512] px; scene ``height``/``width`` in [64, 2048] px;
    ``*_size`` in [1, 100,000] scenes; ``epochs`` in [1, 10,000]; ``batch_size`` in
    [1, 4096]; ``variants_per_scene`` in [1, 21]; ``n_labels`` in [1, 100,000];
    ``samples`` (actions per state, stage 2) in [1, 256];
    ``steps`` in [1, 1e7]; ``lr`` in (0, 10]; ``momentum``, ``lr_gamma``, ``dropout``,
    ``p_well`` in [0, 1]; ``weight_decay`` in [0, 1]; ``scale_ev`` in (0, 16] EV;
    ``sigma_ev`` and ``delta_ev`` in (0, 4] EV; ``max_minutes`` in [0, 525,600].
    """

    task: str = 'personalized_stage1'
    name: str = 'personalized_stage1'
    seed: int = 0
    size: int = 128
    height: int = 192
    width: int = 320
    sensor: str = 'imx249'
    detector_model: str = 'hybrid_demo.pt'
    cache_dir: str = 'out/personalized/cache'
    train_size: int = 1000
    val_size: int = 100
    test_size: int = 200
    metering: str = 'adaptive'
    scale_ev: float = 4.0
    dropout: float = 0.5
    expert: str = 'mid_grey'
    # stage 1
    epochs: int = 24
    batch_size: int = 32
    variants_per_scene: int = 2
    lr: float = 0.003
    momentum: float = 0.9
    weight_decay: float = 2e-4
    lr_step_epochs: int = 15
    lr_gamma: float = 0.5
    # stage 2
    init: str = 'stage1'
    init_from: str = 'out/personalized/stage1/policy.pt'
    supervision: str = 'rl'
    n_labels: int = 1000
    p_well: float = 0.3
    sigma_ev: float = 0.1
    delta_ev: float = 0.1
    samples: int = 8
    baseline: str = 'leave_one_out'
    steps: int = 3000
    train_backbone: bool = False
    eval_every: int = 500
    # run
    max_minutes: float = 0.0
    num_threads: int = 1

    def __post_init__(self):
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name in _INTS:
                lo, hi = _INTS[f.name]
                if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                    raise ConfigError(f'personalized config: {f.name} must be an integer in '
                                      f'[{lo}, {hi}], got {v!r}')
            elif f.name in _FLOATS:
                lo, hi = _FLOATS[f.name]
                ok = isinstance(v, (int, float)) and not isinstance(v, bool)
                strict = f.name in ('lr', 'scale_ev', 'sigma_ev', 'delta_ev')
                inside = ok and math.isfinite(v) and (lo < v if strict else lo <= v) \
                    and v <= hi
                if not inside:
                    raise ConfigError(f'personalized config: {f.name} must be a number in '
                                      f'{"(" if strict else "["}{lo:g}, {hi:g}], got {v!r}')
                setattr(self, f.name, float(v))
        for name, choices in (('task', TASKS), ('metering', METERINGS), ('expert', EXPERTS),
                              ('init', STAGE2_INITS), ('supervision', STAGE2_SUPERVISIONS),
                              ('baseline', BASELINES)):
            if getattr(self, name) not in choices:
                raise ConfigError(f'personalized config: {name} must be one of '
                                  f'{"|".join(choices)}, got {getattr(self, name)!r}')
        if not isinstance(self.train_backbone, bool):
            raise ConfigError(f'personalized config: train_backbone must be true or false, '
                              f'got {self.train_backbone!r}')
        if self.height % 2 or self.width % 2:
            raise ConfigError(f'personalized config: height and width must be even, got '
                              f'{self.height} x {self.width}')

    def to_dict(self) -> dict:
        """Plain dict."""
        return asdict(self)


def personalized_config(data: dict, source: str = 'dict', **overrides) -> PersonalizedConfig:
    """Build from a mapping; unknown keys name the source."""
    if not isinstance(data, dict):
        raise ConfigError(f'{source}: expected a mapping, got {type(data).__name__}')
    data = {**data, **{k: v for k, v in overrides.items() if v is not None}}
    names = {f.name for f in fields(PersonalizedConfig)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f'{source}: unknown key(s) {unknown}')
    try:
        return PersonalizedConfig(**data)
    except TypeError as err:
        raise ConfigError(f'{source}: {err}') from err


def read_yaml(path) -> dict:
    """Return the mapping of a YAML file (one-line ConfigError for a missing or bad file)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f'cannot read config {path}: {str(err).splitlines()[0]}') from err
    return data if data is not None else {}


def is_personalized_config(path) -> bool:
    """Whether the YAML at ``path`` is a personalized-policy config (its ``task`` key)."""
    data = read_yaml(path)
    return isinstance(data, dict) and data.get('task') in TASKS


def load_personalized_config(path, **overrides) -> PersonalizedConfig:
    """Read and check a ``config/train_personalized_stage*.yaml``."""
    return personalized_config(read_yaml(path), str(path), **overrides)


def optional_int(value) -> Optional[int]:
    """``None`` stays ``None``; else ``int(value)``."""
    return None if value is None else int(value)
