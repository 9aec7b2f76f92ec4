"""
Diagnostics logic of the exposure monitor (ROS-free; the node is a thin shell around it).

:class:`ExposureMonitor` turns per-frame :class:`~.judge.Assessment` results into a level
``OK`` / ``WARN`` / ``ERROR`` that changes only after ``hold_frames`` consecutive frames
agree: a frame is *bad* when its over- or under-exposed area share reaches
``warn_share`` (``severe`` at ``error_share``); ``WARN`` after ``hold_frames`` bad
frames in a row, ``ERROR`` after ``hold_frames`` severe ones, back to ``OK`` after
``hold_frames`` good ones. A camera stuck over-exposed (a tunnel exit, the sun) is
therefore reported within ``hold_frames`` assessed frames, a single odd frame is not.
"""
from dataclasses import dataclass

from neural_ae.core.assessment.errors import AssessmentError

__all__ = ['ExposureMonitor', 'LEVELS', 'MonitorState']

LEVELS = ('OK', 'WARN', 'ERROR')


@dataclass
class MonitorState:
    """Level after the last frame, the frame's own class and the run length of that class."""

    level: str
    frame_class: str
    run: int
    message: str


class ExposureMonitor:
    """Hold-N-frames state machine (module docstring)."""

    def __init__(self, warn_share: float = 0.3, error_share: float = 0.6,
                 hold_frames: int = 5):
        if not 0 < warn_share <= error_share <= 1:
            raise AssessmentError(f'ExposureMonitor: need 0 < warn_share <= error_share <= 1, '
                                  f'got {warn_share}, {error_share}')
        if not isinstance(hold_frames, int) or hold_frames < 1:
            raise AssessmentError(f'ExposureMonitor: hold_frames must be an integer >= 1, got '
                                  f'{hold_frames!r}')
        self.warn_share, self.error_share, self.hold = warn_share, error_share, hold_frames
        self.level = 'OK'
        self._good = self._bad = self._severe = 0

    def classify(self, over_share: float, under_share: float) -> str:
        """``'OK'``, ``'WARN'`` or ``'ERROR'`` of one frame's area shares."""
        worst = max(over_share, under_share)
        if worst >= self.error_share:
            return 'ERROR'
        return 'WARN' if worst >= self.warn_share else 'OK'

    def update(self, over_share: float, under_share: float) -> MonitorState:
        """Feed one frame; return the (held) level."""
        cls = self.classify(over_share, under_share)
        self._good = self._good + 1 if cls == 'OK' else 0
        self._bad = self._bad + 1 if cls != 'OK' else 0
        self._severe = self._severe + 1 if cls == 'ERROR' else 0
        if self._severe >= self.hold:
            self.level = 'ERROR'
        elif self._bad >= self.hold:
            self.level = 'WARN'
        elif self._good >= self.hold:
            self.level = 'OK'
        run = {'OK': self._good, 'WARN': self._bad, 'ERROR': self._severe}[cls]
        kind = 'over' if over_share >= under_share else 'under'
        share = max(over_share, under_share)
        if self.level == 'OK':
            msg = 'exposure ok'
        else:
            msg = f'{kind}-exposed: {100 * share:.0f} % of the frame for >= {self.hold} frames'
        return MonitorState(self.level, cls, run, msg)

    def reset(self) -> None:
        """Back to ``OK`` with no history."""
        self.level = 'OK'
        self._good = self._bad = self._severe = 0
