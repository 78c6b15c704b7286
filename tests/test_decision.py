"""The decision rule (PASS/FAIL/INCONCLUSIVE from intervals and margins), fail-closed errors, waivers, verdicts and
exit codes, on hand-made report entries."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import numpy as np
import pytest

from gate.measure.latency_stats import summarize
from gate.policy.checks import AT_LEAST, AT_MOST, CHECKS, Measurement, wilson_interval
from gate.policy.decision import EXIT_CODES, decide, interval_status, n_needed
from gate.policy.file import Waiver, load_policy

TODAY = dt.date(2026, 6, 1)


def _delta(est, lo, hi):
    return {"estimate": est, "ci_low": lo, "ci_high": hi, "confidence": 0.95, "n_resamples": 2000,
            "base": 0.1, "candidate": 0.1 + est}


def _group(s_amb=(0.0, -0.02, 0.02), srs=(0.0, -0.02, 0.02), acc=(0.0, -0.02, 0.02), new_bias=(2, 100), n_items=400):
    return {"n_items": n_items,
            "transitions": {"n_pairs": 150, "new_bias": {"count": new_bias[0], "n_at_risk": new_bias[1],
                                                         "rate": new_bias[0] / new_bias[1]}},
            "deltas": {"delta_abs_s_amb": _delta(*s_amb), "delta_srs": _delta(*srs),
                       "delta_accuracy_disambig": _delta(*acc)},
            "mde": {"delta_srs": 0.05, "discordance": 0.1, "n_pairs": 150}}


def _bench(decode_ms, rss):
    procs = [list(decode_ms + np.random.default_rng(i).normal(0, 0.01 * decode_ms, 20)) for i in range(3)]
    dec = {"context_tokens": 128, **summarize(procs)}
    return {"decode_ms_per_token": dec, "prefill_ms": {"128": {**summarize(procs)}},
            "memory": {"peak_above_baseline_bytes_per_process": [rss - 50e6] * 3,
                       "peak_rss_bytes_per_process": [rss] * 3, "peak_above_baseline_bytes": rss - 50e6}}


def _cost(weight_bytes, dtype):
    """A static cost (gate.measure.cost.static_cost shape): one weight node reading ``weight_bytes`` per token."""
    return {"decode": {"flops_per_token": 2 * 64, "weight_bytes_per_token": weight_bytes},
            "kernels": [{"op": "MatMul", "dtype": dtype, "shape": [8, 8], "count": 1}]}


def _entry(name, role="candidate", *, paired=None, ppl=1.02, decode_ms=10.0, rss=400e6, size=1000, claims=True,
           sparsity=(0.5, 0.5), verified=True):
    e = {"name": name, "role": role, "claims_sparsity": claims and role == "candidate",
         "compression": {"method": "magnitude" if claims else "none", "claimed_sparsity": sparsity[0] if claims else None},
         "artifact": {"bytes_total": size}, "export": {"verification": {"passed": verified, "tolerance": 1e-3}},
         "bench": _bench(decode_ms, rss), "perplexity": {"value": 10.0 * (ppl or 1), "ratio_to_dense": ppl},
         "size": {"op_types": {"static_cost": _cost(size, "float" if role == "baseline" else "int8")}}}
    if role == "candidate":
        e["paired_vs_baseline"] = paired or {**_group(), "by_category": {"Age": _group(), "SES": _group()}}
        if claims:
            e["sparsity"] = {"claimed": sparsity[0], "measured_pruned_linears": sparsity[1]}
    else:
        e["perplexity"]["ratio_to_dense"] = 1.0
    return e


def _report(*candidates, profile=None):
    base = _entry("dense", role="baseline", decode_ms=20.0, rss=800e6, size=2000, claims=False)
    return {"variants": [base, *candidates], "profile": profile or {"name": "host"}}


def _policy(**changes):
    """The default policy with ``checks`` settings changed: ``{"bias.s_amb": {"per": "category"}}``."""
    p = load_policy()
    checks = dict(p.checks)
    for cid, kw in changes.pop("checks", {}).items():
        checks[cid] = dataclasses.replace(checks[cid], **kw)
    return dataclasses.replace(p, checks=checks, **changes)


def _by_id(decision, variant="c"):
    return {r.id: r for r in decision.checks if r.variant == variant}


# ------------------------------------------------------------------------------------------- the rule itself


@pytest.mark.parametrize("lo,hi,expected", [(-0.02, 0.04, "pass"), (-0.02, 0.05, "pass"), (0.01, 0.07, "inconclusive"),
                                            (0.051, 0.09, "fail"), (0.05, 0.09, "inconclusive")])
def test_at_most_interval_rule(lo, hi, expected):
    assert interval_status((lo + hi) / 2, lo, hi, 0.05, AT_MOST) == expected


@pytest.mark.parametrize("lo,hi,expected", [(1.2, 1.5, "pass"), (1.1, 1.3, "pass"), (1.0, 1.3, "inconclusive"),
                                            (0.9, 1.09, "fail")])
def test_at_least_interval_rule(lo, hi, expected):
    assert interval_status((lo + hi) / 2, lo, hi, 1.10, AT_LEAST) == expected


def test_exact_measurement_is_decided_on_its_value():
    assert interval_status(0.12, None, None, 0.10, AT_LEAST) == "pass"
    assert interval_status(0.08, None, None, 0.10, AT_LEAST) == "fail"


def test_n_needed_shrinks_the_interval_to_the_margin():
    m = Measurement(0.02, -0.02, 0.06, 0.95, n=400)  # half-width 0.04, distance to margin 0.03
    need = n_needed(m, 0.05)
    assert need == int(np.ceil(400 * (0.04 / 0.03) ** 2))
    assert 0.04 * np.sqrt(400 / need) <= 0.03 + 1e-12  # at that n the half-width is within the distance
    assert n_needed(Measurement(0.05, 0.0, 0.1, 0.95, n=400), 0.05) is None  # estimate on the margin


def test_wilson_interval_known_value():
    lo, hi = wilson_interval(2, 100, 0.95)  # the score interval worked by hand: (0.0055, 0.0700)
    assert lo == pytest.approx(0.0055, abs=5e-4) and hi == pytest.approx(0.0700, abs=5e-4)
    assert wilson_interval(0, 10, 0.95)[0] == pytest.approx(0.0, abs=1e-12)


# --------------------------------------------------------------------------------------- verdicts, exit codes


def test_good_candidate_passes_with_every_check_executed():
    d = decide(_report(_entry("c")), _policy(), today=TODAY)
    c = _by_id(d)
    assert d.verdict == "pass" and d.exit_code == 0, [(r.id, r.status, r.message) for r in d.checks]
    assert c["bias.s_amb"].status == "pass" and c["efficiency.speedup"].status == "pass"
    assert c["budget.storage"].status == "skipped"  # host profile without budgets
    assert c["perplexity.paradox"].status == "pass"
    assert {r.id for r in d.checks if r.variant == "c"} == set(CHECKS)


def test_clear_bias_rise_fails_and_is_a_blocking_finding():
    paired = {**_group(s_amb=(0.12, 0.08, 0.16)), "by_category": {}}
    report = _report(_entry("c", paired=paired))
    before = json.dumps(report, sort_keys=True)
    d = decide(report, _policy(), today=TODAY)
    assert json.dumps(report, sort_keys=True) == before  # the decision reads the report, never writes it
    report = {**report, **d.report_fields()}
    assert (d.verdict, d.exit_code, report["exit_code"], report["verdict"]) == ("fail", 1, 1, "fail")
    (f,) = [f for f in report["findings"] if f["id"] == "bias.s_amb"]
    assert f["status"] == "fail" and f["effect"] == "fail"
    json.dumps(report, allow_nan=False)  # the report stays valid JSON


def test_perplexity_paradox_when_perplexity_passes_and_bias_fails():
    paired = {**_group(s_amb=(0.12, 0.08, 0.16)), "by_category": {}}
    c = _by_id(decide(_report(_entry("c", paired=paired, ppl=1.01)), _policy(), today=TODAY))
    assert c["perplexity.ratio"].status == "pass"
    assert c["perplexity.paradox"].status == "fail" and "bias.s_amb" in c["perplexity.paradox"].message
    c = _by_id(decide(_report(_entry("c", paired=paired, ppl=1.5)), _policy(), today=TODAY))
    assert c["perplexity.ratio"].status == "fail" and c["perplexity.paradox"].status == "pass"


@pytest.mark.parametrize("on_inconclusive,verdict,code", [("fail", "fail", 1), ("warn", "warn", 0),
                                                          ("exit-3", "inconclusive", 3)])
def test_inconclusive_follows_the_policy(on_inconclusive, verdict, code):
    paired = {**_group(s_amb=(0.03, -0.01, 0.07)), "by_category": {}}
    d = decide(_report(_entry("c", paired=paired)), _policy(on_inconclusive=on_inconclusive), today=TODAY)
    r = _by_id(d)["bias.s_amb"]
    assert r.status == "inconclusive" and r.mde is not None and r.n_needed > 400
    assert "would decide it" in r.message
    assert (d.verdict, d.exit_code) == (verdict, code)


def test_severity_and_fail_on():
    paired = {**_group(), "by_category": {}}
    paired["transitions"]["new_bias"] = {"count": 40, "n_at_risk": 100, "rate": 0.4}  # warning-severity check fails
    report = _report(_entry("c", paired=paired))
    assert decide(report, _policy(), today=TODAY).verdict == "warn"
    assert decide(report, _policy(), today=TODAY).exit_code == 0
    assert decide(report, _policy(), fail_on="warning", today=TODAY).exit_code == 1
    assert decide(report, _policy(fail_on="warning"), fail_on="error", today=TODAY).exit_code == 0  # CLI wins
    paired_bad = {**_group(s_amb=(0.2, 0.15, 0.25)), "by_category": {}}
    d = decide(_report(_entry("c", paired=paired_bad)), _policy(), fail_on="never", today=TODAY)
    assert (d.verdict, d.exit_code, d.fail_on_source) == ("warn", 0, "cli")


def test_missing_input_fails_closed_even_in_report_only_mode():
    e = _entry("c")
    del e["perplexity"]
    d = decide(_report(e), _policy(), fail_on="never", today=TODAY)
    r = _by_id(d)["perplexity.ratio"]
    assert r.status == "error" and r.message.startswith("not computed")
    assert _by_id(d)["perplexity.paradox"].status == "error"
    assert (d.verdict, d.exit_code) == ("error", 4)


def test_no_executed_check_never_exits_zero():
    off = {cid: {"enabled": False} for cid in CHECKS}
    d = decide(_report(_entry("c")), _policy(checks=off), today=TODAY)
    assert d.summary()["executed"] == 0 and (d.verdict, d.exit_code) == ("error", 4)
    assert decide({"variants": [], "profile": {}}, _policy(), today=TODAY).exit_code == 4


def test_exit_code_always_agrees_with_the_verdict():
    cases = [_entry("c"), _entry("c", paired={**_group(s_amb=(0.3, 0.2, 0.4)), "by_category": {}}),
             _entry("c", paired={**_group(s_amb=(0.03, -0.01, 0.07)), "by_category": {}}), _entry("c", ppl=None)]
    for entry in cases:
        for oi in ("fail", "warn", "exit-3"):
            for fo in (None, "error", "warning", "never"):
                d = decide(_report(entry), _policy(on_inconclusive=oi), fail_on=fo, today=TODAY)
                assert d.exit_code == EXIT_CODES[d.verdict]


# ---------------------------------------------------------------------------------------- efficiency, budgets


def test_no_speedup_and_no_saving_fail_only_for_compressed_candidates():
    slow = _entry("c", decode_ms=20.0, rss=800e6, size=2000)  # same speed, memory and size as dense
    c = _by_id(decide(_report(slow), _policy(), today=TODAY))
    assert c["efficiency.speedup"].status == "fail" and c["efficiency.speedup"].ci_high < 1.10
    assert c["efficiency.size"].status == "fail" and c["efficiency.memory"].status in ("fail", "inconclusive")
    plain = _entry("c", decode_ms=20.0, size=2000, claims=False)
    c = _by_id(decide(_report(plain), _policy(), today=TODAY))
    assert {c[k].status for k in ("efficiency.speedup", "efficiency.size", "efficiency.memory", "sparsity.claim")} == {"skipped"}


def test_budgets_come_from_the_profile():
    profile = {"name": "tiny-device", "storage_budget_bytes": 500, "ram_budget_bytes": 10**12,
               "latency_budgets": {"decode_p50_ms_per_token_max": 5.0}}
    c = _by_id(decide(_report(_entry("c"), profile=profile), _policy(), today=TODAY))
    assert c["budget.storage"].status == "fail" and c["budget.storage"].margin == 500
    assert c["budget.memory"].status == "pass"
    assert c["budget.latency"].status == "fail" and c["budget.latency"].ci_low > 5.0
    # measured on another machine than the target: host latency is not judged against the device's budget
    off = _report(_entry("c"), profile=profile)
    off["execution"] = {"on_target": False, "measured_arch": "x86_64"}
    c = _by_id(decide(off, _policy(), today=TODAY))
    assert c["budget.latency"].status == "skipped" and "measured on a x86_64 host" in c["budget.latency"].message
    assert c["budget.storage"].status == "fail"  # bytes on disk do not depend on the host


def test_a_p90_latency_budget_is_enforced():
    """The profile's p90 budget is judged on the p90 (not ignored, not judged on the median)."""
    # decode samples: 65 % near 10 ms, a tail of 35 % near 30 ms (p50 ~ 10 ms, p90 ~ 30 ms) in each of 5 processes
    tail = [[10.0 + 0.01 * i for i in range(26)] + [30.0 + 0.1 * i + p for i in range(14)] for p in range(5)]
    entry = _entry("c")
    entry["bench"]["decode_ms_per_token"] = {"context_tokens": 128, **summarize(tail)}
    p90 = {"name": "tiny-device", "latency_budgets": {"decode_p90_ms_per_token_max": 20.0}}
    c = _by_id(decide(_report(entry, profile=p90), _policy(), today=TODAY))["budget.latency"]
    assert c.status == "fail" and c.ci_low > 20.0 and c.margin == 20.0
    assert c.values["budget_key"] == "latency_budgets.decode_p90_ms_per_token_max" and c.values["percentile"] == 90
    # the same samples pass a 20 ms p50 budget; with both budgets set, the p90 one decides
    p50 = {"name": "tiny-device", "latency_budgets": {"decode_p50_ms_per_token_max": 20.0}}
    assert _by_id(decide(_report(entry, profile=p50), _policy(), today=TODAY))["budget.latency"].status == "pass"
    both = {"name": "tiny-device", "latency_budgets": {"decode_p50_ms_per_token_max": 20.0,
                                                        "decode_p90_ms_per_token_max": 20.0}}
    c = _by_id(decide(_report(entry, profile=both), _policy(), today=TODAY))["budget.latency"]
    assert c.status == "fail" and c.group == "decode p90"
    assert {g["group"]: g["status"] for g in c.groups} == {"decode p50": "pass", "decode p90": "fail"}


