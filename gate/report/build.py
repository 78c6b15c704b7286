"""The JSON report's version and schema id, and a short console summary of a report."""

from __future__ import annotations

from gate.report.view import (
    Cell,
    VariantSummary,
    fmt_num,
    off_target_note,
    variant_cells,
    variant_summaries,
)
from gate.runtime.atomic import write_json_atomic  # noqa: F401 -- re-exported: the one JSON writer

SCHEMA_VERSION = "1.1.0"  # semver of report.json: minor = additive (consumers ignore unknown keys), major = breaking
SCHEMA_URI = "https://prunegate.dev/schemas/report/v1.json"  # shipped as gate/report/report.schema.json

_INDENT = " " * 24
MDE_WARN = 0.05  # warn when the suite cannot detect a change in SRS of this size (fraction of ambiguous items)


def mde_warning(n_pairs: int | None, mde: float | None) -> str | None:
    """The warning that the suite is too small to see a change in SRS of :data:`MDE_WARN`, or ``None``.

    Args:
        n_pairs: ambiguous items with a bias target compared with dense (``None``: not compared).
        mde: the minimum detectable ΔSRS at 80 % power (``paired_vs_baseline.mde.delta_srs``), ``None`` when the
            suite is too small for the formula.
    """
    if n_pairs is None or (mde is not None and mde <= MDE_WARN):
        return None
    return (f"with {n_pairs} ambiguous items the suite cannot detect a change in SRS smaller than "
            f"{fmt_num(mde, '.3f')} (80% power); use a larger --suite-size")


def _variant_lines(row: VariantSummary) -> list[str]:
    """The console lines of one summary row: one per group of :data:`gate.report.view.VARIANT_COLUMNS`.

    A group whose every value is unknown (e.g. "vs dense" of the baseline) is left out.
    """
    groups: dict[str, list[Cell]] = {}
    for c in variant_cells(row):
        if c.group != "variant":
            groups.setdefault(c.group, []).append(c)
    lines = []
    for group, cells in groups.items():
        if not any(c.known for c in cells):
            continue
        text = " | ".join(f"{c.header} {c.text}" for c in cells)
        lines.append(f"{row.name:<24} {row.role:<9} {text}" if not lines else f"{_INDENT} {group}: {text}")
    if not lines:
        lines.append(f"{row.name:<24} {row.role}")
    if row.artifact_dir:
        lines.append(f"{_INDENT} artifact dir {row.artifact_dir} (`prunegate verify --artifact` it)")
    warning = mde_warning(row.n_pairs, row.mde_delta_srs)
    if warning:
        lines.append(f"{_INDENT} warning: {warning}")
    return lines


def summary_lines(report: dict) -> list[str]:
    """A short human summary of a report: every variant's summary row, one line per finding, the answer, the verdict.

    Raises:
        ValueError: a check has an unknown status.
    """
    rows = variant_summaries(report)
    lines = [line for row in rows for line in _variant_lines(row)]
    for f in report.get("findings", []):  # checks that failed, were inconclusive, errored or were waived
        mark = f["status"].upper()
        note = " (warning only)" if f.get("effect") == "warning" else ""
        lines.append(f"  {mark:<12} {f['id']:<20} {f['variant']}: {f['message']}{note}")
    lines += answer_lines(report, rows)
    verdict = report.get("verdict", "?").upper()
    reason = (report.get("summary") or {}).get("reason")
    lines.append(f"verdict: {verdict} (exit {report.get('exit_code')})" + (f": {reason}" if reason else "")
                 + (" [partial]" if report.get("partial") else "")
                 + off_target_note(report))
    return lines


def _mb(x) -> str:
    return "n/a" if x is None else f"{x / 1e6:,.0f} MB"


def answer_lines(report: dict, rows: list[VariantSummary] | None = None) -> list[str]:
    """One line per variant answering "can I ship this to the profile's device?" (the before-flashing view).

    Each column is a group of :data:`gate.report.view.ANSWER_GROUPS` with the worst status of its checks (error > fail >
    inconclusive > waived > pass; "-" when every check of the group was skipped or disabled); storage and RAM
    show the measured bytes against the profile's budget. Reads ``report["checks"]`` (the policy engine's) and
    ``report["profile"]``; empty without checks. ``rows`` are the report's summary rows when already built.

    Raises:
        ValueError: a check has an unknown status.
    """
    if not report.get("checks"):
        return []
    prof = report.get("profile") or {}

    def budget(key: str) -> str:
        return _mb(prof[key]) if prof.get(key) else "none"

    lines = [(f"answer for profile '{prof.get('name', '?')}' (storage budget {budget('storage_budget_bytes')}, "
              f"RAM budget {budget('ram_budget_bytes')}):")]
    for row in variant_summaries(report) if rows is None else rows:
        cells = []
        for g in row.groups:
            status = g.status.upper() if g.status else "-"
            if g.measured is not None:
                status += f" ({_mb(g.measured)} <= {_mb(g.budget)})"
            cells.append(f"{g.label} {status}")
        lines.append(f"  {row.name:<22} " + " | ".join(cells))
    return lines
