"""
The one step from a raw frame to an exposure decision.

Node, replay, evaluation drives, demo and benchmarks all turn a frame into a decision the
same way, through :class:`FrameStep`::

    raw frame + setting that produced it
      -> perception (ISP + detector, when loaded and wanted, or needed for features)
      -> features (the backbone's layer2 map, only for controllers that need them)
      -> controller.step
      -> StepResult (decision = command + flags, detections, timings)

What a controller needs comes from the registry
(:attr:`neural_ae.core.controllers.Controller.spec`): a controller that needs features
without a perception is refused when the step is built, never at the first frame.
"""
from dataclasses import dataclass
import time
from typing import Optional

from neural_ae.core.controllers.base import Controller, Decision, ExposureSetting
from neural_ae.core.errors import ConfigError
import numpy as np

__all__ = ['FrameStep', 'StepResult', 'StepTimings']


@dataclass(frozen=True)
class StepTimings:
    """Wall time of one :meth:`FrameStep.step` [ms]: perception, controller, both."""

    perception_ms: float
    controller_ms: float
    total_ms: float


@dataclass(frozen=True)
class StepResult:
    """
    What one frame produced.

    ``decision``: the controller's :class:`Decision` (``decision.setting`` is the
    command); ``perception``: the :class:`~neural_ae.core.models.perception.
    PerceptionResult` of this frame (``None`` when no detector ran); ``features_used``:
    whether the controller was given the backbone map; ``timings``: see
    :class:`StepTimings`.
    """

    decision: Decision
    perception: Optional[object]
    features_used: bool
    timings: StepTimings

    @property
    def command(self) -> ExposureSetting:
        """Return the setting to send to the camera."""
        return self.decision.setting


class FrameStep:
    """
    ``controller`` (+ optional ``perception``) as one frame -> decision step.

    ``perception``: an object with ``run(raw) -> PerceptionResult`` (see
    :class:`~neural_ae.core.models.perception.Perception`); required when the
    controller needs features. ``detect``: run the detector on every frame even when
    the controller does not need its features (for published / recorded detections);
    ``False`` runs it only for controllers that need it.
    """

    def __init__(self, controller: Controller, perception=None, *, detect: bool = True):
        if not isinstance(controller, Controller):
            raise ConfigError(f'FrameStep needs a Controller, got {type(controller).__name__}')
        self.controller = controller
        self.perception = perception
        self.detect = bool(detect)
        self.needs_features = controller.needs_features
        if self.needs_features and perception is None:
            raise ConfigError(f'{controller.name} needs backbone features: give a detector')

    @property
    def runs_perception(self) -> bool:
        """Whether :meth:`step` runs the detector."""
        return self.perception is not None and (self.detect or self.needs_features)

    def step(self, raw: np.ndarray, used: Optional[ExposureSetting] = None) -> StepResult:
        """
        Decide the next setting from ``raw`` (produced by ``used``, or inferred if None).

        Raises what the controller raises for a frame it rejects
        (:class:`~neural_ae.core.errors.ControllerError`).
        """
        t0 = time.perf_counter()
        seen = self.perception.run(raw) if self.runs_perception else None
        features = seen.layer2 if (self.needs_features and seen is not None) else None
        observe = getattr(self.controller, 'observe_detections', None)
        if observe is not None and seen is not None:   # detections metering (issue 12)
            observe(seen)
        t1 = time.perf_counter()
        decision = self.controller.step(raw, used, features=features)
        t2 = time.perf_counter()
        return StepResult(decision, seen, features is not None,
                          StepTimings((t1 - t0) * 1e3, (t2 - t1) * 1e3, (t2 - t0) * 1e3))
