"""gate.measure.efficiency and the across-process intervals of gate.measure.latency_stats, on synthetic bench entries."""

from __future__ import annotations

import numpy as np
import pytest

from gate.measure.efficiency import (
    budget_facts,
    efficiency_metrics,
    latency_against_budgets,
    latency_budgets,
    storage_saving,
)
from gate.measure.latency_stats import (
    hierarchical_bootstrap,
    ratio_ci_across_processes,
    summarize,
    value_ci_across_processes,
)
from hardware_profiles import HardwareProfile


def _bench(decode_pp, prefill_pp=None, peaks_above=None, peaks=None, unstable=()):
    """A bench entry shaped like gate.measure.harness.measure_variants output."""
    prefill_pp = prefill_pp or {"128": decode_pp}
    n = len(decode_pp)
    peaks_above = peaks_above or [100_000_000] * n
    peaks = peaks or [p + 50_000_000 for p in peaks_above]
    return {
        "decode_ms_per_token": {"context_tokens": 512, **summarize(decode_pp)},
        "prefill_ms": {k: {"prompt_tokens": int(k), **summarize(v)} for k, v in prefill_pp.items()},
        "memory": {"peak_rss_bytes": max(peaks), "peak_rss_bytes_per_process": peaks,
                   "peak_above_baseline_bytes": float(np.median(peaks_above)),
                   "peak_above_baseline_bytes_per_process": peaks_above},
        "stability": {"unstable_runs": [{"process": 0, "phase": ph, "cv": 0.5, "first_attempt_cv": 0.5} for ph in unstable]},
    }


def _pp(center, processes=5, n=40, noise=0.03, between=0.03, seed=0):
    """Per-process latency samples: each process has its own level (between-process spread) plus noise."""
    rng = np.random.default_rng(seed)
    return [list(center * (1 + rng.normal(0, between)) * np.exp(rng.normal(0, noise, n))) for _ in range(processes)]


def test_faster_candidate_has_a_speedup_ci_above_one():
    base = {"bench": _bench(_pp(20.0, seed=1)), "artifact": {"bytes_total": 1000}}
    cand = {"bench": _bench(_pp(10.0, seed=2), peaks_above=[50_000_000] * 5), "artifact": {"bytes_total": 400}}
    m = efficiency_metrics(base, cand)
    d = m["decode_speedup"]
    assert 1.7 < d["speedup_x"] < 2.3 and 1.0 < d["ci_low_x"] <= d["speedup_x"] <= d["ci_high_x"]
    assert d["context_tokens"] == 512 and d["unstable"] is False and d["n_processes_baseline"] == 5
    assert set(m["prefill_speedup"]) == {"128"} and m["prefill_speedup"]["128"]["ci_low_x"] > 1.0
    assert m["memory_saving"]["saving_fraction"] == pytest.approx(0.5)
    assert m["memory_saving"]["ci_low"] == pytest.approx(0.5) == m["memory_saving"]["ci_high"]  # constant memory
    assert m["storage_saving"] == {"saving_fraction": 0.6, "baseline_bytes": 1000, "candidate_bytes": 400,
                                   "source": "artifact.bytes_total"}


def test_identical_distributions_give_a_ci_around_one():
    base, cand = {"bench": _bench(_pp(10.0, seed=3))}, {"bench": _bench(_pp(10.0, seed=4))}
    d = efficiency_metrics(base, cand)["decode_speedup"]
    assert d["ci_low_x"] <= 1.0 <= d["ci_high_x"]


def test_between_process_spread_widens_the_interval():
    """One slow process must widen the CI: intervals from pooled samples would ignore it."""
    steady = _pp(10.0, between=0.0, seed=5)
    spread = [list(np.asarray(p) * f) for p, f in zip(_pp(10.0, between=0.0, seed=6), [0.8, 0.9, 1.0, 1.1, 1.25])]
    narrow = ratio_ci_across_processes(steady, _pp(10.0, between=0.0, seed=7))
    wide = ratio_ci_across_processes(steady, spread)
    assert (wide["ci_high"] - wide["ci_low"]) > 3 * (narrow["ci_high"] - narrow["ci_low"])


def test_unstable_phase_is_propagated():
    base = {"bench": _bench(_pp(10.0, seed=8), unstable=("decode",))}
    cand = {"bench": _bench(_pp(10.0, seed=9))}
    m = efficiency_metrics(base, cand)
    assert m["decode_speedup"]["unstable"] is True and m["prefill_speedup"]["128"]["unstable"] is False


