"""
One reader for every model file neural_ae loads, and one rule for where model files live.

:func:`read_checkpoint` is the only place that calls ``torch.load``: weights-only
(no arbitrary pickles), on the CPU, with ``torch.torch_version.TorchVersion`` allowed
(checkpoints that stored ``torch.__version__`` as is carry that ``str`` subclass). Every
failure becomes one typed, chained, one-line error that names the file: a missing or
empty file, a file that is not a torch file (text, random bytes, a zip of something
else), a truncated or corrupt torch file, a file holding objects a weights-only load
does not trust (a pickled class: not a neural_ae checkpoint), a file that does not hold
a dict.

The loaders (:func:`neural_ae.core.controllers.neural.load_exposure_model`,
:func:`neural_ae.core.models.perception.load_perception`) take no metadata on trust:
:func:`meta_int`, :func:`meta_float`, :func:`meta_choice` and :func:`meta_mapping`
check one value each (type, finite, range) and name the file and the key;
:func:`load_state` loads a state dict only after checking keys, shapes and values.

:func:`resolve_model_path` turns a model name from a parameter, a CLI option or a
registry default into a path: absolute paths and paths that exist are used as given,
other relative names are looked up in the package's ``models/`` folder.
"""
import math
from pathlib import Path
import re
from typing import Any, Optional, Sequence, Type, Union
import warnings

from neural_ae.core.errors import ModelError, NeuralAEError
from neural_ae.core.paths import models_dir

__all__ = ['is_training_checkpoint', 'load_state', 'meta_choice', 'meta_float', 'meta_int',
           'meta_mapping', 'read_checkpoint', 'resolve_model_path', 'sniff_checkpoint',
           'TRAIN_FORMAT']

TRAIN_FORMAT = 'neural_ae.train/1'
"""``format`` key of the checkpoints ``neural-ae train`` writes."""

TORCH_MAGIC = (b'PK\x03\x04', b'\x80')
"""First bytes of a torch file: a zip archive (torch >= 1.6) or a legacy pickle."""

PathLike = Union[str, Path]

_ANSI = re.compile(r'\x1b\[[0-9;]*m')
_GLOBAL = re.compile(r'Unsupported global: GLOBAL (\S+)')


def resolve_model_path(name: Optional[PathLike], default: Optional[str] = None) -> Path:
    """
    Path of the model file ``name`` (or ``default`` when ``name`` is empty).

    Absolute paths, and relative paths that exist from the working directory, are used as
    given; any other relative name is looked up in the package's ``models/`` folder
    (``models/`` of the working directory when the package data cannot be found). The
    file is not required to exist: callers check and say which file is missing.
    Raises :class:`ModelError` when both ``name`` and ``default`` are empty.
    """
    chosen = str(name) if name not in (None, '') else default
    if not chosen:
        raise ModelError('no model file given and the controller has no default model')
    path = Path(chosen).expanduser()
    if path.is_absolute() or path.exists():
        return path
    try:
        return models_dir() / path
    except FileNotFoundError:
        return Path('models') / path


def sniff_checkpoint(path: PathLike, what: str = 'model') -> Optional[str]:
    """
    Why ``path`` cannot be a torch checkpoint, from its first bytes (no torch.load), or None.

    Missing, not a regular file, unreadable, empty, or not starting like a torch file
    (zip or pickle). A file that passes can still fail to load.
    """
    path = Path(path)
    try:
        if not path.is_file():
            return f'{what} not found: {path}'
        with path.open('rb') as handle:
            head = handle.read(4)
    except OSError as err:
        return f'cannot read {what} {path}: {err.strerror or err}'
    if not head:
        return f'cannot read {what} {path}: the file is empty, not a neural_ae checkpoint'
    if not head.startswith(TORCH_MAGIC):
        return (f'cannot read {what} {path}: not a torch file (neither a zip archive nor a '
                f'pickle), not a neural_ae checkpoint')
    return None


