"""Content digests used for cache keys and report provenance."""

from __future__ import annotations

import hashlib
import json
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
