"""
Metering: which part of the frame an exposure controller measures.

:class:`Metering` builds a weight map ``(h, w)`` in [0, 1] for a frame; Average AE meters
the weighted mean raw value with it (:func:`metered_mean_dn`) and the personalized policy
uses it in place of (or times) its importance map. Modes:

- ``global``: every pixel alike (the plain mean; no map is built);
- ``centre_weighted``: a Gaussian centred on the frame, ``sigma = centre_sigma`` (0.25)
  of each side;
- ``spot``: a disc of radius ``spot_radius`` (0.1) of the shorter side at the frame
  centre, or at the centre of ``roi`` when one is set;
- ``matrix``: per-zone weights ``zones`` (rows of numbers >= 0, top row first) stretched
  over the frame (default: a 3 x 3 pattern that favours the lower centre, the road);
- ``roi``: the user region ``roi = (x, y, w, h)``, normalised to [0, 1] of the frame
  (weight 1 inside, 0 outside);
- ``detections``: the boxes of ``classes`` from the node's own detector on the same
  frame (weight 1 inside). Without such a box the mode falls back to ``fallback``
  (``global`` by default) and the decision's ``info['metering']`` says so.

Weights are built on a small grid (at most :data:`GRID` columns) and the raw frame is
area-averaged to it, so metering costs the same at any frame size.
"""
from dataclasses import dataclass, field
import math
from typing import Optional, Sequence, Union

import cv2
from neural_ae.core.classes import CATEGORY_IDS
from neural_ae.core.errors import ControllerError
import numpy as np

__all__ = ['GRID', 'Metering', 'METERING_MODES', 'metered_mean_dn']

METERING_MODES = ('global', 'centre_weighted', 'spot', 'matrix', 'roi', 'detections')
GRID = 64
"""Columns of the metering grid [cells]."""
DEFAULT_ZONES = ((0.5, 0.5, 0.5), (0.75, 1.0, 0.75), (1.0, 1.5, 1.0))


def _num(v) -> bool:
    return isinstance(v, (int, float, np.floating, np.integer)) and not isinstance(v, bool) \
        and math.isfinite(float(v))