def _first_line(err: BaseException) -> str:
    text = _ANSI.sub('', str(err)).strip()
    return text.splitlines()[0].strip() if text else type(err).__name__


def _first_sentence(err: BaseException) -> str:
    line = _first_line(err)
    return line.split('. ', 1)[0].rstrip('.')


def _starts_zip(path: Path) -> bool:
    try:
        with path.open('rb') as handle:
            return handle.read(4) == TORCH_MAGIC[0]
    except OSError:
        return False


def _load_failure(err: Exception, path: Path, what: str) -> str:
    """Describe a ``torch.load`` failure in one line (torch's message spans many)."""
    import pickle

    text = _ANSI.sub('', str(err))
    if 'truncated' in text and 'Weights only load failed' not in text:
        return (f'cannot read {what} {path}: truncated or corrupt torch file (torch: '
                f'{_first_sentence(err)}); copy or export it again')
    if isinstance(err, pickle.UnpicklingError) or 'Weights only load failed' in text:
        found = _GLOBAL.search(text)
        held = f' ({found.group(1)})' if found else ''
        return (f'cannot read {what} {path}: not a neural_ae checkpoint, or it holds '
                f'objects a weights-only load does not trust{held}; neural_ae reads model '
                f'files with torch.load(weights_only=True) only')
    if 'central directory' in text or 'failed reading' in text or isinstance(err, EOFError):
        return (f'cannot read {what} {path}: truncated or corrupt torch file (torch: '
                f'{_first_sentence(err)}); copy or export it again')
    if isinstance(err, RuntimeError) and _starts_zip(path):
        return (f'cannot read {what} {path}: a zip archive but not a torch file, not a '
                f'neural_ae checkpoint')
    return f'cannot read {what} {path}: {type(err).__name__}: {_first_line(err)}'


def checkpoint_format(path: PathLike, what: str = 'model') -> Optional[str]:
    """Return the ``format`` string of the checkpoint at ``path`` (None without one)."""
    ck = read_checkpoint(path, what)
    fmt = ck.get('format') if isinstance(ck, dict) else None
    return fmt if isinstance(fmt, str) else None


def read_checkpoint(path: PathLike, what: str = 'model',
                    error: Type[NeuralAEError] = ModelError) -> dict:
    """
    Read a checkpoint dict from ``path`` with ``torch.load(weights_only=True)``.

    ``what`` names the file's role in the messages (``'detector checkpoint'``...);
    ``error`` is the error class raised (:class:`ModelError` by default, the training
    engine passes :class:`TrainingError`). Every message is one line naming the file; the
    original exception is chained.
    """
    import torch

    path = Path(path)
    problem = sniff_checkpoint(path, what)
    if problem:
        raise error(problem)
    try:
        with torch.serialization.safe_globals([torch.torch_version.TorchVersion]), \
                warnings.catch_warnings():
            # torch warns about the pickle protocol of foreign pickles before refusing them
            warnings.filterwarnings('ignore', message='Detected pickle protocol')
            ckpt = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch raises many types for bad files
        raise error(_load_failure(err, path, what)) from err
    if not isinstance(ckpt, dict):
        raise error(f'{what} {path} holds {type(ckpt).__name__}, expected a dict: not a '
                    f'neural_ae checkpoint')
    return ckpt


def is_training_checkpoint(ckpt: dict) -> bool:
    """Whether ``ckpt`` was written by ``neural-ae train`` (any version of the format)."""
    return str(ckpt.get('format', '')).startswith('neural_ae.train/')


# ----------------------------------------------------------------------- metadata checks


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + '...'


def meta_int(value: Any, key: str, where: str, lo: int, hi: int,
             error: Type[NeuralAEError] = ModelError) -> int:
    """
    ``value`` as an int in ``[lo, hi]``; ``error`` naming ``where`` and ``key`` otherwise.

    Booleans and floats are refused (a checkpoint stores integers as such).
    """
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise error(f'{where}: {key} must be an integer in [{lo}, {hi}], got '
                    f'{_shown(value)} ({type(value).__name__})')
    return int(value)


