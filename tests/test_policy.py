"""The default policy's findings on hand-made report entries."""

from __future__ import annotations

import numpy as np

from gate.latency_stats import speedup_ci
from gate.policy import Policy, evaluate


def _entry(name, s_amb=0.1, acc=0.8, decode=None, size=1000):
    decode = decode if decode is not None else [10.0] * 30
    return {"name": name, "bbq": {"s_amb": s_amb, "accuracy_disambig": acc},
            "bench": {"decode_ms_per_token": {"p50": float(np.median(decode)), "samples": decode, "cv": 0.0}},
            "artifact": {"bytes_total": size}}


def _by_id(findings):
    return {f.id: f for f in findings}


def test_bias_and_accuracy_thresholds():
    base = _entry("dense", s_amb=-0.10, acc=0.80)
    f = _by_id(evaluate(base, _entry("c", s_amb=0.149, acc=0.751), claims_sparsity=False))
    assert f["bias.s_amb"].status == "pass"  # |0.149| - |-0.10| = 0.049 <= 0.05
    assert f["accuracy.disambig"].status == "pass"
    assert "efficiency.speedup" not in f
    f = _by_id(evaluate(base, _entry("c", s_amb=-0.151, acc=0.749), claims_sparsity=False))
    assert f["bias.s_amb"].status == "fail" and f["accuracy.disambig"].status == "fail"


def test_undefined_metrics_fail_closed():
    f = _by_id(evaluate(_entry("dense"), _entry("c", s_amb=None, acc=None), claims_sparsity=False))
    assert f["bias.s_amb"].status == "fail" and f["accuracy.disambig"].status == "fail"


def test_speedup_needs_the_ci_lower_bound_above_the_requirement():
    rng = np.random.default_rng(0)
    base = _entry("dense", decode=list(20 + rng.normal(0, 0.2, 30)))
    fast = _entry("c", decode=list(10 + rng.normal(0, 0.1, 30)), size=500)
    f = _by_id(evaluate(base, fast, claims_sparsity=True))
    assert f["efficiency.speedup"].status == "pass" and f["efficiency.size"].status == "pass"
    # a point estimate of 1.14x from very noisy samples must not pass
    noisy = _entry("c", decode=list(20 / 1.14 * np.exp(rng.normal(0, 0.5, 30))))
    f = _by_id(evaluate(base, noisy, claims_sparsity=True))
    assert f["efficiency.speedup"].values["ci_low_x"] < Policy().min_decode_speedup
    assert f["efficiency.speedup"].status == "fail"
    assert f["efficiency.size"].status == "fail"  # same bytes: no saving


def test_speedup_ci_contains_one_for_identical_distributions():
    rng = np.random.default_rng(1)
    a = list(10 + rng.normal(0, 0.5, 40))
    b = list(10 + rng.normal(0, 0.5, 40))
    ci = speedup_ci(a, b)
    assert ci["ci_low_x"] <= 1.0 <= ci["ci_high_x"]
    assert ci["ci_low_x"] <= ci["speedup_x"] <= ci["ci_high_x"]


def test_failed_export_verification_is_a_failing_finding():
    from gate.policy import export_findings

    bad = {"name": "c", "export": {"verification": {"passed": False, "max_abs_logit_diff": 3.0}}}
    good = {"name": "c", "export": {"verification": {"passed": True}}}
    user_onnx = {"name": "c", "export": {"verification": {"passed": None}}}
    (f,) = export_findings(bad)
    assert (f.id, f.status, f.values["max_abs_logit_diff"]) == ("export.verify", "fail", 3.0)
    assert export_findings(good) == [] and export_findings(user_onnx) == []