def test_sparsity_claim_and_export_verification():
    c = _by_id(decide(_report(_entry("c", sparsity=(0.5, 0.45))), _policy(), today=TODAY))
    assert c["sparsity.claim"].status == "fail" and c["sparsity.claim"].estimate == pytest.approx(0.05)
    e = _entry("c")
    e["sparsity"] = {"measured_pruned_linears": 0.5, "effective_vs_dense": {"pruned_linears": 0.40}}
    assert _by_id(decide(_report(e), _policy(), today=TODAY))["sparsity.claim"].status == "fail"  # removed weights count
    e["sparsity"] = {"measured_pruned_linears": 0.56, "quantized": True}  # rounding to the zero point adds zeros: fine
    assert _by_id(decide(_report(e), _policy(), today=TODAY))["sparsity.claim"].status == "pass"
    e["sparsity"] = {"measured_pruned_linears": 0.45, "quantized": True}  # but a shortfall is not
    assert _by_id(decide(_report(e), _policy(), today=TODAY))["sparsity.claim"].status == "fail"
    del e["sparsity"]
    assert _by_id(decide(_report(e), _policy(), today=TODAY))["sparsity.claim"].status == "error"
    report = _report(_entry("c"))
    report["variants"][0]["export"]["verification"]["passed"] = False
    d = decide(report, _policy(), today=TODAY)
    assert _by_id(d, "dense")["export.verify"].status == "fail" and d.exit_code == 1
    report["variants"][0]["export"]["verification"] = {"passed": None, "note": "user-supplied ONNX export"}
    assert _by_id(decide(report, _policy(), today=TODAY), "dense")["export.verify"].status == "skipped"