def meta_float(value: Any, key: str, where: str, lo: float, hi: float,
               error: Type[NeuralAEError] = ModelError, lo_open: bool = True) -> float:
    """
    ``value`` as a finite float in ``(lo, hi]`` (``[lo, hi]`` with ``lo_open=False``).

    Raises ``error`` naming ``where`` and ``key`` for a non-number, NaN, inf or a value out
    of range.
    """
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    v = float(value) if ok else math.nan
    inside = (lo < v if lo_open else lo <= v) and v <= hi
    if not (ok and math.isfinite(v) and inside):
        span = f'{"(" if lo_open else "["}{lo:g}, {hi:g}]'
        raise error(f'{where}: {key} must be a finite number in {span}, got '
                    f'{_shown(value)} ({type(value).__name__})')
    return v


def meta_choice(value: Any, key: str, where: str, choices: Sequence[str],
                error: Type[NeuralAEError] = ModelError) -> str:
    """``value`` if it is one of the strings ``choices``; ``error`` naming the key otherwise."""
    if not isinstance(value, str) or value not in choices:
        raise error(f'{where}: {key} must be one of {"|".join(choices)}, got '
                    f'{_shown(value)} ({type(value).__name__})')
    return value


def meta_mapping(value: Any, key: str, where: str,
                 error: Type[NeuralAEError] = ModelError) -> dict:
    """``value`` if it is a dict with string keys; ``error`` naming the key otherwise."""
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise error(f'{where}: {key} must be a mapping with string keys, got '
                    f'{_shown(value) if not isinstance(value, dict) else "other keys"} '
                    f'({type(value).__name__})')
    return value


def _few(keys: list) -> str:
    shown = ', '.join(repr(k) for k in keys[:3])
    return shown + (', ...' if len(keys) > 3 else '')


def load_state(module, state: Any, where: str, name: str,
               error: Type[NeuralAEError] = ModelError) -> None:
    """
    Load ``state`` into ``module`` after checking it (one-line ``error`` otherwise).

    ``state`` must be a non-empty dict of string keys -> tensors with exactly the module's
    keys and shapes and finite floating values. ``where`` names the file, ``name`` the
    network (``"ExposureNet('histogram')"``, ``'the detector'``) in the messages.
    """
    import torch

    if not isinstance(state, dict) or not state:
        raise error(f'{where} does not match {name}: it holds no state dict (got '
                    f'{type(state).__name__}{" (empty)" if isinstance(state, dict) else ""})')
    bad = [k for k, v in state.items() if not isinstance(k, str) or not torch.is_tensor(v)]
    if len(bad) == len(state):
        raise error(f'{where} does not match {name}: it holds no state dict (keys '
                    f'{_few(bad)} are not tensors)')
    if bad:
        raise error(f'{where} does not match {name}: {len(bad)} entry(ies) of its state dict '
                    f'are not named tensors ({_few(bad)})')
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f'{k} {tuple(state[k].shape)} != {tuple(own[k].shape)}' for k in own
              if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f'{len(missing)} missing key(s) ({_few(missing)})')
        if unexpected:
            parts.append(f'{len(unexpected)} unexpected key(s) ({_few(unexpected)})')
        if shapes:
            parts.append(f'{len(shapes)} shape mismatch(es) ({"; ".join(shapes[:2])})')
        raise error(f'{where} does not match {name}: {", ".join(parts)}')
    nonfinite = [k for k, v in state.items()
                 if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if nonfinite:
        raise error(f'{where}: the weights of {name} hold non-finite values in '
                    f'{len(nonfinite)} tensor(s) ({_few(nonfinite)})')
    try:
        module.load_state_dict(state)
    except (RuntimeError, TypeError, ValueError) as err:
        raise error(f'{where} does not match {name}: {_first_line(err)}') from err
