"""ONNX Runtime quantization of an export, and its wiring into the check pipeline (tiny model)."""

from __future__ import annotations

import types
from pathlib import Path

import numpy as np
import onnx
import pytest

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


def test_int8_dynamic(tiny_onnx_dir, tmp_path, tokenizer):
    info = quantize_onnx(tiny_onnx_dir, tmp_path / "q8", "int8")
    nodes = _ops(tmp_path / "q8")
    # the 7 decoder-layer linears of both layers; the tied lm_head (MatMul on Transpose(embedding)) stays fp32
    assert info["nodes_quantized"] == 14
    assert sum(n.op_type == "MatMulInteger" for n in nodes.values()) == 14
    assert "/lm_head/MatMul" in info["matmuls_left_fp32"]
    assert info["settings"]["per_channel"] is True and info["settings"]["reduce_range"] is True  # 7-bit: no u8s8 saturation
    assert info["onnxruntime"] and info["seconds"] >= 0
    # a complete artifact: config and tokenizer copied, runs in OrtDecoder
    for name in ("config.json", "tokenizer.json", "generation_config.json"):
        assert (tmp_path / "q8" / name).is_file(), name
    logits = OrtDecoder(tmp_path / "q8" / "model.onnx").logits([5, 6, 7])
    assert logits.shape == (3, 300) and np.isfinite(logits).all()


def test_int4_matmulnbits_with_int8_compute(tiny_onnx_dir, tmp_path, tokenizer):
    info = quantize_onnx(tiny_onnx_dir, tmp_path / "q4", "int4")
    nbits = [n for n in _ops(tmp_path / "q4").values() if n.op_type == "MatMulNBits"]
    assert len(nbits) == 14 == info["nodes_quantized"]
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in nbits[0].attribute}
    assert attrs["accuracy_level"] == 4 and attrs["bits"] == 4 and attrs["block_size"] == 32
    assert info["bytes_after"] < info["bytes_before"]
    agreement = compare_artifacts(tiny_onnx_dir, tmp_path / "q4", tokenizer)
    assert 0 < agreement["max_abs_logit_diff"] < 0.5  # quantization changes logits, but not wildly
    assert agreement["argmax_agreement"] >= 0.8


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
