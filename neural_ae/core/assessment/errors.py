"""Typed error of the exposure assessor (issue 13)."""
from neural_ae.core.errors import NeuralAEError


class AssessmentError(NeuralAEError, ValueError):
    """Bad input to the exposure assessor, its labels, metrics, model file or config."""
