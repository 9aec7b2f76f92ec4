"""
Exposure controllers: one protocol (:class:`Controller`), one registry, many policies.

The registry (:mod:`neural_ae.core.controllers.registry`) says what each controller is
and needs; ``make_controller(name, options, **kw)`` builds one by name:

- ``'fixed'``: hold one setting (:class:`FixedController`; ``setting=``);
- ``'average'``: Average AE (:class:`AverageController`; ``level=0.5``);
- ``'gradient'``: Gradient AE after Shim et al. 2018 (:class:`GradientController`);
- ``'histogram_nn'``, ``'semantic_nn'``, ``'hybrid_nn'``: the paper's networks
  (:class:`NeuralController`; ``model=`` module, checkpoint path or ``None`` for an
  untrained net);
- ``'personalized'``: the personalized policy of Yang et al. 2018
  (:class:`PersonalizedController`; ``model=``, ``metering=``);
- ``'oracle'``: best exposure of a dense sweep with hindsight (:class:`OracleController`;
  ``score=``, ``render=``).

Every controller takes ``sensor=`` (default: the IMX249 preset) and
:class:`ControllerOptions`; see :mod:`neural_ae.core.controllers.base` for the shared
behaviour (bounds, EV compensation, deadband, step limit, smoothing, priorities, flicker,
latency, fallback). A new controller is one module that registers itself plus one import
line below (``docs/CONTRIBUTING.md`` walks through it).
"""
from pathlib import Path
from typing import Optional, Union

from neural_ae.core.controllers.base import (AdaptiveSmoothing, Controller, ControllerOptions,
                                             Decision, EmaSmoothing, ExposureSetting, Limits,
                                             make_smoothing, NoSmoothing, Smoothing,
                                             StableSmoothing)
from neural_ae.core.controllers.registry import (controller_names, ControllerSpec, get_spec,
                                                 register, specs)
# Importing a controller module registers its controllers (in this order).
from neural_ae.core.controllers.classical import (AverageController, FixedController,  # noqa: I100
                                                  GradientController)
from neural_ae.core.controllers.neural import NeuralController
from neural_ae.core.controllers.oracle import OracleController, well_exposed_score
from neural_ae.core.controllers.personalized import PersonalizedController  # noqa: I100

CONTROLLER_NAMES = controller_names()
"""Every registered controller, in registration order."""

__all__ = ['AdaptiveSmoothing', 'AverageController', 'CONTROLLER_NAMES', 'Controller',
           'ControllerOptions', 'ControllerSpec', 'controller_names', 'Decision',
           'build_controller', 'EmaSmoothing', 'ExposureSetting', 'FixedController', 'get_spec',
           'GradientController', 'Limits', 'make_controller', 'make_smoothing',
           'NeuralController', 'NoSmoothing', 'OracleController', 'PersonalizedController',
           'register', 'Smoothing',
           'StableSmoothing',
           'specs', 'well_exposed_score']


def make_controller(name: str, options: Optional[ControllerOptions] = None,
                    **kw) -> Controller:
    """Build the registered controller ``name`` with ``options`` (and its own ``kw``)."""
    return get_spec(name).factory(options, **kw)


def build_controller(name: str, options: Union[None, dict, ControllerOptions] = None,
                     sensor=None, model=None, device: str = 'cpu', **kw) -> Controller:
    """
    Build ``name`` for a tool or node, its model file resolved and checked first.

    ``options``: a :class:`ControllerOptions` or a mapping of its fields. For trained
    controllers ``model`` is a module (used as is) or a file name resolved by
    :func:`neural_ae.core.checkpoints.resolve_model_path` (empty = the registry's
    ``default_model``); a missing file raises :class:`ModelError` naming it. Other
    controllers ignore ``model`` and ``device``; ``kw`` goes to the factory.
    """
    from neural_ae.core.checkpoints import resolve_model_path
    from neural_ae.core.errors import ModelError

    spec = get_spec(name)
    opts = options if isinstance(options, ControllerOptions) else \
        ControllerOptions.from_dict(options)
    if spec.trained and not hasattr(model, 'forward'):
        path = resolve_model_path(model, spec.default_model)
        if not Path(path).is_file():
            raise ModelError(f'model file for {name} not found: {path}')
        model = str(path)
    return spec.build(opts, sensor, model=model, device=device, **kw)
