"""Content digests used for cache keys and report provenance."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

_CHUNK = 1 << 20


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def sha256_tree(directory: str | Path) -> str:
    """Hex SHA-256 over the sorted ``relative/path:sha256`` lines of every file under ``directory``."""
    root = Path(directory)
    lines = [f"{p.relative_to(root).as_posix()}:{sha256_file(p)}" for p in sorted(root.rglob("*")) if p.is_file()]
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def sha256_json(obj: object) -> str:
    """Hex SHA-256 of ``obj`` as canonical JSON: sorted keys, no spaces, UTF-8 without ASCII escaping, no NaN."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# A run hashes the same cached export several times (the pipeline asks whether it is cached, then reuses it; a
# quantized candidate reuses the dense export). The memo below answers again without re-reading the file while
# its identity and timestamps are unchanged. A timestamp within ``_RACY_NS`` of the moment hashing began is
# not trusted (file systems store coarse timestamps: a same-size rewrite inside that window would keep them),
# so such a file is hashed again, as git does for "racily clean" index entries.
_RACY_NS = 2_000_000_000
_memo: dict[str, tuple[tuple[int, int, int, int, int], str, int]] = {}


def file_signature(path: str | Path) -> tuple[int, int, int, int, int]:
    """``(st_dev, st_ino, st_size, st_mtime_ns, st_ctime_ns)`` of ``path`` (``os.stat``, links followed).

    Raises:
        OSError: the file cannot be stat'ed (missing, no permission).
    """
    st = os.stat(path)
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def sha256_file_memo(path: str | Path) -> str:
    """:func:`sha256_file`, remembered for this process while the file's :func:`file_signature` is unchanged.

    The remembered digest is used only when the file's device, inode, size, modification and change times
    (nanoseconds) equal those seen when it was hashed, and both times were at least 2 s older than the moment
    hashing began; otherwise the file is hashed again. The change time (``st_ctime``) cannot be set by a
    user, so an edit followed by restoring the modification time is still noticed. For a digest that must
    come from the bytes on disk now (``prunegate verify``), use :func:`sha256_file`.

    Returns:
        lowercase hex SHA-256 of the file's bytes.

    Raises:
        OSError: the file cannot be read.
    """
    key = os.path.abspath(path)
    sig = file_signature(key)
    hit = _memo.get(key)
    if hit is not None and hit[0] == sig and max(sig[3], sig[4]) < hit[2] - _RACY_NS:
        return hit[1]
    started = time.time_ns()
    digest = sha256_file(key)
    if file_signature(key) == sig:  # unchanged while it was read
        _memo[key] = (sig, digest, started)
    else:
        _memo.pop(key, None)
    return digest


def forget_memo() -> None:
    """Forget every digest :func:`sha256_file_memo` remembers (tests; a long-lived process between runs)."""
    _memo.clear()
