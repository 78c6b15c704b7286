"""ONNX Runtime quantization of an export, and its wiring into the check pipeline (tiny model)."""

from __future__ import annotations

import types
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from exporters.quantize import cached_quantize, compare_artifacts, quantize_onnx
from gate.runtime.errors import InputError
from gate.runtime.ort_decoder import OrtDecoder


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


def _ops(path: Path) -> dict:
    model = onnx.load(str(path / "model.onnx"), load_external_data=False)
    return {n.name: n for n in model.graph.node}


def _initializers(path: Path) -> dict:
    model = onnx.load(str(path / "model.onnx"), load_external_data=True)
    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


def _fp32_table(tiny_onnx_dir) -> np.ndarray:
    return _initializers(tiny_onnx_dir)["model.embed_tokens.weight"]


def _check_table(q_dir: Path, fp32_table: np.ndarray, bits: int) -> dict:
    """The tied table is stored once, read by GatherBlockQuantized and MatMulNBits, and dequantizes (by the rules
    gate.measure.artifact_stats checks against ORT's kernels) to the fp32 table within half a quantization step."""
    from gate.measure.artifact_stats import dequantize_weight, load_inventory

    nodes = _ops(q_dir)
    arrays = _initializers(q_dir)
    gbq = [n for n in nodes.values() if n.op_type == "GatherBlockQuantized"]
    head = [n for n in nodes.values() if n.op_type == "MatMulNBits" and n.name.startswith("/lm_head/")]
    assert len(gbq) == 1 and len(head) == 1
    assert gbq[0].input[0] == head[0].input[1]  # one initializer for the embedding and the head
    assert "model.embed_tokens.weight" not in arrays  # the fp32 table is gone
    assert not any(n.op_type == "Transpose" and n.input[0] == "model.embed_tokens.weight" for n in nodes.values())
    vocab, hidden = fp32_table.shape
    emb = dequantize_weight("GatherBlockQuantized", gbq[0], [arrays.get(i) for i in gbq[0].input]).reshape(vocab, hidden)
    lm = dequantize_weight("MatMulNBits", head[0], [arrays.get(i) for i in head[0].input])
    np.testing.assert_array_equal(emb, lm)
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in head[0].attribute}
    assert attrs["bits"] == bits and attrs["accuracy_level"] == 4 and (attrs["K"], attrs["N"]) == (hidden, vocab)
    # ORT's symmetric RTN maps the block's largest magnitude to -2^(bits-1), so its opposite clips one step short
    scale = np.abs(arrays[head[0].input[2]]).reshape(vocab, -1)
    err = np.abs(emb - fp32_table).reshape(vocab, -1, attrs["block_size"]).max(-1)
    assert (err <= scale * (1 + 1e-5) + 1e-7).all()
    assert np.median(err / np.maximum(scale, 1e-12)) <= 0.5 + 1e-5  # rounding: half a step, bar the clipped ones
    inv = load_inventory(q_dir)
    table = [p for p in inv.params if p.layer_type == "embed_lm_head"]
    assert inv.tied_embedding and len(table) == 1 and table[0].params == vocab * hidden
    assert table[0].stored_bytes == vocab * hidden * bits // 8
    return {"gbq": gbq[0], "head": head[0]}


def _decode_matches_prefill(q_dir: Path, ids=(5, 6, 7, 8), atol: float = 1e-4) -> None:
    """The KV-cache path (one token at a time: GatherBlockQuantized on a [1, 1] index) gives the prefill's logits.

    Dynamic int8 quantizes activations per tensor, so its scale depends on which tokens are in the call: the
    body's int8 MatMuls then differ by a few 1e-3 between prefill and decode (``atol`` for int8)."""
    dec = OrtDecoder(q_dir / "model.onnx")
    full, _ = dec.step(np.array([ids], dtype=np.int64))
    parts, cache = dec.step(np.array([ids[:2]], dtype=np.int64))
    steps = [parts[0]]
    for t in ids[2:]:
        out, cache = dec.step(np.array([[t]], dtype=np.int64), cache)
        steps.append(out[0])
    cached = np.concatenate(steps)
    np.testing.assert_allclose(cached, full[0], atol=atol)
    assert (cached.argmax(-1) == full[0].argmax(-1)).all()


