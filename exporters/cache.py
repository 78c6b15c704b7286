"""A content-addressed work directory: each entry is built in a temporary folder and renamed into place.

An entry ``<work_dir>/<kind>/<key>/`` is complete only when it holds ``.prunegate-entry.json`` (the marker).
The marker records the entry's metadata and the SHA-256 and size of every file in the entry; reusing an
entry re-checks them. An entry that does not match (a file edited, missing or added after it was built, a
marker that is unreadable or records no digests, a half-written entry) is removed and rebuilt, and the
metadata returned says so under ``"integrity_warning"``.

Entries are locked per key: ``<work_dir>/<kind>/.<key>.lock`` (``fcntl.flock``) is held while an entry is
checked, built and committed, so two runs on one ``--work-dir`` build an entry once and the second reuses it.
Where locks are unavailable (a read-only cache, a file system without ``flock``) the rename still decides:
the loser of the ``os.replace`` race discards its copy and reuses the winner's after checking it. Temporary
entries left by killed runs (``.<key[:12]>-XXXXXXXX``) are removed when no run holds a lock that may own
them, or when they are older than :data:`ORPHAN_AGE_S`.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import shutil
import stat
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from exporters.digest import sha256_file, sha256_file_memo, sha256_json

MARKER = ".prunegate-entry.json"
ENTRY_FORMAT = "prunegate-cache-entry/2"
"""``format`` of a marker that records file digests (markers without it come from older versions)."""
INTEGRITY_WARNING = "integrity_warning"
"""The metadata key of the warning when an entry was rebuilt because it did not match its digests."""
ORPHAN_AGE_S = 3600.0
"""A temporary entry older than this (seconds since its last change) is removed even if a lock may own it."""

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")
_TMP = re.compile(r"\.(?P<prefix>[A-Za-z0-9][A-Za-z0-9._-]{0,11})-[a-z0-9_]{8}")
_MAX_PROBLEMS = 3
_MAX_MARKER_BYTES = 64 << 20


@dataclass(frozen=True)
class EntryCheck:
    """The result of checking an entry against its marker.

    Attributes:
        meta: the metadata stored by ``build`` when the entry matches its digests, else ``None``.
        problem: why it does not, one phrase (``"model.onnx: sha256 differs"``); ``None`` when it matches or
            when there is no entry at all.
        files: the recorded ``{relative POSIX name: {"sha256", "bytes"}}`` when it matches.
    """

    meta: dict | None
    problem: str | None
    files: dict | None = None

    @property
    def ok(self) -> bool:
        """The entry exists and every file matches its recorded digest and size."""
        return self.meta is not None


def cached_dir(work_dir: Path, kind: str, key: str, build: Callable[[Path], dict],
               log: Callable[[str], None] = lambda s: None) -> tuple[Path, dict]:
    """Return the directory for ``(kind, key)``, building it with ``build(tmp_dir)`` when absent or not intact.

    The entry is locked while it is checked or built (``<work_dir>/<kind>/.<key>.lock``); a run that finds the
    lock held waits for it (one log line) and then reuses what the other run built. A reused entry has every
    file re-hashed (SHA-256; about 0.35 s per 500 MB from the page cache, 0.7-1.4 s from disk) unless this
    process hashed it already and the file's identity and times are unchanged
    (:func:`exporters.digest.sha256_file_memo`).

    Args:
        work_dir: the cache root (``--work-dir``).
        kind: a namespace such as ``"exports-v1"`` (one path component: letters, digits, ``._-``).
        key: a content digest naming the entry (one path component, as ``kind``).
        build: fills the empty directory it is given with regular files and returns metadata
            (JSON-serializable dict).
        log: receives one line when an entry is reused, waited for, or rebuilt because it did not match.

    Returns:
        ``(path, metadata)``: ``metadata`` is what ``build`` returned, plus ``"reused"`` (bool, the entry
        already existed and matched its digests) and, when a non-matching entry was rebuilt,
        ``"integrity_warning"`` (:data:`INTEGRITY_WARNING`): one line, e.g. ``"cached exports-v1 abc123def456
        was modified after it was built (model.onnx: sha256 differs); rebuilt"``.

    Raises:
        ValueError: ``kind`` or ``key`` is not a single safe path component.
        RuntimeError: ``build`` left something other than regular files and directories (a symlink, ...).
        whatever ``build`` raises (the temporary directory is removed first); ``OSError`` from the file system.
    """
    for what, name in (("kind", kind), ("key", key)):
        if not is_entry_name(name):
            raise ValueError(f"cache {what} {name!r} is not a single path component of letters, digits and ._-")
    parent = Path(work_dir) / kind
    final = parent / key
    label = f"{kind} {key[:12]}"
    with contextlib.suppress(OSError):  # a read-only cache can still be reused
        parent.mkdir(parents=True, exist_ok=True)
    with _locked(parent / f".{key}.lock", f"cached {label}", log) as locked:
        found = check_entry(final)
        _remove_orphans(parent, key, log, locks_work=locked)
        if found.ok:
            log(f"reusing {label} from {final}")
            return final, {**found.meta, "reused": True}
        warning = None
        if found.problem is not None:
            warning = f"cached {label} {found.problem}; rebuilt"
            log(f"warning: {warning}")
        if final.exists() or final.is_symlink():
            _remove(final)
        tmp = Path(tempfile.mkdtemp(prefix=f".{key[:12]}-", dir=parent))
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o777 & ~mask)  # mkdtemp creates 0700; cached exports may be shared (CI caches)
        try:
            meta = build(tmp)
            files = _hash_files(tmp, label)
            (tmp / MARKER).write_text(json.dumps({"format": ENTRY_FORMAT, "kind": kind, "key": key, "files": files,
                                                  "meta": meta}, indent=2, sort_keys=True))
            winner = _commit(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    if winner is not None:  # another run committed the same entry first (no lock): its copy is the one used
        log(f"reusing {label} from {final} (another run committed it first)")
        return final, {**winner.meta, "reused": True, **({INTEGRITY_WARNING: warning} if warning else {})}
    out = {**meta, "reused": False}
    if warning is not None:
        out[INTEGRITY_WARNING] = warning
    return final, out


def is_entry_name(name: str) -> bool:
    """Whether ``name`` can be a cache ``kind`` or ``key``: one path component of letters, digits and ``._-``
    (at most 200 characters, not starting with ``.``, ``_`` or ``-``)."""
    return isinstance(name, str) and _NAME.fullmatch(name) is not None


def files_digest(directory: Path) -> str:
    """Hex SHA-256 (:func:`exporters.digest.sha256_json`) of ``{relative POSIX name: sha256}`` for every file
    under ``directory`` except a cache marker; hashes remembered by this process are reused
    (:func:`exporters.digest.sha256_file_memo`).

    Raises:
        OSError: a file cannot be read.
    """
    root = Path(directory)
    return sha256_json({name: sha256_file_memo(root / name) for name, st in sorted(_listing(root).items())
                        if stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)})


def check_entry(entry: Path, memo: bool = True) -> EntryCheck:
    """Check an entry directory against its marker: every recorded file present with its size and SHA-256, no
    other file. Does not lock, change or remove anything.

    Args:
        entry: ``<work_dir>/<kind>/<key>``.
        memo: reuse digests this process computed already while the files are unchanged
            (:func:`exporters.digest.sha256_file_memo`); ``False`` re-reads every byte.

    Returns:
        an :class:`EntryCheck`: ``ok`` with the stored metadata, or the problem (``None`` when ``entry`` does
        not exist). Never raises for a bad entry: an unreadable marker or file is a problem, not an error.
    """
    entry = Path(entry)
    if not entry.exists() and not entry.is_symlink():
        return EntryCheck(None, None)
    if entry.is_symlink() or not entry.is_dir():
        return EntryCheck(None, "is not a directory")
    try:
        st = os.lstat(entry / MARKER)
        if not stat.S_ISREG(st.st_mode) or st.st_size > _MAX_MARKER_BYTES:
            return EntryCheck(None, f"has an unreadable {MARKER} (not a regular file of at most 64 MiB)")
        marker = json.loads((entry / MARKER).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return EntryCheck(None, f"was incomplete (no {MARKER}: an interrupted run)")
    except (OSError, ValueError, RecursionError) as exc:
        return EntryCheck(None, f"has an unreadable {MARKER} ({type(exc).__name__})")
    if not isinstance(marker, dict) or marker.get("format") != ENTRY_FORMAT:
        return EntryCheck(None, "records no file digests (built by an older prunegate)")
    recorded, meta = marker.get("files"), marker.get("meta")
    if not isinstance(recorded, dict) or not isinstance(meta, dict) or not all(
            isinstance(v, dict) and isinstance(v.get("sha256"), str) and isinstance(v.get("bytes"), int)
            for v in recorded.values()):
        return EntryCheck(None, f"has a malformed {MARKER}")
    try:
        present = _listing(entry)
    except OSError as exc:
        return EntryCheck(None, f"cannot be read ({type(exc).__name__}: {exc.strerror})")
    problems = [f"{n}: missing" for n in sorted(set(recorded) - set(present))]
    problems += [f"{n}: not in the entry when it was built" for n in sorted(set(present) - set(recorded))]
    hash_one = sha256_file_memo if memo else sha256_file
    for name in sorted(set(present) & set(recorded)):
        st, want = present[name], recorded[name]
        if not stat.S_ISREG(st.st_mode):
            problems.append(f"{name}: not a regular file")
        elif st.st_size != want["bytes"]:
            problems.append(f"{name}: {st.st_size} bytes, {want['bytes']} recorded")
        elif not problems:  # once one problem is found the entry is rebuilt anyway: skip hashing the rest
            try:
                if hash_one(entry / name) != want["sha256"]:
                    problems.append(f"{name}: sha256 differs")
            except OSError as exc:
                problems.append(f"{name}: unreadable ({exc.strerror})")
    if problems:
        more = f"; +{len(problems) - _MAX_PROBLEMS} more" if len(problems) > _MAX_PROBLEMS else ""
        return EntryCheck(None, f"was modified after it was built ({'; '.join(problems[:_MAX_PROBLEMS])}{more})")
    return EntryCheck(meta, None, recorded)


def _listing(root: Path) -> dict[str, os.stat_result]:
    """``{relative POSIX name: lstat}`` of everything under ``root`` except directories and the marker;
    symlinks are listed (not followed)."""
    out: dict[str, os.stat_result] = {}
    stack = [root]
    while stack:
        d = stack.pop()
        with os.scandir(d) as it:
            for e in it:
                p = Path(e.path)
                st = e.stat(follow_symlinks=False)
                if stat.S_ISDIR(st.st_mode):
                    stack.append(p)
                    continue
                name = p.relative_to(root).as_posix()
                if name != MARKER:
                    out[name] = st
    return out


def _hash_files(root: Path, label: str) -> dict[str, dict]:
    files = {}
    for name, st in sorted(_listing(root).items()):
        if not stat.S_ISREG(st.st_mode):
            raise RuntimeError(f"building cached {label} left {name}, which is not a regular file")
        files[name] = {"sha256": sha256_file_memo(root / name), "bytes": st.st_size}
    return files


def _commit(tmp: Path, final: Path) -> EntryCheck | None:
    """Rename ``tmp`` to ``final``. ``None`` when it was renamed; the winner's :class:`EntryCheck` when another
    run committed ``final`` first and it is intact (``tmp`` is then removed). A broken winner is replaced."""
    for _ in range(3):
        try:
            os.replace(tmp, final)
            return None
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR):
                raise
        winner = check_entry(final)
        if winner.ok:
            shutil.rmtree(tmp, ignore_errors=True)
            return winner
        _remove(final)
    raise OSError(errno.EEXIST, f"cannot commit cache entry {final}: another run keeps writing it")


def _remove(path: Path) -> None:
    if path.is_symlink() or not path.is_dir():
        path.unlink(missing_ok=True)
    else:
        shutil.rmtree(path, ignore_errors=True)
        if path.exists():
            shutil.rmtree(path)  # raises the real error


@contextlib.contextmanager
def _locked(lock_path: Path, what: str, log: Callable[[str], None]) -> Iterator[bool]:
    """Hold an exclusive ``flock`` on ``lock_path`` (created if needed; waits, with one log line, while another
    process holds it). Yields whether a lock is held: ``False`` when the file cannot be created or the file
    system has no locks (the caller then relies on the atomic rename)."""
    try:
        fd = os.open(lock_path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o666)
    except OSError:
        yield False
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"waiting for another prunegate run to finish {what} (lock {lock_path})")
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:  # ENOLCK, EOPNOTSUPP: no locks on this file system
            yield False
            return
        yield True
    finally:
        os.close(fd)  # releases the lock


def _is_locked(lock_path: Path) -> bool:
    """Whether some open file (another run, or another descriptor of this process) holds ``lock_path``'s lock."""
    try:
        fd = os.open(lock_path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)
    return False


