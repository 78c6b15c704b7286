"""``report.md``: the report as GitHub-flavoured Markdown, usable as a CI job summary (``$GITHUB_STEP_SUMMARY``).

GitHub rejects a step summary above 1 MiB instead of truncating it (GitHub docs, "Workflow commands for GitHub
Actions", "Adding a job summary": 1 MiB per step; the runner then reports "$GITHUB_STEP_SUMMARY upload aborted,
supports content up to a size of 1024k"), so the text is kept under :data:`MAX_BYTES`: rows of the check table
are dropped from the end (passes first go, problems are listed first) and a line says how many were left out.

The variant table shows the summary rows of :func:`gate.report.view.variant_summaries`, the same columns as
the console summary and the HTML page.
"""

from __future__ import annotations

from gate.report.view import (
    VARIANT_COLUMNS,
    VARIANT_HEADERS,
    CheckRow,
    check_rows,
    context_line,
    fmt_interval,
    fmt_num,
    policy_digest,
    status_counts,
    top_findings,
    variant_cells,
    variant_summaries,
)

MAX_BYTES = 1024 * 1024 - 16 * 1024  # 1 MiB step-summary limit, minus room for other steps' output


def _cell(text: object, limit: int = 1000) -> str:
    """A table cell: one line of at most ``limit`` characters, ``|`` escaped, HTML specials neutralised."""
    s = str(text).replace("\r", " ").replace("\n", " ")
    s = s if len(s) <= limit else s[: limit - 1] + "…"
    s = s.replace("|", "\\|")
    return s.replace("<", "&lt;").replace(">", "&gt;")


def _variant_table(report: dict) -> list[str]:
    """The summary rows (:func:`gate.report.view.variant_summaries`) as a table, columns :data:`VARIANT_COLUMNS`."""
    lines = ["| " + " | ".join(_cell(h) for h in VARIANT_HEADERS) + " |",
             "|" + "|".join("---:" if c.numeric else "---" for c in VARIANT_COLUMNS) + "|"]
    for row in variant_summaries(report):
        cells = [f"`{_cell(c.text)}`" if c.code and c.known else _cell(c.text) for c in variant_cells(row)]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _check_line(r: CheckRow) -> str:
    return (f"| {r.status.upper()} | `{_cell(r.id)}` | {_cell(r.variant)} | {r.severity} | {fmt_interval(r)} | "
            f"{fmt_num(r.margin)} | {fmt_num(r.mde)} | {_cell(r.message)} |")


def render_markdown(report: dict, max_bytes: int = MAX_BYTES) -> str:
    """Render the report as Markdown.

    Args:
        report: a prunegate report (schema v1; partial reports are rendered with a banner).
        max_bytes: upper bound of the UTF-8 size of the result (default :data:`MAX_BYTES`).

    Returns:
        the Markdown text, at most ``max_bytes`` bytes: verdict, the failing checks, a table of every
        check (problems first), the variants' measurements, and provenance (digests, versions).

    Raises:
        ValueError: ``max_bytes`` is too small for the header, or a check has an unknown status.
    """
    rows = check_rows(report)
    counts = status_counts(rows)
    verdict = str(report.get("verdict") or "unknown").upper()
    head = [f"## prunegate: {verdict} (exit {report.get('exit_code')})", ""]
    if context_line(report):
        head += [_cell(context_line(report)), ""]
    if report.get("partial"):
        err = report.get("error") or {}
        head += [(f"> **Partial report**: the run stopped early ({_cell(err.get('kind', 'unknown'))}: "
                 f"{_cell(str(err.get('message', ''))[:500])}). Only the results finished before are shown."), ""]
    head.append("Checks: " + ", ".join(f"{n} {s}" for s, n in counts.items() if n) if rows else "No check results.")
    head.append("")
    problems = top_findings(rows)
    if problems:
        head += ["### Blocking and warning findings", ""]
        head += [f"- **{r.status.upper()}** ({'blocking' if r.blocking else 'warning only'}) `{_cell(r.id)}` on "
                 f"{_cell(r.variant)}: {_cell(r.message)}" for r in problems[:10]]
        if len(problems) > 10:
            head.append(f"- … and {len(problems) - 10} more in the table below")
        head.append("")

    warnings = [str(w) for w in report.get("warnings") or []]
    if warnings:
        head += ["### Warnings", ""] + [f"- {_cell(w, 500)}" for w in warnings[:20]]
        if len(warnings) > 20:
            head.append(f"- … and {len(warnings) - 20} more in `report.json`")
        head.append("")

    tail = ["", "### Variants", ""] + _variant_table(report) + ["", "### Provenance", ""]
    suite = report.get("suite") or {}
    env = report.get("environment") or {}
    pd = policy_digest(report)
    tail += [
        f"- report `{report.get('report_id', 'n/a')}`, schema {report.get('schema_version')}, started {report.get('started_at')}",
        f"- policy sha256 `{pd or 'n/a'}`",
        f"- BBQ suite: {suite.get('n_items', 'n/a')} items, manifest sha256 `{suite.get('manifest_digest', 'n/a')}`",
        (f"- prunegate {env.get('prunegate')}, Python {env.get('python')}, ONNX Runtime {env.get('onnxruntime')}, "
        f"torch {env.get('torch')}, transformers {env.get('transformers')}"),
        (f"- CPU {_cell(env.get('cpu'))}, {env.get('intra_op_threads', 'n/a')} intra-op threads, execution providers "
        f"{', '.join(env.get('execution_providers_used') or env.get('execution_providers_requested') or []) or 'n/a'}"),
        "",
        "Full results: `report.json` (canonical); this summary, `junit.xml`, `report.html`, `intoto*.json`, "
        "`codequality.json` and `model-card*.md` are projections of it.",
    ]

    table_head = ["### All checks", "", "| status | check | variant | severity | estimate [CI] | margin | MDE | message |",
                  "|---|---|---|---|---|---:|---:|---|"]
    ordered = problems + [r for r in rows if not r.is_problem]
    fixed = "\n".join(head + table_head + tail) + "\n"
    budget = max_bytes - len(fixed.encode("utf-8")) - 200  # room for the "left out" line
    if budget < 0:
        raise ValueError(f"max_bytes={max_bytes} is too small for the summary header")
    body, used = [], 0
    for i, r in enumerate(ordered):
        line = _check_line(r)
        size = len(line.encode("utf-8")) + 1
        if used + size > budget:
            body.append(f"\n_{len(ordered) - i} more checks left out to stay under the {max_bytes // 1024} KiB summary limit; "
                        "see report.json._")
            break
        body.append(line)
        used += size
    if not ordered:
        table_head = []
    return "\n".join(head + table_head + body + tail) + "\n"