# ---------------------------------------------------------------------------- per category, multiple comparisons


def _per_category_report(age, ses):
    paired = {**_group(), "by_category": {"Age": _group(s_amb=age), "SES": _group(s_amb=ses)}}
    return _report(_entry("c", paired=paired))


def test_per_category_every_category_must_pass():
    per = {"checks": {"bias.s_amb": {"per": "category"}}}
    r = _by_id(decide(_per_category_report((0.0, -0.02, 0.02), (0.0, -0.03, 0.04)), _policy(**per), today=TODAY))
    assert r["bias.s_amb"].status == "pass" and len(r["bias.s_amb"].groups) == 2
    r = _by_id(decide(_per_category_report((0.0, -0.02, 0.02), (0.2, 0.1, 0.3)), _policy(**per), today=TODAY))
    assert r["bias.s_amb"].status == "fail" and r["bias.s_amb"].group == "SES"


def test_holm_keeps_a_marginal_category_failure_inconclusive():
    # SES: lower bound just above the margin -> FAIL alone, but its adjusted p-value exceeds alpha/2 across 2 categories
    report = _per_category_report((0.0, -0.02, 0.02), (0.1, 0.051, 0.149))
    unadjusted = _policy(checks={"bias.s_amb": {"per": "category"}})
    unadjusted = dataclasses.replace(unadjusted, statistics=dataclasses.replace(unadjusted.statistics,
                                                                                 multiple_comparisons="none"))
    assert _by_id(decide(report, unadjusted, today=TODAY))["bias.s_amb"].status == "fail"
    holm = _policy(checks={"bias.s_amb": {"per": "category"}})
    r = _by_id(decide(report, holm, today=TODAY))["bias.s_amb"]
    assert r.status == "inconclusive"
    ses = next(g for g in r.groups if g["group"] == "SES")
    assert 0.025 < ses["p_value_fail_adjusted"] <= 0.05