def test_storage_prefers_size_bytes_on_disk_and_missing_parts_are_none():
    b = {"size": {"bytes_on_disk": 2000}, "artifact": {"bytes_total": 1}}
    c = {"size": {"bytes_on_disk": 1500}, "artifact": {"bytes_total": 1}}
    assert storage_saving(b, c)["saving_fraction"] == 0.25 and storage_saving(b, c)["source"] == "size.bytes_on_disk"
    m = efficiency_metrics(b, c)  # no bench (e.g. a partial report)
    assert m["decode_speedup"] is None and m["memory_saving"] is None and m["storage_saving"]["candidate_bytes"] == 1500
    assert storage_saving({}, c) is None


def test_budget_facts_against_profile_object_and_dict():
    entry = {"bench": _bench(_pp(10.0, seed=10), peaks=[400_000_000, 410_000_000, 405_000_000, 402_000_000, 401_000_000]),
             "size": {"bytes_on_disk": 300_000_000}}
    profile = HardwareProfile(name="dev", description="d", arch="aarch64", threads=4, execution_providers=("CPUExecutionProvider",),
                              ram_budget_bytes=405_000_000, storage_budget_bytes=500_000_000)
    f = budget_facts(entry, profile)
    assert f["storage"] == {"bytes": 300_000_000, "source": "size.bytes_on_disk", "budget_bytes": 500_000_000, "over_budget": False}
    assert f["ram"]["peak_rss_bytes"] == 410_000_000 and f["ram"]["over_budget"] is True  # the worst process counts
    assert f["ram"]["ci_low"] <= f["ram"]["peak_rss_bytes_median"] <= f["ram"]["ci_high"]
    assert f["latency"] == []  # no latency budget
    # latency budgets: clearly over, clearly within, and straddling (inconclusive)
    samples = entry["bench"]["decode_ms_per_token"]["samples_per_process"]
    ref = value_ci_across_processes(samples, q=90.0, n_resamples=4000, seed=2)
    lo, hi, p90 = ref["ci_low"], ref["ci_high"], ref["value"]

    def decode_p90(budget):
        facts = budget_facts(entry, {"latency_budgets": {"decode_p90_ms_per_token_max": budget}})["latency"]
        assert len(facts) == 1 and facts[0]["percentile"] == 90 and facts[0]["value_ms"] == pytest.approx(p90)
        return facts[0]

    assert decode_p90(lo * 0.9)["over_budget"] is True
    assert decode_p90(hi * 1.1)["over_budget"] is False
    assert decode_p90(p90)["over_budget"] is None
    # a p50 budget is judged on the p50
    t = budget_facts(entry, {"latency_budgets": {"decode_p50_ms_per_token_max": 1.0}})["latency"][0]
    assert t["percentile"] == 50 and t["budget_key"] == "latency_budgets.decode_p50_ms_per_token_max"
    assert t["over_budget"] is True and t["value_ms"] < p90
    g = budget_facts(entry, {"storage_budget_bytes": 100, "latency_budgets": {"prefill_p95_ms_max": 1e6}})
    assert g["storage"]["over_budget"] is True and g["ram"]["over_budget"] is None
    assert [(x["label"], x["tokens"], x["over_budget"]) for x in g["latency"]] == [("prefill 128 p95", 128, False)]


def test_latency_budgets_reads_every_percentile_of_both_phases():
    profile = HardwareProfile(name="dev", description="d", arch="aarch64", threads=4,
                              execution_providers=("CPUExecutionProvider",),
                              latency_budgets={"prefill_p50_ms_max": 900.0, "decode_p90_ms_per_token_max": 250.0,
                                               "decode_p50_ms_per_token_max": 200.0})
    assert [(b.phase, b.percentile, b.budget_ms, b.key) for b in latency_budgets(profile)] == [
        ("decode", 50.0, 200.0, "latency_budgets.decode_p50_ms_per_token_max"),
        ("decode", 90.0, 250.0, "latency_budgets.decode_p90_ms_per_token_max"),
        ("prefill", 50.0, 900.0, "latency_budgets.prefill_p50_ms_max")]
    assert latency_budgets(profile.to_dict(), "prefill") == latency_budgets(profile, "prefill")
    assert latency_budgets({"latency_budgets": {}}) == [] and latency_budgets({}) == []
    with pytest.raises(ValueError, match="bench.decode_ms_per_token.samples_per_process"):
        latency_against_budgets({}, profile)


def test_hierarchical_bootstrap_basics():
    rng = np.random.default_rng(0)
    est, reps = hierarchical_bootstrap([[1.0, 2.0, 3.0], [10.0, 11.0, 12.0], [5.0]], rng=rng, n_resamples=500)
    assert est == 5.0 and reps.shape == (500,) and reps.min() >= 1.0 and reps.max() <= 12.0
    v = value_ci_across_processes([[3.0], [3.0]], q=90)
    assert v["value"] == v["ci_low"] == v["ci_high"] == 3.0
    with pytest.raises(ValueError):
        ratio_ci_across_processes([[1.0]], [[0.0]])
    with pytest.raises(ValueError):
        ratio_ci_across_processes([], [[1.0]])
