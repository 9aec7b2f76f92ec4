"""
auto_exposure_node against hostile input on every topic it subscribes (in this process).

The node subscribes two topics: ``camera/image_raw`` and the exposure feedback
(``camera/exposure``). Each gets 1,200 seeded random and hostile messages (random text and
bytes, JSON of every shape, deep nesting, extreme numbers; random Image fields, encodings,
steps, sizes, NaN floats, huge declared sizes), handed one at a time to the subscription
callback as deserialized messages, so that each is accounted for, and 150 of each are
published through real DDS (plus malformed CDR payloads, which never reach the node). The
node must survive, count every refused message, send no command for a refused image, keep
every command inside the configured bounds and step limit (what the driver receives:
exactly), warn only at the throttled rate, and still decide on a valid frame afterwards.
"""
import json
import math
import threading
import time

from neural_ae.core.sensor import capture, load_sensor
from neural_ae.nodes.auto_exposure_node import AutoExposureNode
from neural_ae.ros.conversions import array_to_image, encoding_layout, RAW_ENCODINGS
from neural_ae.ros.qos import command_qos, image_qos
import numpy as np
import pytest
import rclpy
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image
from std_msgs.msg import String

SENSOR = load_sensor('imx249')
N_CASES = 1200
N_DDS = 150
BOUNDS = {'min_exposure_us': 25.0, 'max_exposure_us': 20000.0, 'min_gain_db': 0.2,
          'max_gain_db': 12.0}
MAX_STEP_EV = 1.0
U32 = 2**32 - 1


# --------------------------------------------------------------------------- feedback cases

HOSTILE_VALUES = {
    'stamp_ns': ['1e400', '-1e400', 'NaN', 'Infinity', '1.5', '1e18', '-1', str(2**63),
                 str(2**64), '1' + '0' * 5000, '"1000"', 'true', 'null', '[]', '{}', '1000.0'],
    'exposure_time_us': ['1e400', 'NaN', '-Infinity', '0', '-5', '1e12', '5e-324', '"2000"',
                         'false', 'null', '[2000]', '{}', str(10**400)],
    'gain_db': ['1e400', 'NaN', 'Infinity', '-100', '1000', '"0"', 'true', 'null', '[]',
                str(10**400), '1e308'],
}


def _pick(rng, items):
    """One of ``items`` (by index: numpy's choice would strip trailing NULs of strings)."""
    return items[int(rng.integers(0, len(items)))]


def _valid_feedback(rng) -> dict:
    lo, hi = SENSOR.min_exposure_us / 2, SENSOR.max_exposure_us * 2
    doc = {'stamp_ns': int(rng.integers(0, 2**63 - 1, dtype=np.int64)),
           'exposure_time_us': float(math.exp(rng.uniform(math.log(lo), math.log(hi)))),
           'gain_db': float(rng.uniform(-6.0, SENSOR.max_gain_db + 6.0))}
    if rng.random() < 0.5:
        doc.update(frame_index=int(rng.integers(0, 10**6)),
                   gt=rng.integers(0, 100, (int(rng.integers(0, 30)), 5)).tolist())
    return doc


def _raw_json(doc: dict, key: str, literal: str) -> str:
    parts = [f'"{k}": {literal if k == key else json.dumps(v)}' for k, v in doc.items()]
    return '{' + ', '.join(parts) + '}'


def feedback_cases(rng, n: int) -> list:
    """``(text, good)`` pairs: ``good`` messages must be accepted, all others refused."""
    out = []
    for _ in range(n):
        kind = int(rng.integers(0, 9))
        if kind == 0:  # random unicode text, lone surrogates and NULs among it
            text = ''.join(chr(int(c)) for c in rng.integers(0, 0xFFFF, int(rng.integers(0, 300))))
            out.append((text, False))
        elif kind == 1:  # random bytes
            out.append((bytes(rng.integers(0, 256, int(rng.integers(0, 300)),
                                           dtype=np.uint8)).decode('latin-1'), False))
        elif kind == 2:  # deep nesting, up to 100,000 levels
            depth = int(rng.choice([100, 1000, 5000, 100_000]))
            opener = _pick(rng, ['[', '{"a":', '[{"b":'])
            out.append((opener * depth, False))
        elif kind == 3:  # JSON that is not an object
            shape = [[1, 2, 3], 'text', None, True, 3.5, 10**30, [], [{}]][int(rng.integers(0, 8))]
            out.append((json.dumps(shape), False))
        elif kind == 4:  # a key missing
            doc = _valid_feedback(rng)
            doc.pop(_pick(rng, ['stamp_ns', 'exposure_time_us', 'gain_db']))
            out.append((json.dumps(doc), False))
        elif kind in (5, 6):  # one field hostile: overflow, NaN, wrong type, range, float stamp
            key = _pick(rng, sorted(HOSTILE_VALUES))
            literal = _pick(rng, HOSTILE_VALUES[key])
            out.append((_raw_json(_valid_feedback(rng), key, literal), False))
        elif kind == 7:  # longer than the size limit
            doc = _valid_feedback(rng)
            doc['pad'] = 'x' * int(rng.integers(70_000, 200_000))
            out.append((json.dumps(doc), False))
        else:
            out.append((json.dumps(_valid_feedback(rng)), True))
    return out


