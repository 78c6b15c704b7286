"""ONNX Runtime quantization of an exported artifact: ``int8`` (dynamic) and ``int4`` (weight-only).

* ``int8``: ``onnxruntime.quantization.quantize_dynamic`` with signed 8-bit weights, one scale per
  output channel (``per_channel=True``), 7-bit weight range (``reduce_range=True``): ORT's u8s8 kernels on
  x86 CPUs without VNNI (AVX2, AVX-512 before VNNI) sum pairs of u8·s8 products in saturating int16
  (``vpmaddubsw``), and ORT's quantization docs recommend ``reduce_range`` there. Measured on SmolLM2-135M
  on an AVX2 host: full range gave next-token argmax agreement 0/18 with the fp32 export (mean |Δlogit| 11.9),
  7-bit 10/18 (3.0). The artifact must run correctly on any target CPU, so 7-bit is always used. Weights are quantized offline; activations are quantized at run
  time per tensor (``DynamicQuantizeLinear`` + ``MatMulInteger``, fused by ORT into
  ``DynamicQuantizeMatMul``). ORT docs: "Quantize ONNX models", dynamic quantization
  (onnxruntime.ai/docs/performance/model-optimizations/quantization.html).
* ``int4``: ``onnxruntime.quantization.matmul_nbits_quantizer.MatMulNBitsQuantizer`` (round-to-nearest,
  ``DefaultWeightOnlyQuantConfig``): every ``MatMul`` with a constant weight becomes a
  ``com.microsoft.MatMulNBits`` node with symmetric 4-bit blocks of 32 weights along the reduction axis,
  one fp32 scale per block, and ``accuracy_level=4`` (int8 compute: activations are quantized to int8
  inside the kernel). Without ``accuracy_level=4`` MatMulNBits dequantizes to fp32 and is no faster
  than fp32 on x86 (microsoft/onnxruntime ``docs/ContribOperators.md``, MatMulNBits ``accuracy_level``:
  0 unset, 1 fp32, 2 fp16, 3 bf16, 4 int8).

Both leave the embedding ``Gather`` in fp32, and a lm_head tied to the embeddings (optimum exports it as
``MatMul`` on ``Transpose(embed_tokens.weight)``, not a constant) stays fp32 too; ``quantize_onnx``
reports those fp32 leftovers so size accounting can show them.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import time
from collections import Counter
from pathlib import Path

from gate.runtime.errors import InputError

SCHEMES = ("int8", "int4")
INT8_SETTINGS = {"weight_type": "QInt8", "activations": "dynamic per-tensor uint8", "per_channel": True,
                 "reduce_range": True, "op_types_to_quantize": ["MatMul"]}
INT4_SETTINGS = {"bits": 4, "block_size": 32, "symmetric": True, "accuracy_level": 4, "algorithm": "RTN (DEFAULT)",
                 "op_types_to_quantize": ["MatMul"], "quant_axes": {"MatMul": 0}}
QUANTIZED_OPS = {"int8": ("MatMulInteger", "DynamicQuantizeLinear", "DynamicQuantizeMatMul"), "int4": ("MatMulNBits",)}


def quantize_onnx(src_dir: Path, dst_dir: Path, scheme: str) -> dict:
    """Quantize ``src_dir/model.onnx`` (an optimum decoder export) into ``dst_dir``.

    ``dst_dir`` becomes a complete artifact usable by ``gate.runtime.ort_decoder.OrtDecoder``: ``model.onnx``
    (with external data if the source used it) plus copies of every other file in ``src_dir`` (config,
    generation config, tokenizer files).

    Args:
        src_dir: fp32 export directory holding ``model.onnx``.
        dst_dir: output directory (created; must not already hold a ``model.onnx``).
        scheme: ``"int8"`` or ``"int4"`` (see the module docstring for the exact settings).

    Returns:
        ``{"scheme", "onnxruntime", "settings", "nodes_quantized", "matmul_nodes_before",
        "matmul_nodes_left_fp32", "matmuls_left_fp32", "op_types_added", "bytes_before", "bytes_after",
        "seconds"}``; bytes are sizes on disk of the graph and its external data, ``seconds`` wall time.

    Raises:
        InputError: unknown scheme, missing ``model.onnx``, or ``dst_dir`` already holds a model.
    """
    import onnx
    import onnxruntime as ort

    from exporters.artifact import model_files

    if scheme not in SCHEMES:
        raise InputError(f"quantization scheme {scheme!r} is unknown; use one of {', '.join(SCHEMES)}")
    src, dst = Path(src_dir), Path(dst_dir)
    if not (src / "model.onnx").is_file():
        raise InputError(f"{src} holds no model.onnx; quantize an optimum ONNX export directory")
    if (dst / "model.onnx").exists():
        raise InputError(f"{dst} already holds a model.onnx; pass an empty output directory")
    dst.mkdir(parents=True, exist_ok=True)
    src_files = model_files(src)
    external = any(p.suffix != ".onnx" for p in src_files)
    before = onnx.load(str(src / "model.onnx"), load_external_data=False)
    ops_before = Counter(n.op_type for n in before.graph.node)
    const_names = {i.name for i in before.graph.initializer}
    weight_matmuls = [n.name for n in before.graph.node if n.op_type == "MatMul" and n.input[1] in const_names]
    del before

    t0 = time.perf_counter()
    if scheme == "int8":
        from onnxruntime.quantization import QuantType, quantize_dynamic

        with _quiet_quantizer_logs():
            quantize_dynamic(str(src / "model.onnx"), str(dst / "model.onnx"), op_types_to_quantize=INT8_SETTINGS["op_types_to_quantize"],
                             per_channel=INT8_SETTINGS["per_channel"], reduce_range=INT8_SETTINGS["reduce_range"],
                             weight_type=QuantType.QInt8, use_external_data_format=external)
        settings = dict(INT8_SETTINGS)
    else:
        with _quiet_quantizer_logs():  # importing the module calls logging.basicConfig(level=INFO) on the root logger
            from onnxruntime.quantization import matmul_nbits_quantizer as mnq

            cfg = mnq.DefaultWeightOnlyQuantConfig(block_size=INT4_SETTINGS["block_size"], is_symmetric=INT4_SETTINGS["symmetric"],
                                                   accuracy_level=INT4_SETTINGS["accuracy_level"], op_types_to_quantize=("MatMul",),
                                                   quant_axes=(("MatMul", 0),), bits=4)
            quantizer = mnq.MatMulNBitsQuantizer(onnx.load(str(src / "model.onnx")), algo_config=cfg)
            quantizer.process()
        quantizer.model.save_model_to_file(str(dst / "model.onnx"), use_external_data_format=external)
        settings = dict(INT4_SETTINGS)
    seconds = time.perf_counter() - t0

    for p in src.iterdir():  # config.json, generation_config.json, tokenizer files ...
        if p.is_file() and p not in src_files and not p.name.startswith(".prunegate"):
            shutil.copy2(p, dst / p.name)
    after = onnx.load(str(dst / "model.onnx"), load_external_data=False)
    ops_after = Counter(n.op_type for n in after.graph.node)
    left = [n.name for n in after.graph.node if n.op_type == "MatMul"]
    quantized_ops = {op: ops_after[op] for op in QUANTIZED_OPS[scheme] if ops_after[op]}
    if not quantized_ops:
        raise RuntimeError(f"{scheme} quantization of {src} produced no {'/'.join(QUANTIZED_OPS[scheme])} node")
    return {
        "scheme": scheme,
        "onnxruntime": ort.__version__,
        "settings": settings,
        "nodes_quantized": len(weight_matmuls) - len([n for n in left if n in weight_matmuls]),
        "quantized_op_types": quantized_ops,
        "matmul_nodes_before": ops_before["MatMul"],
        "matmul_nodes_left_fp32": len(left),
        "matmuls_left_fp32": sorted(left),  # activation x activation (attention) and a tied lm_head have no constant weight
        "op_types_added": {op: n - ops_before.get(op, 0) for op, n in sorted(ops_after.items()) if n > ops_before.get(op, 0)},
        "bytes_before": sum(p.stat().st_size for p in src_files),
        "bytes_after": sum(p.stat().st_size for p in model_files(dst)),
        "seconds": seconds,
    }


@contextlib.contextmanager
def _quiet_quantizer_logs():
    """Silence ORT's quantizer progress logs (one INFO line per node; a CNN pre-processing hint) during a call."""
    loggers = [logging.getLogger(), logging.getLogger("onnxruntime.quantization"),
               logging.getLogger("onnxruntime.quantization.matmul_nbits_quantizer")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def compare_artifacts(ref_dir: Path, test_dir: Path, tokenizer, text: str | None = None) -> dict:
    """Agreement of a quantized artifact with the fp32 export it came from (information, not a pass/fail check).

    Both are run with ONNX Runtime (CPU, default session) on the same token sequence, whole (prefill)
    from an empty KV cache.

    Args:
        ref_dir: the fp32 export.
        test_dir: the quantized export.
        tokenizer: the model's tokenizer.
        text: the sequence; default ``exporters.verify.VERIFY_PROMPT``.

    Returns:
        ``{"reference", "max_abs_logit_diff", "mean_abs_logit_diff", "max_abs_logit_ref",
        "argmax_agreement", "n_tokens", "prompt"}``; logits are raw (unnormalized) model outputs,
        ``argmax_agreement`` the fraction of positions whose next-token argmax is equal.
    """
    import numpy as np

    from exporters.verify import VERIFY_PROMPT
    from gate.runtime.ort_decoder import OrtDecoder

    text = text or VERIFY_PROMPT
    ids = tokenizer(text, return_tensors="np").input_ids.astype(np.int64)
    ref = OrtDecoder(Path(ref_dir) / "model.onnx").logits(ids[0])
    got = OrtDecoder(Path(test_dir) / "model.onnx").logits(ids[0])
    diff = np.abs(got - ref)
    return {
        "reference": "fp32 ONNX export (ONNX Runtime CPU)",
        "max_abs_logit_diff": float(diff.max()),
        "mean_abs_logit_diff": float(diff.mean()),
        "max_abs_logit_ref": float(np.abs(ref).max()),
        "argmax_agreement": float(np.mean(got.argmax(-1) == ref.argmax(-1))),
        "n_tokens": int(ids.shape[1]),
        "prompt": "exporters.verify.VERIFY_PROMPT" if text == VERIFY_PROMPT else text,
    }


QUANT_CACHE = "quantized-v1"  # bump when quantize_onnx's output or metadata changes


def cached_quantize(fp32_dir: Path, work_dir: Path, fp32_key: str, scheme: str, tokenizer, log=print) -> tuple[Path, dict]:
    """Quantize an fp32 export into ``work_dir/quantized-v1/<key>`` unless that artifact already exists.

    The key covers the fp32 export's key and the SHA-256 of its files (``exporters.cache.files_digest``: an
    fp32 export rebuilt with other bytes gets its own quantized artifact), the scheme, its settings and the
    ONNX Runtime version (the quantizer lives in ORT, so another version may write other weights). A cached
    artifact is re-checked against its recorded digests before reuse and rebuilt when it does not match.

    Args:
        fp32_dir: the (verified) fp32 export.
        work_dir: cache root.
        fp32_key: cache key of the fp32 export.
        scheme: ``"int8"`` or ``"int4"``.
        tokenizer: the model's tokenizer (for ``compare_artifacts``).
        log: receives progress lines.

    Returns:
        ``(artifact_dir, metadata)``: ``metadata["quantization"]`` is ``quantize_onnx``'s result plus
        ``"agreement_with_fp32"`` (``compare_artifacts``); ``metadata["reused"]`` says whether it was cached;
        ``metadata["integrity_warning"]`` (one line) is present when a cached artifact no longer matched its
        recorded digests and was rebuilt (:func:`exporters.cache.cached_dir` re-checks every file on reuse).
    """
    import onnxruntime as ort

    from exporters.cache import cached_dir, files_digest
    from exporters.digest import sha256_json

    settings = INT8_SETTINGS if scheme == "int8" else INT4_SETTINGS
    key = sha256_json({"fp32_export": fp32_key, "fp32_files": files_digest(Path(fp32_dir)), "scheme": scheme,
                       "settings": settings, "onnxruntime": ort.__version__})

    def build(out: Path) -> dict:
        log(f"quantizing {fp32_dir.name[:12]} to {scheme} with ONNX Runtime {ort.__version__}")
        info = quantize_onnx(fp32_dir, out, scheme)
        info["agreement_with_fp32"] = {**compare_artifacts(fp32_dir, out, tokenizer),
                                       "note": "information only: quantization changes logits by design; the fp32 export is verified against PyTorch"}
        return {"quantization": info, "fp32_dir": str(fp32_dir)}

    return cached_dir(Path(work_dir), QUANT_CACHE, key, build, log)