# ------------------------------------------------------------------------------------------------------ waivers


def test_waivers_turn_failures_into_warnings_until_they_expire():
    paired = {**_group(s_amb=(0.12, 0.08, 0.16)), "by_category": {}}
    report = _report(_entry("c", paired=paired))
    w = Waiver(check="bias.s_amb", reason="tracked in RISK-1", expires=dt.date(2026, 6, 1), variant="c")
    d = decide(report, _policy(waivers=(w,)), today=TODAY)
    r = _by_id(d)["bias.s_amb"]
    assert r.status == "waived" and "RISK" not in (r.waived_by or "") and r.waived_by.startswith("waivers[0]")
    assert (d.verdict, d.exit_code) == ("warn", 0)
    d = decide(report, _policy(waivers=(w,)), today=TODAY + dt.timedelta(days=1))
    assert _by_id(d)["bias.s_amb"].status == "fail" and d.exit_code == 1
    assert any("expired" in x for x in d.warnings)
    other = dataclasses.replace(w, variant="someone-else")
    assert _by_id(decide(report, _policy(waivers=(other,)), today=TODAY))["bias.s_amb"].status == "fail"


def test_a_waiver_never_hides_an_error():
    e = _entry("c")
    del e["perplexity"]
    w = Waiver(check="perplexity.ratio", reason="r", expires=dt.date(2030, 1, 1))
    d = decide(_report(e), _policy(waivers=(w,)), today=TODAY)
    assert _by_id(d)["perplexity.ratio"].status == "error" and d.exit_code == 4