@dataclass(frozen=True)
class Metering:
    """A metering mode and its parameters (see the module docstring); checked on build."""

    mode: str = 'global'
    roi: Optional[tuple] = None
    zones: tuple = DEFAULT_ZONES
    classes: tuple = ('person',)
    spot_radius: float = 0.1
    centre_sigma: float = 0.25
    fallback: str = 'global'
    boxes: tuple = field(default=(), compare=False)

    def __post_init__(self):
        if self.mode not in METERING_MODES:
            raise ControllerError(f'metering mode must be one of {METERING_MODES}, got '
                                  f'{self.mode!r}')
        if self.fallback not in ('global', 'centre_weighted'):
            raise ControllerError(f'metering fallback must be global or centre_weighted, '
                                  f'got {self.fallback!r}')
        if self.roi is not None:
            object.__setattr__(self, 'roi', check_roi(self.roi))
        if self.mode == 'roi' and self.roi is None:
            raise ControllerError('metering mode roi needs roi = (x, y, w, h) in [0, 1]')
        zones = np.asarray(self.zones, dtype=np.float64) if len(self.zones) else np.zeros(0)
        if zones.ndim != 2 or zones.size == 0 or not np.all(np.isfinite(zones)) \
                or np.any(zones < 0) or zones.max() <= 0 or max(zones.shape) > 64:
            raise ControllerError(f'metering zones must be rows of numbers >= 0 (at most '
                                  f'64 x 64, not all 0), got {self.zones!r}')
        unknown = [c for c in self.classes if c not in CATEGORY_IDS]
        if unknown:
            raise ControllerError(f'metering classes {unknown} unknown; expected some of '
                                  f'{tuple(CATEGORY_IDS)}')
        for name, hi in (('spot_radius', 1.0), ('centre_sigma', 4.0)):
            v = getattr(self, name)
            if not (_num(v) and 0 < v <= hi):
                raise ControllerError(f'metering {name} must be in (0, {hi:g}], got {v!r}')

    def with_roi(self, roi) -> 'Metering':
        """Return a copy metering ``roi`` (``None`` clears it and falls back to ``global``)."""
        from dataclasses import replace

        if roi is None:
            return replace(self, mode='global' if self.mode == 'roi' else self.mode, roi=None)
        return replace(self, mode='roi' if self.mode in ('global', 'roi') else self.mode,
                       roi=check_roi(roi))

    def weights(self, height: int, width: int, boxes=None, labels=None,
                frame_shape: Optional[tuple] = None) -> tuple:
        """
        Build the weight map on a ``height x width`` grid; return it and the mode used.

        The map is float32 ``(height, width)`` in [0, 1].

        ``None`` means uniform (global). ``boxes`` xyxy in pixels of a frame of
        ``frame_shape`` ``(H, W)`` with ``labels`` (1-based class ids) feed ``detections``.
        """
        mode = self.mode
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        yy, xx = (yy + 0.5) / height, (xx + 0.5) / width
        if mode == 'detections':
            w = self._box_weights(height, width, boxes, labels, frame_shape)
            if w is None:
                mode = self.fallback
            else:
                return w, 'detections'
        if mode == 'global':
            return None, 'global'
        if mode == 'centre_weighted':
            s = self.centre_sigma
            w = np.exp(-((xx - 0.5) ** 2 + (yy - 0.5) ** 2) / (2 * s * s))
        elif mode == 'spot':
            cx, cy = (0.5, 0.5) if self.roi is None else (self.roi[0] + self.roi[2] / 2,
                                                          self.roi[1] + self.roi[3] / 2)
            r = self.spot_radius * min(height, width)
            w = (((xx - cx) * width) ** 2 + ((yy - cy) * height) ** 2 <= r * r)
            w = w.astype(np.float32)
            if not w.any():
                w[min(int(cy * height), height - 1), min(int(cx * width), width - 1)] = 1.0
        elif mode == 'matrix':
            zones = np.asarray(self.zones, np.float32)
            w = cv2.resize(zones, (width, height), interpolation=cv2.INTER_NEAREST)
        else:   # roi (checked in __post_init__: the mode needs one)
            assert self.roi is not None
            x, y, rw, rh = self.roi
            w = ((xx >= x) & (xx <= x + rw) & (yy >= y) & (yy <= y + rh)).astype(np.float32)
            if not w.any():
                w[min(int((y + rh / 2) * height), height - 1),
                  min(int((x + rw / 2) * width), width - 1)] = 1.0
        w = w.astype(np.float32)
        return w / max(float(w.max()), 1e-12), mode

    def _box_weights(self, height, width, boxes, labels, frame_shape):
        if boxes is None or labels is None or frame_shape is None:
            return None
        ids = {CATEGORY_IDS[c] for c in self.classes}
        fh, fw = frame_shape
        w = np.zeros((height, width), np.float32)
        for (x1, y1, x2, y2), lab in zip(np.asarray(boxes, np.float64).reshape(-1, 4),
                                         np.asarray(labels).reshape(-1)):
            if int(lab) not in ids or not all(map(math.isfinite, (x1, y1, x2, y2))):
                continue
            c1, c2 = int(np.floor(x1 / fw * width)), int(np.ceil(x2 / fw * width))
            r1, r2 = int(np.floor(y1 / fh * height)), int(np.ceil(y2 / fh * height))
            w[max(r1, 0):max(min(r2, height), 0), max(c1, 0):max(min(c2, width), 0)] = 1.0
        return w if w.any() else None


def check_roi(roi) -> tuple:
    """``(x, y, w, h)`` normalised: four finite numbers, ``w, h > 0``, inside [0, 1]."""
    try:
        vals = tuple(float(v) for v in roi)
    except (TypeError, ValueError):
        raise ControllerError(f'roi must be four numbers (x, y, w, h) in [0, 1], got '
                              f'{roi!r}') from None
    if len(vals) != 4 or not all(map(math.isfinite, vals)):
        raise ControllerError(f'roi must be four finite numbers (x, y, w, h), got {roi!r}')
    x, y, w, h = vals
    if not (0 <= x < 1 and 0 <= y < 1 and 0 < w <= 1 and 0 < h <= 1
            and x + w <= 1 + 1e-6 and y + h <= 1 + 1e-6):
        raise ControllerError(f'roi (x, y, w, h) = {vals} must lie inside [0, 1] with w, h > 0')
    return vals


def grid_shape(height: int, width: int) -> tuple:
    """Metering grid ``(gh, gw)`` for a frame ``(height, width)``."""
    gw = min(GRID, width)
    return max(1, int(round(height * gw / width))), gw


