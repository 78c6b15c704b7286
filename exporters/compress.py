"""Apply a built-in ``--candidate``/``--method`` compression to a PyTorch model, shared by ``check`` and ``prune``.

One place decides which pruning function a spec runs (``exporters.compression.pruning.prune_model`` for
magnitude/random/Wanda/SparseGPT, ``exporters.compression.structured.prune_mlp_neurons`` for structured), which
calibration options it needs, and what identifies the result in the export cache.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from exporters.candidates import STRUCTURED_METHOD, CandidateSpec
from gate.runtime.errors import InputError

CALIBRATION_ENV = "PRUNEGATE_CALIBRATION_FILE"
"""Environment variable of ``--calibration-file``; read by the command line (click), never here."""
CALIBRATION_HINT = f"pass --calibration-file FILE (e.g. ../shared/wikitext-2/valid.txt) or set {CALIBRATION_ENV}"


@dataclass(frozen=True)
class CalibrationOptions:
    """How calibration windows are drawn (see ``exporters.compression.calibration``).

    Attributes:
        file: UTF-8 text file, or ``None`` (only allowed when no method needs calibration).
        n_windows: number of windows.
        window_tokens: tokens per window.
        seed: seed of the window draw (the run's ``--seed``).
    """

    file: Path | None
    n_windows: int
    window_tokens: int
    seed: int

    def to_dict(self) -> dict:
        """The options as given (recorded in reports even when no method used them)."""
        return {"file": str(self.file) if self.file else None, "n_windows": self.n_windows,
                "window_tokens": self.window_tokens, "seed": self.seed}


def calibration_options(file: str | Path | None, n_windows: int | None, window_tokens: int | None, seed: int) -> CalibrationOptions:
    """Fill unset calibration counts from ``exporters.compression.calibration.DEFAULT_CALIBRATION_WINDOWS`` /
    ``DEFAULT_CALIBRATION_TOKENS``.

    Args:
        file: ``--calibration-file`` (click fills it from ``$PRUNEGATE_CALIBRATION_FILE``) or ``None`` (no file: only
            allowed when no method needs calibration, see :func:`check_calibration`).
        n_windows, window_tokens: ``--calibration-windows`` / ``--calibration-tokens``, ``None`` for the defaults.
        seed: seed of the window draw.

    Raises:
        InputError: a count below its minimum (windows >= 1, tokens >= 2).
    """
    from exporters.compression.calibration import (
        DEFAULT_CALIBRATION_TOKENS,
        DEFAULT_CALIBRATION_WINDOWS,
    )

    n = DEFAULT_CALIBRATION_WINDOWS if n_windows is None else n_windows
    t = DEFAULT_CALIBRATION_TOKENS if window_tokens is None else window_tokens
    if n < 1:
        raise InputError(f"--calibration-windows {n}: must be at least 1; pass e.g. {DEFAULT_CALIBRATION_WINDOWS}")
    if t < 2:
        raise InputError(f"--calibration-tokens {t}: must be at least 2; pass e.g. {DEFAULT_CALIBRATION_TOKENS}")
    return CalibrationOptions(Path(file).expanduser() if file else None, n, t, seed)


def check_calibration(specs: list[CandidateSpec], opts: CalibrationOptions) -> None:
    """Fail fast (before any heavy work) when a method needs calibration text that is not there.

    Raises:
        InputError: no file given, or the file does not exist / is a directory.
    """
    needing = [s.spec for s in specs if s.needs_calibration]
    if not needing:
        return
    if opts.file is None:
        raise InputError(f"{', '.join(needing)}: needs calibration text and none was given; {CALIBRATION_HINT}")
    if not opts.file.is_file():
        raise InputError(f"calibration file {opts.file}: not found (needed by {', '.join(needing)}); {CALIBRATION_HINT}")


def load_calibration(opts: CalibrationOptions, tokenizer):
    """Tokenize the calibration file and draw the windows (``exporters.compression.calibration.load_calibration_windows``).

    Raises:
        InputError: missing file or too short for the requested windows.
    """
    from exporters.compression.calibration import load_calibration_windows

    if opts.file is None:
        raise InputError(f"calibration needed and none was given; {CALIBRATION_HINT}")
    return load_calibration_windows(tokenizer, opts.file, opts.n_windows, opts.window_tokens, opts.seed)


def compression_cache_key(base_digest: str, spec: CandidateSpec, seed: int, calibration=None) -> str:
    """Digest naming the compressed model: base model, method, sparsity, N:M pattern, seed and (for
    calibrated methods) the calibration set's content digest, window count, length and seed.

    Quantization is not part of it (it is applied to the export afterwards and cached separately).
    """
    from exporters.digest import sha256_json

    key: dict = {"base": base_digest, **spec.compression_key(), "seed": seed}
    if spec.method == STRUCTURED_METHOD:
        key["structured_score"] = "wanda_sp-dense-v1"
    if calibration is not None and spec.needs_calibration:
        d = calibration.description()
        key["calibration"] = {k: d[k] for k in ("sha256", "n_windows", "window_tokens", "seed")}
    return sha256_json(key)


def compress_model(model, spec: CandidateSpec, *, seed: int, calibration=None) -> dict:
    """Prune ``model`` in place as ``spec`` says.

    Args:
        model: fp32 Hugging Face causal LM (eval mode).
        spec: a parsed candidate with a built-in pruning method.
        seed: seed of random pruning.
        calibration: ``CalibrationSet`` for Wanda, SparseGPT and structured (Wanda-SP); ignored otherwise.

    Returns:
        the report's ``compression`` entry: ``method``, ``pattern`` (``"unstructured"``, ``"N:M"`` or
        ``"mlp_neurons"``), ``claimed_sparsity``, ``seed``, ``calibration`` (its description or ``None``),
        ``seconds`` (wall time of pruning), plus the pruning function's own statistics.

    Raises:
        InputError: missing calibration, an N:M pattern whose M does not divide a layer width, an
            unsupported architecture (raised by ``prune_model`` / ``prune_mlp_neurons``).
    """
    from exporters.compression.pruning import prune_model
    from exporters.compression.structured import prune_mlp_neurons

    if spec.needs_calibration and calibration is None:
        raise InputError(f"--candidate {spec.spec}: needs calibration text; {CALIBRATION_HINT}")
    t0 = time.perf_counter()
    if spec.method == STRUCTURED_METHOD:
        stats = prune_mlp_neurons(model, spec.sparsity, calibration)
    else:  # prune_model validates the N:M pattern against every layer width and the architecture (InputError)
        stats = prune_model(model, spec.method, None if spec.pattern else spec.sparsity, pattern=spec.pattern, seed=seed,
                            calibration=calibration if spec.needs_calibration else None)
    seconds = time.perf_counter() - t0
    return {
        **stats,
        "method": spec.method,
        "pattern": spec.pattern_label,
        "claimed_sparsity": spec.sparsity,
        "seed": seed,
        "calibration": calibration.description() if spec.needs_calibration else None,
        "seconds": seconds,
    }
