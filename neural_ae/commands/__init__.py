"""Subcommands of ``neural-ae``: one module each, discovered by :mod:`neural_ae.cli`."""
