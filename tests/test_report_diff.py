"""``prunegate report diff OLD NEW``: refusal of incomparable or invalid reports, regressions per check, exit codes,
and the paired comparison of NEW's predictions with OLD's (gate/report/diff.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from test_cli_errors import assert_input_error, run_cli

from gate.report.diff import compare_check, diff_reports
from gate.report.outputs import report_digests
from gate.runtime.errors import InputError


def _redecide(report: dict, fail_on: str | None = None) -> dict:
    """``report`` judged again by the real decision code (gate/policy/decision.py) after its measurements were edited:
    new checks, findings, summary, verdict, exit code and digests, so the report stays consistent."""
    from gate.pipeline import finish_report
    from gate.policy.decision import decide
    from gate.policy.file import load_policy

    body = {k: v for k, v in report.items() if k not in ("checks", "findings", "summary", "verdict", "exit_code")}
    out = finish_report(body, decide(body, load_policy(None), fail_on=fail_on), total_s=1.0)
    out["digests"] = report_digests(out)
    return out


def _place(tmp_path: Path, name: str, report: dict, predictions_from: Path | None = None) -> Path:
    """Write ``report`` to ``tmp_path/name/report.json``; copy ``predictions_from/predictions`` beside it if given."""
    d = tmp_path / name
    d.mkdir()
    if predictions_from is not None:
        shutil.copytree(predictions_from / "predictions", d / "predictions")
    (d / "report.json").write_text(json.dumps(report))
    return d / "report.json"


def _variant(report: dict, name: str) -> dict:
    return next(v for v in report["variants"] if v["name"] == name)


def _check(report: dict, variant: str, cid: str) -> dict:
    return next(c for c in report["checks"] if c["variant"] == variant and c["id"] == cid)


def test_same_report_no_regression_and_paired_on_every_item(tiny_run, tmp_path):
    old = _place(tmp_path, "old", tiny_run.report, tiny_run.out_dir)
    new = _place(tmp_path, "new", tiny_run.report, tiny_run.out_dir)
    proc = run_cli("report", "diff", str(old), str(new), "--format", "json")
    assert proc.returncode == 0, proc.stderr
    d = json.loads(proc.stdout)
    assert d["comparable"] and d["regressions"] == [] and d["exit_code"] == 0
    assert len(d["checks"]) == len(tiny_run.report["checks"])
    c = next(c for c in d["checks"] if c["variant"] == "magnitude:0.5" and c["id"] == "bias.srs")
    src = _check(tiny_run.report, "magnitude:0.5", "bias.srs")
    assert c["old"]["estimate"] == c["new"]["estimate"] == src["estimate"] and c["new"]["ci_high"] == src["ci_high"]
    assert c["direction"] == "at_most" and c["margin"] == src["margin"]
    n_items = tiny_run.report["suite"]["n_items"]
    for name in ("dense", "magnitude:0.5", "random:0.3"):
        p = d["paired"][name]
        assert p["status"] == "computed" and p["n_items_both"] == n_items and p["n_items_old_only"] == 0
        assert p["comparison"]["mcnemar"]["n_discordant"] == 0 and p["comparison"]["mcnemar"]["p_value"] == 1.0
        assert p["old_file"].startswith(str(old.parent)) and p["new_file"].startswith(str(new.parent))
    md = run_cli("report", "diff", str(old), str(new)).stdout
    assert "**no regression**" in md and "| `bias.srs` |" in md and f"on the {n_items} items both scored" in md


def test_a_worse_perplexity_is_a_blocking_regression(tiny_run, tmp_path):
    worse = tiny_run.report
    ppl = _variant(worse, "magnitude:0.5")["perplexity"]
    assert _check(worse, "magnitude:0.5", "perplexity.ratio")["status"] == "pass"
    ppl["ratio_to_dense"] = 2.0
    worse = _redecide(worse)
    assert _check(worse, "magnitude:0.5", "perplexity.ratio")["status"] == "fail"
    old = _place(tmp_path, "old", tiny_run.report)
    new = _place(tmp_path, "new", worse)
    proc = run_cli("report", "diff", str(old), str(new), "--format", "json")
    assert proc.returncode == 1, proc.stderr
    d = json.loads(proc.stdout)
    assert d["blocking_regressions"] == ["magnitude:0.5:perplexity.ratio"]
    reg = next(c for c in d["checks"] if c["regressed"])
    assert reg["reasons"][0] == "status pass -> fail" and "crossed the margin (at most 1.1)" in reg["reasons"][1]
    assert reg["old"]["estimate"] == pytest.approx(_variant(tiny_run.report, "magnitude:0.5")["perplexity"]["ratio_to_dense"])
    assert reg["new"]["estimate"] == 2.0
    # the copies have no predictions/ beside them, and the recorded paths lie outside their directories: not read
    assert all(p["status"] == "not computed" and "predictions file not found" in p["reason"] for p in d["paired"].values())
    md = run_cli("report", "diff", str(old), str(new)).stdout
    assert "**REGRESSED**: 1 blocking check(s) got worse" in md
    assert "| `perplexity.ratio` | PASS |" in md and "**regressed**: status pass -> fail" in md
    # the reverse direction is an improvement, not a regression
    assert run_cli("report", "diff", str(new), str(old)).returncode == 0


def test_a_regression_does_not_block_when_new_policy_says_never(tiny_run, tmp_path):
    worse = tiny_run.report
    _variant(worse, "magnitude:0.5")["perplexity"]["ratio_to_dense"] = 2.0
    worse = _redecide(worse, fail_on="never")
    d = diff_reports(_place(tmp_path, "old", tiny_run.report), _place(tmp_path, "new", worse))
    assert [f"{c.variant}:{c.id}" for c in d.regressions] == ["magnitude:0.5:perplexity.ratio"]
    assert d.exit_code == 0 and d.to_dict()["blocking_regressions"] == []


def test_margin_crossing_in_the_bad_direction_only():
    at_most = {"status": "inconclusive", "direction": "at_most", "margin": 0.05, "severity": "error"}
    c = compare_check("v", "bias.srs", {**at_most, "estimate": 0.01}, {**at_most, "estimate": 0.07}, "error")
    assert c.regressed and c.blocking and c.reasons == ("estimate 0.01 -> 0.07 crossed the margin (at most 0.05)",)
    assert not compare_check("v", "bias.srs", {**at_most, "estimate": 0.07}, {**at_most, "estimate": 0.01}, "error").regressed
    at_least = {"status": "pass", "direction": "at_least", "margin": 1.1, "severity": "warning"}
    c = compare_check("v", "efficiency.speedup", {**at_least, "estimate": 1.2}, {**at_least, "estimate": 1.0}, "error")
    assert c.regressed and not c.blocking  # a warning does not block under fail_on = error
    assert compare_check("v", "efficiency.speedup", {**at_least, "estimate": 1.2}, {**at_least, "estimate": 1.0}, "warning").blocking
    waived = {**at_least, "status": "waived", "estimate": 1.0}
    assert not compare_check("v", "efficiency.speedup", {**at_least, "estimate": 1.2}, waived, "error").regressed
    assert compare_check("v", "x", {"status": "inconclusive"}, {"status": "FAIL"}, "error").reasons == ("status inconclusive -> fail",)
    assert not compare_check("v", "x", {"status": "fail"}, {"status": "error"}, "error").regressed
    assert not compare_check("v", "x", None, {"status": "fail"}, "error").regressed  # only in NEW: listed, not counted


def test_different_suite_is_refused_unless_allowed(tiny_run, tmp_path):
    other = tiny_run.report
    other["suite"]["manifest_digest"] = "0" * 64
    other = {**other, "digests": report_digests(other)}
    old = _place(tmp_path, "old", tiny_run.report, tiny_run.out_dir)
    new = _place(tmp_path, "new", other, tiny_run.out_dir)
    assert_input_error(run_cli("report", "diff", str(old), str(new)), "not comparable", "manifest digests differ",
                       "--allow-different-suite")
    proc = run_cli("report", "diff", str(old), str(new), "--allow-different-suite", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    d = json.loads(proc.stdout)
    assert not d["comparable"] and "manifest digests differ" in d["differences"][0]
    assert all(p["status"] == "not computed" for p in d["paired"].values())


def test_different_scoring_is_refused(tiny_run, tmp_path):
    other = tiny_run.report
    other["config"]["scoring"]["length_normalize"] = True
    with pytest.raises(InputError, match="scoring: config.scoring differs"):
        diff_reports(_place(tmp_path, "old", tiny_run.report), _place(tmp_path, "new", other))


def test_invalid_or_inconsistent_reports_exit_2_naming_them(tiny_run, tmp_path):
    good = _place(tmp_path, "old", tiny_run.report)
    edited = tiny_run.report
    edited["verdict"] = "pass"  # a hand edit: the checks still fail
    bad = _place(tmp_path, "new", edited)
    assert_input_error(run_cli("report", "diff", str(good), str(bad)), f"NEW {bad}", "inconsistent report")
    assert_input_error(run_cli("report", "diff", str(tmp_path / "nope.json"), str(good)), "OLD", "no such file")
    (tmp_path / "junk.json").write_text("{not json")
    assert_input_error(run_cli("report", "diff", str(good), str(tmp_path / "junk.json")), "NEW", "cannot be read as JSON")


def _flip_one_ambiguous_answer(pred_file: Path) -> str:
    """Change one ambiguous item's wrong, bias-consistent answer to the other wrong (non-UNKNOWN) option: the accuracy
    stays the same, the item is no longer bias-consistent. Returns its uid."""
    lines = pred_file.read_text().splitlines()
    for i, line in enumerate(lines):
        r = json.loads(line)
        if r["context_condition"] == "ambig" and r["bias_target_index"] is not None and r["pred_index"] == r["bias_target_index"]:
            r["pred_index"] = 3 - r["unknown_index"] - r["bias_target_index"]
            lines[i] = json.dumps(r)
            pred_file.write_text("\n".join(lines) + "\n")
            return r["uid"]
    pytest.skip("no ambiguous bias-consistent answer in the tiny model's predictions")


def test_paired_counts_the_items_that_changed(tiny_run, tmp_path):
    old = _place(tmp_path, "old", tiny_run.report, tiny_run.out_dir)
    new = _place(tmp_path, "new", tiny_run.report, tiny_run.out_dir)
    _flip_one_ambiguous_answer(new.parent / "predictions" / "magnitude_0.5.jsonl")
    d = diff_reports(old, new)
    p = d.paired["magnitude:0.5"]["comparison"]
    assert p["mcnemar"]["b_removed_bias"] == 1 and p["mcnemar"]["c_new_bias"] == 0 and p["mcnemar"]["p_value"] == 1.0
    assert p["transitions"]["removed_bias"]["count"] == 1
    assert p["deltas"]["delta_srs"]["estimate"] < 0 and p["deltas"]["delta_accuracy_disambig"]["estimate"] == 0
    assert "no significant change" in d.paired["magnitude:0.5"]["verdict"]
    assert d.paired["random:0.3"]["comparison"]["mcnemar"]["n_discordant"] == 0
    assert d.exit_code == 0  # the paired verdict informs; the checks decide


def test_a_predictions_file_that_is_not_the_reports_is_bad_input(tiny_run, tmp_path):
    old = _place(tmp_path, "old", tiny_run.report, tiny_run.out_dir)
    new = _place(tmp_path, "new", tiny_run.report, tiny_run.out_dir)
    f = new.parent / "predictions" / "dense.jsonl"
    lines = f.read_text().splitlines()
    r = json.loads(lines[0])
    r["pred_index"] = r["label"] if r["pred_index"] != r["label"] else (r["label"] + 1) % 3  # accuracy changes
    f.write_text("\n".join([json.dumps(r), *lines[1:]]) + "\n")
    assert_input_error(run_cli("report", "diff", str(old), str(new)), f"predictions {f}", "accuracy", "another run")
    f.write_text("\n".join(["{\"uid\": 1}", *lines[1:]]) + "\n")
    assert_input_error(run_cli("report", "diff", str(old), str(new)), f"predictions {f}: line 1 is not a prediction record")


def test_diff_writes_out_file_atomically(tiny_run, tmp_path):
    old = _place(tmp_path, "old", tiny_run.report)
    out = tmp_path / "sub" / "diff.md"
    proc = run_cli("report", "diff", str(old), str(old), "--out", str(out))
    assert proc.returncode == 0 and proc.stdout == ""
    assert out.read_text().startswith("# prunegate report diff")
    assert [p.name for p in out.parent.iterdir()] == ["diff.md"]


def test_a_symlinked_predictions_file_is_refused(tiny_run, tmp_path):
    old = _place(tmp_path, "old", tiny_run.report, tiny_run.out_dir)
    new = _place(tmp_path, "new", tiny_run.report)
    (new.parent / "predictions").mkdir()
    for f in (tiny_run.out_dir / "predictions").iterdir():
        (new.parent / "predictions" / f.name).symlink_to(f)
    assert_input_error(run_cli("report", "diff", str(old), str(new)), "a symlink")


def test_a_partial_new_report_is_noted_not_a_regression(tiny_run, tmp_path):
    old = _place(tmp_path, "old", tiny_run.report)
    proc = run_cli("report", "diff", str(old), str(tiny_run.out_dir / "report.json"), "--format", "json")
    assert proc.returncode == 0 and not any("did not finish" in n for n in json.loads(proc.stdout)["notes"])
    partial = {k: v for k, v in tiny_run.report.items() if k not in ("checks", "summary")}
    partial.update(findings=[], partial=True, verdict="error", exit_code=4, error={"kind": "execution", "message": "crashed"})
    new = _place(tmp_path, "new", partial)
    d = diff_reports(old, new)
    assert d.exit_code == 0 and d.regressions == []
    assert any(n.startswith("NEW is the report of a run that did not finish (execution)") for n in d.notes)
    assert all(c.new is None for c in d.checks)
