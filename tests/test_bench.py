"""Tests for the measurement harness (gate.bench, gate.bench_child) on a tiny exported Llama.

No assertion is made on absolute times: the machine is shared and noisy.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gate.bench import BenchSettings, launch_order, measure_variants, summarize
from gate.errors import InputError
from gate.ort_decoder import SessionConfig

TINY = BenchSettings(prompt_tokens=16, decode_context=16, decode_tokens=4, warmup_runs=1, runs=3, processes=2, timeout_s=120)
SESSION = SessionConfig(providers=("CPUExecutionProvider",), intra_op_threads=1)


def _export_tiny(root: Path) -> Path:
    import torch
    from optimum.exporters.onnx import main_export
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=128,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
    )
    LlamaForCausalLM(config).eval().save_pretrained(root / "hf")
    out = root / "onnx"
    main_export(str(root / "hf"), output=out, task="text-generation-with-past", do_validation=False)
    return out


@pytest.fixture(scope="module")
def tiny_model(request, tmp_path_factory) -> Path:
    """Path to a tiny model.onnx: the shared conftest fixture when present, else a private export."""
    try:
        directory = request.getfixturevalue("tiny_onnx_dir")
    except pytest.FixtureLookupError:
        directory = _export_tiny(tmp_path_factory.mktemp("bench_tiny"))
    path = Path(directory) / "model.onnx"
    assert path.is_file()
    return path


@pytest.fixture(scope="module")
def measured(tiny_model):
    lines: list[str] = []
    result = measure_variants([("dense", tiny_model), ("pruned", tiny_model)], SESSION, TINY, log=lines.append)
    return result, lines


def _graph_vocab(model: Path) -> int:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    return next(o for o in sess.get_outputs() if o.name == "logits").shape[-1]


def test_result_structure_and_sanity(measured, tiny_model):
    result, _ = measured
    assert set(result) == {"dense", "pruned"}
    for name, r in result.items():
        n = TINY.runs * TINY.processes
        for key in ("prefill_ms", "decode_ms_per_token"):
            stats = r[key]
            assert stats["n"] == n == len(stats["samples"]), (name, key)
            assert all(x > 0 for x in stats["samples"])
            assert 0 < stats["min"] <= stats["p50"] <= stats["p95"] <= stats["max"]
            assert stats["mean"] > 0
            assert "median_of_process_medians" in stats
        assert r["decode_step_ms"]["n"] == n * TINY.decode_tokens
        assert r["load_s_stats"]["n"] == TINY.processes and r["load_s"] > 0 and r["load_s"] == r["load_s_stats"]["p50"]
        assert r["rss_baseline_bytes"] > 0
        assert r["peak_rss_bytes"] >= r["load_peak_rss_bytes"] >= r["rss_baseline_bytes"] > 0
        assert r["peak_rss_bytes"] >= r["inference_peak_rss_bytes"] > 0
        assert len(r["per_process"]) == TINY.processes
        for p in r["per_process"]:
            assert p["peak_rss_bytes"] >= p["rss_baseline_bytes"] > 0
            assert p["prefill_ms_p50"] > 0 and p["decode_ms_per_token_p50"] > 0 and p["load_s"] > 0
        assert len({p["pid"] for p in r["per_process"]}) == TINY.processes  # fresh processes
        assert r["providers_requested"] == ["CPUExecutionProvider"]
        assert "CPUExecutionProvider" in r["providers_used"]
        assert r["threads"] == 1
        assert r["vocab_size"] == _graph_vocab(tiny_model)
        protocol = r["protocol"]
        assert protocol["percentile_method"] == "linear (numpy)"
        assert "VmHWM" in protocol["memory"] and "pooled" in protocol["pooling"]
        for key in ("prompt_tokens", "decode_context", "decode_tokens", "warmup_runs", "runs", "processes"):
            assert protocol[key] == getattr(TINY, key)
    json.dumps(result)  # JSON-ready


def test_child_does_not_import_torch(measured):
    result, _ = measured
    for r in result.values():
        assert all(p["torch_imported"] is False for p in r["per_process"])


def test_launch_order_alternates(measured):
    result, lines = measured
    launched = [line.split(": ")[2].split(" ")[0] for line in lines if " launch " in line]
    assert launched == ["dense", "pruned", "pruned", "dense"]
    assert result["dense"]["protocol"]["launch_order"] == [["dense", "pruned"], ["pruned", "dense"]]


def test_launch_order_rotates():
    assert launch_order(["A", "B", "C"], 4) == [["A", "B", "C"], ["B", "C", "A"], ["C", "A", "B"], ["A", "B", "C"]]
    order = launch_order(["A", "B", "C"], 3)
    for name in "ABC":  # every variant takes every position once
        assert sorted(r.index(name) for r in order) == [0, 1, 2]
    assert launch_order([], 3) == []


def test_unknown_provider_raises_input_error(tiny_model):
    session = SessionConfig(providers=("NoSuchExecutionProvider", "CPUExecutionProvider"))
    with pytest.raises(InputError, match="NoSuchExecutionProvider.*available: .*CPUExecutionProvider"):
        measure_variants([("dense", tiny_model)], session, TINY, log=lambda _: None)


def test_broken_model_raises_runtime_error_naming_variant(tmp_path):
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"this is not an onnx model")
    settings = BenchSettings(prompt_tokens=4, decode_context=4, decode_tokens=1, warmup_runs=0, runs=1, processes=1, timeout_s=60)
    with pytest.raises(RuntimeError, match="broken-candidate") as info:
        measure_variants([("broken-candidate", bad)], SESSION, settings, log=lambda _: None)
    assert "stderr" in str(info.value) and "Error" in str(info.value)
    with pytest.raises(RuntimeError, match="missing-candidate"):
        measure_variants([("missing-candidate", tmp_path / "nope.onnx")], SESSION, settings, log=lambda _: None)


def test_bad_settings_and_duplicate_names(tiny_model):
    with pytest.raises(InputError, match="runs"):
        BenchSettings(runs=0)
    with pytest.raises(InputError, match="unique"):
        measure_variants([("a", tiny_model), ("a", tiny_model)], SESSION, TINY, log=lambda _: None)


def test_summarize_percentiles():
    s = summarize([1.0, 2.0, 3.0, 4.0, 10.0], process_medians=[2.0, 4.0])
    assert s["p50"] == 3.0 and s["n"] == 5 and s["min"] == 1.0 and s["max"] == 10.0
    assert s["p95"] == pytest.approx(4.0 + 0.8 * 6.0)  # numpy linear interpolation
    assert s["median_of_process_medians"] == 3.0


def test_child_stdout_is_only_json(tiny_model):
    request = {
        "model_path": str(tiny_model),
        "session": {"providers": ["CPUExecutionProvider"], "intra_op_threads": 1, "graph_optimization": "all", "allow_spinning": False},
        "settings": {"prompt_tokens": 4, "decode_context": 0, "decode_tokens": 2, "warmup_runs": 0, "runs": 1},
    }
    proc = subprocess.run(
        [sys.executable, "-m", "gate.bench_child"], input=json.dumps(request), capture_output=True, text=True, timeout=60,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)  # the whole stdout is one JSON document
    assert out["torch_imported"] is False and len(out["decode_step_ms"]) == 2
