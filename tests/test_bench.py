"""Tests for the measurement harness (gate.measure.harness, gate/runtime/bench_child.py) on the tiny exported Llama.

No assertion is made on absolute times: the machine is shared and noisy.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gate.measure.harness import CHILD_SCRIPT, BenchSettings, launch_order, measure_variants
from gate.runtime.errors import InputError
from gate.measure.latency_stats import summarize
from gate.runtime.ort_decoder import SessionConfig

# cv_limit is high here so that noise from other jobs on the machine does not trigger re-runs (the
# retry rule has its own test with a scripted child below).
TINY = BenchSettings(prompt_lengths=(8, 16), decode_context=8, warmup_min_runs=1, warmup_min_seconds=0.01,
                     min_runs=5, min_seconds=0.05, max_seconds=10, processes=2, cv_limit=100.0, timeout_s=120)
SESSION = SessionConfig(providers=("CPUExecutionProvider",), intra_op_threads=1)


@pytest.fixture(scope="module")
def tiny_model(tiny_onnx_dir) -> Path:
    path = Path(tiny_onnx_dir) / "model.onnx"
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


def _check_stats(stats: dict, processes: int, min_runs: int) -> None:
    assert len(stats["samples_per_process"]) == processes == len(stats["process_p50s"]) == len(stats["process_cvs"])
    assert all(n >= min_runs for n in stats["process_ns"])
    assert stats["n"] == sum(stats["process_ns"]) == sum(len(s) for s in stats["samples_per_process"])
    assert all(x > 0 for s in stats["samples_per_process"] for x in s)
    assert 0 < stats["min"] <= stats["p50"] <= stats["p90"] <= stats["p95"] <= stats["max"]
    assert stats["unit"] == "ms" and stats["cv"] >= 0


def test_result_structure_and_sanity(measured, tiny_model):
    result, _ = measured
    assert set(result) == {"dense", "pruned"}
    for r in result.values():
        assert set(r["prefill_ms"]) == {"8", "16"}
        for length, stats in r["prefill_ms"].items():
            assert stats["prompt_tokens"] == int(length)
            _check_stats(stats, TINY.processes, TINY.min_runs)
            assert stats["capped_processes"] == 0
            assert all(w >= TINY.warmup_min_runs for w in stats["warmup_runs_per_process"])
        dec = r["decode_ms_per_token"]
        assert dec["context_tokens"] == TINY.decode_context and dec["new_tokens_per_sample"] == 1
        _check_stats(dec, TINY.processes, TINY.min_runs)
        assert r["load_ms"]["n"] == TINY.processes and r["load_ms"]["p50"] > 0
        assert r["first_run_ms"]["prompt_tokens"] == 16 and r["first_run_ms"]["n"] == TINY.processes
        assert len(r["per_process"]) == TINY.processes
        assert len({p["pid"] for p in r["per_process"]}) == TINY.processes  # fresh processes
        assert all(p["torch_imported"] is False for p in r["per_process"])
        assert r["providers_requested"] == ["CPUExecutionProvider"] and "CPUExecutionProvider" in r["providers_used"]
        assert r["threads"] == 1 and r["vocab_size"] == _graph_vocab(tiny_model)
        assert r["stability"]["unstable"] is False and r["stability"]["retried_processes"] == []
        assert r["bench_wall_s"] > 0
        protocol = r["protocol"]
        assert protocol["prompt_lengths"] == [8, 16] or protocol["prompt_lengths"] == (8, 16)
        for key in ("min_runs", "min_seconds", "warmup_min_runs", "processes", "cv_limit", "decode_context"):
            assert protocol[key] == getattr(TINY, key)
    json.dumps(result)  # JSON-ready


def test_memory_phases(measured):
    result, _ = measured
    for r in result.values():
        mem = r["memory"]
        assert mem["hwm_reset_supported"] is True  # Linux >= 4.0
        assert mem["settings"] == {"cpu_mem_arena": True, "prepacking": True, "mem_pattern": True}
        assert mem["peak_rss_bytes"] == max(mem["peak_rss_bytes_per_process"]) == r["peak_rss_bytes"]
        for p in r["per_process"]:
            m = p["memory"]
            base = m["baseline"]["vmrss_bytes"]
            for phase in ("load", "first_run", "warmup", "steady"):
                ph = m[phase]
                assert ph["peak_rss_bytes"] >= ph["rss_bytes"] > 0
                assert ph["peak_above_baseline_bytes"] == ph["peak_rss_bytes"] - base
                # the kernel splits RSS exactly into anonymous, file-backed and shared memory
                assert ph["rss_anon_bytes"] + ph["rss_file_bytes"] + ph["rss_shmem_bytes"] == ph["rss_bytes"]
            assert m["load"]["peak_above_baseline_bytes"] > 0  # the session holds the weights
            assert m["peak_rss_bytes"] == max(m[ph]["peak_rss_bytes"] for ph in ("load", "first_run", "warmup", "steady"))


def test_arena_and_prepacking_settings_reach_the_child(tiny_model):
    settings = BenchSettings(prompt_lengths=(4,), decode_context=4, warmup_min_runs=0, warmup_min_seconds=0, min_runs=2,
                             min_seconds=0, max_seconds=5, processes=1, cpu_mem_arena=False, prepacking=False, cv_limit=100.0)
    r = measure_variants([("a", tiny_model)], SESSION, settings, log=lambda _: None)["a"]
    assert r["memory"]["settings"] == {"cpu_mem_arena": False, "prepacking": False, "mem_pattern": True}
    assert r["protocol"]["session"]["cpu_mem_arena"] is False and r["protocol"]["session"]["prepacking"] is False


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


def _fake_result(pid: int, noisy: bool) -> dict:
    samples = [1.0, 1.0, 1.0, 5.0] if noisy else [1.0, 1.01, 0.99, 1.0]
    mem_phase = {"peak_rss_bytes": 200, "peak_above_baseline_bytes": 100, "rss_bytes": 150, "rss_anon_bytes": 100,
                 "rss_file_bytes": 50, "rss_shmem_bytes": 0, "peak_is_phase_only": True}
    return {
        "pid": pid, "wall_s": 0.1, "load_ms": 5.0, "first_run_ms": 2.0, "first_run_prompt_tokens": 4,
        "phases": {"prefill_4": {"kind": "prefill", "prompt_tokens": 4, "samples_ms": samples, "warmup_runs": 1,
                                 "warmup_ms": 1.0, "capped": False},
                   "decode": {"kind": "decode", "context_tokens": 4, "samples_ms": [1.0, 1.0, 1.01, 0.99],
                              "warmup_runs": 1, "warmup_ms": 1.0, "capped": False}},
        "memory": {"baseline": {"vmrss_bytes": 100}, **{p: dict(mem_phase) for p in ("load", "first_run", "warmup", "steady")},
                   "peak_rss_bytes": 200, "peak_above_baseline_bytes": 100, "hwm_reset_supported": True},
        "session_settings": {"cpu_mem_arena": True, "prepacking": True, "mem_pattern": True},
        "providers_used": ["CPUExecutionProvider"], "vocab_size": 10, "vocab_source": "test", "torch_imported": False,
    }


def test_noisy_run_is_retried_once_then_marked_unstable():
    settings = BenchSettings(prompt_lengths=(4,), decode_context=4, processes=2, cv_limit=0.2)
    # variant "a": first attempt of each process noisy, re-run clean -> retried, stable.
    # variant "b": every attempt noisy -> unstable after exactly one retry per process.
    script = {"a": iter([True, False, True, False]), "b": iter([True, True, True, True])}
    calls: list[str] = []

    def fake_child(name, request, timeout_s):
        calls.append(name)
        return _fake_result(len(calls), next(script[name]))

    lines: list[str] = []
    res = measure_variants([("a", Path("a.onnx")), ("b", Path("b.onnx"))], SESSION, settings, log=lines.append,
                           run_child=fake_child)
    assert calls == ["a", "a", "b", "b", "b", "b", "a", "a"]  # one retry per noisy run, order kept
    a, b = res["a"]["stability"], res["b"]["stability"]
    assert a["unstable"] is False and a["retried_processes"] == [0, 1] and a["unstable_runs"] == []
    assert b["unstable"] is True and b["retried_processes"] == [0, 1]
    assert [(u["process"], u["phase"]) for u in b["unstable_runs"]] == [(0, "prefill_4"), (1, "prefill_4")]
    assert all(u["cv"] > 0.2 and u["first_attempt_cv"] > 0.2 for u in b["unstable_runs"])
    assert any("marked unstable" in line for line in lines)
    # only the kept (second) attempt's samples are in the statistics
    assert res["a"]["prefill_ms"]["4"]["samples_per_process"] == [[1.0, 1.01, 0.99, 1.0]] * 2


def test_unknown_provider_raises_input_error(tiny_model):
    session = SessionConfig(providers=("NoSuchExecutionProvider", "CPUExecutionProvider"))
    with pytest.raises(InputError, match="NoSuchExecutionProvider.*available: .*CPUExecutionProvider"):
        measure_variants([("dense", tiny_model)], session, TINY, log=lambda _: None)


def test_broken_model_raises_runtime_error_naming_variant(tmp_path):
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"this is not an onnx model")
    settings = BenchSettings(prompt_lengths=(4,), decode_context=4, warmup_min_runs=0, min_runs=1, min_seconds=0,
                             processes=1, timeout_s=60)
    with pytest.raises(RuntimeError, match="broken-candidate") as info:
        measure_variants([("broken-candidate", bad)], SESSION, settings, log=lambda _: None)
    assert "stderr" in str(info.value) and "Error" in str(info.value)
    with pytest.raises(RuntimeError, match="missing-candidate"):
        measure_variants([("missing-candidate", tmp_path / "nope.onnx")], SESSION, settings, log=lambda _: None)


@pytest.mark.parametrize("kwargs, word", [
    ({"min_runs": 0}, "min_runs"), ({"processes": 0}, "processes"), ({"prompt_lengths": ()}, "prompt_lengths"),
    ({"prompt_lengths": (128, 128)}, "prompt_lengths"), ({"prompt_lengths": (0,)}, "prompt_lengths"),
    ({"cv_limit": 0}, "cv_limit"), ({"min_seconds": 5, "max_seconds": 1}, "max_seconds"),
    ({"decode_context": -1}, "decode_context"),
])
def test_bad_settings(kwargs, word):
    with pytest.raises(InputError, match=word):
        BenchSettings(**kwargs)


def test_duplicate_names(tiny_model):
    with pytest.raises(InputError, match="unique"):
        measure_variants([("a", tiny_model), ("a", tiny_model)], SESSION, TINY, log=lambda _: None)


def test_summarize_percentiles_and_process_figures():
    s = summarize([[1.0, 2.0, 3.0], [4.0, 10.0]])
    assert s["p50"] == 3.0 and s["n"] == 5 and s["min"] == 1.0 and s["max"] == 10.0
    assert s["p95"] == pytest.approx(4.0 + 0.8 * 6.0)  # numpy linear interpolation
    assert s["process_p50s"] == [2.0, 7.0] and s["median_of_process_medians"] == 4.5
    assert s["process_ns"] == [3, 2]
    with pytest.raises(ValueError):
        summarize([[1.0], []])


def _load_child_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_child_under_test", CHILD_SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_timed_loop_needs_count_and_duration():
    child = _load_child_module()
    samples, capped = child.timed_loop(lambda: None, min_runs=50, min_seconds=0.0, max_seconds=10)
    assert len(samples) == 50 and not capped  # count bound
    t0 = time.perf_counter()
    samples, capped = child.timed_loop(lambda: time.sleep(0.001), min_runs=2, min_seconds=0.05, max_seconds=10)
    assert time.perf_counter() - t0 >= 0.05 and len(samples) >= 2 and not capped  # duration bound
    samples, capped = child.timed_loop(lambda: time.sleep(0.02), min_runs=1000, min_seconds=0.0, max_seconds=0.05)
    assert capped and 1 <= len(samples) < 1000  # the cap stops it


def test_child_is_self_contained():
    """bench_child.py imports only numpy, onnxruntime and the standard library (it is copied to devices)."""
    tree = ast.parse(CHILD_SCRIPT.read_text(encoding="utf-8"))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or "").split(".")[0])
    assert imported - set(sys.stdlib_module_names) == {"numpy", "onnxruntime"}


def test_child_runs_as_a_plain_script_and_stdout_is_only_json(tiny_model, tmp_path):
    request = {
        "model_path": str(tiny_model),
        "session": {"providers": ["CPUExecutionProvider"], "intra_op_threads": 1, "graph_optimization": "all",
                    "allow_spinning": False},
        "settings": {"prompt_lengths": [4], "decode_context": 0, "warmup_min_runs": 0, "warmup_min_seconds": 0,
                     "min_runs": 2, "min_seconds": 0, "max_seconds": 5},
    }
    child = tmp_path / "bench_child.py"  # a copy outside the repo, as on a remote device
    child.write_bytes(CHILD_SCRIPT.read_bytes())
    proc = subprocess.run([sys.executable, "-I", str(child)], input=json.dumps(request), capture_output=True, text=True,
                          timeout=60, cwd=tmp_path, check=False)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)  # the whole stdout is one JSON document
    assert out["torch_imported"] is False and len(out["phases"]["decode"]["samples_ms"]) == 2
    assert out["phases"]["decode"]["context_tokens"] == 0 and out["session_settings"]["prepacking"] is True


def test_parse_prompt_lengths():
    from gate.measure.harness import parse_prompt_lengths

    assert parse_prompt_lengths("128,512") == (128, 512) and parse_prompt_lengths(" 64 ") == (64,)
    for bad in ("", "a,b", "0", "128,128", "-5"):
        with pytest.raises(InputError, match="--prompt-lengths"):
            parse_prompt_lengths(bad)


def test_cli_maps_bench_options(monkeypatch):
    from click.testing import CliRunner

    import gate.pipeline as check_mod
    from gate.cli.main import cli

    seen = {}

    def fake_run_check(opts, log):  # stop before any work: only the option mapping is under test
        seen["bench"] = opts.bench
        raise SystemExit(0)

    monkeypatch.setattr(check_mod, "run_check", fake_run_check)
    CliRunner().invoke(cli, ["check", "--prompt-lengths", "16,64", "--decode-context", "32", "--bench-min-runs", "7",
                             "--bench-min-seconds", "0.5", "--bench-processes", "4", "--cv-limit", "0.3"])
    b = seen["bench"]
    assert (b.prompt_lengths, b.decode_context, b.min_runs, b.min_seconds, b.processes, b.cv_limit) == ((16, 64), 32, 7, 0.5, 4, 0.3)
