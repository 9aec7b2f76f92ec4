"""
The registry of exportable network kinds.

One :class:`Exporter` per kind of network says how to build the traced module and its
example inputs from a checkpoint (:meth:`Exporter.plan` -> :class:`ExportPlan`) and how
to turn a generic inference session (:class:`~neural_ae.core.deploy.runtime.Session`)
back into the call the rest of neural_ae makes on the torch module
(:meth:`Exporter.adapt`). The shipped kinds (``exposure_net``, ``detector``) register in
:mod:`neural_ae.core.deploy.exporters`; a new network (a personalized policy, an
assessor, a correction net) registers its own ``Exporter`` with :func:`register` from
its module, and ``neural-ae export`` and the backends pick it up.
"""
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Optional, Tuple

from neural_ae.core.errors import ModelError
from neural_ae.core.sensor import SensorConfig
import torch
from torch import nn

__all__ = ['DeployError', 'ExportPlan', 'ExportRequest', 'Exporter', 'exporter_kinds',
           'get_exporter', 'register', 'unregister']


class DeployError(ModelError):
    """An artifact cannot be exported, found, trusted (stale) or run by a backend."""


@dataclass(frozen=True)
class ExportRequest:
    """
    What to export: ``checkpoint`` (path), its dict ``ckpt`` (read once), ``frame_size``.

    ``frame_size``: ``(height, width)`` [px] of the raw frames the network will see (it
    fixes the detector's input and the semantic feature map); ``sensor``: the
    :class:`~neural_ae.core.sensor.SensorConfig` to build the ISP for.
    """

    checkpoint: Path
    ckpt: dict
    frame_size: Tuple[int, int]
    sensor: SensorConfig


@dataclass
class ExportPlan:
    """
    A traceable module and its fixed example inputs.

    ``module.forward(*inputs)`` returns a tuple with one tensor per ``outputs`` name;
    ``inputs`` is ``((name, tensor), ...)`` in call order; ``meta``: extra
    ``metadata_props`` (strings) such as the detector input size.
    """

    module: nn.Module
    inputs: Tuple[Tuple[str, torch.Tensor], ...]
    outputs: Tuple[str, ...]
    meta: Dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Exporter:
    """
    One exportable kind of network.

    ``kind``: the name (file names ``<checkpoint stem>.<kind>.onnx``); ``describe``: one
    line; ``applies(ckpt) -> None | reason`` says why a checkpoint holds no such network;
    ``plan(request) -> ExportPlan``; ``adapt(session, request_meta) -> callable`` wraps a
    session into the call the torch module answers (see the kind's module).
    """

    kind: str
    describe: str
    applies: Callable[[dict], Optional[str]]
    plan: Callable[[ExportRequest], ExportPlan]
    adapt: Callable


_REGISTRY: Dict[str, Exporter] = {}


def register(exporter: Exporter) -> Exporter:
    """Add ``exporter`` (a kind may be registered once); return it."""
    if not isinstance(exporter, Exporter):
        raise DeployError(f'register expects an Exporter, got {type(exporter).__name__}')
    old = _REGISTRY.get(exporter.kind)
    if old is not None and old is not exporter:
        raise DeployError(f'exporter {exporter.kind!r} is registered already')
    _REGISTRY[exporter.kind] = exporter
    return exporter


def unregister(kind: str) -> None:
    """Remove ``kind`` (for tests that register a throw-away exporter)."""
    _REGISTRY.pop(kind, None)


def _load_builtin() -> None:
    import neural_ae.core.deploy.exporters  # noqa: F401 - registers the shipped kinds


def exporter_kinds() -> Tuple[str, ...]:
    """Names of the registered kinds, in registration order."""
    _load_builtin()
    return tuple(_REGISTRY)


def get_exporter(kind: str) -> Exporter:
    """Return the exporter of ``kind``; :class:`DeployError` names the known ones."""
    _load_builtin()
    try:
        return _REGISTRY[kind]
    except (KeyError, TypeError):
        raise DeployError(f'unknown export kind {kind!r}; expected one of '
                          f'{tuple(_REGISTRY)}') from None
