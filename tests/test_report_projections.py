"""Projections of report.json: Markdown summary, JUnit XML, GitHub/GitLab annotations, in-toto statement."""

from __future__ import annotations

import copy
import hashlib
import json
import xml.etree.ElementTree as ET

import pytest
from report_fixtures import with_statuses
from test_cli_errors import run_cli

from gate.runtime.errors import InputError
from gate.report.annotations import (
    MAX_PER_LEVEL,
    render_github_annotations,
    render_gitlab_codequality,
)
from gate.report.intoto import TEST_RESULT_TYPE, render_intoto
from gate.report.junit import render_junit
from gate.report.markdown import render_markdown
from gate.report.view import check_rows

# ---------------------------------------------------------------- Markdown


def test_markdown_lists_every_check_and_the_verdict(tiny_run):
    report = tiny_run.report
    md = (tiny_run.out_dir / "report.md").read_text()
    assert md == render_markdown(report)  # the file written by check is the projection of report.json
    assert md.startswith(f"## prunegate: {report['verdict'].upper()} (exit {report['exit_code']})")
    table = [ln for ln in md.splitlines() if ln.startswith("| ") and "`" in ln and ln.split("|")[1].strip().isupper()]
    assert len(table) == len(report["checks"])
    for v in report["variants"]:
        assert v["artifact"]["digest"]["sha256"][:16] in md
    assert report["digests"]["policy"]["sha256"] in md and report["suite"]["manifest_digest"] in md


def test_markdown_stays_under_the_step_summary_limit(tiny_run):
    report = tiny_run.report
    template = report["checks"][0]
    report["checks"] = [{**template, "id": f"bias.synthetic_{i}", "status": "FAIL" if i % 2 else "pass",
                         "message": "x|y\nz " * 40} for i in range(20000)]
    limit = 200_000
    md = render_markdown(report, max_bytes=limit)
    assert len(md.encode("utf-8")) <= limit
    assert "more checks left out to stay under" in md
    rows = [ln for ln in md.splitlines() if ln.startswith(("| FAIL", "| PASS"))]
    assert rows and all(ln.startswith("| FAIL") for ln in rows[:100])  # problems first
    assert all("\n" not in r and "x\\|y" in r for r in rows[:3])  # cells stay on one line, pipes escaped
    assert len(render_markdown(report).encode("utf-8")) <= 1024 * 1024


# ---------------------------------------------------------------- JUnit


def _cases(xml_text: str) -> dict[tuple[str, str], ET.Element]:
    root = ET.fromstring(xml_text.encode("utf-8"))
    assert root.tag == "testsuites"
    return {(c.get("classname"), c.get("name")): c for c in root.iter("testcase")}


def test_junit_maps_statuses_onto_failure_error_skipped(tiny_run):
    report = with_statuses(tiny_run.report, {"bias.s_amb": "FAIL", "bias.srs": "ERROR", "accuracy.disambig": "WAIVED",
                                             "export.verify": "PASS", "bias.new_bias_rate": "INCONCLUSIVE"})
    xml_text = render_junit(report)
    cases = _cases(xml_text)
    assert len(cases) == len(report["checks"])
    cand = "prunegate.magnitude:0.5"
    assert cases[(cand, "bias.s_amb")].find("failure") is not None
    assert cases[(cand, "bias.srs")].find("error") is not None
    assert cases[(cand, "accuracy.disambig")].find("skipped") is not None
    assert cases[(cand, "bias.new_bias_rate")].find("failure").get("type") == "inconclusive"
    ok = cases[(cand, "export.verify")]
    assert [e.tag for e in ok] == ["properties", "system-out"]
    props = {p.get("name"): p.get("value") for p in cases[(cand, "bias.s_amb")].iter("property")}
    assert {"estimate", "ci_low", "ci_high", "margin", "severity"} <= props.keys()
    root = ET.fromstring(xml_text.encode())
    rows = check_rows(report)
    assert int(root.get("tests")) == len(rows)
    assert int(root.get("failures")) == sum(r.status in ("fail", "inconclusive") for r in rows)
    assert int(root.get("errors")) == sum(r.status == "error" for r in rows)
    assert int(root.get("skipped")) == sum(r.status in ("skipped", "waived") for r in rows)


