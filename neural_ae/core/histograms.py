"""
Multi-scale histograms of the raw frame: the input of the Histogram NN (Onzon et al., Sec. 4.1).

The frame is split into 1, 3x3 and 7x7 tiles, 59 regions in all. Each region gives a
histogram (256 bins by default) of the *first green pixel* of every complete Bayer 2x2
cell, normalised by the region's pixel count. The histograms are stacked as columns of a
``(256, 59)`` array (``(*, 256, 59)`` on the torch path).

Definitions (shared by every path in this module, so their results are identical):

- **Green plane**: ``raw[dy:2*(H//2):2, dx:2*(W//2):2]`` with ``(dy, dx) =
  first_green_offset(pattern)``; shape ``(H//2, W//2)``. Only complete 2x2 cells count,
  so an odd frame drops its last row and/or column (a partial cell).
- **Bin** of a raw value ``v`` [DN]: ``v >> (bit_depth - log2(bins))`` (``floor(v / 16)``
  for 12 bits and 256 bins), clipped to ``[0, bins - 1]``: values above the white level
  land in the last bin, negative values (signed or float input only) in the first.
- **Tiles** of a green plane ``(h, w)`` at scale ``n`` (1, 3 or 7): tile ``(i, j)``
  covers rows ``floor(i h / n) .. floor((i + 1) h / n) - 1`` and columns
  ``floor(j w / n) .. floor((j + 1) w / n) - 1``.
- **Column order**: 0 = whole frame; 1..9 = 3x3 tiles row-major (column ``1 + 3 i + j``);
  10..58 = 7x7 tiles row-major (column ``10 + 7 i + j``).
- **Normalisation**: each column is divided by its region's pixel count, so it sums to 1.
  Counts and pixel counts are converted to float32 before the division (exact below
  2**24 pixels per region, i.e. any frame under 67 megapixels). A region without pixels
  would give a zero column; the minimum frame size (14x14 raw, a 7x7 green plane)
  guarantees that every region holds at least one pixel, so this never happens through
  the public functions.

One pass over the green plane is enough (the spec's fast path): the pixels are binned on
a 21x21 grid with boundaries ``floor(k h / 21)``, ``floor(k w / 21)``; since
``floor(7 k h / 21) = floor(k h / 3)`` and ``floor(3 k h / 21) = floor(k h / 7)``, sums of
7x7 and 3x3 blocks of grid cells are exactly the 3x3 and 7x7 tiles, and the sum of all
cells is the whole frame.
"""
from concurrent.futures import ThreadPoolExecutor
import functools
import logging
import os
import sys
import threading
from typing import List, Optional, overload, Tuple, Union

import cv2
from neural_ae.core.checks import check_shape
from neural_ae.core.errors import HistogramError, SensorError
from neural_ae.core.sensor import first_green_offset
import numpy as np
import torch
from torch import nn

LOG = logging.getLogger(__name__)

SCALES = (1, 3, 7)
"""Tiles per side at each scale, in column order."""
N_REGIONS = sum(n * n for n in SCALES)
"""Number of regions (histogram columns): ``1 + 9 + 49 = 59``."""
GRID = 21
"""Side of the fine grid the one-pass method bins on (least common multiple of 3 and 7)."""
MIN_GREEN_SIDE = max(SCALES)
"""Smallest green-plane side (rows and columns): every 7x7 tile needs a pixel."""
_EXACT_FLOAT32 = 2 ** 24
"""Counts below this are exact in float32 (cv2.calcHist returns float32 bins)."""
MIN_THREADED_PIXELS = 2 ** 17
"""Green pixels from which ``threads='auto'`` splits the one pass over two threads."""
_CPUS = (len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity')
         else os.cpu_count() or 1)
"""CPUs this process may run on (read once: ``os.cpu_count`` costs tens of us a call)."""
_POOL_LOCK = threading.Lock()
_POOL: Optional[ThreadPoolExecutor] = None


# --------------------------------------------------------------------------- helpers


