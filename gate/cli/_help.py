"""What several commands share in their ``--help``: the "Exit codes: ..." epilog, generated from
:class:`gate.runtime.errors.ExitCode`, and the option defaults and environment variables that have no core constant."""

from __future__ import annotations

from gate.runtime.errors import ExitCode

BBQ_DIR_ENV = "PRUNEGATE_BBQ_DIR"
"""Environment variable of ``--bbq-dir`` (``check``, ``suite build``, ``bbq score``), read by click only."""
WORK_DIR_ENV = "PRUNEGATE_WORK_DIR"
"""Environment variable of ``--work-dir`` (``check``, ``prune``), read by click only."""
DEFAULT_SUITE_SIZE = 240
"""``--suite-size`` of ``check`` and ``--size`` of ``suite build``: BBQ items in the reduced suite (the core,
:func:`gate.bbq.suite.sample_suite` and ``CheckOptions.suite_size``, takes the size as a required argument)."""
DEFAULT_SEED = 0
"""``--seed`` of ``check``, ``suite build`` and ``prune`` (required in ``CheckOptions`` and ``sample_suite``)."""
DEFAULT_WORK_DIR = ".prunegate-cache"
"""``--work-dir`` of ``check`` and ``prune``: the export and checkpoint cache."""

MEANINGS: dict[ExitCode, str] = {
    ExitCode.PASS: "success",
    ExitCode.FAIL: "gate failed",
    ExitCode.INPUT: "bad input or usage",
    ExitCode.INCONCLUSIVE: "inconclusive (policy on_inconclusive = \"exit-3\")",
    ExitCode.EXECUTION: "execution error",
    ExitCode.INTEGRITY: "integrity error (the artifact bytes differ from the report)",
    ExitCode.INTERRUPTED: "interrupted",
}
"""The default meaning of each exit code in help texts (``ExitCode``'s docstring has the full definitions)."""

TOOL_CODES = (ExitCode.PASS, ExitCode.INPUT, ExitCode.EXECUTION, ExitCode.INTERRUPTED)
"""What every command can return: :func:`gate.cli.main.main` maps a usage error or :class:`InputError` to 2, a crash
to 4 and Ctrl-C/SIGTERM to 130."""


def exit_codes_help(*codes: ExitCode, note: str = "", **meanings: str) -> str:
    """The ``"Exit codes: 0 success, 2 bad input or usage, ..."`` epilog of a command.

    Args:
        codes: the exit codes the command can return (any order; printed in increasing order, each once).
        note: a sentence appended after the list (e.g. where else the code is recorded).
        meanings: per-command wording keyed by member name, e.g. ``PASS="valid"``; other codes use
            :data:`MEANINGS`.

    Returns:
        one line: ``"Exit codes: 0 <meaning>, 1 <meaning>, ..."``, ending with a full stop.

    Raises:
        ValueError: no code, or a ``meanings`` key that is not one of ``codes``.
    """
    chosen = sorted(set(codes))
    if not chosen:
        raise ValueError("exit_codes_help needs at least one exit code")
    names = {c.name for c in chosen}
    unknown = sorted(set(meanings) - names)
    if unknown:
        raise ValueError(f"exit_codes_help: meanings for codes not listed: {', '.join(unknown)}")
    text = "Exit codes: " + ", ".join(f"{int(c)} {meanings.get(c.name, MEANINGS[c])}" for c in chosen) + "."
    return f"{text} {note}" if note else text