def test_junit_marks_a_partial_run_as_an_error_and_survives_control_characters(tiny_run):
    report = tiny_run.report
    report.update(partial=True, verdict="error", exit_code=4, error={"kind": "execution", "message": "RuntimeError: \x1b[31mboom\x00"})
    cases = _cases(render_junit(report))
    run = cases[("prunegate.run", "run")]
    assert "boom" in run.find("error").get("message")


def test_junit_from_findings_only_report(tiny_run):
    """Before the policy engine's ``checks`` existed, reports had ``findings`` with pass/fail."""
    report = tiny_run.report
    report.pop("checks")
    report["findings"] = [{"id": "efficiency.size", "variant": "magnitude:0.5", "status": "fail", "message": "no saving", "values": {}},
                          {"id": "bias.s_amb", "variant": "magnitude:0.5", "status": "pass", "message": "ok", "values": {}}]
    cases = _cases(render_junit(report))
    assert cases[("prunegate.magnitude:0.5", "efficiency.size")].find("failure") is not None
    assert cases[("prunegate.magnitude:0.5", "bias.s_amb")].find("failure") is None


# ---------------------------------------------------------------- annotations


def _annotation_report(tiny_run, n: int) -> dict:
    report = tiny_run.report
    template = {**report["checks"][0], "variant": "magnitude:0.5", "severity": "error"}
    report["checks"] = [{**template, "id": f"bias.c{i}", "status": "fail", "estimate": 0.1 * i, "margin": 0.0,
                         "message": f"bad, 100% worse: a,b\nsecond line {i}"} for i in range(n)]
    report["checks"] += [{**template, "id": f"warn.c{i}", "severity": "warning", "status": "fail", "message": "meh"} for i in range(n)]
    report["summary"] = {"blocking": [f"magnitude:0.5:bias.c{i}" for i in range(n)]}
    return report


def test_github_annotations_emit_the_top_findings_escaped(tiny_run):
    report = _annotation_report(tiny_run, 15)
    lines = render_github_annotations(report, "out/report.json").splitlines()
    errors = [ln for ln in lines if ln.startswith("::error ")]
    warnings = [ln for ln in lines if ln.startswith("::warning ")]
    assert len(errors) == MAX_PER_LEVEL and len(warnings) == MAX_PER_LEVEL
    assert "bias.c14" in errors[0]  # the largest excess over the margin first
    assert lines[-1].startswith("::notice ") and "10 more findings" in lines[-1]
    first = errors[0]
    assert first.startswith("::error file=out/report.json,line=1,title=prunegate bias.c14 (magnitude%3A0.5)%3A FAIL::")
    assert "100%25 worse" in first and "%0Asecond line" in first and "\n" not in first


def test_annotations_point_at_the_policy_file_line(tiny_run, tmp_path):
    report = _annotation_report(tiny_run, 1)
    policy = tmp_path / "gate.toml"
    policy.write_text('schema_version = "1.0"\n\n[checks.bias.c0]\nmargin = 0.0\n')
    report["config"]["policy"] = {"path": "gate.toml", "is_default": False, "sha256": "0" * 64}
    text = render_github_annotations(report, "out/report.json", cwd=tmp_path)
    assert "::error file=gate.toml,line=3," in text
    issues = json.loads(render_gitlab_codequality(report, "out/report.json", cwd=tmp_path))
    first = next(i for i in issues if i["check_name"] == "prunegate.bias.c0")
    assert first["location"] == {"path": "gate.toml", "lines": {"begin": 3}}