def test_int8_dynamic_body_and_8bit_table(tiny_onnx_dir, tmp_path, tokenizer):
    info = quantize_onnx(tiny_onnx_dir, tmp_path / "q8", "int8")
    nodes = _ops(tmp_path / "q8")
    # the 7 decoder-layer linears of both layers: dynamic int8 as before
    assert info["nodes_quantized"] == 14
    assert sum(n.op_type == "MatMulInteger" for n in nodes.values()) == 14
    assert info["settings"]["per_channel"] is True and info["settings"]["reduce_range"] is True  # 7-bit: no u8s8 saturation
    assert info["onnxruntime"] and info["seconds"] >= 0
    # the tied table: one 8-bit copy for the embedding Gather and the lm_head
    assert "/lm_head/MatMul" not in info["matmuls_left_fp32"]
    eh = info["embedding_head"]
    assert (eh["gather_nodes"], eh["head_nodes"], eh["skipped"]) == (1, 1, [])
    (table,) = eh["tables"]
    assert table["tied"] and table["table_removed"] and table["block_size"] == 32 and table["bytes_data"] == 300 * 32
    assert table["bytes_zero_points"] == 300  # one explicit zero point (128) per block, for the Gather
    checked = _check_table(tmp_path / "q8", _fp32_table(tiny_onnx_dir), bits=8)
    assert len(checked["gbq"].input) == 4
    assert info["bytes_after"] < quantize_onnx(tiny_onnx_dir, tmp_path / "q8b", "int8-body")["bytes_after"]
    # a complete artifact: config and tokenizer copied, runs in OrtDecoder, with and without the KV cache
    for name in ("config.json", "tokenizer.json", "generation_config.json"):
        assert (tmp_path / "q8" / name).is_file(), name
    logits = OrtDecoder(tmp_path / "q8" / "model.onnx").logits([5, 6, 7])
    assert logits.shape == (3, 300) and np.isfinite(logits).all()
    _decode_matches_prefill(tmp_path / "q8", atol=0.02)
    agreement = compare_artifacts(tiny_onnx_dir, tmp_path / "q8", tokenizer)
    assert agreement["max_abs_logit_diff"] < 0.05 and agreement["argmax_agreement"] >= 0.8


def test_int8_body_keeps_the_table_fp32(tiny_onnx_dir, tmp_path, tokenizer):
    """``int8-body`` is the previous ``int8``: the tied lm_head (MatMul on Transpose(embedding)) stays fp32."""
    info = quantize_onnx(tiny_onnx_dir, tmp_path / "q8", "int8-body")
    nodes = _ops(tmp_path / "q8")
    assert info["nodes_quantized"] == 14 and info["embedding_head"] is None
    assert sum(n.op_type == "MatMulInteger" for n in nodes.values()) == 14
    assert "/lm_head/MatMul" in info["matmuls_left_fp32"]
    assert not any(n.op_type in ("GatherBlockQuantized", "MatMulNBits") for n in nodes.values())
    np.testing.assert_array_equal(_initializers(tmp_path / "q8")["model.embed_tokens.weight"], _fp32_table(tiny_onnx_dir))


def test_int4_matmulnbits_with_int8_compute(tiny_onnx_dir, tmp_path, tokenizer):
    info = quantize_onnx(tiny_onnx_dir, tmp_path / "q4", "int4")
    nbits = [n for n in _ops(tmp_path / "q4").values() if n.op_type == "MatMulNBits"]
    assert len(nbits) == 15 and info["nodes_quantized"] == 14  # 14 body linears + the tied lm_head
    for node in nbits:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        assert attrs["accuracy_level"] == 4 and attrs["bits"] == 4 and attrs["block_size"] == 32
    (table,) = info["embedding_head"]["tables"]
    assert table["tied"] and table["bytes_zero_points"] == 0 and table["bytes_data"] == 300 * 32 // 2
    _check_table(tmp_path / "q4", _fp32_table(tiny_onnx_dir), bits=4)
    body = quantize_onnx(tiny_onnx_dir, tmp_path / "q4b", "int4-body")
    assert len([n for n in _ops(tmp_path / "q4b").values() if n.op_type == "MatMulNBits"]) == 14
    assert info["bytes_after"] < body["bytes_after"] < info["bytes_before"]
    _decode_matches_prefill(tmp_path / "q4")
    agreement = compare_artifacts(tiny_onnx_dir, tmp_path / "q4", tokenizer)
    assert 0 < agreement["max_abs_logit_diff"] < 0.5  # quantization changes logits, but not wildly
    assert agreement["argmax_agreement"] >= 0.8


def test_untied_embedding_is_quantized_alone(tmp_path):
    """An untied lm_head has a constant weight (the body quantizer takes it); only the Gather is rewritten."""
    from conftest import build_tiny_model

    from exporters.onnx_export import export_onnx

    src, _ = export_onnx(build_tiny_model(tmp_path / "untied", tie=False), tmp_path / "work", "untied", log=lambda s: None)
    info = quantize_onnx(src, tmp_path / "q8", "int8")
    nodes = _ops(tmp_path / "q8")
    assert info["nodes_quantized"] == 15 == sum(n.op_type == "MatMulInteger" for n in nodes.values())
    (table,) = info["embedding_head"]["tables"]
    assert not table["tied"] and table["head_nodes"] == [] and table["table_removed"]
    assert sum(n.op_type == "GatherBlockQuantized" for n in nodes.values()) == 1
    assert not any(n.op_type == "MatMulNBits" for n in nodes.values())
    _decode_matches_prefill(tmp_path / "q8", atol=0.02)