# --------------------------------------------------------------------------- image cases

BAD_ENCODINGS = ['32FC1', '64FC4', '16SC1', 'rgb16', 'yuv422', 'jpeg', 'bayer_rggb32',
                 'BAYER_RGGB16', 'mono16 ', '', 'x' * 10_000, 'bayer_rggb16\t',
                 'bayer_rggb16\x00', '\u00e9\u4e2d', '\ud800']


def _valid_array(rng, encoding, height, width):
    dtype, channels = encoding_layout(encoding)
    shape = (height, width) if channels == 1 else (height, width, channels)
    top = np.iinfo(dtype).max if rng.random() < 0.3 else int(rng.integers(1, 4096))
    return rng.integers(0, min(top, np.iinfo(dtype).max), shape, endpoint=True, dtype=dtype)


def _with_padding(msg, pad: int):
    rows = np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.step)
    padded = np.concatenate([rows, np.full((msg.height, pad), 0xCD, np.uint8)], axis=1)
    msg.step += pad
    msg.data = padded.tobytes()
    return msg


def image_cases(rng, n: int, stamps: list) -> list:
    """``(msg, label)``: ``'good'`` must be processed, ``'bad'`` refused, None either."""
    out = []
    for _ in range(n):
        kind = int(rng.integers(0, 10))
        enc = _pick(rng, RAW_ENCODINGS)
        h, w = int(rng.integers(2, 41)), int(rng.integers(2, 41))
        label = 'bad'
        if kind in (0, 1, 2):
            msg = array_to_image(_valid_array(rng, enc, h, w), enc)
            if rng.random() < 0.3:
                msg = _with_padding(msg, int(rng.integers(1, 9)))
            if rng.random() < 0.2:
                msg.is_bigendian = int(rng.integers(0, 256))
            label = 'good'
        elif kind == 3:  # an encoding that is not a camera raw format, NaN floats among them
            bad = _pick(rng, BAD_ENCODINGS)
            if bad == '32FC1':
                arr = rng.standard_normal((h, w)).astype(np.float32)
                arr[rng.random((h, w)) < 0.5] = np.nan
                arr[0, 0] = np.inf
                msg = array_to_image(arr, '32FC1')
            else:
                msg = array_to_image(_valid_array(rng, 'mono16', h, w), 'mono16')
                msg.encoding = bad
        elif kind == 4:  # step shorter than a row
            msg = array_to_image(_valid_array(rng, enc, h, w), enc)
            msg.step = int(rng.integers(0, msg.step))
            msg.data = bytes(msg.height * msg.step)
        elif kind == 5:  # data length != height * step
            msg = array_to_image(_valid_array(rng, enc, h, w), enc)
            cut = int(rng.integers(1, 64))
            msg.data = bytes(msg.data)[:-cut] if rng.random() < 0.5 else \
                bytes(msg.data) + bytes(cut)
        elif kind == 6:  # zero sizes
            msg = Image(encoding=enc, height=int(rng.choice([0, h])), width=0,
                        step=int(rng.integers(0, 100)))
            if rng.random() < 0.5:
                msg.width, msg.height = w, 0
            msg.data = bytes(int(rng.integers(0, 64)))
        elif kind == 7:  # huge declared sizes, little data
            msg = Image(encoding=enc, height=int(rng.choice([2**31, U32, 65536])),
                        width=int(rng.choice([2**31, U32, 65536])),
                        step=int(rng.choice([0, U32, 131072])))
            msg.data = bytes(int(rng.integers(0, 256)))
        elif kind == 8:  # one row or one column: nothing left after the even crop
            one = (1, w) if rng.random() < 0.5 else (h, 1)
            msg = array_to_image(_valid_array(rng, enc, *one), enc)
        else:  # every field random
            msg = Image(encoding=_pick(rng, list(RAW_ENCODINGS) + BAD_ENCODINGS),
                        height=int(rng.integers(0, 70)), width=int(rng.integers(0, 70)),
                        step=int(rng.integers(0, 300)), is_bigendian=int(rng.integers(0, 256)))
            msg.data = bytes(rng.integers(0, 256, int(rng.integers(0, 9000)), dtype=np.uint8))
            label = None
        if stamps and rng.random() < 0.3:  # the stamp of a trusted feedback message
            t_ns = int(rng.choice(stamps))
        else:
            t_ns = int(rng.integers(0, 2**62))
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(t_ns, 10**9)
        if msg.header.stamp.sec >= 2**31:
            msg.header.stamp.sec = int(msg.header.stamp.sec % 2**31)
        out.append((msg, label))
    return out


