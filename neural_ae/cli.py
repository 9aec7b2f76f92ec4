"""
The ``neural-ae`` command.

Subcommands live one per module in :mod:`neural_ae.commands`; each module defines
``add_parser(subparsers)`` that registers its parser and sets ``func`` to a callable
taking the parsed arguments and returning an exit code. Errors deriving from
:class:`neural_ae.core.errors.NeuralAEError` (and ``FileNotFoundError``) are reported
as one line on stderr with exit code 2.

One convention for the shared options, from :mod:`neural_ae.commands._args`: every
command that writes files takes ``-o/--out``, every long-running one ``--no-progress``,
every one that runs a network ``--device {auto,cpu,cuda}`` and ``--threads N``
(``test/commands/test_cli_conventions.py`` checks every registered subcommand).
"""
import argparse
import importlib
import logging
import pkgutil
import sys
from typing import Optional

from neural_ae import __version__
from neural_ae.core.errors import NeuralAEError


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every discovered subcommand."""
    parser = argparse.ArgumentParser(
        prog='neural-ae',
        description='Learned camera auto-exposure for object detection.')
    parser.add_argument('--version', action='version', version=f'neural-ae {__version__}')
    parser.add_argument('-v', '--verbose', action='store_true', help='debug logging')
    sub = parser.add_subparsers(dest='command', metavar='COMMAND')
    import neural_ae.commands as pkg
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        if info.name.startswith('_'):
            continue
        module = importlib.import_module(f'neural_ae.commands.{info.name}')
        module.add_parser(sub)
    return parser


def subcommands(parser: Optional[argparse.ArgumentParser] = None) -> dict:
    """``{name: parser}`` of every registered subcommand (of ``parser`` or a new one)."""
    parser = parser or build_parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def main(argv=None) -> int:
    """Entry point of the ``neural-ae`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format='%(levelname)s %(name)s: %(message)s')
    for noisy in ('matplotlib', 'PIL', 'h5py'):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if not getattr(args, 'func', None):
        parser.print_help()
        return 1
    try:
        return int(args.func(args) or 0)
    except (NeuralAEError, FileNotFoundError) as err:
        sys.stderr.write(f'neural-ae {args.command}: error: {err}\n')
        return 2
    except KeyboardInterrupt:
        sys.stderr.write('interrupted\n')
        return 130


if __name__ == '__main__':
    sys.exit(main())
