"""Export a Hugging Face causal LM to ONNX with optimum (decoder with KV cache).

Uses ``optimum.exporters.onnx.main_export`` with task ``text-generation-with-past``: one
``model.onnx`` (plus external data for models over 2 GiB) taking ``past_key_values.*`` inputs, the
layout optimum-onnx writes by default (huggingface/optimum-onnx
``docs/source/onnx/usage_guides/export_a_model.mdx``).
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Callable
from pathlib import Path

from exporters.cache import cached_dir, check_entry, is_entry_name
from exporters.model_source import _one_line
from gate.runtime.errors import InputError

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
        ``(onnx_dir, metadata)`` with ``metadata["export_s"]`` the export wall time in seconds (of the run that
        built it), ``metadata["reused"]``, and ``metadata["integrity_warning"]`` (one line) when a cached export
        no longer matched its recorded digests and was rebuilt (:func:`exporters.cache.cached_dir`).

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
                    trust_remote_code=False,  # never run a model directory's code (refuse_custom_code refused it already)
                )
        except Exception as exc:  # noqa: BLE001 -- optimum raises many types; the user needs the reason
            raise InputError(f"model {checkpoint} failed to export to ONNX: {_one_line(exc)}") from None
        if not (out / "model.onnx").is_file():
            raise InputError(f"model {checkpoint} failed to export to ONNX: optimum wrote no model.onnx")
        meta = {"checkpoint": str(checkpoint), "task": EXPORT_TASK, "torch": torch.__version__, "export_s": time.perf_counter() - t0}
        if after_export is not None:
            meta["checks"] = after_export(out)
        return meta

    return cached_dir(work_dir, EXPORT_CACHE, key, build, log)


def cached_export(work_dir: Path, key: str) -> Path | None:
    """The directory of a complete, intact cached export for ``key``, or ``None``.

    Intact: every file matches the SHA-256 and size recorded when the export was built
    (:func:`exporters.cache.check_entry`; the hashes are remembered, so :func:`export_onnx` reusing the entry in
    the same process does not read the files again). ``None`` when there is no entry or it does not match: the
    caller then loads the model, and :func:`export_onnx` rebuilds the entry with an ``"integrity_warning"``.
    Nothing is locked or changed.

    Args:
        work_dir: cache root.
        key: the export's cache key (as given to :func:`export_onnx`).
    """
    if not is_entry_name(key):
        return None
    path = Path(work_dir) / EXPORT_CACHE / key
    return path if check_entry(path).ok else None


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