def _check_params(bit_depth, pattern, bins) -> tuple:
    """Validate the parameters; return ``((dy, dx), shift)``."""
    if isinstance(bit_depth, bool) or not isinstance(bit_depth, (int, np.integer)) \
            or not 1 <= bit_depth <= 32:
        raise HistogramError(f'bit_depth must be an integer in [1, 32], got {bit_depth!r}')
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 2 \
            or bins & (bins - 1) or bins > 2 ** int(bit_depth):
        raise HistogramError(f'bins must be a power of two in [2, 2**bit_depth = '
                             f'{2 ** int(bit_depth)}], got {bins!r}')
    try:
        offset = first_green_offset(pattern)
    except SensorError as err:
        raise HistogramError(f'bad Bayer pattern for the histogram: {err}') from err
    return offset, int(bit_depth) - (int(bins).bit_length() - 1)


def _check_frame_size(height: int, width: int, shape: tuple) -> tuple:
    """Green-plane size ``(H//2, W//2)``, or HistogramError if it is below 7x7."""
    h, w = height // 2, width // 2
    if h < MIN_GREEN_SIDE or w < MIN_GREEN_SIDE:
        raise HistogramError(
            f'raw frame of shape {shape} is too small for the multi-scale histogram: need '
            f'at least {2 * MIN_GREEN_SIDE}x{2 * MIN_GREEN_SIDE} raw pixels (a '
            f'{MIN_GREEN_SIDE}x{MIN_GREEN_SIDE} green plane), its green plane is {h}x{w}')
    return h, w


def _grid_index(n: int) -> np.ndarray:
    """Fine-grid cell of each of ``n`` rows (or columns): k with floor(k n/21) <= i."""
    # largest k with floor(k n / 21) <= i  <=>  k n < 21 (i + 1)
    return (GRID * (np.arange(n) + 1) - 1) // n


@functools.lru_cache(maxsize=8)
def _grid_maps_u8(h: int, w: int) -> tuple:
    """Row and column grid-cell images ``(h, w)`` uint8, for cv2.calcHist (cached)."""
    rows = np.repeat(_grid_index(h).astype(np.uint8)[:, None], w, axis=1)
    cols = np.repeat(_grid_index(w).astype(np.uint8)[None, :], h, axis=0)
    rows.flags.writeable = False
    cols.flags.writeable = False
    return rows, cols


@functools.lru_cache(maxsize=8)
def _grid_offsets(h: int, w: int, bins: int) -> np.ndarray:
    """``cell_id * bins`` for each green pixel ``(h, w)`` int64, for np.bincount (cached)."""
    cell = _grid_index(h)[:, None] * GRID + _grid_index(w)[None, :]
    out = (cell * bins).astype(np.int64)
    out.flags.writeable = False
    return out


def green_plane(raw: np.ndarray, pattern: str = 'RGGB') -> np.ndarray:
    """
    First green pixel of every complete Bayer 2x2 cell: a ``(H//2, W//2)`` view of ``raw``.

    An odd frame's last row/column belongs to no complete cell and is dropped.
    """
    check_shape(raw, ('H', 'W'), name='green_plane', error=HistogramError, kind='array')
    try:
        dy, dx = first_green_offset(pattern)
    except SensorError as err:
        raise HistogramError(f'bad Bayer pattern for the histogram: {err}') from err
    h, w = raw.shape[0] // 2, raw.shape[1] // 2
    return raw[dy:dy + 2 * h:2, dx:dx + 2 * w:2]


def _validate_raw(raw) -> None:
    """Check ``raw`` is a 2-D integer array, or float with finite integer values."""
    check_shape(raw, ('H', 'W'), name='raw frame', error=HistogramError, kind='array')
    if raw.dtype.kind not in 'uif':
        raise HistogramError(f'raw frame must have an integer or float dtype, got {raw.dtype} '
                             f'(shape {raw.shape})')


def _check_integer_values(g: np.ndarray, shape: tuple) -> None:
    """Float input must hold finite integers (raw DN); NaN/inf give a non-zero fraction."""
    if g.dtype.kind == 'f':
        with np.errstate(invalid='ignore'):
            bad = np.count_nonzero((g - np.floor(g)) != 0)
        if bad:
            raise HistogramError(f'float raw frame of shape {shape} must hold finite integer '
                                 f'values (DN); {bad} green pixels are non-integer or '
                                 f'non-finite')


