"""
Outputs that never destroy data: the checks and writes of replay, make-bag and evaluate.

- :func:`check_output`: an output path never lies inside an input (nor holds one), and an
  existing file or bag is refused unless ``--force`` (:func:`add_force`); even with
  ``--force`` only a rosbag2 is replaced by a bag and only a file by a file.
- :func:`write_text_atomic`: write a file under a temporary name beside it, then rename,
  so a failure leaves the old file (or nothing) and never half a file.
"""
import os
from pathlib import Path
import tempfile
from typing import Iterable, Optional

from neural_ae.core.errors import ConfigError

__all__ = ['add_force', 'check_output', 'is_inside', 'looks_like_bag', 'write_text_atomic']


def add_force(p, text: str = 'replace existing outputs (never an input)') -> None:
    """Add ``--force`` (``args.force``, default False) to parser ``p``."""
    p.add_argument('--force', action='store_true', help=text)


def is_inside(path, root) -> bool:
    """Whether ``path`` is ``root`` or lies below it (both resolved, links followed)."""
    path, root = Path(path).resolve(), Path(root).resolve()
    return path == root or root in path.parents


def looks_like_bag(path: Path) -> bool:
    """Whether ``path`` is a rosbag2: a folder with ``metadata.yaml`` or storage files only."""
    if path.is_file():
        return path.suffix in ('.mcap', '.db3')
    if not path.is_dir():
        return False
    if (path / 'metadata.yaml').is_file():
        return True
    names = [p for p in path.iterdir() if not p.name.startswith('.')]
    return bool(names) and all(p.suffix in ('.mcap', '.db3') or p.name == 'labels.json'
                               for p in names)


def check_output(path, inputs: Iterable = (), force: bool = False, what: str = 'output',
                 bag: bool = False, error=ConfigError, allow_inside: bool = False) -> Path:
    """
    Check that writing ``path`` destroys nothing; return it as a :class:`Path`.

    Refused always: ``path`` equal to one of ``inputs`` or inside it (inside an input
    folder is allowed with ``allow_inside``), an input inside ``path``. Refused unless
    ``force``: ``path`` exists. With ``force`` an existing path is replaced only by its
    kind: a rosbag2 by a bag (``bag=True``), a file by a file. Raises ``error`` with one
    line.
    """
    out = Path(path)
    for src in inputs:
        if src is None:
            continue
        if is_inside(out, src) and not (allow_inside and Path(src).is_dir()
                                        and out.resolve() != Path(src).resolve()):
            raise error(f'{what} {out} lies inside the input {src}: choose a path outside it '
                        '(never overwritten, not even with --force)')
        if is_inside(src, out):
            raise error(f'{what} {out} holds the input {src}: choose another path')
    if not (out.exists() or out.is_symlink()):
        return out
    if not force:
        raise error(f'{what} {out} exists; choose another path or give --force to replace it')
    if bag and not looks_like_bag(out):
        raise error(f'{what} {out} exists and is not a rosbag2: not replaced, even with --force')
    if not bag and not out.is_file():
        raise error(f'{what} {out} exists and is not a file: not replaced, even with --force')
    return out


def write_text_atomic(path, text: str, error=ConfigError) -> Path:
    """Write ``text`` to ``path`` through a temporary file beside it and a rename."""
    path = Path(path)
    tmp: Optional[str] = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f'.{path.name}.', suffix='.partial', dir=path.parent)
        with os.fdopen(fd, 'w') as handle:
            handle.write(text)
        os.replace(tmp, path)
        tmp = None
    except OSError as err:
        raise error(f'cannot write {path}: {err.strerror or err}') from err
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
    return path
