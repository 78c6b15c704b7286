"""A/A check: the same dense artifact measured as both variants through the full protocol.

Two identical artifacts must not look different: the decode and prefill speedup CIs contain 1.0,
the memory saving is ~0, the storage saving is exactly 0, and the gate's own checks (the real decision code)
never credit the candidate with a speedup or a saving. If
interleaving, fresh processes or the across-process intervals were broken (e.g. intervals from
pooled samples of one process), this check is the one that catches it on a noisy machine.
Settings are kept small (tiny model, short loops) so the test runs in about 20 s; 5 processes per variant
are the fewest with which a 95 % interval across processes is meaningful (see gate.measure.latency_stats).
"""

from __future__ import annotations

from pathlib import Path

from exporters.artifact import describe_artifact
from gate.measure.harness import BenchSettings, measure_variants
from gate.measure.efficiency import budget_facts, efficiency_metrics
from gate.runtime.ort_decoder import SessionConfig
from gate.policy.decision import evaluate_checks
from gate.policy.file import load_policy

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

    # the real decision code (gate.policy.decision, default policy) on the A/A pair, the candidate claiming 50%
    # sparsity: it cannot be faster or smaller than itself, so neither check may PASS, and the speedup interval
    # that the check judges contains 1.0
    base["role"], cand["role"] = "baseline", "candidate"
    cand.update(claims_sparsity=True, compression={"method": "magnitude", "claimed_sparsity": 0.5, "quantization": None})
    results = {(r.id, r.variant): r for r in evaluate_checks({"variants": [base, cand], "profile": {}}, load_policy(None))}
    speed = results[("efficiency.speedup", "dense-again")]
    assert speed.status in ("fail", "inconclusive"), speed
    assert speed.ci_low <= 1.0 <= speed.ci_high, speed
    size = results[("efficiency.size", "dense-again")]
    assert size.status == "fail" and size.estimate == 0.0, size
    assert results[("efficiency.memory", "dense-again")].status != "pass"
    assert all(r.status == "skipped" for (cid, v), r in results.items() if v == "dense" and cid.startswith("efficiency"))

    # the same artifact has the same budget facts on both sides (memory within 2 %)
    fb, fc = budget_facts(base, {"ram_budget_bytes": 0}), budget_facts(cand, {"ram_budget_bytes": 0})
    assert fb["storage"]["bytes"] == fc["storage"]["bytes"] == artifact["bytes_total"]
    assert abs(fb["ram"]["peak_rss_bytes"] / fc["ram"]["peak_rss_bytes"] - 1) < 0.02
