"""
The auto-exposure node's personalization side: user feedback, the ROI topic, saving.

Topics and service (created by :class:`PersonalizationSession` for the node):

- ``feedback_topic`` (default ``exposure_user_feedback``), ``std_msgs/String`` holding
  JSON ``{"stamp_ns": <int>, "label": "under" | "well" | "over"}`` (or
  ``"stamp": {"sec": s, "nanosec": ns}``): feedback on a frame the node decided on,
  identified by the stamp of its image header. A standard type on purpose: the package is
  pure Python on PyPI wheels (no interface package to build), the project's other
  per-frame side channel (``camera/exposure``) is JSON in ``std_msgs/String`` too, and
  ``ros2 topic pub`` can send it by hand. Messages are checked before use (size, JSON,
  keys, types, label, a known stamp, at most ``feedback_max_per_s``); a refused one is a
  throttled warning and counted (``bad_user_feedback``), the node keeps deciding.
- ``metering_roi_topic`` (default ``metering_roi``), ``sensor_msgs/RegionOfInterest`` in
  pixels of the camera image: the controller meters that region from now on (Average AE
  and the personalized policy; ``width`` or ``height`` 0 clears it). A parameter change
  that rebuilds the controller returns to the ``metering_*`` parameters.
- ``~/save_personalized`` (``std_srvs/Trigger``): write the personalized weights to
  ``personalized_model_path`` (atomically; never onto the base model file). They are also
  written on cleanup / shutdown when any update happened.

Updates run on a thread of their own, at most ``personalization_rate_hz`` per second
(:class:`~neural_ae.core.personalized.online.OnlinePersonalizer`), never on the decision
thread. With ``feedback_source: judge`` the frames are labelled automatically by a
feedback source (issue 13's ``ExposureJudge`` loaded from ``judge_model_path``) at most
once per ``1 / personalization_rate_hz`` s.
"""
import json
from pathlib import Path
import threading
from typing import Optional

from neural_ae.core.errors import NeuralAEError
from neural_ae.ros.qos import command_qos
from sensor_msgs.msg import RegionOfInterest
from std_msgs.msg import String
from std_srvs.srv import Trigger

__all__ = ['FEEDBACK_MAX_CHARS', 'parse_user_feedback', 'PersonalizationSession',
           'UserFeedbackError']

FEEDBACK_MAX_CHARS = 4096
"""Longest user-feedback message [characters], refused before parsing."""


class UserFeedbackError(NeuralAEError, ValueError):
    """A user-feedback message that cannot be used."""


def parse_user_feedback(text: str) -> tuple:
    """``(stamp_ns, label)`` of a feedback message; :class:`UserFeedbackError` otherwise."""
    if not isinstance(text, str) or len(text) > FEEDBACK_MAX_CHARS:
        raise UserFeedbackError(f'feedback longer than {FEEDBACK_MAX_CHARS} characters')
    try:
        data = json.loads(text, parse_constant=lambda c: (_ for _ in ()).throw(
            ValueError(f'{c} is not allowed')))
    except (ValueError, RecursionError) as err:
        raise UserFeedbackError(f'feedback is not JSON: {str(err)[:80]}') from None
    if not isinstance(data, dict):
        raise UserFeedbackError('feedback must be a JSON object with stamp_ns and label')
    label = data.get('label')
    if label not in ('under', 'well', 'over'):
        raise UserFeedbackError(f'feedback label must be under, well or over, got '
                                f'{str(label)[:40]!r}')
    if 'stamp_ns' in data:
        stamp = data['stamp_ns']
    elif isinstance(data.get('stamp'), dict):
        sec, nsec = data['stamp'].get('sec'), data['stamp'].get('nanosec')
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (sec, nsec)):
            raise UserFeedbackError('feedback stamp needs integer sec and nanosec')
        stamp = sec * 1_000_000_000 + nsec
    else:
        raise UserFeedbackError('feedback needs stamp_ns (or stamp: {sec, nanosec})')
    if isinstance(stamp, bool) or not isinstance(stamp, int) or not 0 <= stamp < 2 ** 63:
        raise UserFeedbackError(f'feedback stamp_ns must be an integer in [0, 2^63), got '
                                f'{str(stamp)[:40]}')
    return int(stamp), str(label)


