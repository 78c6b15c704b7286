"""Paired, interleaved latency comparison with sequential stopping (gate/measure/paired_timing.py, the paired
child mode of gate/runtime/bench_child.py, gate/measure/harness.measure_paired)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gate.measure.harness import BenchSettings, measure_paired
from gate.measure.paired_timing import look, look_alphas, paired_interval, spending
from gate.runtime.errors import InputError
from gate.runtime.ort_decoder import SessionConfig


def _blocks(rng, n, true_ratio, drift, noise=0.02, base_ms=10.0, start=1.0):
    """n ABBA blocks under a load factor that drifts from ``start`` by ``drift`` across them (both sides of a
    block see the same load)."""
    load = start + drift * np.linspace(0, 1, n) + rng.normal(0, 0.01, n)
    a = 2 * base_ms * load * np.exp(rng.normal(0, noise, n))
    b = 2 * base_ms * true_ratio * load * np.exp(rng.normal(0, noise, n))
    return np.stack([a, b], axis=1).tolist()


def test_spending_sums_to_alpha_and_spends_more_early():
    a = look_alphas(8, 0.05)
    assert len(a) == 7 and math.isclose(sum(a), 0.05, rel_tol=1e-12)
    assert all(x > y for x, y in zip(a, a[1:]))  # Pocock-type: concave spending
    assert spending(0.0, 0.05) == 0.0 and math.isclose(spending(1.0, 0.05), 0.05)
    with pytest.raises(ValueError):
        look_alphas(1, 0.05)


def test_pairing_cancels_a_load_drift_that_a_between_process_comparison_reports_as_a_speedup():
    """A/A under load that rises 60 % across the run: interleaved blocks still give ~1.0; timing A in the first
    half and B in the second (what separate processes one after another see) gives a large false slowdown."""
    rng = np.random.default_rng(1)
    procs = [_blocks(rng, 12, 1.0, drift=0.15, start=1.0 + 0.15 * p) for p in range(4)]  # 1.0 -> 1.6 over the run
    iv = paired_interval(procs, 0.05)
    assert 0.97 < iv.ci_low <= iv.speedup <= iv.ci_high < 1.03
    flat = np.concatenate([np.asarray(p) for p in procs])
    half = len(flat) // 2
    unpaired_speedup = float(np.median(flat[:half, 0]) / np.median(flat[half:, 1]))
    assert unpaired_speedup < 0.85  # the drift, reported as if the (identical) candidate were slower


def test_one_process_decides_nothing():
    iv = paired_interval([[[10.0, 5.0], [10.0, 5.1]]], 0.05)
    assert iv.ci_low == 0.0 and iv.ci_high == math.inf and iv.decides(1.1) is None


def test_look_decides_only_the_phases_with_a_margin():
    rng = np.random.default_rng(2)
    procs = [{"decode": _blocks(rng, 10, 0.5, 0.1), "prefill_8": _blocks(rng, 10, 1.0, 0.1)} for _ in range(5)]
    lk = look(procs, 0.01, {"decode": 1.10})
    assert lk.decided == {"decode": "above"} and lk.all_decided
    assert lk.intervals["prefill_8"].ci_low < 1.0 < lk.intervals["prefill_8"].ci_high


def _simulate(true_speedup, margin, rng, k_max=8, alpha=0.05, sd=0.05, naive=False):
    """One sequential run on process-level log ratios ~ N(-log(true), sd); returns the decision or None."""
    alphas = [alpha] * (k_max - 1) if naive else look_alphas(k_max, alpha)
    procs = []
    for k in range(1, k_max + 1):
        m = -math.log(true_speedup) + rng.normal(0, sd)
        procs.append([[10.0, 10.0 * math.exp(m)]])
        if k >= 2:
            d = paired_interval(procs, alphas[k - 2]).decides(margin)
            if d is not None:
                return d
    return None


def test_sequential_rule_keeps_the_error_rate_under_optional_stopping():
    """True speedup exactly at the margin: every decision is an error. With the spending rule the rate stays at
    or below alpha = 5 % (binomial 99.9 % slack on 2000 runs); peeking at a fixed 95 % interval after every
    process (the invalid rule) errs far more often."""
    rng = np.random.default_rng(3)
    n = 2000
    errors = sum(_simulate(1.10, 1.10, rng) is not None for _ in range(n))
    assert errors / n <= 0.05 + 3.1 * math.sqrt(0.05 * 0.95 / n)
    naive = sum(_simulate(1.10, 1.10, rng, naive=True) is not None for _ in range(n))
    assert naive / n > 0.10 and naive > 2 * errors


def test_sequential_rule_decides_clear_cases_early():
    rng = np.random.default_rng(4)
    got = [_simulate(1.0, 1.10, rng, sd=0.02) for _ in range(200)]
    assert sum(g == "below" for g in got) / 200 >= 0.95  # "no real speedup" decided
    got = [_simulate(2.0, 1.10, rng, sd=0.02) for _ in range(200)]
    assert all(g == "above" for g in got)


class _FakeChild:
    """A paired child that draws blocks from a true ratio; counts calls; a fake clock advances per call."""

    def __init__(self, ratios: dict[str, float], seconds_per_child: float = 10.0, sd: float = 0.02):
        self.ratios, self.calls, self.now, self.dt = ratios, [], 0.0, seconds_per_child
        self.rng = np.random.default_rng(5)
        self.sd = sd

    def clock(self) -> float:
        return self.now

    def __call__(self, name, request, timeout_s):
        assert request["mode"] == "paired" and len(request["model_paths"]) == 2
        self.calls.append(name)
        self.now += self.dt
        shift = self.rng.normal(0, self.sd)  # a process-level effect (load time, layout)
        phases = {}
        for ph in ("prefill_8", "decode"):
            blocks = _blocks(self.rng, 6, self.ratios[name] * math.exp(shift), drift=0.3)
            phases[ph] = {"blocks": blocks, "orders": ["ABBA"] * 6, "capped": False}
        return {"pid": len(self.calls), "load_ms": [1.0, 1.0], "load_order": [0, 1], "load_average_1m": [3.0, 3.1],
                "wall_s": self.dt, "phases": phases, "providers_used": [["CPUExecutionProvider"]] * 2}


SETTINGS = BenchSettings(prompt_lengths=(8,), decode_context=8, max_processes=8)


def test_harness_stops_each_candidate_when_decided_and_records_why():
    child = _FakeChild({"int4": 0.4, "magnitude:0.5": 1.0, "edge": 1 / 1.10})
    out = measure_paired(("dense", "a/model.onnx"), [("int4", "b/model.onnx"), ("magnitude:0.5", "c/model.onnx"),
                                                     ("edge", "d/model.onnx")], SessionConfig(), SETTINGS,
                         margins={n: {"decode": 1.10} for n in ("int4", "magnitude:0.5", "edge")},
                         log=lambda s: None, run_child=child, clock=child.clock)
    assert out["int4"]["stop_reason"] == "decided" and out["int4"]["phases"]["decode"]["decided"] == "above"
    assert out["magnitude:0.5"]["phases"]["decode"]["decided"] == "below"
    assert child.calls.count("int4") < SETTINGS.max_processes  # stopped early
    edge = out["edge"]  # true speedup on the margin: never decided, runs to the cap, says what would decide it
    assert edge["stop_reason"] == "max_processes" and edge["phases"]["decode"]["decided"] is None
    assert child.calls.count("edge") == SETTINGS.max_processes
    assert len(edge["per_process"]) == SETTINGS.max_processes and len(edge["looks"]) == SETTINGS.max_processes - 1
    assert edge["phases"]["prefill_8"]["margin"] is None  # reported, not gated
    assert math.isclose(sum(lk["alpha"] for lk in edge["looks"]), 0.05, rel_tol=1e-9)


def test_harness_budget_stops_undecided_candidates_after_at_least_two_processes():
    child = _FakeChild({"edge": 1 / 1.10}, seconds_per_child=30.0)
    settings = BenchSettings(prompt_lengths=(8,), decode_context=8, max_processes=8, budget_s=70.0)
    out = measure_paired(("dense", "a/model.onnx"), [("edge", "b/model.onnx")], SessionConfig(), settings,
                         margins={"edge": {"decode": 1.10}}, log=lambda s: None, run_child=child, clock=child.clock)
    assert out["edge"]["stop_reason"] == "budget" and len(child.calls) == 2
    assert out["edge"]["phases"]["decode"]["processes_needed"] is None or \
        out["edge"]["phases"]["decode"]["processes_needed"] >= 2


def test_settings_refuse_a_single_process_and_a_bad_budget():
    with pytest.raises(InputError, match="must be >= 2"):
        BenchSettings(max_processes=1)
    with pytest.raises(InputError, match="--bench-budget"):
        BenchSettings(budget_s=float("nan"))


def test_real_paired_child_times_both_models_in_one_process(tiny_onnx_dir):
    """A/A on the tiny export through the real child: blocks for every phase, both orders used, and a speedup
    interval around 1 (no absolute time is asserted)."""
    settings = BenchSettings(prompt_lengths=(8,), decode_context=8, warmup_min_runs=1, warmup_min_seconds=0,
                             min_blocks=8, min_seconds=0, max_processes=3)
    model = tiny_onnx_dir / "model.onnx"
    out = measure_paired(("dense", model), [("same", model)], SessionConfig(), settings,
                         margins={"same": {"decode": 1.10}}, log=lambda s: None)["same"]
    assert out["protocol"] == "paired-interleaved" and set(out["phases"]) == {"prefill_8", "decode"}
    proc = out["per_process"][0]
    assert len(proc["phases"]["decode"]["blocks"]) >= 8
    assert set().union(*(set(p["phases"]["decode"]["orders"]) for p in out["per_process"])) <= {"ABBA", "BAAB"}
    d = out["phases"]["decode"]
    assert d["ci_low"] <= d["speedup"] <= d["ci_high"] and 0.5 < d["speedup"] < 2.0
