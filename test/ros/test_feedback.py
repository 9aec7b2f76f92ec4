"""Exposure feedback parsing: every hostile message is one FeedbackError, good ones parse."""
import json

from neural_ae.core.errors import NeuralAEError
from neural_ae.core.sensor import load_sensor
from neural_ae.ros.feedback import (Feedback, FeedbackError, FeedbackLimits,
                                    parse_exposure_feedback)
import pytest

SENSOR = load_sensor('imx249')
LIMITS = FeedbackLimits.for_sensor(SENSOR)
GOOD = '{"stamp_ns": 1700000000000000000, "exposure_time_us": 2000.0, "gain_db": 3}'


def _doc(**fields) -> str:
    base = {'stamp_ns': '1000', 'exposure_time_us': '2000.0', 'gain_db': '0.0'}
    base.update(fields)
    return '{' + ', '.join(f'"{k}": {v}' for k, v in base.items() if v is not None) + '}'


def test_good_feedback_parses_with_extra_keys():
    got = parse_exposure_feedback(GOOD, LIMITS)
    assert got == Feedback(1700000000000000000, got.setting)
    assert (got.setting.exposure_time_us, got.setting.gain_db) == (2000.0, 3.0)
    doc = json.loads(GOOD)
    doc.update(frame_index=4, gt=[[1, 2, 3, 4, 1]] * 50, e_s=0.002)
    assert parse_exposure_feedback(json.dumps(doc), LIMITS).stamp_ns == doc['stamp_ns']


@pytest.mark.parametrize('data, needle', [
    ('[' * 100_000, 'longer than the limit'),
    (_doc(stamp_ns='1e400'), 'overflows'),
    (_doc(exposure_time_us='1e400'), 'overflows'),
    (_doc(gain_db='-1e400'), 'overflows'),
    (_doc(exposure_time_us='NaN'), 'NaN'),
    (_doc(gain_db='Infinity'), 'Infinity'),
    (_doc(stamp_ns='1.5'), 'integer'),
    (_doc(stamp_ns='1e18'), 'integer'),
    (_doc(stamp_ns='true'), 'integer'),
    (_doc(stamp_ns='-1'), 'outside'),
    (_doc(stamp_ns=str(2**63)), 'outside'),
    (_doc(stamp_ns='1' + '0' * 5000), 'not JSON'),
    (_doc(exposure_time_us='"2000"'), 'must be a number'),
    (_doc(exposure_time_us='true'), 'must be a number'),
    (_doc(exposure_time_us='null'), 'must be a number'),
    (_doc(gain_db='[]'), 'must be a number'),
    (_doc(exposure_time_us='0'), 'outside'),
    (_doc(exposure_time_us='-5'), 'outside'),
    (_doc(exposure_time_us='1e12'), 'outside'),
    (_doc(gain_db='100'), 'outside'),
    (_doc(gain_db=str(10**400)), 'too large'),
    (_doc(gain_db=None), 'missing gain_db'),
    ('[1, 2, 3]', 'JSON object'),
    ('"text"', 'JSON object'),
    ('null', 'JSON object'),
    ('', 'not JSON'),
    ('{"stamp_ns": 1, ', 'not JSON'),
    ('\x00\xff\ud800', 'not JSON'),
])
def test_hostile_feedback_is_one_typed_error(data, needle):
    with pytest.raises(FeedbackError, match=needle) as info:
        parse_exposure_feedback(data, LIMITS)
    assert isinstance(info.value, NeuralAEError) and isinstance(info.value, ValueError)
    assert '\n' not in str(info.value) and len(str(info.value)) < 200


def test_deep_nesting_within_the_size_limit_is_refused():
    wide = FeedbackLimits(max_chars=10**6)
    for opener in ('[', '{"a":'):
        with pytest.raises(FeedbackError, match='nested too deeply'):
            parse_exposure_feedback(opener * 100_000, wide)


def test_limits_follow_the_sensor_and_non_strings_are_refused():
    assert LIMITS.exposure_us == (SENSOR.min_exposure_us / 2, SENSOR.max_exposure_us * 2)
    assert LIMITS.gain_db == (-6.0, SENSOR.max_gain_db + 6.0)
    edge = _doc(exposure_time_us=repr(SENSOR.max_exposure_us * 2))
    assert parse_exposure_feedback(edge, LIMITS).setting.exposure_time_us == 2e6
    with pytest.raises(FeedbackError, match='outside'):
        parse_exposure_feedback(_doc(exposure_time_us=repr(SENSOR.max_exposure_us * 2.01)),
                                LIMITS)
    with pytest.raises(FeedbackError, match='expected a string'):
        parse_exposure_feedback(b'{}', LIMITS)
    short = FeedbackLimits(max_chars=len(GOOD) - 1)
    with pytest.raises(FeedbackError, match='longer than the limit'):
        parse_exposure_feedback(GOOD, short)
