"""CI annotations for the top findings: GitHub workflow commands and a GitLab code-quality report.

* GitHub Actions shows 10 annotations per level per step (50 per job) and drops the rest silently
  (GitHub's actions/toolkit, ``docs/problem-matchers.md``, "Limitations"), so at most :data:`MAX_PER_LEVEL`
  errors and as many warnings are emitted, ranked by :func:`gate.report.view.top_findings`; a final
  ``::notice`` says how many more are in the summary. Syntax and escaping follow GitHub's "Workflow commands
  for GitHub Actions" (``::error file=F,line=L,title=T::message``; data escapes ``%``, CR, LF; properties also
  ``:`` and ``,``).
* GitLab's code-quality report is a JSON array of ``{description, check_name, fingerprint, severity,
  location{path, lines{begin}}}`` (GitLab docs "Code Quality", CodeClimate subset). ``fingerprint`` is stable
  across runs (check id + variant), so merge requests show new and fixed findings.

The location is the policy file line of ``[checks.<id>]`` when the report was judged with a policy file that
exists under the current directory; otherwise the report file itself (line 1).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

from gate.report.view import CheckRow, check_rows, fmt_interval, top_findings

MAX_PER_LEVEL = 10
_GITLAB_SEVERITY = {"error": "critical", "warning": "minor"}


def _escape_data(s: str) -> str:
    return s.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(s: str) -> str:
    return _escape_data(s).replace(":", "%3A").replace(",", "%2C")


def locate(report: dict, report_path: str, cwd: Path | None = None) -> dict[str, tuple[str, int]]:
    """Where each check id points: ``{check id: (relative path, line)}``; ids not found map to nothing.

    Args:
        report: the report (``config.policy.path`` names the policy file when one was given).
        report_path: the report's path as the CI job knows it (the fallback location).
        cwd: the directory paths are made relative to (default: the current directory).

    Returns:
        for every check id whose ``[checks.<id>]`` table appears in a policy file under ``cwd``, its path
        relative to ``cwd`` and 1-based line; the caller falls back to ``(report_path, 1)``.
    """
    cwd = (cwd or Path.cwd()).resolve()
    pol = (report.get("config") or {}).get("policy") or {}
    path = pol.get("path")
    if not path or pol.get("is_default"):
        return {}
    p = Path(path)
    p = p if p.is_absolute() else cwd / p
    try:
        rel = p.resolve().relative_to(cwd)
        lines = p.read_text(encoding="utf-8").splitlines()
    except (OSError, ValueError, UnicodeDecodeError):
        return {}
    out: dict[str, tuple[str, int]] = {}
    for i, line in enumerate(lines, 1):
        m = re.match(r"\s*\[\s*checks\.([A-Za-z0-9_.\-\"]+)\s*\]", line)
        if m:
            out.setdefault(m.group(1).replace('"', ""), (rel.as_posix(), i))
    return out


def _where(r: CheckRow, places: dict[str, tuple[str, int]], report_path: str) -> tuple[str, int]:
    return places.get(r.id, (report_path, 1))


def render_github_annotations(report: dict, report_path: str = "prunegate-out/report.json", cwd: Path | None = None) -> str:
    """GitHub Actions workflow commands for the top findings (print them to stdout in a step).

    Args:
        report: a prunegate report (schema v1).
        report_path: the report's path relative to the repository root (fallback annotation location).
        cwd: the repository root (default: the current directory).

    Returns:
        lines ``::error ...::...`` / ``::warning ...::...`` (at most :data:`MAX_PER_LEVEL` each), then one
        ``::notice`` when findings were left out; an empty string when there is nothing to report.
    """
    places = locate(report, report_path, cwd)
    rows = top_findings(check_rows(report))
    lines, left = [], 0
    if report.get("partial") or report.get("error"):
        err = report.get("error") or {}
        lines.append(f"::error file={_escape_property(report_path)},line=1,title={_escape_property('prunegate: run did not finish')}::"
                     + _escape_data(f"{err.get('kind', 'execution')}: {err.get('message', '')}"))
    for level in ("error", "warning"):
        mine = [r for r in rows if r.level == level]
        for r in mine[:MAX_PER_LEVEL]:
            path, line = _where(r, places, report_path)
            title = f"prunegate {r.id} ({r.variant}): {r.status.upper()}"
            msg = r.message or f"estimate {fmt_interval(r)}"
            lines.append(f"::{level} file={_escape_property(path)},line={line},title={_escape_property(title)}::{_escape_data(msg)}")
        left += max(0, len(mine) - MAX_PER_LEVEL)
    if left:
        lines.append(f"::notice title=prunegate::{left} more findings are listed in the job summary and report.json")
    return "\n".join(lines) + ("\n" if lines else "")


def render_gitlab_codequality(report: dict, report_path: str = "prunegate-out/report.json", cwd: Path | None = None) -> str:
    """GitLab code-quality JSON (``artifacts:reports:codequality``) for every problem finding.

    Returns:
        a JSON array (text); blocking failures and errors are ``critical``, other problems ``minor``.
    """
    places = locate(report, report_path, cwd)
    issues = []
    if report.get("partial") or report.get("error"):
        err = report.get("error") or {}
        issues.append({"description": f"prunegate run did not finish: {err.get('kind', 'execution')}: {err.get('message', '')}",
                       "check_name": "prunegate.run", "severity": "blocker",
                       "fingerprint": hashlib.sha256(b"prunegate.run").hexdigest(),
                       "location": {"path": report_path, "lines": {"begin": 1}}})
    for r in top_findings(check_rows(report)):
        path, line = _where(r, places, report_path)
        issues.append({
            "description": f"{r.variant}: {r.status.upper()}: {r.message}",
            "check_name": f"prunegate.{r.id}",
            "severity": _GITLAB_SEVERITY[r.level],
            "fingerprint": hashlib.sha256(f"prunegate:{r.id}:{r.variant}".encode()).hexdigest(),
            "location": {"path": path, "lines": {"begin": line}},
        })
    return json.dumps(issues, indent=2, ensure_ascii=False) + "\n"


def default_report_path(path: str | Path) -> str:
    """``path`` as a CI job names it: relative to the current directory when it lies below it, else absolute.

    Never raises: a path that cannot be resolved is returned as given.
    """
    p = Path(path)
    try:
        full, cwd = p.resolve(), Path.cwd().resolve()
        return Path(os.path.relpath(full, cwd)).as_posix() if full.is_relative_to(cwd) else str(full)
    except (OSError, ValueError):
        return str(p)
