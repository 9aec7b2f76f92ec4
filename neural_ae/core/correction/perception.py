"""
A detector that sees the corrected image (issue 14): ``CorrectedPerception``.

``auto_exposure_node``'s ``correction_model`` parameter (and any
:class:`~neural_ae.core.loop.FrameStep`, the core step of the node and of replay) can
feed the detector the output of a correction network instead of the plain ISP image, so
a user can compare "fix it afterwards" with "expose it well" on the same drive. Per
frame: the raw frame is binned to the detector's input size as
:class:`~neural_ae.core.models.perception.Perception` does, rendered through the
*corrector's* ISP (the one its training pairs came from), corrected
(:meth:`~.model.Corrector.correct`) and detected. The backbone's ``layer2`` features
that controllers needing them receive come from the same, corrected, pass. The exposure
controller itself still sees the raw frame.
"""
from typing import Optional, Tuple

from neural_ae.core.errors import ModelError
from neural_ae.core.models.perception import Perception
import numpy as np

__all__ = ['CorrectedPerception', 'with_correction']


class CorrectedPerception(Perception):
    """``base``'s detector on ``corrector``'s output (module docstring)."""

    def __init__(self, base: Perception, corrector):
        super().__init__(base.detector, corrector.isp, str(base.device), base.source)
        self.infer = base.infer
        self.backend = base.backend
        self.corrector = corrector
        self.base = base

    def _rgb(self, raw: np.ndarray):
        """Bin and render ``raw`` through the corrector's ISP, then correct it."""
        rgb, shape = super()._rgb(raw)
        return self.corrector.correct(rgb).to(self.device), shape


def with_correction(perception: Optional[Perception], source: str, model: str, sensor,
                    device: str = 'cpu') -> Tuple[Optional[Perception], str]:
    """
    Wrap ``perception`` so its detector sees ``model``'s corrected image (``''``: as is).

    Returns ``(perception, source)`` (``source`` as given: where the detector came from;
    the corrector's file is ``perception.corrector.source``). One-line
    :class:`ModelError` for a bad or missing model file, or when there is no detector
    to feed.
    """
    if not model:
        return perception, source
    from neural_ae.core.checkpoints import resolve_model_path
    from neural_ae.core.correction.model import load_corrector

    if perception is None:
        raise ModelError(f'correction_model {model}: there is no detector to feed (set '
                         f'detector_path, or use a controller with a detector)')
    path = resolve_model_path(model)
    try:
        corrector = load_corrector(path, sensor, str(perception.device))
    except ModelError as err:
        raise ModelError(f'correction_model: {str(err).splitlines()[0]}') from err
    except (OSError, RuntimeError, ValueError, KeyError) as err:
        raise ModelError(f'correction_model {path}: {type(err).__name__}: '
                         f'{str(err).splitlines()[0] if str(err) else ""}') from err
    return CorrectedPerception(perception, corrector), source
