"""The console summary's one-screen answer (before flashing a device): budgets and checks per variant."""

from __future__ import annotations

from gate.report.build import answer_lines, summary_lines


def _check(cid, variant, status, estimate=None, margin=None):
    return {"id": cid, "variant": variant, "status": status, "estimate": estimate, "margin": margin}


def _report():
    checks = [
        _check("budget.storage", "dense", "pass", 539e6, 8e9), _check("budget.memory", "dense", "pass", 0.9e9, 3e9),
        _check("budget.storage", "wanda:0.5", "pass", 539e6, 8e9), _check("budget.memory", "wanda:0.5", "fail", 3.5e9, 3e9),
        _check("bias.s_amb", "wanda:0.5", "pass"), _check("bias.srs", "wanda:0.5", "fail"),
        _check("bias.new_bias_rate", "wanda:0.5", "inconclusive"), _check("perplexity.ratio", "wanda:0.5", "pass"),
        _check("efficiency.size", "wanda:0.5", "skipped"),
    ]
    return {"profile": {"name": "raspberry-pi-5", "storage_budget_bytes": 8e9, "ram_budget_bytes": 3e9},
            "variants": [{"name": "dense", "role": "baseline"}, {"name": "wanda:0.5", "role": "candidate"}],
            "checks": checks, "findings": [], "verdict": "fail", "exit_code": 1,
            "execution": {"on_target": False, "measured_arch": "x86_64", "target_arch": "aarch64",
                          "target_core_type": "Cortex-A76"}}


def test_answer_shows_budgets_and_worst_status_per_group():
    lines = answer_lines(_report())
    assert lines[0] == "answer for profile 'raspberry-pi-5' (storage budget 8,000 MB, RAM budget 3,000 MB):"
    dense, cand = lines[1], lines[2]
    assert "storage PASS (539 MB <= 8,000 MB)" in dense and "RAM PASS (900 MB <= 3,000 MB)" in dense
    assert "RAM FAIL (3,500 MB <= 3,000 MB)" in cand
    assert "bias FAIL" in cand  # worst of pass / fail / inconclusive
    assert "perplexity PASS" in cand and "savings -" in cand  # all-skipped group shows "-"


def test_summary_ends_with_answer_then_off_target_verdict():
    lines = summary_lines(_report())
    assert lines[-1].startswith("verdict: FAIL (exit 1)")
    assert "not on the raspberry-pi-5 target (aarch64 Cortex-A76)" in lines[-1]
    assert lines[-4].startswith("answer for profile 'raspberry-pi-5'")


def test_no_checks_no_answer():
    assert answer_lines({"variants": [], "checks": []}) == []


def test_markdown_and_html_say_when_the_run_was_not_on_the_target():
    from gate.report.html import render_html
    from gate.report.markdown import render_markdown

    report = {**_report(), "summary": {"reason": "1 blocking check(s) failed", "blocking": ["wanda:0.5:budget.memory"]}}
    md = render_markdown(report)
    assert "1 blocking check(s) failed · profile raspberry-pi-5 — measured on x86_64 host, not on the raspberry-pi-5" in md
    assert "(blocking) `budget.memory` on wanda:0.5" in md
    assert "not on the raspberry-pi-5 target (aarch64 Cortex-A76)" in render_html(report)


# ---------------------------------------------------------------- one summary row, three projections

def _golden_report() -> dict:
    import json
    from pathlib import Path

    return json.loads((Path(__file__).resolve().parent / "golden" / "check_report.json").read_text())


def test_console_markdown_and_html_show_the_same_summary_row():
    import html as html_lib

    from gate.report.html import render_html
    from gate.report.markdown import render_markdown
    from gate.report.view import VARIANT_HEADERS, variant_cells, variant_summaries

    report = _golden_report()
    rows = variant_summaries(report)
    assert [r.name for r in rows] == [v["name"] for v in report["variants"]]
    cand = rows[1]
    assert cand.role == "candidate" and cand.status in ("pass", "fail", "inconclusive", "error", "waived")
    assert cand.speedup is not None and cand.speedup.ci_low is not None  # the efficiency.speedup check's interval
    assert cand.perplexity_ratio == report["variants"][1]["perplexity"]["ratio_to_dense"]
    console = "\n".join(summary_lines(report))
    md = render_markdown(report)
    page = html_lib.unescape(render_html(report))
    for row in rows:
        cells = variant_cells(row)
        assert tuple(c.header for c in cells) == VARIANT_HEADERS
        md_row = next(ln for ln in md.splitlines() if ln.startswith(f"| {row.name} |"))
        for c in cells:
            assert c.text in md_row and c.text in page
            if c.group != "variant" and c.known:
                assert f"{c.header} {c.text}" in console


def test_summary_row_of_a_bare_variant_is_all_unknown():
    from gate.report.view import variant_cells, variant_summaries

    (row,) = variant_summaries({"variants": [{"name": "dense", "role": "baseline"}]})
    assert row.status is None and row.size_bytes is None and row.delta_srs is None
    texts = {c.header: c.text for c in variant_cells(row)}
    assert texts["status"] == "-" and texts["size on disk (MB)"] == "n/a" and texts["ΔSRS [CI]"] == "n/a"
    assert summary_lines({"variants": [{"name": "dense", "role": "baseline"}]})[0].split() == ["dense", "baseline"]
