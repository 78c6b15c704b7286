"""Measured sparsity and size accounting of ONNX artifacts (gate/measure/artifact_stats.py).

Zeros are counted in the exported file and compared with the PyTorch weights that were exported; quantized
artifacts are made with onnxruntime.quantization, and the dequantization rules are checked against ONNX
Runtime's own kernels (each quantized op run on an identity input returns its dequantized weight).
"""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from gate.measure.artifact_stats import (
    LAYER_TYPES,
    dequantize_weight,
    effective_vs_dense,
    load_inventory,
    onnx_sparsity,
    size_accounting,
)
from gate.runtime.errors import InputError
from gate.policy.decision import evaluate_checks
from gate.policy.file import load_policy

LINEARS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
UNPRUNED = {(0, "k_proj"), (1, "v_proj")}  # the bug of a real study: two projections left dense


def _torch_zero_counts(model) -> dict:
    """Zeros and sizes per layer type in the PyTorch model (each stored tensor once: tied weights once)."""
    counts = {t: [0, 0] for t in LAYER_TYPES}
    seen = set()
    for name, p in model.named_parameters(remove_duplicate=True):
        if id(p) in seen:
            continue
        seen.add(id(p))
        kind = next((t for t in LINEARS if f".{t}." in name), None)
        kind = kind or ("embed_lm_head" if ("embed_tokens" in name or "lm_head" in name) else "norm" if "norm" in name else "other")
        counts[kind][0] += p.numel()
        counts[kind][1] += int((p == 0).sum())
    return counts


@pytest.fixture(scope="module")
def pruned(tiny_model_dir, tmp_path_factory):
    """The tiny model pruned to 50% per linear (smallest |w| zeroed), except two projections left dense, with
    every surviving weight moved to +-[0.5, 1] x 0.05 so that int8/int4 rounding creates no new zeros;
    plus 10 embedding rows zeroed. Returns ``(onnx_dir, zero_counts, model)``."""
    import torch
    from transformers import AutoModelForCausalLM

    from exporters.onnx_export import export_onnx

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for i, layer in enumerate(model.model.layers):
            for kind in LINEARS:
                lin = getattr(layer.self_attn if kind.endswith(("q_proj", "k_proj", "v_proj", "o_proj")) else layer.mlp, kind)
                w = lin.weight
                mag = 0.05 * (0.5 + 0.5 * torch.rand(w.shape, generator=g))
                mask = torch.ones_like(w) if (i, kind) in UNPRUNED else (w.abs() > w.abs().flatten().median()).float()
                w.copy_(torch.sign(w) * mag * mask)
        model.model.embed_tokens.weight[:10] = 0
    ckpt = tmp_path_factory.mktemp("pruned") / "ckpt"
    model.save_pretrained(ckpt)
    for f in tiny_model_dir.iterdir():
        if "token" in f.name:
            shutil.copy(f, ckpt / f.name)
    onnx_dir, _ = export_onnx(ckpt, tmp_path_factory.mktemp("w"), "pruned", log=lambda s: None)
    return onnx_dir, _torch_zero_counts(model), model


def _expected(counts, kinds) -> float:
    return sum(counts[k][1] for k in kinds) / sum(counts[k][0] for k in kinds)


def test_dense_export_has_no_zeros_and_a_tied_embedding(tiny_onnx_dir, tiny_model_dir):
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    counts = _torch_zero_counts(model)
    s = onnx_sparsity(tiny_onnx_dir, None)
    assert s["measured_pruned_linears"] == 0.0 and s["measured_all_params"] == 0.0
    assert s["tied_embedding"] is True
    for kind in LINEARS + ("embed_lm_head",):
        assert s["per_layer_type"][kind]["params"] == counts[kind][0], kind
    # optimum stores the 5 identical (all-ones) norm weights once, aliased by Identity nodes: the artifact holds one
    assert s["per_layer_type"]["norm"]["params"] == 32 and counts["norm"][0] == 5 * 32
    assert s["params_all"] == sum(p.numel() for p in model.parameters()) - 4 * 32
    assert s["n_linears_off_claim"] == 0


def test_measured_sparsity_matches_the_exported_weights(pruned):
    onnx_dir, counts, _ = pruned
    s = onnx_sparsity(onnx_dir, 0.5)
    for kind in LINEARS + ("embed_lm_head",):
        d = s["per_layer_type"][kind]
        assert (d["params"], d["zeros"]) == tuple(counts[kind]), kind
    assert s["measured_pruned_linears"] == pytest.approx(_expected(counts, LINEARS), abs=0)
    assert s["per_layer_type"]["embed_lm_head"]["zeros"] == 10 * 32
    # the two projections left dense are found, by layer and type, although stored as onnx::MatMul_* tensors
    assert {(o["layer"], o["layer_type"]) for o in s["linears_off_claim"]} == UNPRUNED
    assert all(o["tensor"].startswith("onnx::MatMul") for o in s["linears_off_claim"])
    assert 0.40 < s["measured_pruned_linears"] < 0.49  # less than claimed, as in the real study


