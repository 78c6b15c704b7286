"""Atomic file writes: a reader sees either the previous file or the complete new one, never a half-written one.

Standard library only (``gate/runtime`` is device-portable).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` via a temporary file in the same directory and ``os.replace``.

    Missing parent directories are created. The file gets the usual permissions (``0666`` minus the umask),
    and its contents are flushed to disk before the rename. An interrupted write leaves the previous file
    intact and removes the temporary file.

    Raises:
        OSError: the directory or the file cannot be written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; reports are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_json_atomic(path: Path, data: object) -> None:
    """Write ``data`` as JSON (indent 2, key order kept, trailing newline) to ``path`` with :func:`write_text_atomic`.

    Raises:
        ValueError: ``data`` holds NaN or infinity (``allow_nan=False``); nothing is written.
        TypeError: ``data`` holds something JSON cannot encode; nothing is written.
        OSError: the directory or the file cannot be written.
    """
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=False, allow_nan=False) + "\n")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
