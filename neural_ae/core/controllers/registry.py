"""
The controller registry: one entry per controller says what it is and what it needs.

Every controller module registers its controllers next to their classes with
:func:`register`; node, replay, evaluation, training config, benchmarks and CLI choices
all read this registry instead of keeping their own lists. Adding a controller is one
new module plus one :func:`register` call (and an import line in
:mod:`neural_ae.core.controllers`, which loads the modules).

A :class:`ControllerSpec` declares:

- ``name`` (CLI / parameter value) and ``label`` (tables and plots);
- ``factory(options, sensor=..., **kw)``: builds the controller (usually the class);
- ``needs_features``: the controller reads the detector backbone's ``layer2`` map of the
  same frame (:class:`neural_ae.core.loop.FrameStep` routes it);
- ``needs_next_scene``: the controller needs the scene its command will expose
  (hindsight: the oracle); such a controller cannot run on a live camera;
- ``trained``: the controller runs a learned model file (``model=``, ``device=``);
- ``train_mode``: the ``ae`` mode of ``neural-ae train`` that trains the detector (and
  network) belonging to it (``None`` = not trainable);
- ``default_model``: model file used when none is given (a name in ``models/``);
- ``node_kwargs``: node parameters the factory takes (parameter name -> keyword);
- ``detector_from``: for a trained controller whose model file is not an exposure
  training checkpoint (the personalized policy): the training ``ae`` mode whose detector
  scores its frames in the evaluation (the network comes from ``default_model``);
- ``backends``: inference backends the trained controller's network runs on
  (:data:`neural_ae.core.deploy.BACKENDS`; the factory then takes ``backend``,
  ``deploy_dir`` and ``checkpoint``).
"""
from dataclasses import dataclass, field
from typing import Callable, Dict, Optional, Tuple

from neural_ae.core.errors import ControllerError

__all__ = ['ControllerSpec', 'controller_names', 'find_spec', 'get_spec', 'register', 'specs',
           'unregister']


@dataclass(frozen=True)
class ControllerSpec:
    """What one controller is and needs (see the module docstring)."""

    name: str
    label: str
    factory: Callable
    needs_features: bool = False
    needs_next_scene: bool = False
    trained: bool = False
    train_mode: Optional[str] = None
    default_model: Optional[str] = None
    node_kwargs: Dict[str, str] = field(default_factory=dict)
    description: str = ''
    backends: Tuple[str, ...] = ('torch',)
    detector_from: Optional[str] = None

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name.strip():
            raise ControllerError(f'controller name must be a non-empty string, got '
                                  f'{self.name!r}')
        if not callable(self.factory):
            raise ControllerError(f'controller {self.name}: factory must be callable')
        if self.default_model and not self.trained:
            raise ControllerError(f'controller {self.name}: default_model needs trained=True')
        if self.detector_from and not (self.trained and self.default_model):
            raise ControllerError(f'controller {self.name}: detector_from needs trained=True '
                                  f'and a default_model')

    @property
    def live(self) -> bool:
        """Whether it can run on a live camera (the node): no hindsight needed."""
        return not self.needs_next_scene

    def build(self, options=None, sensor=None, *, model=None, device: str = 'cpu',
              backend: str = 'torch', deploy_dir=None, checkpoint=None, **kw):
        """
        Build the controller; ``model`` / ``device`` go only to trained controllers.

        ``model`` is a module, a checkpoint path or ``None`` (an untrained network for a
        trained controller; ignored by the others). ``backend`` other than ``'torch'``
        (with ``deploy_dir`` and ``checkpoint``, the file a module ``model`` came from)
        goes to trained controllers that list it in ``backends``; one that does not
        raises :class:`ControllerError`. Controllers without a network ignore it.
        """
        if self.trained:
            kw.update(model=model, device=device)
            if backend != 'torch':
                if backend not in self.backends:
                    raise ControllerError(f'controller {self.name} has no {backend} backend '
                                          f'(its backends: {"|".join(self.backends)})')
                kw.update(backend=backend, deploy_dir=deploy_dir, checkpoint=checkpoint)
        return self.factory(options, sensor=sensor, **kw)


_REGISTRY: Dict[str, ControllerSpec] = {}


def register(spec: ControllerSpec) -> ControllerSpec:
    """Add ``spec`` to the registry (a name may be registered once); return it."""
    if not isinstance(spec, ControllerSpec):
        raise ControllerError(f'register expects a ControllerSpec, got {type(spec).__name__}')
    old = _REGISTRY.get(spec.name)
    if old is not None and old != spec:
        raise ControllerError(f'controller {spec.name!r} is registered already')
    _REGISTRY[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    """Remove ``name`` (for tests that register a throw-away controller)."""
    _REGISTRY.pop(name, None)


def get_spec(name: str) -> ControllerSpec:
    """Return the spec of ``name``; :class:`ControllerError` names the known ones."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ControllerError(f'unknown controller {name!r}; expected one of '
                              f'{controller_names()}') from None


def find_spec(name: str) -> Optional[ControllerSpec]:
    """Return the spec of ``name``, or ``None`` when it is not registered."""
    return _REGISTRY.get(name) if isinstance(name, str) else None


def specs(**where) -> Tuple[ControllerSpec, ...]:
    """
    Return the registered specs in registration order, filtered by attribute values.

    ``specs(trained=True)``, ``specs(live=True)``, ``specs(needs_features=True)``...
    """
    out = []
    for spec in _REGISTRY.values():
        if all(getattr(spec, k) == v for k, v in where.items()):
            out.append(spec)
    return tuple(out)


def controller_names(**where) -> Tuple[str, ...]:
    """Names of :func:`specs` ``(**where)``."""
    return tuple(s.name for s in specs(**where))
