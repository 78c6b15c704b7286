"""Export a Hugging Face causal LM to ONNX with optimum (decoder with KV cache).

Uses ``optimum.exporters.onnx.main_export`` with task ``text-generation-with-past``: one
``model.onnx`` (plus external data for models over 2 GiB) taking ``past_key_values.*`` inputs, the
layout optimum-onnx writes by default (see notes/edge_bench.md §9).
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path
from typing import Callable

from gate.runtime.errors import InputError

from exporters.cache import cached_dir
from exporters.model_source import _one_line

EXPORT_TASK = "text-generation-with-past"
EXPORT_CACHE = "exports-v1"  # bump when the stored metadata changes, so stale entries are rebuilt


def export_onnx(
    checkpoint: Path,
    work_dir: Path,
    key: str,
    log: Callable[[str], None] = print,
    label: str | None = None,
    after_export: Callable[[Path], dict] | None = None,
) -> tuple[Path, dict]:
    """Export ``checkpoint`` to ``work_dir/onnx/<key>`` unless that export already exists.

    Args:
        checkpoint: a local Hugging Face model directory (fp32).
        work_dir: cache root.
        key: content digest of (model, compression) naming the export; same key = reused.
        log: receives progress lines.
        label: the variant's name for progress lines (default: the checkpoint folder's name).
        after_export: called with the new export's directory before it is committed to the cache
            (e.g. to verify it); its result is stored with the entry under ``"checks"``, so a reused
            export carries it too.

    Returns:
        ``(onnx_dir, metadata)`` with ``metadata["export_s"]`` the export wall time in seconds.

    Raises:
        InputError: when optimum cannot export the model (unsupported architecture, ...).
    """

    def build(out: Path) -> dict:
        import time

        import optimum.exporters.onnx as oe
        import torch

        log(f"exporting {label or checkpoint.name} to ONNX ({EXPORT_TASK})")
        t0 = time.perf_counter()
        captured = io.StringIO()
        try:
            with warnings.catch_warnings(), contextlib.redirect_stdout(captured), contextlib.redirect_stderr(captured), _quiet_loggers():
                warnings.simplefilter("ignore")
                oe.main_export(
                    str(checkpoint),
                    output=out,
                    task=EXPORT_TASK,
                    device="cpu",
                    dtype="fp32",
                    do_validation=False,
                    local_files_only=True,
                )
        except Exception as exc:
            raise InputError(f"model {checkpoint} failed to export to ONNX: {_one_line(exc)}") from None
        if not (out / "model.onnx").is_file():
            raise InputError(f"model {checkpoint} failed to export to ONNX: optimum wrote no model.onnx")
        meta = {"checkpoint": str(checkpoint), "task": EXPORT_TASK, "torch": torch.__version__, "export_s": time.perf_counter() - t0}
        if after_export is not None:
            meta["checks"] = after_export(out)
        return meta

    return cached_dir(work_dir, EXPORT_CACHE, key, build, log)


def cached_export(work_dir: Path, key: str) -> Path | None:
    """The directory of a complete cached export for ``key``, or ``None``."""
    from exporters.cache import MARKER

    path = work_dir / EXPORT_CACHE / key
    return path if (path / MARKER).is_file() else None


@contextlib.contextmanager
def _quiet_loggers():
    names = ["optimum", "transformers", "torch.onnx"]
    saved = [(logging.getLogger(n), logging.getLogger(n).level) for n in names]
    for lg, _ in saved:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in saved:
            lg.setLevel(level)
