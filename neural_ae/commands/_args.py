"""
The argument helpers every ``neural-ae`` subcommand uses: one spelling per concept.

- :func:`add_out`: ``-o/--out`` for every command that writes files (older spellings such
  as ``--output`` stay as aliases with the same ``dest``);
- :func:`add_progress`: ``--no-progress`` for every long-running command (the command passes
  ``disable=args.no_progress`` to its tqdm bars, or ``progress=not args.no_progress``);
- :func:`add_device`: ``--device {auto,cpu,cuda}`` and ``--threads N`` for every command that
  runs a network, and :func:`apply_device_threads` that honours them.

Torch is imported only when a command runs, so building the parser stays fast.
"""
from typing import Optional, Sequence, Type

from neural_ae.core.errors import ConfigError

DEVICES = ('auto', 'cpu', 'cuda')
"""``--device`` choices; ``auto`` is CUDA when available, else the CPU."""


def add_out(p, default: Optional[str] = None, text: str = 'output path',
            aliases: Sequence[str] = (), metavar: Optional[str] = None) -> None:
    """
    Add ``-o/--out`` (``dest='out'``) to parser ``p``.

    ``aliases``: older option strings (e.g. ``'--output'``) that keep working and fill the
    same ``args.out``. The default is named in the help when there is one.
    """
    if default is not None:
        text = f'{text} (default: {default})'
    if aliases:
        text += f'; {", ".join(aliases)} is the older spelling'
    kw = {'metavar': metavar} if metavar else {}
    p.add_argument('-o', '--out', *aliases, dest='out', default=default, help=text, **kw)


def add_progress(p, text: str = 'no progress bars') -> None:
    """Add ``--no-progress`` (``args.no_progress``, default False) to parser ``p``."""
    p.add_argument('--no-progress', action='store_true', help=text)


def add_device(p, default: Optional[str] = 'cpu', threads: Optional[int] = None,
               what: str = 'the networks', default_help: Optional[str] = None,
               threads_help: Optional[str] = None) -> None:
    """
    Add ``--device {auto,cpu,cuda}`` and ``--threads N`` to parser ``p``.

    ``default`` / ``threads``: the command's defaults (``None``: leave the choice to the
    command, e.g. its config, or torch's own thread count); ``default_help`` /
    ``threads_help`` describe a ``None`` default in the help text.
    """
    shown = default_help or default
    p.add_argument('--device', default=default, choices=DEVICES,
                   help=f'device for {what} (auto: cuda when available; default: {shown})')
    if threads is None:
        shown = threads_help or "torch's default"
    else:
        shown = threads
    p.add_argument('--threads', type=int, default=threads, metavar='N',
                   help=f'torch CPU threads (default: {shown})')


def resolve_device(name: str, error: Type[Exception] = ConfigError) -> str:
    """Resolve ``auto`` to ``cuda`` when available, else ``cpu``; ``error`` if CUDA is missing."""
    import torch

    if name not in DEVICES:
        raise error(f'--device must be one of {", ".join(DEVICES)}, got {name!r}')
    if name == 'cuda' and not torch.cuda.is_available():
        raise error('--device cuda requested but CUDA is not available')
    if name == 'auto':
        return 'cuda' if torch.cuda.is_available() else 'cpu'
    return name


def apply_device_threads(args, error: Type[Exception] = ConfigError) -> Optional[str]:
    """
    Honour ``args.threads`` and ``args.device`` (from :func:`add_device`).

    Sets ``torch.set_num_threads(max(1, args.threads))`` when ``--threads`` is given (or
    has a default), and returns the resolved device (``'cpu'`` or ``'cuda'``), or ``None``
    when ``args.device`` is ``None`` (the command decides, e.g. from its config).
    """
    threads = getattr(args, 'threads', None)
    if threads is not None:
        import torch

        torch.set_num_threads(max(1, int(threads)))
    device = getattr(args, 'device', None)
    return None if device is None else resolve_device(device, error)
