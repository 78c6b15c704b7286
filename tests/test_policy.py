"""gate/policy.py, the compatibility layer: re-exports of the policy engine, and the legacy point-estimate findings
that other modules' tests still call. The gate's own decisions are tested in test_decision.py / test_policy_file.py."""

from __future__ import annotations

from gate import decision, policy_file
from gate.policy import Policy, decide, evaluate, evaluate_checks, export_findings, load_policy


def _entry(name, s_amb=0.1, acc=0.8):
    return {"name": name, "bbq": {"s_amb": s_amb, "accuracy_disambig": acc}}


def _by_id(findings):
    return {f.id: f for f in findings}


def test_reexports_are_the_engine():
    assert (decide, evaluate_checks, load_policy) == (decision.decide, decision.evaluate_checks, policy_file.load_policy)


def test_legacy_bias_and_accuracy_thresholds():
    base = _entry("dense", s_amb=-0.10, acc=0.80)
    f = _by_id(evaluate(base, _entry("c", s_amb=0.149, acc=0.751), claims_sparsity=False))
    assert f["bias.s_amb"].status == "pass"  # |0.149| - |-0.10| = 0.049 <= 0.05
    assert f["accuracy.disambig"].status == "pass"
    assert "efficiency.speedup" not in f
    f = _by_id(evaluate(base, _entry("c", s_amb=-0.151, acc=0.749), claims_sparsity=False))
    assert f["bias.s_amb"].status == "fail" and f["accuracy.disambig"].status == "fail"
    assert Policy().max_abs_s_amb_increase == 0.05


def test_legacy_undefined_metrics_fail_closed():
    f = _by_id(evaluate(_entry("dense"), _entry("c", s_amb=None, acc=None), claims_sparsity=False))
    assert f["bias.s_amb"].status == "fail" and f["accuracy.disambig"].status == "fail"


def test_failed_export_verification_is_a_failing_finding():
    bad = {"name": "c", "export": {"verification": {"passed": False, "max_abs_logit_diff": 3.0}}}
    good = {"name": "c", "export": {"verification": {"passed": True}}}
    user_onnx = {"name": "c", "export": {"verification": {"passed": None}}}
    (f,) = export_findings(bad)
    assert (f.id, f.status, f.values["max_abs_logit_diff"]) == ("export.verify", "fail", 3.0)
    assert export_findings(good) == [] and export_findings(user_onnx) == []
