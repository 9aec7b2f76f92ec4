"""
One shape check for the core: :func:`check_shape` names the expected layout and the actual shape.

In the spirit of kornia's ``KORNIA_CHECK_SHAPE``: a layout is a sequence of dimension
tokens, for example ``('B', 1, 'H', 'W')`` or ``['*', '3', 'H', 'W']``:

- a number (``1``, ``'3'``, ``256``) must match that dimension exactly;
- a name (``'B'``, ``'H'``, ``'w'``) matches any size;
- ``'*'``, allowed as the first token only, matches any number (zero included) of
  leading dimensions.

The error raised is the caller's subsystem error (``error=SensorError``, ``ISPError``,
...), with a one-line message such as ``mosaic: expected shape (H, W, 3), got (5, 7)``.
``kind='array'`` or ``kind='tensor'`` also requires a numpy array or a torch tensor and
names the type that came instead. The module imports neither torch nor anything else
heavy: a tensor is recognised only when torch has already been imported by the caller.
"""
import sys
from typing import List, Optional, Sequence, Type, Union

from neural_ae.core.errors import NeuralAEError
import numpy as np

__all__ = ['check_shape', 'format_layout', 'shape_of']

Token = Union[str, int]

_KINDS = {'array': 'a numpy array', 'tensor': 'a torch.Tensor', None: 'an array-like'}


def _is_tensor(x) -> bool:
    """Return whether ``x`` is a torch tensor, without importing torch."""
    torch = sys.modules.get('torch')
    return torch is not None and isinstance(x, torch.Tensor)


def shape_of(x) -> Optional[tuple]:
    """
    Return ``x.shape`` as a tuple of ints, or None when ``x`` has no shape.

    A (nested, rectangular) list or tuple has the shape numpy gives it.
    """
    shape = getattr(x, 'shape', None)
    if shape is None and isinstance(x, (list, tuple)):
        try:
            shape = np.shape(x)
        except ValueError:  # ragged nesting
            return None
    if shape is None:
        return None
    try:
        return tuple(int(s) for s in shape)
    except (TypeError, ValueError):
        return None


def format_layout(layout: Sequence[Token]) -> str:
    """Write a layout as ``(B, 1, H, W)``; a one-token layout keeps its comma: ``(N,)``."""
    names = [str(t) for t in layout]
    return '(' + ', '.join(names) + (',)' if len(names) == 1 else ')')


def _parse(layout: Sequence[Token]) -> tuple:
    """Split a layout into ``(leading_star, tokens)``, with exact sizes as ints."""
    if isinstance(layout, str):
        raise TypeError(f'check_shape: layout must be a sequence of tokens, got the string '
                        f'{layout!r}')
    tokens = list(layout)
    star = bool(tokens) and tokens[0] == '*'
    if star:
        tokens = tokens[1:]
    parsed: List[Optional[int]] = []
    for t in tokens:
        if isinstance(t, (int, np.integer)) and not isinstance(t, bool):
            parsed.append(int(t))
        elif isinstance(t, str) and t.isdigit():
            parsed.append(int(t))
        elif isinstance(t, str) and t and t != '*':
            parsed.append(None)
        else:
            raise TypeError(f'check_shape: bad layout token {t!r} in {list(layout)!r}')
    return star, parsed


def _matches(shape: tuple, star: bool, sizes: List[Optional[int]]) -> bool:
    """Return whether ``shape`` fits the parsed layout."""
    if (len(shape) < len(sizes)) if star else (len(shape) != len(sizes)):
        return False
    tail = shape[len(shape) - len(sizes):] if sizes else ()
    return all(want is None or want == got for want, got in zip(sizes, tail))


def check_shape(x, layout: Sequence[Token], name: str = 'input',
                error: Type[Exception] = NeuralAEError, kind: Optional[str] = None) -> tuple:
    """
    Raise ``error`` unless ``x`` has the shape ``layout``; return the shape as a tuple.

    :param x: the value to check: a numpy array, a torch tensor, anything with a
        ``shape`` or a rectangular nested list (``kind=None``).
    :param layout: dimension tokens, see the module docstring.
    :param name: what ``x`` is, first word(s) of the message (e.g. the function name).
    :param error: the exception class to raise (the subsystem's typed error).
    :param kind: ``'array'`` (numpy), ``'tensor'`` (torch) or None (any shaped value).
    :return: ``tuple(x.shape)``.
    :raises error: ``{name}: expected shape {layout}, got {shape}``, or, for the wrong
        type, ``{name}: expected {a numpy array|a torch.Tensor} of shape {layout}, got
        {type}`` (with its shape when it has one).
    """
    if kind not in _KINDS:
        raise TypeError(f"check_shape: kind must be 'array', 'tensor' or None, got {kind!r}")
    star, sizes = _parse(layout)
    want = format_layout(layout)
    shape = shape_of(x)
    right_type = {'array': isinstance(x, np.ndarray), 'tensor': _is_tensor(x),
                  None: shape is not None}[kind]
    if not right_type or shape is None:
        got = type(x).__name__ + (f' of shape {shape}' if shape is not None else '')
        raise error(f'{name}: expected {_KINDS[kind]} of shape {want}, got {got}')
    if not _matches(shape, star, sizes):
        raise error(f'{name}: expected shape {want}, got {shape}')
    return shape