def test_claim_finding_fails_beyond_one_point_and_passes_within(pruned):
    onnx_dir, counts, _ = pruned
    measured = _expected(counts, LINEARS)
    entry = {"name": "wanda:0.5", "role": "candidate", "claims_sparsity": True,
             "compression": {"method": "wanda", "claimed_sparsity": 0.5}, "sparsity": onnx_sparsity(onnx_dir, 0.5)}

    def claim_check(entry):  # the gate's own check, through the real decision code and the default policy
        report = {"variants": [{"name": "dense", "role": "baseline"}, entry], "profile": {}}
        return [r for r in evaluate_checks(report, load_policy(None)) if r.id == "sparsity.claim" and r.variant == entry["name"]]

    (f,) = claim_check(entry)
    assert f.status == "fail"
    assert f.values["measured"] == pytest.approx(measured) and f.values["difference_pp"] == pytest.approx((measured - 0.5) * 100)
    entry["compression"]["claimed_sparsity"] = measured + 0.009
    entry["sparsity"] = onnx_sparsity(onnx_dir, measured + 0.009)
    assert claim_check(entry)[0].status == "pass"
    entry["compression"]["claimed_sparsity"] = None
    entry["claims_sparsity"] = False
    assert [r.status for r in claim_check(entry)] == ["skipped"]


def test_effective_sparsity_counts_removed_weights(tiny_onnx_dir, pruned):
    dense = onnx_sparsity(tiny_onnx_dir, None)
    cand = onnx_sparsity(pruned[0], 0.5)
    eff = effective_vs_dense(cand, dense)
    assert eff["pruned_linears"] == pytest.approx(cand["measured_pruned_linears"])  # same shapes: same number
    smaller = {**cand, "per_layer_type": {k: dict(v) for k, v in dense["per_layer_type"].items()}}
    smaller["per_layer_type"]["up_proj"]["params"] //= 2  # half the up_proj weights removed, none zero
    lin = sum(dense["per_layer_type"][t]["params"] for t in LINEARS)
    assert effective_vs_dense(smaller, dense)["pruned_linears"] == pytest.approx(dense["per_layer_type"]["up_proj"]["params"] / 2 / lin)


@pytest.mark.parametrize("per_channel", [False, True])
def test_int8_dynamic_artifact_keeps_the_zeros(pruned, tmp_path, per_channel):
    from onnxruntime.quantization import QuantType, quantize_dynamic

    onnx_dir, counts, _ = pruned
    q = tmp_path / "int8"
    q.mkdir()
    quantize_dynamic(str(onnx_dir / "model.onnx"), str(q / "model.onnx"), op_types_to_quantize=["MatMul"],
                     weight_type=QuantType.QInt8, per_channel=per_channel)
    s = onnx_sparsity(q, 0.5)
    assert s["quantized"] is True
    for kind in LINEARS + ("embed_lm_head",):
        assert (s["per_layer_type"][kind]["params"], s["per_layer_type"][kind]["zeros"]) == tuple(counts[kind]), kind
    size = size_accounting(q)
    assert size["dtypes"]["int8"]["params"] == sum(counts[k][0] for k in LINEARS)
    assert size["dtypes"]["int8"]["bytes"] == size["dtypes"]["int8"]["params"]  # one byte per weight
    assert size["quantization_metadata_bytes"]  # scales and zero points are not counted as parameters
    ops = size["op_types"]["quantized_ops"]
    assert any(op.endswith(("MatMulInteger", "DynamicQuantizeMatMul", "MatMulIntegerToFloat")) for op in ops), ops


