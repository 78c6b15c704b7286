"""The command line: parsing and printing only; every command calls the core (``gate.pipeline``, ``gate.bbq``,
``gate.report``, ``gate.policy``, ``exporters``) and maps its typed errors to exit codes."""

from gate.cli.main import main

__all__ = ["main"]
