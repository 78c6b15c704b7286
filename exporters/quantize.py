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

The embedding table and the lm_head (``int8`` and ``int4``; not ``int8-body``/``int4-body``). Both quantizers
above only touch a ``MatMul`` with a constant weight, so on their own they leave the embedding ``Gather`` in
fp32, and a lm_head tied to the embeddings (optimum exports it as ``MatMul`` on
``Transpose(embed_tokens.weight)``, not a constant) stays fp32 too: on SmolLM2-135M that is 113 MB of a
222 MB int8 artifact. ``int8``/``int4`` therefore also quantize them (:func:`quantize_embedding_and_head`),
with the same blockwise format for both so that a tied table is stored **once**:

* the table ``E [vocab, hidden]`` is quantized symmetrically in blocks along ``hidden`` by ORT's own
  round-to-nearest block quantizer (``DefaultWeightOnlyQuantizer.qbits_block_quant``, the one behind
  ``MatMulNBitsQuantizer``), one fp32 scale per block: ``int8`` 8 bits in the largest of 128/64/32/16 weights
  that divides ``hidden`` (64 on SmolLM2's 576), ``int4`` 4 bits in blocks of 32 like its body;
* the lm_head becomes ``com.microsoft.MatMulNBits`` (``bits`` 8 or 4, ``accuracy_level=4``) on that tensor:
  MatMulNBits' ``B`` is ``[N, k_blocks, blob_size]``, i.e. ``E`` itself, row per vocabulary entry, so the
  tied head needs no transposed copy (microsoft/onnxruntime ``docs/ContribOperators.md``,
  ``com.microsoft.MatMulNBits``: "B: [N, k_blocks, blob_size]", default zero point ``2^(bits-1)``; 8 and 4
  bits both run on the CPU EP of ORT 1.32, checked with a one-node model);
* the embedding ``Gather`` becomes ``com.microsoft.GatherBlockQuantized`` (``gather_axis=0``,
  ``quantize_axis=2``, the same ``block_size``) on the *same* ``B`` initializer, followed by a ``Reshape`` of
  ``[..., k_blocks, block_size]`` to ``[..., hidden]`` (ContribOperators.md, ``com.microsoft.GatherBlockQuantized``:
  uint8 data follows MatMulNBits' packing and default zero point). Its scales must have the data's rank
  (``[vocab, k_blocks, 1]``) while MatMulNBits' PrePack accepts only ``[N*k_blocks]`` or ``[N, k_blocks]``
  (ORT 1.32 ``matmul_nbits.cc``), so the scales (``4/block_size`` bytes per weight) are stored twice; for 8 bits
  the zero point 128 is also stored explicitly for the Gather (one byte per block), because readers of the
  graph (``gate.measure.artifact_stats``) assume 0 for 8-bit uint8 data without one, while ORT uses 128.

An untied lm_head already has a constant weight, so the body quantizer handles it; only the ``Gather`` is
rewritten then. A table whose ``hidden`` is not a multiple of a block size is left fp32 (``embedding_head["skipped"]``
says why). Measured on a random 2-layer Llama with SmolLM2-135M's tied table (49152 x 576), ORT 1.32, CPU:
the table goes from 113.2 MB fp32 to 32.3 MB (int8, 1.14 bytes/weight with scales) and 21.2 MB (int4, 0.75);
the whole int8 artifact is 39.6 MB against 120.5 MB for ``int8-body`` and 35.6 MB for ``quantize_dynamic``'s
defaults (which also quantize the ``Gather``, per tensor, but run the lm_head as an fp32 ``MatMul`` on
``DequantizeLinear(Transpose(table))`` at every call: peak RSS 256 MB and 61 ms for a 4-token prefill, against
135 MB and 9 ms here and 389 MB and 19 ms for ``int8-body``). ``int8-body`` and ``int4-body`` are the previous behaviour (body only, table fp32), kept to separate
the effect of quantizing the table (logits, BBQ) from the body's. ``quantize_onnx`` reports what is left in
fp32 so size accounting can show it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import time
from collections import Counter
from pathlib import Path

from gate.runtime.errors import InputError

SCHEMES = ("int8", "int4", "int8-body", "int4-body")
INT8_SETTINGS = {"weight_type": "QInt8", "activations": "dynamic per-tensor uint8", "per_channel": True,
                 "reduce_range": True, "op_types_to_quantize": ["MatMul"]}
INT4_SETTINGS = {"bits": 4, "block_size": 32, "symmetric": True, "accuracy_level": 4, "algorithm": "RTN (DEFAULT)",
                 "op_types_to_quantize": ["MatMul"], "quant_axes": {"MatMul": 0}}
EMBED_BLOCK_SIZES = {8: (128, 64, 32, 16), 4: (32,)}  # the first that divides hidden is used


def _embedding_head_settings(bits: int) -> dict:
    return {"bits": bits, "block_size": "first of " + ", ".join(map(str, EMBED_BLOCK_SIZES[bits])) + " dividing hidden",
            "symmetric": True, "accuracy_level": 4,
            "algorithm": "RTN (DefaultWeightOnlyQuantizer.qbits_block_quant)",
            "ops": {"embedding": "com.microsoft.GatherBlockQuantized", "lm_head": "com.microsoft.MatMulNBits"},
            "tied_table_stored_once": True}


SETTINGS = {
    "int8": {**INT8_SETTINGS, "embedding_head": _embedding_head_settings(8)},
    "int4": {**INT4_SETTINGS, "embedding_head": _embedding_head_settings(4)},
    "int8-body": {**INT8_SETTINGS, "embedding_head": None},
    "int4-body": {**INT4_SETTINGS, "embedding_head": None},
}
QUANTIZED_OPS = {"int8": ("MatMulInteger", "DynamicQuantizeLinear", "DynamicQuantizeMatMul"), "int4": ("MatMulNBits",)}
QUANTIZED_OPS.update({"int8-body": QUANTIZED_OPS["int8"], "int4-body": QUANTIZED_OPS["int4"]})


def quantize_onnx(src_dir: Path, dst_dir: Path, scheme: str) -> dict:
    """Quantize ``src_dir/model.onnx`` (an optimum decoder export) into ``dst_dir``.

    ``dst_dir`` becomes a complete artifact usable by ``gate.runtime.ort_decoder.OrtDecoder``: ``model.onnx``
    (with external data if the source used it) plus copies of every other file in ``src_dir`` (config,
    generation config, tokenizer files).

    Args:
        src_dir: fp32 export directory holding ``model.onnx``.
        dst_dir: output directory (created; must not already hold a ``model.onnx``).
        scheme: ``"int8"``, ``"int4"``, ``"int8-body"`` or ``"int4-body"`` (see the module docstring for the
            exact settings).

    Returns:
        ``{"scheme", "onnxruntime", "settings", "nodes_quantized", "matmul_nodes_before",
        "matmul_nodes_left_fp32", "matmuls_left_fp32", "op_types_added", "embedding_head", "bytes_before",
        "bytes_after", "seconds"}``; bytes are sizes on disk of the graph and its external data, ``seconds`` wall
        time. ``nodes_quantized`` counts the MatMuls with a constant weight that were quantized (a tied lm_head
        has none and is counted in ``embedding_head``); ``embedding_head`` is
        :func:`quantize_embedding_and_head`'s record, ``None`` for the ``-body`` schemes.

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

    body = scheme.split("-")[0]
    t0 = time.perf_counter()
    if body == "int8":
        from onnxruntime.quantization import QuantType, quantize_dynamic

        with _quiet_quantizer_logs():
            quantize_dynamic(str(src / "model.onnx"), str(dst / "model.onnx"), op_types_to_quantize=INT8_SETTINGS["op_types_to_quantize"],
                             per_channel=INT8_SETTINGS["per_channel"], reduce_range=INT8_SETTINGS["reduce_range"],
                             weight_type=QuantType.QInt8, use_external_data_format=external)
    else:
        with _quiet_quantizer_logs():  # importing the module calls logging.basicConfig(level=INFO) on the root logger
            from onnxruntime.quantization import matmul_nbits_quantizer as mnq

            cfg = mnq.DefaultWeightOnlyQuantConfig(block_size=INT4_SETTINGS["block_size"], is_symmetric=INT4_SETTINGS["symmetric"],
                                                   accuracy_level=INT4_SETTINGS["accuracy_level"], op_types_to_quantize=("MatMul",),
                                                   quant_axes=(("MatMul", 0),), bits=4)
            quantizer = mnq.MatMulNBitsQuantizer(onnx.load(str(src / "model.onnx")), algo_config=cfg)
            quantizer.process()
        quantizer.model.save_model_to_file(str(dst / "model.onnx"), use_external_data_format=external)
    settings = SETTINGS[scheme]
    embedding_head = None
    if settings["embedding_head"] is not None:
        model = onnx.load(str(dst / "model.onnx"), load_external_data=True)
        embedding_head = quantize_embedding_and_head(model, settings["embedding_head"]["bits"])
        if embedding_head["gather_nodes"] or embedding_head["head_nodes"]:
            _save_model(model, dst, external)
        del model
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
        "settings": json.loads(json.dumps(settings)),  # a copy
        "nodes_quantized": len(weight_matmuls) - len([n for n in left if n in weight_matmuls]),
        "quantized_op_types": quantized_ops,
        "matmul_nodes_before": ops_before["MatMul"],
        "matmul_nodes_left_fp32": len(left),
        "matmuls_left_fp32": sorted(left),  # activation x activation (attention) and a tied lm_head have no constant weight
        "op_types_added": {op: n - ops_before.get(op, 0) for op, n in sorted(ops_after.items()) if n > ops_before.get(op, 0)},
        "embedding_head": embedding_head,
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


def quantize_embedding_and_head(model, bits: int, block_sizes: tuple[int, ...] | None = None) -> dict:
    """Quantize the embedding table and a lm_head tied to it, in place, storing the table once (module docstring).

    The table is a rank-2 float initializer read by a ``Gather`` on axis 0 (directly or through ``Identity``);
    the tied lm_head is a ``MatMul`` whose weight is ``Transpose(table)`` (perm ``[1, 0]``). Each such Gather
    becomes ``GatherBlockQuantized`` + ``Reshape``, each such MatMul ``MatMulNBits``, both on one
    ``[vocab, k_blocks, blob]`` uint8 initializer; the fp32 table, and Transposes and Identities left
    without a consumer, are removed. Anything else reading the table keeps it (it is then not removed, and
    ``table_removed`` is False).

    Args:
        model: an ``onnx.ModelProto`` with its weights loaded (modified in place).
        bits: 8 or 4.
        block_sizes: candidate numbers of weights per scale along ``hidden`` (powers of two, 16 to 256 for
            MatMulNBits); the first that divides ``hidden`` is used. Default :data:`EMBED_BLOCK_SIZES` ``[bits]``:
            for 8 bits the largest block (fewest fp32 scales; 8-bit rounding error is small anyway), for 4 bits
            32 like the body's MatMulNBits.

    Returns:
        ``{"tables": [{"name", "vocab", "hidden", "block_size", "tied", "gather_nodes", "head_nodes", "table_removed",
        "bytes_fp32", "bytes_quantized", "bytes_data", "bytes_scales", "bytes_zero_points",
        "bytes_per_param"}], "gather_nodes", "head_nodes", "skipped": [{"name", "reason"}]}``; bytes are raw
        tensor bytes (``bytes_quantized`` = data + scales + zero points, each stored once per table).
    """
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    with _quiet_quantizer_logs():
        from onnxruntime.quantization import matmul_nbits_quantizer as mnq

    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    producer = {o: n for n in graph.node for o in n.output}

    def source(name: str) -> str | None:
        seen = set()
        while name not in inits and name in producer and producer[name].op_type == "Identity" and name not in seen:
            seen.add(name)
            name = producer[name].input[0]
        return name if name in inits else None

    def attr(node, name, default):
        return next((helper.get_attribute_value(a) for a in node.attribute if a.name == name), default)

    floats = (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16)
    gathers: dict[str, list] = {}
    for n in graph.node:
        if n.op_type == "Gather" and n.domain in ("", "ai.onnx") and int(attr(n, "axis", 0)) == 0:
            table = source(n.input[0])
            if table and len(inits[table].dims) == 2 and inits[table].data_type in floats:
                gathers.setdefault(table, []).append(n)
    heads: dict[str, list] = {t: [] for t in gathers}
    for n in graph.node:
        if n.op_type == "MatMul" and n.input[1] in producer:
            tr = producer[n.input[1]]
            if tr.op_type == "Transpose" and list(attr(tr, "perm", [1, 0])) == [1, 0] and source(tr.input[0]) in heads:
                heads[source(tr.input[0])].append(n)

    out = {"tables": [], "gather_nodes": 0, "head_nodes": 0, "skipped": []}
    replace: dict[str, list] = {}  # first output of a replaced node -> its new nodes
    ms_domain = False
    for table, gnodes in gathers.items():
        t = inits[table]
        vocab, hidden = int(t.dims[0]), int(t.dims[1])
        block_size = next((b for b in (block_sizes or EMBED_BLOCK_SIZES[bits]) if hidden % b == 0), None)
        if block_size is None:
            out["skipped"].append({"name": table, "reason": f"hidden size {hidden} is not a multiple of any of the block "
                                   f"sizes {block_sizes or EMBED_BLOCK_SIZES[bits]}; left fp32"})
            continue
        weight = numpy_helper.to_array(t).astype(np.float32)
        cfg = mnq.DefaultWeightOnlyQuantConfig(block_size=block_size, is_symmetric=True, accuracy_level=4, bits=bits)
        packed, scales, _ = mnq.DefaultWeightOnlyQuantizer(cfg).qbits_block_quant(np.ascontiguousarray(weight.T))
        k_blocks = hidden // block_size
        base = table.replace("/", "_")
        q_name, s_name, s3_name = f"{base}_Q{bits}", f"{base}_scales", f"{base}_gather_scales"
        new_inits = [numpy_helper.from_array(packed, q_name), numpy_helper.from_array(scales.astype(np.float32), s_name),
                     numpy_helper.from_array(scales.astype(np.float32).reshape(vocab, k_blocks, 1), s3_name)]
        gather_inputs = [q_name, None, s3_name]
        zp_bytes = 0
        if bits == 8:  # explicit default zero point (module docstring)
            zp = np.full((vocab, k_blocks, 1), 1 << (bits - 1), dtype=np.uint8)
            new_inits.append(numpy_helper.from_array(zp, f"{base}_gather_zero_points"))
            gather_inputs.append(f"{base}_gather_zero_points")
            zp_bytes = zp.nbytes
        tail = f"{base}_hidden_size"
        new_inits.append(numpy_helper.from_array(np.array([hidden], dtype=np.int64), tail))
        graph.initializer.extend(new_inits)
        for g in gnodes:
            stem = g.name or g.output[0]
            blocks, shape, full = f"{stem}_blocks", f"{stem}_indices_shape", f"{stem}_out_shape"
            replace[g.output[0]] = [
                helper.make_node("GatherBlockQuantized", [gather_inputs[0], g.input[1], *gather_inputs[2:]], [blocks],
                                 name=f"{stem}_Q{bits}", domain="com.microsoft", bits=bits, block_size=block_size,
                                 gather_axis=0, quantize_axis=2),
                helper.make_node("Shape", [g.input[1]], [shape], name=f"{stem}_Shape"),
                helper.make_node("Concat", [shape, tail], [full], name=f"{stem}_Concat", axis=0),
                helper.make_node("Reshape", [blocks, full], [g.output[0]], name=f"{stem}_Reshape"),
            ]
        for m in heads[table]:
            replace[m.output[0]] = [helper.make_node("MatMulNBits", [m.input[0], q_name, s_name], list(m.output),
                                               name=f"{m.name or m.output[0]}_Q{bits}", domain="com.microsoft",
                                               K=hidden, N=vocab, bits=bits, block_size=block_size, accuracy_level=4)]
        ms_domain = True
        data_b, scale_b = packed.nbytes, 2 * scales.size * 4
        out["tables"].append({"name": table, "vocab": vocab, "hidden": hidden, "block_size": block_size, "tied": bool(heads[table]),
                              "gather_nodes": [g.name for g in gnodes], "head_nodes": [m.name for m in heads[table]],
                              "bytes_fp32": int(weight.size * 4), "bytes_data": int(data_b), "bytes_scales": int(scale_b),
                              "bytes_zero_points": int(zp_bytes), "bytes_quantized": int(data_b + scale_b + zp_bytes),
                              "bytes_per_param": (data_b + scale_b + zp_bytes) / weight.size})
        out["gather_nodes"] += len(gnodes)
        out["head_nodes"] += len(heads[table])
    if not replace:
        return out
    nodes = []
    for n in graph.node:
        nodes.extend(replace.get(n.output[0], [n]) if n.output else [n])
    # drop what no longer has a consumer: the Transposes of the table, Identity aliases, the fp32 table itself
    outputs = {o.name for o in graph.output}
    while True:
        used = {i for n in nodes for i in n.input} | outputs
        dead = {n.output[0] for n in nodes if n.op_type in ("Transpose", "Identity") and not any(o in used for o in n.output)
                and source(n.input[0]) in {t["name"] for t in out["tables"]}}
        if not dead:
            break
        nodes = [n for n in nodes if not (n.output and n.output[0] in dead)]
    del graph.node[:]
    graph.node.extend(nodes)
    used = {i for n in graph.node for i in n.input} | outputs
    for tab in out["tables"]:
        tab["table_removed"] = tab["name"] not in used
        if tab["table_removed"]:
            graph.initializer.remove(inits[tab["name"]])
    if ms_domain and not any(o.domain == "com.microsoft" for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    return out


def _save_model(model, dst: Path, external: bool) -> None:
    """Write ``model`` to ``dst/model.onnx``, replacing the graph and the external data written before."""
    import onnx

    from exporters.artifact import model_files

    path = dst / "model.onnx"
    old = [p for p in model_files(dst) if p != path]
    tmp = dst / "model.onnx.tmp"
    if external:
        for p in old:
            p.unlink()
        onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                        location="model.onnx.data", size_threshold=1024)
    else:
        onnx.save_model(model, str(tmp))
        tmp.replace(path)


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
        scheme: one of :data:`SCHEMES`.
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

    if scheme not in SCHEMES:
        raise InputError(f"quantization scheme {scheme!r} is unknown; use one of {', '.join(SCHEMES)}")
    settings = SETTINGS[scheme]
    key = sha256_json({"fp32_export": fp32_key, "fp32_files": files_digest(Path(fp32_dir)), "scheme": scheme,
                       "settings": settings, "onnxruntime": ort.__version__})

    def build(out: Path) -> dict:
        log(f"quantizing {fp32_dir.name[:12]} to {scheme} with ONNX Runtime {ort.__version__}")
        info = quantize_onnx(fp32_dir, out, scheme)
        info["agreement_with_fp32"] = {**compare_artifacts(fp32_dir, out, tokenizer),
                                       "note": "information only: quantization changes logits by design; the fp32 export is verified against PyTorch"}
        return {"quantization": info, "fp32_dir": str(fp32_dir)}

    return cached_dir(Path(work_dir), QUANT_CACHE, key, build, log)