def test_gitlab_codequality_is_stable_and_complete(tiny_run):
    report = tiny_run.report
    issues = json.loads((tiny_run.out_dir / "codequality.json").read_text())
    problems = [r for r in check_rows(report) if r.is_problem]
    assert len(issues) == len(problems) + (1 if report["partial"] else 0)
    for i in issues:
        assert {"description", "check_name", "fingerprint", "severity", "location"} <= i.keys()
        assert i["severity"] in ("info", "minor", "major", "critical", "blocker")
    fps = [i["fingerprint"] for i in issues]
    assert len(set(fps)) == len(fps)
    # deterministic, and pointing at the report where --out put it (not a fixed prunegate-out/)
    where = {i["location"]["path"] for i in issues}
    assert where == {str((tiny_run.out_dir / "report.json").resolve())}, where
    assert json.loads(render_gitlab_codequality(report, where.pop())) == issues


# ---------------------------------------------------------------- in-toto


def test_intoto_statement_binds_the_candidate_artifact(tiny_run):
    report = tiny_run.report
    st = json.loads((tiny_run.out_dir / "intoto-magnitude_0.5.json").read_text())
    assert st["_type"] == "https://in-toto.io/Statement/v1" and st["predicateType"] == TEST_RESULT_TYPE
    cand = next(v for v in report["variants"] if v["name"] == "magnitude:0.5")
    files = sorted(cand["artifact"]["files"] + cand["artifact"]["other_files"], key=lambda f: f["name"])
    root = hashlib.sha256(b"".join(bytes.fromhex(f["sha256"]) for f in files)).hexdigest()
    assert st["subject"] == [{"name": "magnitude:0.5", "digest": {"sha256": root}}]
    pred = st["predicate"]
    assert pred["result"] in ("PASSED", "WARNED", "FAILED")
    mine = [c for c in report["checks"] if c["variant"] == "magnitude:0.5"]
    listed = pred["passedTests"] + pred["warnedTests"] + pred["failedTests"]
    assert len(listed) == len(mine)
    config = {c["name"]: c["digest"]["sha256"] for c in pred["configuration"]}
    assert config["policy"] == report["digests"]["policy"]["sha256"]
    assert config["bbq-suite-manifest"] == report["suite"]["manifest_digest"]
    assert config["baseline:dense"] == report["variants"][0]["artifact"]["digest"]["sha256"]


@pytest.mark.parametrize("statuses, result", [
    ({}, "PASSED"),
    ({"bias.new_bias_rate": "fail"}, "WARNED"),  # a warning-severity failure does not block
    ({"bias.s_amb": "fail"}, "FAILED"),
    ({"bias.srs": "error"}, "FAILED"),
])
def test_intoto_result_follows_the_checks(tiny_run, statuses, result):
    report = tiny_run.report
    for c in report["checks"]:
        c["status"] = "pass"
    report["summary"] = {}
    report = with_statuses(report, statuses)
    st = render_intoto(report, "random:0.3")
    assert st["predicate"]["result"] == result
    for cid, status in statuses.items():
        key = {"fail": "failedTests" if result == "FAILED" else "warnedTests", "error": "failedTests"}[status]
        assert cid in st["predicate"][key]


def test_intoto_needs_a_variant_when_there_are_several(tiny_run):
    with pytest.raises(InputError, match="2 candidates"):
        render_intoto(tiny_run.report)
    with pytest.raises(InputError, match="--variant dense: not a candidate"):
        render_intoto(tiny_run.report, "dense")


def test_render_cli_writes_each_format(tiny_run, tmp_path):
    src = tiny_run.out_dir / "report.json"
    for fmt in ("md", "junit", "annotations", "codequality", "html"):
        proc = run_cli("report", "render", "--report", str(src), "--format", fmt, "--out", str(tmp_path / fmt))
        assert proc.returncode == 0, proc.stderr
        assert (tmp_path / fmt).stat().st_size > 0 or fmt == "annotations"
    proc = run_cli("report", "render", "--report", str(src), "--format", "intoto", "--variant", "random:0.3")
    assert proc.returncode == 0 and json.loads(proc.stdout)["subject"][0]["name"] == "random:0.3"
    bad = tmp_path / "bad.json"
    broken = copy.deepcopy(tiny_run.report)
    broken.pop("digests")
    bad.write_text(json.dumps(broken))
    proc = run_cli("report", "render", "--report", str(bad), "--format", "md")
    assert proc.returncode == 2 and "$.digests: missing required key" in proc.stderr