def test_table_left_fp32_when_no_block_size_fits(tiny_onnx_dir):
    from exporters.quantize import quantize_embedding_and_head

    model = onnx.load(str(tiny_onnx_dir / "model.onnx"))
    before = model.SerializeToString()
    out = quantize_embedding_and_head(model, 8, block_sizes=(64,))  # hidden is 32
    assert out["tables"] == [] and "not a multiple" in out["skipped"][0]["reason"]
    assert model.SerializeToString() == before


def test_bad_arguments(tiny_onnx_dir, tmp_path):
    with pytest.raises(InputError, match="unknown"):
        quantize_onnx(tiny_onnx_dir, tmp_path / "x", "int3")
    with pytest.raises(InputError, match="no model.onnx"):
        quantize_onnx(tmp_path, tmp_path / "y", "int8")
    quantize_onnx(tiny_onnx_dir, tmp_path / "z", "int8")
    with pytest.raises(InputError, match="already holds"):
        quantize_onnx(tiny_onnx_dir, tmp_path / "z", "int8")


def test_cached_quantize_reuses(tiny_onnx_dir, tmp_path, tokenizer):
    first, meta1 = cached_quantize(tiny_onnx_dir, tmp_path, "k", "int8", tokenizer, log=lambda s: None)
    second, meta2 = cached_quantize(tiny_onnx_dir, tmp_path, "k", "int8", tokenizer, log=lambda s: None)
    assert first == second and not meta1["reused"] and meta2["reused"]
    assert meta2["quantization"]["agreement_with_fp32"]["argmax_agreement"] >= 0.8
    other, _ = cached_quantize(tiny_onnx_dir, tmp_path, "k", "int4", tokenizer, log=lambda s: None)
    assert other != first
    body, meta_body = cached_quantize(tiny_onnx_dir, tmp_path, "k", "int8-body", tokenizer, log=lambda s: None)
    assert body != first and not meta_body["reused"] and meta_body["quantization"]["embedding_head"] is None
    assert meta2["quantization"]["embedding_head"]["tables"][0]["tied"]


def test_build_artifact_quantizes_the_verified_export(tiny_model_dir, tmp_path, tokenizer):
    """Pipeline wiring: baseline, int8 alone (reuses the dense export), structured+int4 (calibrated)."""
    from exporters.candidates import parse_candidate
    from exporters.compress import calibration_options
    from exporters.model_source import resolve_model
    from gate.pipeline import _build_artifact, _load_calibration

    text = tmp_path / "calib.txt"
    text.write_text(" ".join(f"Who was not comfortable using the phone number {i}?" for i in range(300)))
    opts = types.SimpleNamespace(work_dir=tmp_path / "work", seed=0, calibration_file=text, calibration_windows=4,
                                 calibration_tokens=16)
    specs = [parse_candidate("int8"), parse_candidate("structured:0.5+int4")]
    assert calibration_options(text, 4, 16, 0).file == text
    calibration = _load_calibration(opts, specs, tokenizer, log=lambda s: None)
    assert calibration.input_ids.shape == (4, 16)
    source = resolve_model(tiny_model_dir)
    variants = [("dense", "baseline", None)] + [(s.spec, "candidate", s) for s in specs]
    built = [_build_artifact(*v, opts, source, tiny_model_dir, {}, tokenizer, lambda s: None, calibration=calibration)
             for v in variants]
    (_, dense, _), (_, q8, _), (sq4_dir, sq4, _) = built
    assert dense["compression"]["quantization"] is None and dense["claims"] is None
    assert q8["export"]["reused"] is True  # the dense fp32 export is quantized, not exported again
    assert q8["compression"]["method"] == "none" and q8["compression"]["quantization"]["scheme"] == "int8"
    assert q8["claims"]["size_saving"] and not q8["claims_sparsity"]
    assert q8["artifact"]["dir"] != dense["artifact"]["dir"]
    assert sq4["compression"]["method"] == "structured" and sq4["compression"]["intermediate_size_after"] == 32
    assert sq4["compression"]["calibration"]["n_windows"] == 4
    assert sq4["export"]["verification"]["passed"]  # the fp32 structured export, checked against PyTorch
    assert sq4["compression"]["quantization"]["scheme"] == "int4"
    assert "agreement_with_fp32" in sq4["compression"]["quantization"]
    assert sq4["artifact"]["bytes_total"] < dense["artifact"]["bytes_total"]
    assert OrtDecoder(sq4_dir / "model.onnx").logits([1, 2]).shape == (2, 300)
    # a second run reuses both the structured export and its int4 artifact
    _, again, _ = _build_artifact(specs[1].spec, "candidate", specs[1], opts, source, tiny_model_dir, {}, tokenizer,
                               lambda s: None, calibration=calibration)
    assert again["export"]["reused"] and again["export"]["quantization"]["reused"]
    assert again["compression"]["intermediate_size_after"] == 32