def metered_mean_dn(raw: np.ndarray, metering: Metering, boxes=None, labels=None) -> tuple:
    """
    ``(weighted mean raw value [DN], mode used)`` of ``raw`` ``(H, W)`` under ``metering``.

    Non-finite pixels are left out (weight 0); NaN when nothing is left.
    """
    h, w = raw.shape
    gh, gw = grid_shape(h, w)
    weights, used = metering.weights(gh, gw, boxes, labels, (h, w))
    img = np.asarray(raw, np.float32)
    finite = np.isfinite(img)
    if not finite.all():
        img = np.where(finite, img, 0.0).astype(np.float32)
    small = cv2.resize(img, (gw, gh), interpolation=cv2.INTER_AREA).astype(np.float64)
    valid = cv2.resize(finite.astype(np.float32), (gw, gh),
                       interpolation=cv2.INTER_AREA).astype(np.float64)
    wt = valid if weights is None else valid * weights
    total = wt.sum()
    if total <= 0:
        return math.nan, used
    # small holds mean(finite * value); divide by the finite share per cell
    with np.errstate(invalid='ignore', divide='ignore'):
        cell = np.where(valid > 0, small / np.maximum(valid, 1e-12), 0.0)
    return float((cell * wt).sum() / total), used


METERING_NODE_KWARGS = {'metering_mode': 'metering_mode', 'metering_roi': 'metering_roi',
                        'metering_classes': 'metering_classes',
                        'metering_zones': 'metering_zones'}
"""Node parameter -> factory keyword of the metering settings (registry ``node_kwargs``)."""


def _numbers(text: str, what: str) -> list:
    try:
        return [float(v) for v in text.replace(' ', '').split(',') if v != '']
    except ValueError:
        raise ControllerError(f'{what} must be comma-separated numbers, got '
                              f'{text[:60]!r}') from None


def make_metering(metering: Optional[Metering] = None, metering_mode: str = 'global',
                  metering_roi: Union[str, Sequence[float]] = (),
                  metering_classes: Sequence[str] = (),
                  metering_zones: Union[str, Sequence[Sequence[float]]] = ()) -> Metering:
    """
    Build a :class:`Metering` from an instance or from the node's flat parameters.

    ``metering_roi``: ``(x, y, w, h)`` or the string ``'x,y,w,h'`` (empty: none);
    ``metering_zones``: rows of weights or the string ``'a,b,c;d,e,f'`` (rows separated by
    ``;``; empty: the default pattern); ``metering_classes`` empty = ``('person',)``.
    """
    if metering is not None:
        if not isinstance(metering, Metering):
            raise ControllerError(f'metering must be a Metering, got {type(metering).__name__}')
        return metering
    kw: dict = {'mode': metering_mode}
    roi = _numbers(metering_roi, 'metering_roi') if isinstance(metering_roi, str) \
        else list(metering_roi or ())
    if roi:
        kw['roi'] = check_roi(roi)
    if metering_classes:
        kw['classes'] = tuple(str(c) for c in metering_classes)
    if isinstance(metering_zones, str):
        rows = [r for r in metering_zones.split(';') if r.strip()]
        zones = tuple(tuple(_numbers(r, 'metering_zones')) for r in rows)
        if len({len(r) for r in zones}) > 1:
            raise ControllerError(f'metering_zones rows differ in length: '
                                  f'{metering_zones[:60]!r}')
    else:
        zones = tuple(tuple(float(v) for v in r) for r in (metering_zones or ()))
    if zones:
        kw['zones'] = zones
    return Metering(**kw)


class MeteredMixin:
    """
    Metering for a controller: ``self.metering``, the latest detections, the ROI topic.

    :meth:`observe_detections` is called by :class:`neural_ae.core.loop.FrameStep` with
    the perception result of the frame about to be stepped (used by ``detections``);
    :meth:`set_roi` switches to (or off) a user region at run time.
    """

    metering: Metering = Metering()
    _boxes: Optional[tuple] = None

    def observe_detections(self, result) -> None:
        """Remember ``(boxes, labels)`` of the frame's :class:`PerceptionResult`."""
        boxes = getattr(result, 'boxes', None)
        labels = getattr(result, 'labels', None)
        self._boxes = None if boxes is None or labels is None else (boxes, labels)

    def set_roi(self, roi) -> None:
        """Meter ``roi`` = (x, y, w, h) normalised from now on (``None``: global)."""
        self.metering = self.metering.with_roi(roi)

    def metering_weights(self, height: int, width: int, frame_shape: tuple) -> tuple:
        """``(weights or None, mode used)`` on a ``height x width`` grid."""
        boxes, labels = self._boxes if self._boxes is not None else (None, None)
        return self.metering.weights(height, width, boxes, labels, frame_shape)

    def metered_mean(self, raw: np.ndarray) -> tuple:
        """``(weighted mean [DN], mode used)`` of ``raw`` (:func:`metered_mean_dn`)."""
        boxes, labels = self._boxes if self._boxes is not None else (None, None)
        return metered_mean_dn(raw, self.metering, boxes, labels)
