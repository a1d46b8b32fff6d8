"""The `speedtrain` command: one module per group of subcommands (``main`` dispatches)."""

from speedtrain.cli.main import main

__all__ = ["main"]
