"""
Exposure controllers: one protocol (:class:`Controller`), many policies.

``make_controller(name, options, **kw)`` builds one by name:

- ``'fixed'``: hold one setting (:class:`FixedController`; ``setting=``);
- ``'average'``: Average AE (:class:`AverageController`; ``level=0.5``);
- ``'gradient'``: Gradient AE after Shim et al. 2018 (:class:`GradientController`);
- ``'histogram_nn'``, ``'semantic_nn'``, ``'hybrid_nn'``: the paper's networks
  (:class:`NeuralController`; ``model=`` module, checkpoint path or ``None`` for an
  untrained net);
- ``'oracle'``: best exposure of a dense sweep with hindsight (:class:`OracleController`;
  ``score=``, ``render=``).

Every controller takes ``sensor=`` (default: the IMX249 preset) and
:class:`ControllerOptions`; see :mod:`neural_ae.core.controllers.base` for the shared
behaviour (bounds, EV compensation, deadband, step limit, smoothing, priorities, flicker,
latency, fallback).
"""
from typing import Optional

from neural_ae.core.controllers.base import (AdaptiveSmoothing, Controller, ControllerOptions,
                                             Decision, EmaSmoothing, ExposureSetting, Limits,
                                             make_smoothing, NoSmoothing, Smoothing)
from neural_ae.core.controllers.classical import (AverageController, FixedController,
                                                  GradientController)
from neural_ae.core.controllers.neural import NeuralController
from neural_ae.core.controllers.oracle import OracleController, well_exposed_score
from neural_ae.core.errors import ControllerError

CONTROLLER_NAMES = ('fixed', 'average', 'gradient', 'histogram_nn', 'semantic_nn',
                    'hybrid_nn', 'oracle')

__all__ = ['AdaptiveSmoothing', 'AverageController', 'CONTROLLER_NAMES', 'Controller',
           'ControllerOptions', 'Decision', 'EmaSmoothing', 'ExposureSetting',
           'FixedController', 'GradientController', 'Limits', 'make_controller',
           'make_smoothing', 'NeuralController', 'NoSmoothing', 'OracleController',
           'Smoothing', 'well_exposed_score']


def make_controller(name: str, options: Optional[ControllerOptions] = None,
                    **kw) -> Controller:
    """Build the controller ``name`` (see :data:`CONTROLLER_NAMES`) with ``options``."""
    if name == 'fixed':
        return FixedController(options, **kw)
    if name == 'average':
        return AverageController(options, **kw)
    if name == 'gradient':
        return GradientController(options, **kw)
    if name in ('histogram_nn', 'semantic_nn', 'hybrid_nn'):
        return NeuralController(name, options, **kw)
    if name == 'oracle':
        return OracleController(options, **kw)
    raise ControllerError(f'unknown controller {name!r}; expected one of {CONTROLLER_NAMES}')
