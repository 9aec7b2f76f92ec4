"""Typed errors, one family per subsystem, all deriving from :class:`NeuralAEError`."""


class NeuralAEError(Exception):
    """Base class of every error neural_ae raises on purpose."""


class ConfigError(NeuralAEError, ValueError):
    """A configuration file or value is missing, malformed or out of range."""


class SensorError(NeuralAEError, ValueError):
    """Bad input to the sensor model (shape, dtype, non-finite values, bounds)."""


class HDRError(NeuralAEError, ValueError):
    """Bad HDR input: unreadable file, NaN radiance, inconsistent brackets."""


class SceneError(NeuralAEError, ValueError):
    """Bad arguments to the procedural scene generator."""


class HistogramError(NeuralAEError, ValueError):
    """Bad input to the multi-scale histogram."""


class ControllerError(NeuralAEError, ValueError):
    """Bad controller configuration or input frame."""


class ModelError(NeuralAEError):
    """A model file is missing, corrupt or does not match its configuration."""


class TrainingError(NeuralAEError):
    """Training cannot continue (non-finite loss, bad checkpoint, bad config)."""


class BagFormatError(NeuralAEError):
    """A rosbag2 file is missing, corrupt, truncated or lacks the expected topics."""


class EvaluationError(NeuralAEError):
    """An evaluation protocol cannot run on the given inputs."""
