"""Claiming ``--out``: one run at a time writes a report directory, and it starts without the previous run's files.

A run holds an exclusive ``flock`` on ``<out>/.prunegate-out.lock`` (the file holds the owner's pid) from its
start to its end; a second run on the same ``--out`` is refused at once. When the claim is taken, the files a
previous run wrote are removed, so a report never sits next to an in-toto statement or predictions of a
candidate this run did not have. Only prunegate's own files are removed: ``report.json``, each file of the
format registry (:data:`gate.report.outputs.REGISTRY`, e.g. ``report.md``, ``junit.xml``, ``intoto.json``
and, for a format that writes one file per candidate, ``intoto-<variant>.json``), ``predictions/*.jsonl`` and
``predictions/*.jsonl.partial``, and the temporary files of interrupted atomic writes of those
(``.<name>.XXXXXXXX``, :func:`gate.runtime.atomic.write_text_atomic`). Everything else in ``--out`` is kept.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Self

from gate.report.outputs import REGISTRY
from gate.runtime.errors import InputError

LOCK_NAME = ".prunegate-out.lock"
REPORT_NAME = "report.json"
PREDICTIONS_DIR = "predictions"
_ATOMIC_SUFFIX = r"\.[a-z0-9_]{8}"  # tempfile.mkstemp's random part


def output_patterns() -> tuple[re.Pattern[str], ...]:
    """Regular expressions (full match) of the file names prunegate writes at the top of ``--out``: ``report.json``,
    each registry format's ``file_name``, ``<stem>-<variant><suffix>`` for a format that writes one file per
    candidate (``Format.files``), and the ``.<name>.XXXXXXXX`` temporary file of an atomic write of each."""
    names = [re.escape(REPORT_NAME)]
    for fmt in REGISTRY:
        if not fmt.file_name:
            continue  # printed only (annotations): never a file prunegate writes
        names.append(re.escape(fmt.file_name))
        if fmt.files is not None:
            stem, dot, suffix = fmt.file_name.rpartition(".")
            names.append(rf"{re.escape(stem)}-[A-Za-z0-9._-]+{re.escape(dot + suffix)}")
    own = "|".join(names)
    return re.compile(own), re.compile(rf"\.(?:{own}){_ATOMIC_SUFFIX}")


_PREDICTION = re.compile(rf"[A-Za-z0-9._-]+\.jsonl(?:\.partial)?|\.[A-Za-z0-9._-]+\.jsonl{_ATOMIC_SUFFIX}")


class OutDirClaim:
    """A held claim on a report directory (a context manager; :func:`claim_out_dir` takes it).

    Attributes:
        path: the ``--out`` directory.
        removed: names (relative to ``path``, POSIX) of the previous run's files that were removed, sorted.
        locked: whether an ``flock`` is held (``False`` only on a file system without locks).
    """

    def __init__(self, path: Path, fd: int | None, removed: tuple[str, ...]):
        self.path = path
        self.removed = removed
        self.locked = fd is not None
        self._fd = fd

    def release(self) -> None:
        """Remove the lock file and release the lock; a second call does nothing. Never raises."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with contextlib.suppress(OSError):
            os.unlink(self.path / LOCK_NAME)  # while still locked: a waiting run re-checks the file it locked
        with contextlib.suppress(OSError):
            os.close(fd)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def claim_out_dir(path: Path, log: Callable[[str], None] = lambda s: None) -> OutDirClaim:
    """Claim ``path`` (``--out``) for this run and remove the previous run's files from it.

    Creates ``path`` if needed, takes an exclusive non-blocking ``flock`` on ``path/.prunegate-out.lock`` (which
    then holds this process's pid) and removes the files listed in the module docstring. Use as
    ``with claim_out_dir(opts.out_dir, log): ...`` or call :meth:`OutDirClaim.release` when the run ends; a
    claim that is dropped without either keeps the lock until the process ends (the kernel releases it then,
    also when the process is killed).

    Args:
        path: the report directory.
        log: receives one line when files of a previous run were removed.

    Returns:
        the held :class:`OutDirClaim`.

    Raises:
        InputError: another process holds the claim (``--out DIR is in use by another prunegate run (pid N);
            pass another --out``), or ``path`` cannot be created or written.
    """
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"--out {path} cannot be created ({exc.strerror}); pass a writable directory") from None
    if not path.is_dir():
        raise InputError(f"--out {path} is not a directory; pass a directory")
    fd = _lock(path)
    try:
        removed = _remove_previous(path)
    except BaseException:
        OutDirClaim(path, fd, ()).release()
        raise
    if removed:
        log(f"removed {len(removed)} file(s) of a previous run from {path}")
    return OutDirClaim(path, fd, removed)


def _lock(path: Path) -> int | None:
    lock = path / LOCK_NAME
    for _ in range(10):
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        except OSError as exc:
            raise InputError(f"--out {path} is not writable ({exc.strerror}); pass a writable directory") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _read_pid(fd)
            os.close(fd)
            raise InputError(f"--out {path} is in use by another prunegate run (pid {pid}); pass another --out") from None
        except OSError as exc:
            if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                os.close(fd)
                raise
            os.close(fd)  # a file system without locks: the run goes on unlocked
            return None
        try:  # the holder before us may have removed the file after we opened it: lock the file that is there
            same = os.fstat(fd).st_ino == os.stat(lock).st_ino
        except FileNotFoundError:
            same = False
        if not same:
            os.close(fd)
            continue
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return fd
    raise InputError(f"--out {path} is in use by other prunegate runs (its lock keeps changing); pass another --out")


def _read_pid(fd: int) -> str:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return "unknown"
    return text if text.isdigit() else "unknown"


def _remove_previous(path: Path) -> tuple[str, ...]:
    own, atomic = output_patterns()
    removed = []
    for e in os.scandir(path):
        if (own.fullmatch(e.name) or atomic.fullmatch(e.name)) and not e.is_dir(follow_symlinks=False):
            _unlink(path / e.name, removed, e.name)
    pred = path / PREDICTIONS_DIR
    if pred.is_dir() and not pred.is_symlink():
        for e in os.scandir(pred):
            if _PREDICTION.fullmatch(e.name) and not e.is_dir(follow_symlinks=False):
                _unlink(pred / e.name, removed, f"{PREDICTIONS_DIR}/{e.name}")
        with contextlib.suppress(OSError):
            pred.rmdir()  # only when empty: a user's file there keeps it
    return tuple(sorted(removed))


def _unlink(p: Path, removed: list[str], name: str) -> None:
    try:
        p.unlink()
    except FileNotFoundError:
        return
    except OSError as exc:
        raise InputError(f"--out {p.parent}: cannot remove {name} of a previous run ({exc.strerror}); "
                         "make it writable or pass another --out") from None
    removed.append(name)