def test_category_waiver_only_covers_its_category():
    report = _per_category_report((0.2, 0.1, 0.3), (0.2, 0.1, 0.3))
    w = Waiver(check="bias.s_amb", reason="r", expires=dt.date(2030, 1, 1), category="SES")
    r = _by_id(decide(report, _policy(checks={"bias.s_amb": {"per": "category"}}, waivers=(w,)), today=TODAY))
    groups = {g["group"]: g["status"] for g in r["bias.s_amb"].groups}
    assert groups == {"Age": "fail", "SES": "waived"} and r["bias.s_amb"].status == "fail"


def test_zero_width_bootstrap_interval_is_widened_so_a_tiny_suite_cannot_pass():
    """Two models that agree on all 8 ambiguous items give a zero-width bootstrap interval; that is no evidence
    of non-inferiority at a 0.05 margin, so the check must not PASS (exact zero-discordance bound instead)."""
    from gate.policy.checks import zero_discordance_bound

    tiny = _group(s_amb=(0.0, 0.0, 0.0), srs=(0.0, 0.0, 0.0), acc=(0.0, 0.0, 0.0), n_items=16)
    tiny["transitions"]["n_pairs"] = 8
    d = decide(_report(_entry("c", paired=tiny)), _policy(), today=TODAY)
    checks = _by_id(d)
    for cid in ("bias.s_amb", "bias.srs", "accuracy.disambig"):
        assert checks[cid].status == "inconclusive", (cid, checks[cid].message)
        assert "zero width" in checks[cid].method
    assert checks["bias.s_amb"].ci_high == pytest.approx(zero_discordance_bound(8, 0.95, scale=2.0))
    assert zero_discordance_bound(8, 0.95) == pytest.approx(-np.log(0.025) / 8)
    # a large suite with no discordant item does pass: 3.69/2000 is far inside the 0.05 margin
    big = _group(s_amb=(0.0, 0.0, 0.0), srs=(0.0, 0.0, 0.0), acc=(0.0, 0.0, 0.0), n_items=4000)
    big["transitions"]["n_pairs"] = 2000
    checks = _by_id(decide(_report(_entry("c", paired=big)), _policy(), today=TODAY))
    assert checks["bias.srs"].status == "pass" and checks["accuracy.disambig"].status == "pass"