def _bin_values(g: np.ndarray, shift: int, bins: int, dtype=np.int64) -> np.ndarray:
    """Bin index of each value of ``g`` (see the module docstring), as ``dtype``."""
    if g.dtype.kind == 'f':
        b = np.floor(g.astype(np.float64 if g.dtype.itemsize < 4 else g.dtype, copy=False)
                     / float(2 ** shift))
        np.clip(b, 0, bins - 1, out=b)
        return b.astype(dtype)
    b = np.right_shift(g, shift)
    info = np.iinfo(b.dtype)
    if info.min < 0:
        np.maximum(b, 0, out=b)
    if bins - 1 < info.max:
        np.minimum(b, bins - 1, out=b)
    return b.astype(dtype, copy=False)


@overload
def _normalise(counts: torch.Tensor) -> torch.Tensor: ...


@overload
def _normalise(counts: np.ndarray) -> np.ndarray: ...


def _normalise(counts: Union[torch.Tensor, np.ndarray]) -> Union[torch.Tensor, np.ndarray]:
    """
    Column-normalise integer ``(..., bins, regions)`` counts to float32; empty -> zeros.

    The pixel counts are summed as integers; counts and pixel counts are then converted
    to float32 and divided (the numpy and torch paths do the same operations).
    """
    if torch.is_tensor(counts):
        n = counts.sum(dim=-2, keepdim=True).to(torch.float32)
        c = counts.to(torch.float32)
        return torch.where(n > 0, c / torch.where(n > 0, n, torch.ones_like(n)),
                           torch.zeros_like(c))
    arr = np.asarray(counts)
    n_np = arr.sum(axis=-2, keepdims=True).astype(np.float32)
    c_np = arr.astype(np.float32)
    out = np.zeros_like(c_np)
    np.divide(c_np, n_np, out=out, where=n_np > 0)
    return out


def _reduce_grid(grid, xp_sum) -> list:
    """Whole, 3x3 and 7x7 region counts ``(..., 59, bins)`` from ``(..., 21, 21, bins)``."""
    parts = []
    batch = tuple(grid.shape[:-3])
    bins = grid.shape[-1]
    for n in SCALES:
        k = GRID // n
        blocks = grid.reshape(*batch, n, k, n, k, bins)
        parts.append(xp_sum(blocks, (-4, -2)).reshape(*batch, n * n, bins))
    return parts


# --------------------------------------------------------------------------- numpy


def _green_bins_u16(raw: np.ndarray, offset: tuple, shift: int,
                    bins: int) -> Optional[np.ndarray]:
    """
    Bin image ``uint8 (H//2, W//2)`` of the green plane of a ``uint16`` frame, or None.

    The frame is read as 32-bit words, each holding the two pixels of one Bayer cell row
    (little-endian: the left pixel in the low half), so the strided green plane costs two
    vectorised passes: ``min(word, bins << (16 + shift) - 1)`` (clips the green pixel's bin
    at ``bins - 1`` whatever the other pixel holds), then a right shift by ``16 + shift``
    cast to uint8 (the left pixel is moved to the high half first). Equal to
    ``_bin_values(green_plane(raw), shift, bins, np.uint8)``. None where this does not
    apply: another dtype or byte order, a row stride other than the width, an odd width,
    or ``bins > 256``.
    """
    dy, dx = offset
    if (raw.dtype != np.dtype(np.uint16) or sys.byteorder != 'little' or bins > 256
            or raw.shape[1] % 2 or not raw.flags.c_contiguous or shift + 16 > 31):
        return None
    h = raw.shape[0] // 2
    words = raw.view(np.uint32)[dy:dy + 2 * h:2]                  # (h, W // 2)
    if dx == 0:
        words = np.left_shift(words, np.uint32(16))
        np.minimum(words, np.uint32((bins << (16 + shift)) - 1), out=words)
    else:
        words = np.minimum(words, np.uint32((bins << (16 + shift)) - 1))
    out = np.empty(words.shape, dtype=np.uint8)
    np.right_shift(words, np.uint32(16 + shift), out=out, casting='unsafe')
    return out