def _remove_orphans(parent: Path, key: str, log: Callable[[str], None], locks_work: bool = True) -> None:
    """Remove temporary entries (``.<key[:12]>-XXXXXXXX`` dirs) of killed runs in ``parent``.

    Called with ``key``'s lock held, so no other run is building ``key``. A temporary entry is an orphan when no
    run holds a lock on a key whose first 12 characters name it, or when it is older than :data:`ORPHAN_AGE_S`.
    Without working locks (``locks_work`` false) only the age counts. Errors are ignored: cleaning is best effort.
    """
    now = time.time()
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return
    locks = [e.name[1:-5] for e in entries if e.name.startswith(".") and e.name.endswith(".lock")]
    for e in entries:
        m = _TMP.fullmatch(e.name)
        if m is None or not e.is_dir(follow_symlinks=False):
            continue
        try:
            age = now - e.stat(follow_symlinks=False).st_mtime
        except OSError:
            continue
        owners = [k for k in locks if k[:12] == m["prefix"] and k != key]
        if age <= ORPHAN_AGE_S and (not locks_work or any(_is_locked(parent / f".{k}.lock") for k in owners)):
            continue  # a live run may be building into it
        shutil.rmtree(e.path, ignore_errors=True)
        log(f"removed {e.path}: a temporary cache entry left by an interrupted run")
