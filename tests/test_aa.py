"""A/A check: the same dense artifact measured as both variants through the full protocol.

Two identical artifacts must not look different: the decode and prefill speedup CIs contain 1.0,
the memory saving is ~0, the storage saving is exactly 0, and no efficiency finding is raised. If
interleaving, fresh processes or the across-process intervals were broken (e.g. intervals from
pooled samples of one process), this check is the one that catches it on a noisy machine.
Settings are kept small (tiny model, short loops) so the test runs in about 20 s; 5 processes per variant
are the fewest with which a 95 % interval across processes is meaningful (see gate.latency_stats).
"""

from __future__ import annotations

from pathlib import Path

from exporters.artifact import describe_artifact
from gate.bench import BenchSettings, measure_variants
from gate.efficiency import budget_facts, efficiency_metrics
from gate.ort_decoder import SessionConfig
from gate.policy import evaluate

AA = BenchSettings(prompt_lengths=(8, 32), decode_context=16, warmup_min_runs=2, warmup_min_seconds=0.02,
                   min_runs=15, min_seconds=0.1, max_seconds=10, processes=5, cv_limit=100.0, timeout_s=120)


def test_dense_against_itself_shows_no_difference(tiny_onnx_dir):
    model = Path(tiny_onnx_dir) / "model.onnx"
    bench = measure_variants([("dense", model), ("dense-again", model)],
                             SessionConfig(providers=("CPUExecutionProvider",), intra_op_threads=1), AA, log=lambda _: None)
    artifact = describe_artifact(Path(tiny_onnx_dir))
    base = {"name": "dense", "bench": bench["dense"], "artifact": artifact}
    cand = {"name": "dense-again", "bench": bench["dense-again"], "artifact": artifact}

    m = efficiency_metrics(base, cand)
    speedups = [m["decode_speedup"], *m["prefill_speedup"].values()]
    assert len(speedups) == 3
    for s in speedups:
        assert s["n_processes_baseline"] == s["n_processes_candidate"] == AA.processes
        assert s["ci_low_x"] <= 1.0 <= s["ci_high_x"], s
        assert s["ci_low_x"] <= s["speedup_x"] <= s["ci_high_x"]
    mem = m["memory_saving"]
    assert abs(mem["saving_fraction"]) < 0.02 and -0.05 < mem["ci_low"] <= mem["ci_high"] < 0.05, mem
    assert m["storage_saving"]["saving_fraction"] == 0.0

    # no efficiency finding from the current policy (A/A is not a compressed candidate)
    base["bbq"] = cand["bbq"] = {"s_amb": 0.0, "accuracy_disambig": 1.0}
    findings = evaluate(base, cand, claims_sparsity=False)
    assert not [f for f in findings if f.id.startswith("efficiency")]
    assert all(f.status == "pass" for f in findings)

    # the same artifact has the same budget facts on both sides (memory within 2 %)
    fb, fc = budget_facts(base, {"ram_budget_bytes": 0}), budget_facts(cand, {"ram_budget_bytes": 0})
    assert fb["storage"]["bytes"] == fc["storage"]["bytes"] == artifact["bytes_total"]
    assert abs(fb["ram"]["peak_rss_bytes"] / fc["ram"]["peak_rss_bytes"] - 1) < 0.02
