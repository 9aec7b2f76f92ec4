"""
The exposure feedback a camera publishes per frame, read defensively.

``camera_sim_node`` (and a driver that does the same) publishes one JSON
``std_msgs/String`` per frame on ``camera/exposure``::

    {"stamp_ns": 1700000000000000000, "exposure_time_us": 2000.0, "gain_db": 0.0, ...}

The auto-exposure node uses it to know which setting produced a frame. The topic is
input from the outside world, so :func:`parse_exposure_feedback` checks everything
before it trusts anything: the size (refused above ``max_chars`` characters before
parsing), the JSON (nesting too deep, ``NaN`` / ``Infinity`` literals, numbers that
overflow), the shape (an object with the three keys; other keys are ignored), the types
(numbers that are not booleans; an integer stamp), finiteness and ranges. Every failure
is one :class:`FeedbackError` with a one-line message.
"""
from dataclasses import dataclass
import json
import math

from neural_ae.core.controllers import ExposureSetting
from neural_ae.core.errors import NeuralAEError

__all__ = ['Feedback', 'FeedbackError', 'FeedbackLimits', 'MAX_STAMP_NS',
           'parse_exposure_feedback']

MAX_STAMP_NS = 2**63 - 1
"""Largest accepted ``stamp_ns`` (int64, as ``builtin_interfaces/Time`` spans)."""


class FeedbackError(NeuralAEError, ValueError):
    """An exposure feedback message that cannot be trusted (size, JSON, schema, range)."""


@dataclass(frozen=True)
class FeedbackLimits:
    """
    What a feedback message may say.

    ``max_chars``: longest message [characters], refused before parsing;
    ``exposure_us``: accepted ``exposure_time_us`` range [us] (ends included);
    ``gain_db``: accepted ``gain_db`` range [dB].
    """

    max_chars: int = 65536
    exposure_us: tuple = (1e-3, 1e8)
    gain_db: tuple = (-20.0, 80.0)

    @classmethod
    def for_sensor(cls, sensor, max_chars: int = 65536, margin: float = 2.0,
                   margin_db: float = 6.0) -> 'FeedbackLimits':
        """Ranges of ``sensor`` widened by ``margin`` (a factor) and ``margin_db``."""
        exposure = (float(sensor.min_exposure_us) / margin,
                    float(sensor.max_exposure_us) * margin)
        return cls(int(max_chars), exposure,
                   (-float(margin_db), float(sensor.max_gain_db) + margin_db))


@dataclass(frozen=True)
class Feedback:
    """One trusted feedback message: the frame's stamp [ns] and the setting that made it."""

    stamp_ns: int
    setting: ExposureSetting


def _no_constant(name):
    raise FeedbackError(f'JSON constant {name} is not allowed')


def _finite_float(text):
    value = float(text)
    if not math.isfinite(value):
        raise FeedbackError(f'number {text[:30]} overflows a float')
    return value


def _number(doc: dict, key: str, lo: float, hi: float) -> float:
    value = doc.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise FeedbackError(f'{key} must be a number, got {type(value).__name__}')
    try:
        value = float(value)
    except OverflowError:
        raise FeedbackError(f'{key} is too large') from None
    if not lo <= value <= hi:
        raise FeedbackError(f'{key} {value:g} is outside [{lo:g}, {hi:g}]')
    return value


def parse_exposure_feedback(data, limits: FeedbackLimits = FeedbackLimits()) -> Feedback:
    """
    Parse and check one feedback message's ``data``; :class:`FeedbackError` if untrusted.

    Accepted: a JSON object with ``stamp_ns`` (an integer in [0, 2**63 - 1]),
    ``exposure_time_us`` and ``gain_db`` (finite numbers inside ``limits``).
    """
    if not isinstance(data, str):
        raise FeedbackError(f'expected a string, got {type(data).__name__}')
    if len(data) > limits.max_chars:
        raise FeedbackError(f'message of {len(data)} characters is longer than the limit of '
                            f'{limits.max_chars}')
    try:
        doc = json.loads(data, parse_constant=_no_constant, parse_float=_finite_float)
    except FeedbackError:
        raise
    except RecursionError:
        raise FeedbackError('JSON nested too deeply') from None
    except ValueError as err:  # JSONDecodeError, int digits limit
        raise FeedbackError(f'not JSON: {str(err)[:80]}') from None
    if not isinstance(doc, dict):
        raise FeedbackError(f'expected a JSON object, got {type(doc).__name__}')
    missing = [k for k in ('stamp_ns', 'exposure_time_us', 'gain_db') if k not in doc]
    if missing:
        raise FeedbackError(f'missing {", ".join(missing)}')
    stamp = doc['stamp_ns']
    if isinstance(stamp, bool) or not isinstance(stamp, int):
        raise FeedbackError(f'stamp_ns must be an integer [ns], got {type(stamp).__name__}')
    if not 0 <= stamp <= MAX_STAMP_NS:
        raise FeedbackError('stamp_ns is outside [0, 2**63 - 1]')
    setting = ExposureSetting(_number(doc, 'exposure_time_us', *limits.exposure_us),
                              _number(doc, 'gain_db', *limits.gain_db))
    if not setting.is_valid():
        raise FeedbackError(f'invalid setting {setting}')
    return Feedback(int(stamp), setting)