def _grid_counts(g: np.ndarray, shift: int, bins: int, method: str = 'auto',
                 bins_u8: Optional[np.ndarray] = None,
                 exact_float32: bool = False) -> np.ndarray:
    """
    Count the green plane ``g`` on the fine grid in one pass: ``int64 (21, 21, bins)``.

    ``exact_float32``: calcHist's float32 counts are returned as they are (every count and
    every sum of them is an integer below 2**24, so exact in float32), saving the int64
    conversion; the bincount path still returns int64.

    ``method``: ``'calchist'`` (one 3-D cv2.calcHist over 8-bit cell and bin images:
    fastest, exact while every count fits float32) or ``'bincount'`` (np.bincount of
    ``cell * bins + bin``: int64, exact for any size); ``'auto'`` picks calcHist when
    it is exact (``bins <= 256`` and fewer than 2**24 pixels). ``bins_u8``: the green
    plane's bin image when already computed (:func:`_green_bins_u16`), for calcHist.
    """
    h, w = g.shape
    calchist_exact = bins <= 256 and h * w < _EXACT_FLOAT32
    if method == 'auto':
        method = 'calchist' if calchist_exact else 'bincount'
    if method == 'calchist':
        if not calchist_exact:
            raise HistogramError(f"method 'calchist' needs bins <= 256 and fewer than 2**24 "
                                 f'green pixels, got bins={bins}, green plane {h}x{w}')
        rows, cols = _grid_maps_u8(h, w)
        b = bins_u8 if bins_u8 is not None else _bin_values(g, shift, bins, np.uint8)
        hist = cv2.calcHist([rows, cols, b], [0, 1, 2], None, [GRID, GRID, bins],
                            [0, GRID, 0, GRID, 0, bins])
        return hist if exact_float32 else hist.astype(np.int64)
    if method == 'bincount':
        idx = _bin_values(g, shift, bins, np.int64)
        idx += _grid_offsets(h, w, bins)
        return np.bincount(idx.ravel(), minlength=GRID * GRID * bins).reshape(GRID, GRID, bins)
    raise HistogramError(f"method must be 'auto', 'calchist' or 'bincount', got {method!r}")


def resolve_threads(threads, pixels: int) -> int:
    """Return the threads for ``pixels`` green pixels (``'auto'``: 2 on a multi-core machine)."""
    if threads == 'auto':
        return 2 if _CPUS > 1 and pixels >= MIN_THREADED_PIXELS else 1
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) \
            or not 1 <= threads <= 2:
        raise HistogramError(f"threads must be 'auto', 1 or 2, got {threads!r}")
    return int(threads)


