"""The front end of the core's log lines and progress events (:mod:`gate.progress`), and the ``-q/-v/--debug`` options.

:class:`ProgressLog` is the ``log`` callable the CLI passes to the pipeline: calling it prints a log line, and its
``progress(stage, done, total, unit)`` attribute receives the stages' progress events. It has two modes:

* **terminal** (stderr is a TTY and ``CI`` is not set): a rich ``Progress`` with one bar per stage (counts, rate,
  ETA; an indeterminate bar when the total is unknown) and the log lines printed above the bars;
* **CI** (no TTY, or ``CI=true``): plain timestamped lines, ``HH:MM:SS stage done/total unit (pct%)``, at most one
  per stage for every 10 points of percentage, the first and the last always, so a long run's log stays short.

Verbosity: ``-1`` (``-q``) only warnings and errors (the command prints its verdict itself); ``0`` the default, which
hides the chatty per-process benchmark lines (the progress line of the step stays); ``1`` (``-v``) every line.
Everything goes to stderr; stdout is left to the commands' machine-readable output.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import click

QUIET, NORMAL, VERBOSE = -1, 0, 1
DEBUG_ENV = "PRUNEGATE_DEBUG"
"""Environment variable equivalent to ``--debug`` (print a crash's traceback), kept from before the option."""
_META_KEY = "prunegate.output"

CHATTY = re.compile(r"^bench:(\s+\S+: (load |decode speedup )| round \d+/\d+ launch | paired process )")
"""Log lines shown only with ``-v``: one per benchmark process (launch, its load/RSS/median line, each paired look)."""
_WARNING = re.compile(r"^(\S+:\s+)?(warning|error)\b", re.IGNORECASE)


def is_warning(line: str) -> bool:
    """Whether a log line is a warning or an error (``warning: ...``, ``bench:   warning: ...``); always printed."""
    return bool(_WARNING.match(line.strip()))


def is_chatty(line: str) -> bool:
    """Whether a log line is a per-process benchmark detail (hidden unless ``-v``)."""
    return bool(CHATTY.match(line)) and not is_warning(line)


def ci_mode(console_is_terminal: bool, environ: dict | None = None) -> bool:
    """CI mode: ``CI`` set to a true value (GitHub Actions, GitLab, ... set ``CI=true``) or stderr not a terminal."""
    env = os.environ if environ is None else environ
    return env.get("CI", "").strip().lower() in ("1", "true", "yes") or not console_is_terminal


@dataclass
class _Stage:
    """What the CI mode remembers of one stage: the last event and the last one printed."""

    done: int = 0
    total: int | None = None
    unit: str = ""
    printed_pct: int | None = None
    printed_done: int | None = None
    task: object = field(default=None)


class ProgressLog:
    """The ``log`` callable of a command: log lines and progress events to stderr, as a terminal or CI wants them.

    Args:
        verbosity: :data:`QUIET`, :data:`NORMAL` or :data:`VERBOSE`.
        console: a ``rich.console.Console`` (default: one on stderr); tests pass one on a ``StringIO``.
        ci: force CI mode (``True``) or terminal mode (``False``); default :func:`ci_mode` of the console.
        clock: seconds since the epoch (timestamps of CI lines; local time, ``HH:MM:SS``).

    Use it as a context manager (or call :meth:`close`) so the bars stop and each stage's last state is printed.
    """

    def __init__(self, verbosity: int = NORMAL, console=None, ci: bool | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        from rich.console import Console

        self.verbosity = verbosity
        self.console = console if console is not None else Console(stderr=True, highlight=False)
        self.ci = ci_mode(self.console.is_terminal) if ci is None else ci
        self.clock = clock
        self.stages: dict[str, _Stage] = {}
        self._progress = None

    # -- log lines ------------------------------------------------------------------------------------------------
    def __call__(self, line: str) -> None:
        if not self.wants(line):
            return
        text = f"· {line}"
        if self.ci:
            self._plain(f"{self._stamp()} {text}")
        else:
            self._print(text, style="yellow" if is_warning(line) else None)

    def wants(self, line: str) -> bool:
        """Whether ``line`` is printed at this verbosity."""
        if is_warning(line):
            return True
        if self.verbosity <= QUIET:
            return False
        return self.verbosity >= VERBOSE or not is_chatty(line)

    def warn(self, message: str) -> None:
        """Print a warning or note of the CLI itself (e.g. a deprecated option), at every verbosity."""
        if self.ci:
            self._plain(message)
        else:
            self._print(message, style="yellow")

    # -- progress events ------------------------------------------------------------------------------------------
    def progress(self, stage: str, done: int, total: int | None, unit: str) -> None:
        """A stage's progress event (:func:`gate.progress.report_progress`)."""
        st = self.stages.setdefault(stage, _Stage())
        st.done, st.total, st.unit = done, total, unit
        if self.verbosity <= QUIET:
            return
        if self.ci:
            if self._due(st):
                self._print_step(stage, st)
        else:
            self._bar(stage, st)

    def _due(self, st: _Stage) -> bool:
        """CI throttle: the first event, the last (done == total), and every 10 points of percentage in between;
        never the same count twice. Unknown totals: the first, then each doubling of the count."""
        if st.printed_done is None:
            return True
        if st.done == st.printed_done:
            return False
        if st.total is None:
            return st.done >= 2 * max(st.printed_done, 1)
        if st.done >= st.total:
            return True
        return _pct(st.done, st.total) - (st.printed_pct or 0) >= 10

    def _print_step(self, stage: str, st: _Stage) -> None:
        st.printed_done = st.done
        st.printed_pct = _pct(st.done, st.total) if st.total else None
        if st.total is None:
            count = f"{st.done} {st.unit}"
        else:
            count = f"{st.done}/{st.total} {st.unit} ({st.printed_pct}%)"
        self._plain(f"{self._stamp()} {stage} {count}")

    def _bar(self, stage: str, st: _Stage) -> None:
        progress = self._bars()
        if st.task is None:
            st.task = progress.add_task(stage, total=st.total, unit=st.unit)
        progress.update(st.task, completed=st.done, total=st.total, unit=st.unit)
        if st.total is not None and st.done >= st.total:
            progress.update(st.task, completed=st.total)

    def _bars(self):
        if self._progress is None:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                SpinnerColumn,
                TaskProgressColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._progress = Progress(
                SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[unit]}"), TaskProgressColumn(), _rate_column(), TimeElapsedColumn(),
                TextColumn("eta"), TimeRemainingColumn(), console=self.console, transient=False)
            self._progress.start()
        return self._progress

    # -- output ---------------------------------------------------------------------------------------------------
    def _stamp(self) -> str:
        return time.strftime("%H:%M:%S", time.localtime(self.clock()))

    def _plain(self, text: str) -> None:
        file = self.console.file
        file.write(text + "\n")
        file.flush()

    def _print(self, text: str, style: str | None = None) -> None:
        target = self._progress.console if self._progress is not None else self.console
        target.print(text, style=style, markup=False, highlight=False, soft_wrap=True)

    def close(self) -> None:
        """Stop the bars; in CI mode print each stage's last state if it was not printed."""
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
        if self.ci and self.verbosity > QUIET:
            for stage, st in self.stages.items():
                if st.printed_done != st.done:
                    self._print_step(stage, st)

    def __enter__(self) -> ProgressLog:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _pct(done: int, total: int | None) -> int:
    return int(100 * done / total) if total else 0


def _rate_column():
    from rich.progress import ProgressColumn
    from rich.text import Text

    class RateColumn(ProgressColumn):
        """Units per second (or seconds per unit when slower than one a second)."""

        def render(self, task) -> Text:
            speed = task.finished_speed or task.speed
            if not speed:
                return Text("", style="progress.data.speed")
            unit = task.fields.get("unit", "")
            text = f"{speed:.1f} {unit}/s" if speed >= 1 else f"{1 / speed:.1f} s/{(unit.removesuffix('s')) or 'unit'}"
            return Text(text, style="progress.data.speed")

    return RateColumn()


# -- -q / -v / --debug on every command -------------------------------------------------------------------------------
@dataclass
class OutputSettings:
    """What ``-q``, ``-v`` and ``--debug`` chose for this invocation (stored in the root click context's ``meta``)."""

    verbosity: int = NORMAL
    debug: bool = False


_LAST = OutputSettings()
"""The settings of the last invocation, for :func:`gate.cli.main.main` (the click context is gone when it maps a crash)."""


def output_settings(ctx: click.Context | None = None) -> OutputSettings:
    """The settings of the current command (``-q/-v/--debug`` given before or after the subcommand)."""
    ctx = ctx if ctx is not None else click.get_current_context(silent=True)
    if ctx is None:
        return _LAST
    return ctx.find_root().meta.setdefault(_META_KEY, OutputSettings(debug=debug_from_env()))


def last_settings() -> OutputSettings:
    return _LAST


def reset_settings() -> None:
    """Forget the previous invocation's settings (called by :func:`gate.cli.main.main` before parsing)."""
    global _LAST
    _LAST = OutputSettings(debug=debug_from_env())


def debug_from_env() -> bool:
    return os.environ.get(DEBUG_ENV, "").strip() not in ("", "0", "false", "no")


def _set(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    global _LAST
    if not value or ctx.resilient_parsing:
        return
    s = output_settings(ctx)
    if param.name == "debug":
        s.debug = True
    else:
        s.verbosity = QUIET if param.name == "quiet" else VERBOSE  # the last one given wins
    _LAST = s


def _common_params() -> list[click.Option]:
    return [
        click.Option(["-q", "--quiet"], is_flag=True, expose_value=False, callback=_set, is_eager=True,
                     help="Print only warnings, errors and the verdict (no progress, no info lines)."),
        click.Option(["-v", "--verbose"], is_flag=True, expose_value=False, callback=_set, is_eager=True,
                     help="Print every log line, including one per benchmark process."),
        click.Option(["--debug"], is_flag=True, expose_value=False, callback=_set, is_eager=True,
                     help=f"Print the traceback of a crash (also ${DEBUG_ENV}=1)."),
    ]


COMMON_OPTION_NAMES = ("--quiet", "--verbose", "--debug")


def common_options(cmd: click.Command) -> click.Command:
    """Add ``-q/--quiet``, ``-v/--verbose`` and ``--debug`` to a click command or group (before or after the
    subcommand both work: each stores its choice in the root context)."""
    have = {o for p in cmd.params for o in getattr(p, "opts", [])}
    cmd.params.extend(p for p in _common_params() if not set(p.opts) & have)
    return cmd


def apply_common_options(group: click.Command) -> None:
    """:func:`common_options` on ``group`` and every command below it."""
    common_options(group)
    for sub in getattr(group, "commands", {}).values():
        apply_common_options(sub)


def make_log(ctx: click.Context | None = None) -> ProgressLog:
    """The :class:`ProgressLog` of the current command, at its ``-q/-v`` verbosity."""
    return ProgressLog(verbosity=output_settings(ctx).verbosity)


def info(message: str, ctx: click.Context | None = None) -> None:
    """An informational note on stderr (hidden by ``-q``)."""
    if output_settings(ctx).verbosity > QUIET:
        click.echo(message, err=True)


__all__ = [
    "CHATTY",
    "NORMAL",
    "QUIET",
    "VERBOSE",
    "ProgressLog",
    "apply_common_options",
    "ci_mode",
    "common_options",
    "info",
    "is_chatty",
    "is_warning",
    "make_log",
    "output_settings",
]