class PersonalizationSession:
    """Feedback / ROI subscriptions, the save service and the update thread of a node."""

    def __init__(self, node, values: dict):
        self.node = node
        self.values = dict(values)
        self.online = None
        self._wrapped = None
        self.bad_feedback = 0
        self.feedback_ok = 0
        self.last_problem = ''
        self.last_saved = ''
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._judge = None
        self._subs = [
            node.create_subscription(String, values['feedback_topic'], self._on_feedback,
                                     command_qos(50)),
            node.create_subscription(RegionOfInterest, values['metering_roi_topic'],
                                     self._on_roi, command_qos(10))]
        self._srv = node.create_service(Trigger, '~/save_personalized', self._on_save)
        if values['feedback_source'] == 'judge':
            self._judge = self._load_judge(values['judge_model_path'])
        self._thread = threading.Thread(target=self._loop, name='personalization',
                                        daemon=True)
        self._thread.start()

    # -- helpers

    def _warn(self, text: str) -> None:
        with self._lock:
            self.bad_feedback += 1
            self.last_problem = text[:300]
        self.node.get_logger().warning(
            f'personalization: {text[:300]}',
            throttle_duration_sec=float(self.values['bad_input_warn_period_s']))

    def _load_judge(self, path: str):
        from neural_ae.core.personalized.online import JudgeFeedback

        from neural_ae.core.assessment import ExposureJudge   # issue 13

        return JudgeFeedback(ExposureJudge(path),
                             float(self.values['personalization_rate_hz']))

    def _personalizer(self, controller):
        """Return the online personalizer of ``controller`` (made when it first is needed)."""
        if getattr(controller, 'name', '') != 'personalized':
            return None
        from neural_ae.core.personalized.online import OnlinePersonalizer

        with self._lock:
            if self._wrapped is not controller:
                self._save_quietly()
                base = self.node._model_path_for_personalization()
                self.online = OnlinePersonalizer(
                    controller, ring_size=int(self.values['personalization_ring']),
                    max_feedback_per_s=float(self.values['feedback_max_per_s']),
                    max_updates_per_s=float(self.values['personalization_rate_hz']),
                    lr=float(self.values['personalization_lr']), base_model=base)
                self._wrapped = controller
            return self.online

    # -- decision thread hook

    def after_step(self, stamp_ns: int, controller) -> None:
        """Record the state of a decided frame (and ask the judge, when one is set)."""
        online = self._personalizer(controller)
        if online is None:
            return
        online.record(stamp_ns, controller.last_input, controller.last_dev)
        if self._judge is not None and controller.last_input is not None:
            try:
                label = self._judge.maybe_label(controller.last_input)
            except Exception as err:  # noqa: BLE001 - a foreign judge must not stop decisions
                self._warn(f'judge failed: {type(err).__name__}: {err}')
                return
            if label is not None:
                problem = online.feedback(stamp_ns, label)
                if problem:
                    self._warn(problem)

    # -- callbacks

    def _on_feedback(self, msg: String) -> None:
        try:
            stamp, label = parse_user_feedback(msg.data)
        except UserFeedbackError as err:
            self._warn(str(err))
            return
        except Exception as err:  # noqa: BLE001 - a callback survives any message
            self._warn(f'{type(err).__name__}: {err}')
            return
        online = self.online
        if online is None:
            self._warn('feedback ignored: the running controller is not personalized')
            return
        problem = online.feedback(stamp, label)
        if problem:
            self._warn(problem)
        else:
            with self._lock:
                self.feedback_ok += 1

    def _on_roi(self, msg: RegionOfInterest) -> None:
        controller = self.node._controller
        if controller is None or not hasattr(controller, 'set_roi'):
            self._warn('metering_roi ignored: the running controller has no metering')
            return
        h, w = self.node.sensor.height, self.node.sensor.width
        shape = getattr(controller, 'last_raw', None)
        if shape is not None:
            h, w = shape.shape
        try:
            if msg.width == 0 or msg.height == 0:
                controller.set_roi(None)
                return
            roi = (msg.x_offset / w, msg.y_offset / h, min(msg.width, w - msg.x_offset) / w,
                   min(msg.height, h - msg.y_offset) / h)
            controller.set_roi(roi)
        except (NeuralAEError, ZeroDivisionError, ValueError) as err:
            self._warn(f'metering_roi refused: {err}')

    def _on_save(self, request, response):
        try:
            path = self.save()
        except (NeuralAEError, OSError) as err:
            response.success, response.message = False, str(err)[:300]
            return response
        response.success = path is not None
        response.message = str(path) if path else 'nothing to save: controller not personalized'
        return response

    # -- update thread and files

    def _loop(self) -> None:
        while not self._stop.wait(0.02):
            online = self.online
            if online is None or not online.due():
                continue
            try:
                online.update()
            except Exception as err:  # noqa: BLE001 - keep the node deciding
                self._warn(f'update failed: {type(err).__name__}: {err}')

    def save(self) -> Optional[Path]:
        """Write the personalised weights to ``personalized_model_path``; the path or None."""
        online = self.online
        if online is None:
            return None
        path = online.save(self.values['personalized_model_path'])
        self.last_saved = str(path)
        self.node.get_logger().info(f'personalized policy saved to {path}')
        return path

    def _save_quietly(self) -> None:
        online = self.online
        if online is not None and online.updates:
            try:
                self.save()
            except (NeuralAEError, OSError) as err:
                self.node.get_logger().error(f'personalization: save failed: {err}')

    def close(self) -> None:
        """Stop the thread, save when anything was learned, free topics and service."""
        self._stop.set()
        self._thread.join(timeout=5.0)
        self._save_quietly()
        for sub in self._subs:
            self.node.destroy_subscription(sub)
        self._subs = []
        self.node.destroy_service(self._srv)

    def stats(self) -> dict:
        """Diagnostics values."""
        out = {'bad_user_feedback': self.bad_feedback, 'user_feedback': self.feedback_ok,
               'personalized_saved': self.last_saved}
        if self.online is not None:
            out.update(self.online.stats())
        if self.last_problem:
            out['last_bad_user_feedback'] = self.last_problem
        return out
