"""``--candidate`` specifications: a built-in compression or a user's compressed checkpoint.

Grammar (lower-case, spaces ignored; the candidate's name is the spec without its spaces)::

    SPEC    := PRUNE | QUANT | PRUNE "+" QUANT | PATH
    PRUNE   := METHOD ":" SPARSITY          unstructured, SPARSITY a fraction in [0, 1)   e.g. wanda:0.5
             | METHOD ":" N ":" M           N:M — N zeros in every group of M consecutive input
                                            weights of each row (0 < N < M)              e.g. sparsegpt:2:4
             | "structured:" RATIO          remove RATIO of the MLP neurons of every layer e.g. structured:0.3
    METHOD  := magnitude | random | wanda | sparsegpt
    QUANT   := int8 | int4                  ONNX Runtime quantization of the exported artifact, embedding
                                            table and lm_head included
             | int8-body | int4-body        the same for the decoder layers only; embedding table and
                                            lm_head stay fp32 (exporters/quantize.py)

Anything that names an existing path is a user checkpoint (a Hugging Face directory, a ``.gguf`` file or
an optimum ONNX export directory), whatever it looks like. Upper case is refused with the lower-case spelling
(``MAGNITUDE:0.5``: "did you mean magnitude:0.5?"), so one candidate has one name in the report, the cache and
the ``--candidate given twice`` check; numbers are ASCII digits only. ``N:M`` follows the Wanda/SparseGPT reference
code, where the first number counts the **zeros** (locuslab/wanda ``main.py``: ``--sparsity_type 2:4`` sets
``prune_n=2, prune_m=4``; IST-DASLab/sparsegpt ``--prunen 2 --prunem 4``), so ``2:4`` is 50 % sparse.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from gate.runtime.errors import InputError

UNSTRUCTURED_METHODS = ("magnitude", "random", "wanda", "sparsegpt")
STRUCTURED_METHOD = "structured"
BUILTIN_METHODS = (*UNSTRUCTURED_METHODS, STRUCTURED_METHOD)
CALIBRATED_METHODS = ("wanda", "sparsegpt", STRUCTURED_METHOD)
QUANTIZATIONS = ("int8", "int4", "int8-body", "int4-body")
EXAMPLES = "magnitude:0.5, wanda:0.5, wanda:2:4, sparsegpt:0.5, structured:0.3, int8, int4, wanda:0.5+int8"
_NUMBER = re.compile(r"[-+]?[0-9]*\.?[0-9]+(e-?[0-9]+)?", re.ASCII)
_WHOLE = re.compile(r"[0-9]{1,9}", re.ASCII)


@dataclass(frozen=True)
class CandidateSpec:
    """A parsed ``--candidate``.

    Attributes:
        spec: the text the user gave without whitespace (the candidate's name in the report); a checkpoint
            path as given, stripped.
        method: ``"magnitude"``, ``"random"``, ``"wanda"``, ``"sparsegpt"``, ``"structured"``,
            ``"none"`` (quantization only) or ``"checkpoint"``.
        sparsity: claimed fraction of pruned weights: the given value for unstructured pruning, ``N/M``
            for an ``N:M`` pattern, the neuron ratio for ``structured``; ``None`` for ``none``/checkpoints.
        pattern: ``(N, M)`` for N:M pruning, else ``None``.
        quantization: ``"int8"``, ``"int4"``, ``"int8-body"``, ``"int4-body"`` or ``None``.
        path: the checkpoint path for ``"checkpoint"``.
    """

    spec: str
    method: str
    sparsity: float | None = None
    pattern: tuple[int, int] | None = None
    quantization: str | None = None
    path: Path | None = None

    @property
    def prunes(self) -> bool:
        """True when a built-in pruning method runs (even at sparsity 0)."""
        return self.method in BUILTIN_METHODS

    @property
    def needs_calibration(self) -> bool:
        """True when the pruning method reads calibration data (Wanda, SparseGPT, structured Wanda-SP)."""
        return self.method in CALIBRATED_METHODS

    @property
    def pattern_label(self) -> str | None:
        """``"unstructured"``, ``"N:M"``, ``"mlp_neurons"`` or ``None`` (no built-in pruning)."""
        if self.method == STRUCTURED_METHOD:
            return "mlp_neurons"
        if self.pattern:
            return f"{self.pattern[0]}:{self.pattern[1]}"
        return "unstructured" if self.prunes else None

    @property
    def claims_sparsity(self) -> bool:
        """True when the candidate is pruned at a sparsity above 0 (zeros or removed neurons are claimed)."""
        return self.prunes and bool(self.sparsity)

    @property
    def claims(self) -> dict:
        """What the candidate claims to gain, for the efficiency checks.

        Returns:
            ``{"sparsity": bool, "structural_reduction": bool, "quantization": str|None, "size_saving": bool,
            "speedup": bool}``. A pruned (sparsity > 0) or quantized candidate claims a size saving and a
            speedup (that is why one compresses for an edge device; the gate checks whether it is real);
            only structured pruning and quantization shrink the dense artifact itself.
        """
        efficiency = self.claims_sparsity or self.quantization is not None
        return {
            "sparsity": self.claims_sparsity,
            "structural_reduction": self.method == STRUCTURED_METHOD and self.claims_sparsity,
            "quantization": self.quantization,
            "size_saving": efficiency,
            "speedup": efficiency,
        }

    def compression_key(self) -> dict:
        """The parts of the spec that determine the compressed model (for cache keys; JSON-serializable)."""
        key: dict = {"method": self.method, "sparsity": self.sparsity}
        if self.pattern:
            key["pattern"] = list(self.pattern)
        return key


def parse_candidate(spec: str) -> CandidateSpec:
    """Parse one ``--candidate`` value (grammar in the module docstring).

    Raises:
        InputError: upper case (with the lower-case spelling), unknown method, malformed spec, sparsity outside [0, 1), an N:M pattern with
            ``N >= M`` or ``N < 1``, two quantizations (``+int8+int4``), quantization before pruning, or a
            path that does not exist.
    """
    text = spec.strip()
    if not text:
        raise InputError(f"--candidate {spec!r}: empty; use e.g. {EXAMPLES} or a checkpoint path")
    if _exists(text):
        return CandidateSpec(spec=text, method="checkpoint", path=Path(text).expanduser())
    norm = re.sub(r"\s+", "", text)
    if norm != norm.lower():
        try:
            lower = parse_candidate(norm.lower())
        except InputError:
            lower = None  # wrong beyond its case: the errors below name what (unknown method, not a path, ...)
        if lower is not None and lower.method != "checkpoint":
            raise InputError(f"--candidate {spec!r}: candidate specs are lower-case; did you mean {lower.spec}?")
    parts = norm.split("+")
    quants = [p for p in parts if p in QUANTIZATIONS]
    if len(quants) > 1:
        raise InputError(f"--candidate {spec!r}: more than one quantization ({'+'.join(quants)}); pick one, e.g. wanda:0.5+int8")
    if len(parts) > 2 or (len(parts) == 2 and not quants):
        raise InputError(f"--candidate {spec!r}: combine at most one pruning and one quantization, pruning first, e.g. wanda:0.5+int8")
    if quants and parts[-1] not in QUANTIZATIONS:
        raise InputError(f"--candidate {spec!r}: write the pruning first and the quantization last, e.g. {parts[-1]}+{quants[0]}")
    quant = quants[0] if quants else None
    if len(parts) == 1 and quant:
        return CandidateSpec(spec=norm, method="none", quantization=quant)
    prune = _parse_pruning(parts[0], spec)
    if norm != norm.lower():  # unreachable: every keyword is lower-case; kept so upper case can never pass
        raise InputError(f"--candidate {spec!r}: candidate specs are lower-case; write it in lower case, e.g. {EXAMPLES}")
    return CandidateSpec(spec=norm, method=prune[0], sparsity=prune[1], pattern=prune[2], quantization=quant)


def _exists(text: str) -> bool:
    """True when ``text`` names an existing path; False also for text no path can have (too long, a NUL byte)."""
    try:
        return Path(text).expanduser().exists()
    except (OSError, ValueError, RuntimeError):  # ENAMETOOLONG, "embedded null byte", "~user" unknown
        return False


def _parse_pruning(part: str, spec: str) -> tuple[str, float, tuple[int, int] | None]:
    """``(method, sparsity, pattern)`` of one pruning term such as ``wanda:0.5`` or ``sparsegpt:2:4``."""
    method, _, rest = part.partition(":")
    if method not in BUILTIN_METHODS:
        if not rest and ("/" in spec or "\\" in spec or "." in method):
            raise InputError(f"--candidate {spec!r} is neither a built-in compression ({EXAMPLES}) nor an existing checkpoint path")
        case = f" (specs are lower-case: {method.lower()})" if method.lower() in BUILTIN_METHODS else ""
        raise InputError(f"--candidate {spec!r}: unknown method {method!r}{case}; use one of {', '.join(BUILTIN_METHODS)}, "
                         f"{', '.join(QUANTIZATIONS)} (e.g. {EXAMPLES}) or a checkpoint path")
    if not rest:
        raise InputError(f"--candidate {spec!r}: give the sparsity too, e.g. {method}:0.5" + ("" if method == STRUCTURED_METHOD else f" or {method}:2:4"))
    values = rest.split(":")
    if len(values) == 1:
        if not _NUMBER.fullmatch(values[0]):
            raise InputError(f"--candidate {spec!r}: sparsity {values[0]!r} is not a number; write e.g. {method}:0.5")
        sparsity = float(values[0])
        if not 0 <= sparsity < 1:
            raise InputError(f"--candidate {spec!r}: sparsity must be in [0, 1), e.g. {method}:0.5")
        return method, sparsity, None
    if len(values) == 2 and method != STRUCTURED_METHOD:
        if not all(_WHOLE.fullmatch(v) for v in values):
            raise InputError(f"--candidate {spec!r}: an N:M pattern needs two whole numbers, e.g. {method}:2:4 (2 zeros in every 4 weights)")
        n, m = int(values[0]), int(values[1])
        if not 0 < n < m:
            raise InputError(f"--candidate {spec!r}: N:M needs 0 < N < M (N zeros in every group of M weights), e.g. {method}:2:4")
        return method, n / m, (n, m)
    if method == STRUCTURED_METHOD:
        raise InputError(f"--candidate {spec!r}: structured takes one ratio of MLP neurons to remove, e.g. structured:0.3")
    raise InputError(f"--candidate {spec!r}: malformed; write {method}:SPARSITY (e.g. {method}:0.5) or {method}:N:M (e.g. {method}:2:4)")