def _pool() -> ThreadPoolExecutor:
    """Return the process-wide one-worker pool that takes the lower half of a split frame."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(1, thread_name_prefix='neural_ae-histogram')
        return _POOL


def _band_counts_u16(raw: np.ndarray, r0: int, r1: int, offset: tuple, shift: int,
                     bins: int) -> np.ndarray:
    """Fine-grid counts ``float32 (21, 21, bins)`` of green rows ``r0..r1-1`` of a uint16 frame."""
    h, w = raw.shape[0] // 2, raw.shape[1] // 2
    b = _green_bins_u16(raw[2 * r0:2 * r1], offset, shift, bins)
    if b is None:                                         # checked by the caller
        raise HistogramError(f'the uint16 fast path does not apply to a frame {raw.shape}')
    rows, cols = _grid_maps_u8(h, w)
    return cv2.calcHist([rows[r0:r1], cols[r0:r1], b], [0, 1, 2], None, [GRID, GRID, bins],
                        [0, GRID, 0, GRID, 0, bins])


def _split_grid_counts_u16(raw: np.ndarray, offset: tuple, shift: int,
                           bins: int) -> np.ndarray:
    """
    Count like :func:`_grid_counts`, the one pass split at the middle green row over two threads.

    The pool's worker bins and counts the lower half while the caller does the upper half
    (OpenCV and numpy release the GIL); the two float32 count grids are added, which is
    exact (every count is an integer below 2**24), so the result is bit-identical to the
    single pass.
    """
    h = raw.shape[0] // 2
    mid = h // 2
    lower = _pool().submit(_band_counts_u16, raw, mid, h, offset, shift, bins)
    upper = _band_counts_u16(raw, 0, mid, offset, shift, bins)
    return upper + lower.result()


def multiscale_histogram(raw: np.ndarray, bit_depth: int = 12, pattern: str = 'RGGB',
                         bins: int = 256, method: str = 'auto',
                         threads: Union[int, str] = 'auto') -> np.ndarray:
    """
    Multi-scale histogram of a raw Bayer frame, ``float32 (bins, 59)``; one pass.

    ``raw``: ``(H, W)`` raw values [DN], any integer dtype, or float holding finite
    integers; ``H, W >= 14`` (odd allowed). Column ``r`` is the normalised histogram of
    region ``r`` (order and bin/tile definitions: module docstring). ``method`` selects
    how the 21x21-grid counts are taken (``'auto'``, ``'calchist'``, ``'bincount'``; all
    give identical results). ``threads``: 1, 2, or ``'auto'`` (2 on a multi-core machine
    for a green plane of at least :data:`MIN_THREADED_PIXELS`): with 2, a uint16 frame's
    one pass is split at its middle row over the caller and one pool thread (calcHist
    path only; the result is bit-identical).

    Raises :class:`HistogramError` (naming the shape or dtype) for a non-2-D or
    non-numeric array, a frame below 14x14, non-integer/non-finite float values, a bad
    ``bit_depth``/``bins``/``threads`` or an unknown Bayer pattern.
    """
    _validate_raw(raw)
    offset, shift = _check_params(bit_depth, pattern, bins)
    _check_frame_size(raw.shape[0], raw.shape[1], raw.shape)
    g = green_plane(raw, pattern)
    n_threads = resolve_threads(threads, g.size)
    _check_integer_values(g, raw.shape)
    split = (n_threads > 1 and method != 'bincount' and g.size < _EXACT_FLOAT32
             and raw.shape[0] >= 4 * MIN_GREEN_SIDE
             and _green_bins_u16(raw[:2], offset, shift, int(bins)) is not None)
    if split:
        grid = _split_grid_counts_u16(raw, offset, shift, int(bins))
    else:
        bins_u8 = (_green_bins_u16(raw, offset, shift, int(bins)) if method != 'bincount'
                   else None)
        grid = _grid_counts(g, shift, int(bins), method, bins_u8, exact_float32=True)
    # float32 counts (calcHist) are summed in float32: exact below 2**24, identical results
    parts = _reduce_grid(grid, lambda a, axes: a.sum(axis=axes, dtype=a.dtype))
    counts = np.concatenate(parts, axis=0)                       # (59, bins)
    return np.ascontiguousarray(_normalise(counts.T))


def region_bounds(h: int, w: int) -> list:
    """
    Green-plane bounds ``(r0, r1, c0, c1)`` (half-open) of the 59 regions, in column order.

    ``h, w`` is the green-plane size ``(H//2, W//2)``.
    """
    out: List[Tuple[int, int, int, int]] = []
    for n in SCALES:
        re = [i * h // n for i in range(n + 1)]
        ce = [j * w // n for j in range(n + 1)]
        out.extend((re[i], re[i + 1], ce[j], ce[j + 1]) for i in range(n) for j in range(n))
    return out


def naive_multiscale_histogram(raw: np.ndarray, bit_depth: int = 12, pattern: str = 'RGGB',
                               bins: int = 256) -> np.ndarray:
    """
    Compute the histogram region by region: 59 ``np.histogram`` calls on sliced tiles.

    Same inputs, checks and result as :func:`multiscale_histogram`; each region is binned
    on its own (3 passes over the frame), which is what the one-pass method is measured
    against (``neural-ae bench --suite histograms``).
    """
    _validate_raw(raw)
    _, shift = _check_params(bit_depth, pattern, bins)
    h, w = _check_frame_size(raw.shape[0], raw.shape[1], raw.shape)
    g = green_plane(raw, pattern)
    _check_integer_values(g, raw.shape)
    out = np.zeros((bins, N_REGIONS), dtype=np.int64)
    for col, (r0, r1, c0, c1) in enumerate(region_bounds(h, w)):
        tile = _bin_values(g[r0:r1, c0:c1], shift, bins)
        counts, _ = np.histogram(tile, bins=bins, range=(0, bins))
        out[:, col] = counts
    return _normalise(out)


# --------------------------------------------------------------------------- torch


@functools.lru_cache(maxsize=8)
def _grid_offsets_torch(h: int, w: int, bins: int, device: torch.device) -> torch.Tensor:
    """:func:`_grid_offsets` as an int64 tensor on ``device`` (cached per device)."""
    return torch.tensor(_grid_offsets(h, w, bins), dtype=torch.int64, device=device)


@torch.no_grad()
def multiscale_histogram_torch(raw: torch.Tensor, bit_depth: int = 12, pattern: str = 'RGGB',
                               bins: int = 256) -> torch.Tensor:
    """
    Batched multi-scale histogram: ``(*, 1, H, W)`` raw [DN] -> ``float32 (*, bins, 59)``.

    Same numbers as :func:`multiscale_histogram` (bit for bit) on every frame of the
    batch; runs on the tensor's device (CPU or CUDA) with one ``torch.bincount`` over
    ``(frame, cell, bin)`` indices. ``raw`` holds float DN (e.g. from
    :func:`neural_ae.core.sensor.capture_torch`) or integers.

    Not differentiable, by design: the histogram is a feature of frame 1, and gradients
    reach the AE network through frame 2 in training. The result never requires grad
    (input gradients are ignored) and the function runs under ``torch.no_grad()``.
    Float input is checked for finite integer values, which costs one host sync.
    """
    shape = check_shape(raw, ('*', 1, 'H', 'W'), name='raw', error=HistogramError,
                        kind='tensor')
    if raw.dtype == torch.bool or raw.is_complex():
        raise HistogramError(f'raw must have an integer or float dtype, got {raw.dtype} '
                             f'(shape {shape})')
    (dy, dx), shift = _check_params(bit_depth, pattern, bins)
    bins = int(bins)
    h, w = _check_frame_size(shape[-2], shape[-1], shape)
    batch = shape[:-3]
    n_frames = 1
    for s in batch:
        n_frames *= s
    device = raw.device
    if n_frames == 0:
        return torch.zeros(*batch, bins, N_REGIONS, dtype=torch.float32, device=device)
    frames = raw.detach().reshape(n_frames, shape[-2], shape[-1])
    g = frames[:, dy:dy + 2 * h:2, dx:dx + 2 * w:2]
    if g.is_floating_point():
        dtype = torch.float32 if g.element_size() < 4 else g.dtype
        g = g.to(dtype, memory_format=torch.contiguous_format)
        if bool(torch.frac(g).any()):  # frac is NaN for NaN and +-inf
            raise HistogramError(f'float raw tensor of shape {shape} must hold finite integer '
                                 f'values (DN)')
        # scaling by 2**-shift is exact; floor of it equals value >> shift for integers
        idx = torch.mul(g, 2.0 ** -shift).floor_().clamp_(0, bins - 1).to(torch.int64)
    else:
        idx = (g.to(torch.int64) >> shift).clamp_(0, bins - 1)
    idx += _grid_offsets_torch(h, w, bins, device)
    if n_frames > 1:
        idx += torch.arange(n_frames, device=device)[:, None, None] * (GRID * GRID * bins)
    grid = torch.bincount(idx.reshape(-1), minlength=n_frames * GRID * GRID * bins)
    grid = grid.reshape(n_frames, GRID, GRID, bins)
    parts = _reduce_grid(grid, lambda a, dims: a.sum(dim=dims))
    counts = torch.cat(parts, dim=-2).transpose(-1, -2)          # (N, bins, 59)
    out = _normalise(counts).contiguous()
    return out.reshape(*batch, bins, N_REGIONS)


class MultiScaleHistogram(nn.Module):
    """
    :func:`multiscale_histogram_torch` as a module: ``(*, 1, H, W)`` DN -> ``(*, 256, 59)``.

    Parameter-free and not differentiable (see the function); device-agnostic.
    """

    def __init__(self, bit_depth: int = 12, pattern: str = 'RGGB', bins: int = 256):
        super().__init__()
        _check_params(bit_depth, pattern, bins)
        self.bit_depth = int(bit_depth)
        self.pattern = pattern
        self.bins = int(bins)

    def forward(self, raw: torch.Tensor) -> torch.Tensor:
        """Histogram each frame of ``raw``; see :func:`multiscale_histogram_torch`."""
        return multiscale_histogram_torch(raw, self.bit_depth, self.pattern, self.bins)

    def extra_repr(self) -> str:
        """Describe the settings for ``print(module)``."""
        return f'bit_depth={self.bit_depth}, pattern={self.pattern!r}, bins={self.bins}'
