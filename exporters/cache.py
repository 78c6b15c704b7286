"""A content-addressed work directory: each entry is built in a temporary folder and renamed into place.

An entry ``<work_dir>/<kind>/<key>/`` is complete only when it holds ``.prunegate-entry.json``; a
half-written entry (an interrupted run) is never reused: it is removed and rebuilt.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

MARKER = ".prunegate-entry.json"


def cached_dir(work_dir: Path, kind: str, key: str, build: Callable[[Path], dict], log: Callable[[str], None] = lambda s: None) -> tuple[Path, dict]:
    """Return the directory for ``(kind, key)``, building it with ``build(tmp_dir)`` when absent.

    Args:
        work_dir: the cache root (``--work-dir``).
        kind: a namespace such as ``"onnx"``.
        key: a content digest naming the entry.
        build: fills the empty directory it is given and returns metadata (JSON-serializable).
        log: receives one line when an entry is reused.

    Returns:
        ``(path, metadata)``; metadata has ``"reused": True`` when the entry already existed.
    """
    final = work_dir / kind / key
    marker = final / MARKER
    if marker.is_file():
        meta = json.loads(marker.read_text())
        log(f"reusing {kind} {key[:12]} from {final}")
        return final, {**meta, "reused": True}
    if final.exists():
        shutil.rmtree(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key[:12]}-", dir=final.parent))
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(tmp, 0o777 & ~mask)  # mkdtemp creates 0700; cached exports may be shared (CI caches)
    try:
        meta = build(tmp)
        (tmp / MARKER).write_text(json.dumps(meta, indent=2, sort_keys=True))
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final, {**meta, "reused": False}
