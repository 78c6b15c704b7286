"""Errors that prunegate reports to the user as one line, and the exit codes of every command."""

import enum
import errno


class ExitCode(enum.IntEnum):
    """The exit code of every prunegate command: the one place these numbers are defined.

    An ``IntEnum``, so a member is an ``int`` (``sys.exit(ExitCode.FAIL)`` exits 1, ``json.dumps`` writes ``1``);
    ``report.json`` still stores plain ints (``int(code)``).

    Attributes
    ----------
    PASS : int
        0 -- the gate passed (warnings allowed), or a tool command succeeded.
    FAIL : int
        1 -- the gate failed: a blocking check failed (or was inconclusive with ``on_inconclusive = "fail"``).
    INPUT : int
        2 -- bad input or usage: a missing file, a wrong format, an invalid policy file (:class:`InputError`).
    INCONCLUSIVE : int
        3 -- a blocking check was inconclusive at the stated confidence (``on_inconclusive = "exit-3"``).
    EXECUTION : int
        4 -- an execution error: something broke while running, a check is ERROR, or no check executed.
    INTEGRITY : int
        5 -- ``prunegate verify``: the artifact bytes differ from what the report records.
    INTERRUPTED : int
        130 -- interrupted (``KeyboardInterrupt``/SIGINT, 128 + 2 as shells report it).
    """

    PASS = 0
    FAIL = 1
    INPUT = 2
    INCONCLUSIVE = 3
    EXECUTION = 4
    INTEGRITY = 5
    INTERRUPTED = 130


class InputError(Exception):
    """Bad input or usage: a missing file, a wrong format, an unknown profile, a model that fails to export.

    The message is one line that names the input and says how to fix it. The CLI prints it as
    ``error: <message>`` and exits with code 2 (:attr:`ExitCode.INPUT`), without a traceback.
    """


def error_kind(exc: BaseException) -> tuple[str, ExitCode, str]:
    """How a failure is reported: ``(kind, exit code, one-line message)``.

    ``input`` (an :class:`InputError`, exit 2), ``interrupted`` (Ctrl-C or SIGTERM, exit 130), ``disk-full``
    (``ENOSPC``, exit 4, naming the file) or ``execution`` (any other exception, exit 4).
    """
    if isinstance(exc, InputError):
        return "input", ExitCode.INPUT, str(exc).strip().splitlines()[0] if str(exc).strip() else "input error"
    if not isinstance(exc, Exception):
        return "interrupted", ExitCode.INTERRUPTED, f"{type(exc).__name__}: {exc}"
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        where = exc.filename or "the output or work directory"
        return "disk-full", ExitCode.EXECUTION, (f"no space left on the device holding {where}; free space there, or "
                                                  f"point --work-dir / --out at a larger disk")
    return "execution", ExitCode.EXECUTION, f"{type(exc).__name__}: {exc}"