def test_degenerate_interval_with_changed_answers_is_never_decided_by_the_collapse():
    """2 template instances per category: the stratified bootstrap collapses to a point even though 8 answers
    changed. SRS falls back to the Wald paired interval from the McNemar counts; other deltas get their full
    range (INCONCLUSIVE)."""
    g = _group(s_amb=(0.02, 0.02, 0.02), srs=(-0.25, -0.25, -0.25), acc=(0.03, 0.03, 0.03), n_items=48)
    g["transitions"]["n_pairs"] = 24
    g["mcnemar"] = {"b_removed_bias": 7, "c_new_bias": 1}
    checks = _by_id(decide(_report(_entry("c", paired=g)), _policy(), today=TODAY))
    srs = checks["bias.srs"]
    half = 1.959964 * np.sqrt(8 - 36 / 24) / 24
    assert srs.ci_low == pytest.approx(-0.25 - half, rel=1e-5) and srs.ci_high == pytest.approx(-0.25 + half, rel=1e-5)
    assert "Wald" in srs.method
    assert checks["bias.s_amb"].status == "inconclusive" and checks["bias.s_amb"].ci_high == pytest.approx(2.02)
    assert checks["accuracy.disambig"].status == "inconclusive"


def test_structured_claim_is_the_fraction_of_mlp_weights_removed():
    """structured:0.3 removes 30% of the MLP neurons (smaller matrices, almost no zeros): judged on the MLP weights
    against dense, not on the zero fraction of every linear (which would be ~0 and fail)."""
    def types(inter, zeros=0):
        return {t: {"params": 64 * inter, "zeros": zeros} for t in ("gate_proj", "up_proj", "down_proj")} | {
            "q_proj": {"params": 64 * 64, "zeros": 0}}

    base = _entry("dense", role="baseline", claims=False)
    base["sparsity"] = {"per_layer_type": types(100)}
    cand = _entry("c")
    cand["compression"] = {"method": "structured", "claimed_sparsity": 0.3}
    cand["sparsity"] = {"measured_pruned_linears": 0.0, "per_layer_type": types(70)}
    c = _by_id(decide({"variants": [base, cand], "profile": {"name": "host"}}, _policy(), today=TODAY))
    assert c["sparsity.claim"].status == "pass" and c["sparsity.claim"].values["measured"] == pytest.approx(0.3)
    cand["sparsity"]["per_layer_type"] = types(90)  # only 10% removed: the claim is false
    c = _by_id(decide({"variants": [base, cand], "profile": {"name": "host"}}, _policy(), today=TODAY))
    assert c["sparsity.claim"].status == "fail" and c["sparsity.claim"].values["measured"] == pytest.approx(0.1)