@pytest.mark.parametrize("symmetric", [True, False])
def test_int4_matmulnbits_artifact_keeps_the_zeros(pruned, tmp_path, symmetric):
    mnq = pytest.importorskip("onnxruntime.quantization.matmul_nbits_quantizer")

    onnx_dir, counts, _ = pruned
    cfg = mnq.DefaultWeightOnlyQuantConfig(block_size=16, is_symmetric=symmetric, accuracy_level=4)
    quantizer = mnq.MatMulNBitsQuantizer(onnx.load(str(onnx_dir / "model.onnx")), algo_config=cfg)
    quantizer.process()
    q = tmp_path / "int4"
    q.mkdir()
    quantizer.model.save_model_to_file(str(q / "model.onnx"), use_external_data_format=False)
    s = onnx_sparsity(q, 0.5)
    for kind in LINEARS:
        assert (s["per_layer_type"][kind]["params"], s["per_layer_type"][kind]["zeros"]) == tuple(counts[kind]), kind
    size = size_accounting(q)
    assert size["dtypes"]["uint4"]["params"] == sum(counts[k][0] for k in LINEARS)
    assert size["dtypes"]["uint4"]["bytes"] == size["dtypes"]["uint4"]["params"] // 2
    assert any(op.endswith("MatMulNBits") for op in size["op_types"]["quantized_ops"])


# ---- dequantization rules == ONNX Runtime's kernels


def _run(node, inputs: dict, initializers: list, out_type=TensorProto.FLOAT, opset_ms: bool = True) -> np.ndarray:
    graph_inputs = [helper.make_tensor_value_info(k, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape) for k, v in inputs.items()]
    graph = helper.make_graph([node], "g", graph_inputs, [helper.make_tensor_value_info("y", out_type, None)], initializer=initializers)
    opsets = [helper.make_opsetid("", 21)] + ([helper.make_opsetid("com.microsoft", 1)] if opset_ms else [])
    model = helper.make_model(graph, opset_imports=opsets, ir_version=10)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(["y"], inputs)[0]


def _ours(node, initializers: list, n_inputs: int) -> np.ndarray:
    arrays = {t.name: numpy_helper.to_array(t) for t in initializers}
    return dequantize_weight(node.op_type, node, [arrays.get(i) for i in node.input[:n_inputs]])


