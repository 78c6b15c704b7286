"""``--candidate`` specifications: a built-in compression or a user's compressed checkpoint.

Built-in syntax: ``METHOD:SPARSITY`` with METHOD in ``magnitude`` (unstructured, one threshold per
weight matrix) or ``random`` (seeded), SPARSITY a fraction in [0, 1), e.g. ``magnitude:0.5``.
Anything that names an existing path is a user checkpoint: a Hugging Face directory, a ``.gguf`` file,
or an optimum ONNX export directory (``model.onnx``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gate.errors import InputError

BUILTIN_METHODS = ("magnitude", "random")


@dataclass(frozen=True)
class CandidateSpec:
    """A parsed ``--candidate``.

    Attributes:
        spec: the text the user gave (also the candidate's name in the report).
        method: ``"magnitude"``, ``"random"`` or ``"checkpoint"``.
        sparsity: target sparsity (fraction) for built-in methods; ``None`` for checkpoints.
        path: the checkpoint path for ``"checkpoint"``.
    """

    spec: str
    method: str
    sparsity: float | None = None
    path: Path | None = None

    @property
    def claims_sparsity(self) -> bool:
        """True when the candidate is a pruned model (so a speedup or size saving is expected of it)."""
        return self.method in BUILTIN_METHODS and bool(self.sparsity)


def parse_candidate(spec: str) -> CandidateSpec:
    """Parse one ``--candidate`` value.

    Raises:
        InputError: unknown method, malformed or out-of-range sparsity, or a path that does not exist.
    """
    text = spec.strip()
    if ":" in text and not Path(text).expanduser().exists():
        method, _, value = text.partition(":")
        method = method.strip().lower()
        if method not in BUILTIN_METHODS:
            raise InputError(
                f"--candidate {spec!r}: unknown method {method!r}; use one of {', '.join(m + ':0.5' for m in BUILTIN_METHODS)} or a checkpoint path"
            )
        try:
            sparsity = float(value)
        except ValueError:
            raise InputError(f"--candidate {spec!r}: sparsity {value!r} is not a number; write e.g. {method}:0.5") from None
        if not 0 <= sparsity < 1:
            raise InputError(f"--candidate {spec!r}: sparsity must be in [0, 1), e.g. {method}:0.5")
        return CandidateSpec(spec=text, method=method, sparsity=sparsity)
    path = Path(text).expanduser()
    if not path.exists() and text.lower() in BUILTIN_METHODS:
        raise InputError(f"--candidate {spec!r}: give the sparsity too, e.g. {text.lower()}:0.5")
    if not path.exists():
        raise InputError(
            f"--candidate {spec!r} is neither a built-in compression ({', '.join(m + ':0.5' for m in BUILTIN_METHODS)}) nor an existing checkpoint path"
        )
    return CandidateSpec(spec=text, method="checkpoint", path=path)