# --------------------------------------------------------------------------- the rig


def _wait(predicate, timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.0005)
    return bool(predicate())


@pytest.fixture(scope='module')
def rig(ros_side):
    side = ros_side
    cam = rclpy.create_node('fuzz_camera', context=side.context)
    cam.declare_parameter('exposure_time', 5000.0)
    cam.declare_parameter('gain', 0.0)
    received = []
    cam.add_post_set_parameters_callback(
        lambda ps: received.append({p.name: p.value for p in ps}))
    node = AutoExposureNode('ae_fuzz', context=side.context, parameter_overrides=[
        Parameter('driver_node', value='fuzz_camera'),
        Parameter('feedback_wait_s', value=0.0),
        Parameter('latency_frames', value=0),
        Parameter('max_step_ev', value=MAX_STEP_EV),
        Parameter('bad_input_warn_period_s', value=5.0),
        *(Parameter(k, value=v) for k, v in BOUNDS.items())])
    side.executor.add_node(cam)
    side.executor.add_node(node)
    stop = threading.Event()

    def spin():
        while not stop.is_set():
            side.executor.spin_once(timeout_sec=0.02)

    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
    calls = []
    command = node._actuator.command

    def spy(setting):
        calls.append(setting)
        return command(setting)

    node._actuator.command = spy
    spinner = threading.Thread(target=spin, daemon=True)
    spinner.start()
    assert _wait(lambda: node._actuator.reachable, 10.0)
    yield node, calls, received
    stop.set()
    spinner.join(5.0)
    side.release(node, cam)


def _accounted(node) -> int:
    return node.bad_frames + node.frames_processed + node.errors + node._mailbox.dropped


def _check_commands(calls, received):
    b = BOUNDS
    for s in calls:  # the controller: inside the bounds up to its last bit, step-limited
        assert b['min_exposure_us'] * (1 - 1e-12) <= s.exposure_time_us <= \
            b['max_exposure_us'] * (1 + 1e-12), s
        assert b['min_gain_db'] - 1e-12 <= s.gain_db <= b['max_gain_db'] + 1e-12, s
    for a, c in zip(calls, calls[1:]):
        assert abs(math.log2(c.e_s / a.e_s)) <= MAX_STEP_EV + 1e-9, (a, c)
    for sent in received:  # what the driver receives: exactly inside
        if 'exposure_time' in sent:
            assert b['min_exposure_us'] <= sent['exposure_time'] <= b['max_exposure_us'], sent
        if 'gain' in sent:
            assert b['min_gain_db'] <= sent['gain'] <= b['max_gain_db'], sent


def _utf8(text: str) -> bool:
    """Whether DDS can carry ``text`` (no lone surrogates)."""
    try:
        text.encode('utf-8')
    except UnicodeEncodeError:
        return False
    return True


def _exposure_sets(received) -> int:
    return sum('exposure_time' in r for r in received)


def _good_frame(level=2e6, seed=0):
    raw = capture(np.full((48, 64), level), 0.002, 1.0, SENSOR, np.random.default_rng(seed))
    return array_to_image(raw, 'bayer_rggb16')


