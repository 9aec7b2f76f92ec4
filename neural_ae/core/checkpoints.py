"""
One reader for every model file neural_ae loads, and one rule for where model files live.

:func:`read_checkpoint` is the only place that calls ``torch.load``: weights-only
(no arbitrary pickles), on the CPU, with ``torch.torch_version.TorchVersion`` allowed
(checkpoints that stored ``torch.__version__`` as is carry that ``str`` subclass). Every
failure becomes one typed, chained error that names the file: a missing file, an
unreadable or foreign file, a file that does not hold a dict.

:func:`resolve_model_path` turns a model name from a parameter, a CLI option or a
registry default into a path: absolute paths and paths that exist are used as given,
other relative names are looked up in the package's ``models/`` folder.
"""
from pathlib import Path
from typing import Optional, Type, Union

from neural_ae.core.errors import ModelError, NeuralAEError
from neural_ae.core.paths import models_dir

__all__ = ['read_checkpoint', 'resolve_model_path', 'TRAIN_FORMAT', 'is_training_checkpoint']

TRAIN_FORMAT = 'neural_ae.train/1'
"""``format`` key of the checkpoints ``neural-ae train`` writes."""

PathLike = Union[str, Path]


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


def read_checkpoint(path: PathLike, what: str = 'model',
                    error: Type[NeuralAEError] = ModelError) -> dict:
    """
    Read a checkpoint dict from ``path`` with ``torch.load(weights_only=True)``.

    ``what`` names the file's role in the messages (``'detector checkpoint'``...);
    ``error`` is the error class raised (:class:`ModelError` by default, the training
    engine passes :class:`TrainingError`). The original exception is chained.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise error(f'{what} not found: {path}')
    try:
        with torch.serialization.safe_globals([torch.torch_version.TorchVersion]):
            ckpt = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch raises many types for bad files
        raise error(f'cannot read {what} {path}: {str(err).splitlines()[0]}') from err
    if not isinstance(ckpt, dict):
        raise error(f'{what} {path} holds {type(ckpt).__name__}, expected a dict')
    return ckpt


def is_training_checkpoint(ckpt: dict) -> bool:
    """Whether ``ckpt`` was written by ``neural-ae train`` (any version of the format)."""
    return str(ckpt.get('format', '')).startswith('neural_ae.train/')