@pytest.mark.parametrize("with_zp", [True, False])
def test_matmulnbits_rule_matches_ort(with_zp):
    rng = np.random.default_rng(0)
    K, N, bits, block = 40, 6, 4, 16  # K not a multiple of the block: padding must be ignored
    k_blocks = -(-K // block)
    q = rng.integers(0, 16, size=(N, k_blocks * block)).astype(np.uint8)
    q[:, K:] = 0
    packed = (q[:, 0::2] | (q[:, 1::2] << 4)).reshape(N, k_blocks, block // 2)
    scales = rng.uniform(0.01, 0.1, size=N * k_blocks).astype(np.float32)
    zp = rng.integers(0, 16, size=(N, k_blocks + 1)).astype(np.uint8)  # 3 blocks -> 2 bytes per row
    zp_packed = (zp[:, 0::2] | (zp[:, 1::2] << 4)).reshape(-1)
    inits = [numpy_helper.from_array(packed, "B"), numpy_helper.from_array(scales, "s")]
    names = ["A", "B", "s"]
    if with_zp:
        inits.append(numpy_helper.from_array(zp_packed, "zp"))
        names.append("zp")
    node = helper.make_node("MatMulNBits", names, ["y"], domain="com.microsoft", K=K, N=N, bits=bits, block_size=block)
    ort_w = _run(node, {"A": np.eye(K, dtype=np.float32)}, inits)  # [K, N] = A @ W^T
    ours = _ours(node, inits, len(names))
    np.testing.assert_allclose(ours.T, ort_w, rtol=1e-6, atol=1e-7)
    assert np.count_nonzero(ours == 0) == np.count_nonzero(ort_w == 0) > 0


def test_matmulinteger_and_dynamic_quantize_matmul_rules_match_ort():
    rng = np.random.default_rng(1)
    K, N = 8, 5
    b = rng.integers(-3, 4, size=(K, N)).astype(np.int8)
    zp = np.array([0, 1, -1, 2, 0], dtype=np.int8)
    inits = [numpy_helper.from_array(b, "B"), numpy_helper.from_array(zp, "bzp"), numpy_helper.from_array(np.uint8(0), "azp")]
    node = helper.make_node("MatMulInteger", ["A", "B", "azp", "bzp"], ["y"])
    ort_w = _run(node, {"A": np.eye(K, dtype=np.uint8)}, inits, TensorProto.INT32, opset_ms=False)
    ours = _ours(node, inits, 4)
    np.testing.assert_array_equal(ours, ort_w)
    assert np.count_nonzero(ours == 0) == np.count_nonzero(b == zp) > 0

    scale = rng.uniform(0.1, 1.0, size=N).astype(np.float32)
    inits2 = [numpy_helper.from_array(b, "B"), numpy_helper.from_array(scale, "bs"), numpy_helper.from_array(zp, "bzp")]
    node2 = helper.make_node("DynamicQuantizeMatMul", ["A", "B", "bs", "bzp"], ["y"], domain="com.microsoft")
    ort_w2 = _run(node2, {"A": np.eye(K, dtype=np.float32)}, inits2)
    ours2 = _ours(node2, inits2, 4)
    np.testing.assert_allclose(ours2, ort_w2, rtol=1e-2)  # A is quantized to uint8 at run time
    assert np.array_equal(ours2 == 0, ort_w2 == 0)


def test_blocked_dequantize_linear_and_gather_block_quantized_rules_match_ort():
    rng = np.random.default_rng(2)
    x = rng.integers(0, 16, size=(6, 32)).astype(np.uint8)
    scale = rng.uniform(0.1, 1.0, size=(6, 2)).astype(np.float32)
    zp = rng.integers(0, 16, size=(6, 2)).astype(np.uint8)
    inits = [numpy_helper.from_array(x, "x"), numpy_helper.from_array(scale, "s"), numpy_helper.from_array(zp, "z")]
    node = helper.make_node("DequantizeLinear", ["x", "s", "z"], ["y"], axis=1, block_size=16)
    graph = helper.make_graph([node], "g", [], [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)], ir_version=10)
    ort_w = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(["y"], {})[0]
    ours = _ours(node, inits, 3)
    np.testing.assert_allclose(ours, ort_w, rtol=1e-6)
    assert np.count_nonzero(ours == 0) == np.count_nonzero(ort_w == 0) > 0

    packed = x[:, 0::2] | (x[:, 1::2] << 4)  # uint8 data: 4-bit packed, default zero point 8
    inits = [numpy_helper.from_array(packed, "d"), numpy_helper.from_array(scale, "s")]
    node = helper.make_node("GatherBlockQuantized", ["d", "i", "s"], ["y"], domain="com.microsoft",
                            gather_axis=0, quantize_axis=1, block_size=16, bits=4)
    ort_w = _run(node, {"i": np.arange(6, dtype=np.int64)}, inits)
    ours = _ours(node, inits, 3)
    np.testing.assert_allclose(ours, ort_w, rtol=1e-6)
    assert np.count_nonzero(ours == 0) == np.count_nonzero(x == 8) > 0


# ---- size accounting


def test_size_accounting_of_the_tiny_export(tiny_onnx_dir):
    from exporters.artifact import describe_artifact

    inv = load_inventory(tiny_onnx_dir)
    size = size_accounting(tiny_onnx_dir, inventory=inv, gzip_level=6)
    art = describe_artifact(tiny_onnx_dir)
    assert size["bytes_on_disk"] == art["bytes_total"]
    blob = b"".join(Path(p).read_bytes() for p in size["files"])
    assert size["bytes_gzip"] == len(gzip.compress(blob, compresslevel=6, mtime=0))
    default = size_accounting(tiny_onnx_dir, inventory=inv)  # gzip is opt-in; every other number is the same
    assert default["bytes_gzip"] is None and "skipped" in default["compression_settings"]["gzip"]
    assert {k: v for k, v in default.items() if k not in ("bytes_gzip", "compression_settings", "seconds", "op_types")} \
        == {k: v for k, v in size.items() if k not in ("bytes_gzip", "compression_settings", "seconds", "op_types")}
    cost = size["op_types"]["static_cost"]  # the kernels ORT runs, from its optimized graph
    assert cost["decode"]["flops_per_token"] > 0 and cost["n_weight_nodes"] == sum(k["count"] for k in cost["kernels"])
    import zstandard

    assert size["bytes_zstd"] == len(zstandard.ZstdCompressor(level=3).compress(blob))
    assert size["params"] == sum(p.params for p in inv.params) == onnx_sparsity(tiny_onnx_dir, None, inventory=inv)["params_all"]
    assert size["bytes_per_param"] == pytest.approx(size["bytes_on_disk"] / size["params"])
    assert size["dtypes"]["float32"]["bytes"] == 4 * size["params"]
    assert size["zero_fraction"] == 0.0
    assert size["op_types"]["graph_optimization"] == "all" and size["op_types"]["op_types"].get("MatMul", 0) + sum(
        v for k, v in size["op_types"]["op_types"].items() if "MatMul" in k or "Attention" in k) > 0
    assert size["op_types"]["quantized_ops"] == {}
    assert size["compression_settings"]["zstd"]["level"] == 3 and size["compression_settings"]["gzip"]["level"] == 6


def test_missing_model_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="no model.onnx"):
        onnx_sparsity(tmp_path, 0.5)