def test_fuzz_every_subscription_callback(rig, capfd):
    node, calls, received = rig
    rng = np.random.default_rng(2024)
    t0 = time.monotonic()

    # exposure feedback: every message accounted for, synchronously
    cases = feedback_cases(rng, N_CASES)
    trusted = []
    for text, good in cases:
        bad_before = node.bad_feedback
        node._on_feedback(String(data=text))
        assert node.bad_feedback == bad_before + (0 if good else 1), text[:200]
        if good:
            doc = json.loads(text)
            assert node._feedback[doc['stamp_ns']].exposure_time_us == doc['exposure_time_us']
            trusted.append(doc['stamp_ns'])
    n_bad_feedback = sum(not good for _, good in cases)
    assert node.bad_feedback == n_bad_feedback

    # images: each one through the subscription callback, accounted for by the worker
    images = image_cases(rng, N_CASES, trusted[-200:])
    counts = {'good': 0, 'bad': 0, None: 0}
    for msg, label in images:
        n0, bad0, done0, calls0 = (_accounted(node), node.bad_frames, node.frames_processed,
                                   len(calls))
        node._on_image(msg)
        assert _wait(lambda: _accounted(node) == n0 + 1), (msg.encoding[:40], label)
        refused = node.bad_frames == bad0 + 1
        if label == 'bad' or refused:
            assert refused and len(calls) == calls0, (msg.encoding[:40], msg.height,
                                                      msg.width, msg.step, label)
        else:
            assert node.frames_processed == done0 + 1 and len(calls) == calls0 + 1
            assert label in ('good', None)
        counts[label] += 1
    assert node.errors == 0, node._last_error
    assert node._mailbox.dropped == 0
    _check_commands(calls, received)
    direct_s = time.monotonic() - t0

    # a valid frame after the fuzz still yields a command inside the bounds
    before, sets = len(calls), _exposure_sets(received)
    node._on_image(_good_frame())
    assert _wait(lambda: len(calls) == before + 1)
    assert _wait(lambda: _exposure_sets(received) > sets)
    _check_commands(calls, received)
    values = {kv.key: kv.value for kv in node.diagnostics().status[0].values}
    assert int(values['bad_frames']) == node.bad_frames > counts['bad']
    assert int(values['bad_feedback']) == n_bad_feedback
    assert values['errors'] == '0' and values['last_bad_feedback']

    # the warnings are throttled: one per topic and 5 s period, not one per message
    out = capfd.readouterr()
    log = out.out + out.err
    periods = 1 + int((time.monotonic() - t0) / 5.0)
    assert 1 <= log.count('skipping image') <= periods + 1
    assert 1 <= log.count('skipping exposure feedback') <= periods + 1
    print(f'\nfuzz: feedback {N_CASES} ({n_bad_feedback} refused), images {N_CASES} '
          f'({counts["bad"]} hostile, {counts["good"]} valid, {counts[None]} random fields; '
          f'{node.bad_frames} refused, {node.frames_processed} decided), '
          f'{len(calls)} commands, {len(received)} driver sets, {direct_s:.1f} s')


def test_fuzz_through_dds(rig, ros_side):
    """A part of the same fuzz published for real; malformed CDR never reaches the node."""
    node, calls, received = rig
    side = ros_side
    rng = np.random.default_rng(7)
    fb_pub = side.node.create_publisher(String, 'camera/exposure', command_qos(50))
    img_pub = side.node.create_publisher(Image, 'camera/image_raw', image_qos(1))
    assert _wait(lambda: fb_pub.get_subscription_count() >= 1
                 and img_pub.get_subscription_count() >= 1, 10.0)
    sendable = [(t, g) for t, g in feedback_cases(rng, 3 * N_DDS)
                if '\x00' not in t and _utf8(t)][:N_DDS]
    for text, good in sendable:
        bad_before = node.bad_feedback
        fb_pub.publish(String(data=text))
        if good:
            stamp = json.loads(text)['stamp_ns']
            assert _wait(lambda: stamp in node._feedback)
        else:
            assert _wait(lambda: node.bad_feedback == bad_before + 1), text[:100]
    images = [(m, lb) for m, lb in image_cases(rng, 2 * N_DDS, [])
              if '\x00' not in m.encoding and _utf8(m.encoding)]
    for msg, label in images[:N_DDS]:
        n0, calls0, bad0 = _accounted(node), len(calls), node.bad_frames
        img_pub.publish(msg)
        assert _wait(lambda: _accounted(node) == n0 + 1), (msg.encoding[:40], label)
        if label == 'bad':
            assert node.bad_frames == bad0 + 1 and len(calls) == calls0
    garbage = [b'', b'\x00\x01\x00\x00', b'\x00\x01\x00\x00\xff\xff\xff\x7f', b'\xff' * 64,
               bytes(rng.integers(0, 256, 512, dtype=np.uint8))]
    for payload in garbage:
        fb_pub.publish(payload)
        img_pub.publish(payload)
    assert node.errors == 0
    _check_commands(calls, received)
    before, sets = len(calls), _exposure_sets(received)
    img_pub.publish(_good_frame(level=8e6, seed=3))
    assert _wait(lambda: len(calls) == before + 1)
    assert _wait(lambda: _exposure_sets(received) > sets)
    _check_commands(calls, received)
    assert node.lifecycle_state() == 'active'
    side.node.destroy_publisher(fb_pub)
    side.node.destroy_publisher(img_pub)
