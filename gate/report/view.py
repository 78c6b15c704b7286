"""A read-only view of ``report.json`` shared by its projections (Markdown, JUnit, annotations, in-toto, HTML).

Every projection is a pure function of the report dict; this module turns the report's check results into
one normalised row type so each projection handles them the same way. Results come from ``report["checks"]``
(the policy engine: statuses PASS/FAIL/INCONCLUSIVE/ERROR/SKIPPED/WAIVED, any case) when present, else from
``report["findings"]`` (status ``pass``/``fail``).

Ranking of the "top findings" (annotations, summaries): blocking failures and errors first, then warnings
and inconclusive results; within a class the larger violation of the margin first (|estimate - margin|
when both are known), then check id and variant for a stable order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gate.policy.status import STATUSES  # noqa: F401 -- re-exported; the vocabulary lives in gate.policy.status
_ALIASES = {"passed": "pass", "ok": "pass", "failed": "fail", "failure": "fail", "not_computed": "error",
            "warning": "warn", "skip": "skipped", "waiver": "waived"}
_SEVERITY_RANK = {"error": 0, "critical": 0, "blocker": 0, "warning": 1, "info": 2}


def normalise_status(status: object) -> str:
    """Lower-case a check status and map aliases onto :data:`STATUSES`.

    Raises:
        ValueError: an unknown status (a projection must not silently treat it as a pass).
    """
    s = str(status).strip().lower()
    s = _ALIASES.get(s, s)
    if s not in STATUSES:
        raise ValueError(f"unknown check status {status!r}; expected one of {', '.join(STATUSES)}")
    return s


@dataclass(frozen=True)
class CheckRow:
    """One check result for one variant, normalised.

    Attributes:
        id: stable check id, e.g. ``"bias.s_amb"``.
        variant: the variant's name (``"dense"``, ``"magnitude:0.5"``, ...).
        status: one of :data:`STATUSES`.
        severity: ``"error"`` or ``"warning"`` (the policy's; findings without one are ``"error"``).
        blocking: whether this result blocks the gate: the check's ``blocking`` key when given, else whether
            ``report["summary"]["blocking"]`` lists ``"<variant>:<id>"`` (the policy engine's list), else
            ``severity == "error"``.
        message: one line for people.
        estimate, ci_low, ci_high, margin, mde: the decision's numbers in the check's unit (``None`` if absent).
        unit: the unit of those numbers when the check names it.
        extra: the raw check dict (for projections that carry every field, e.g. JUnit properties).
    """

    id: str
    variant: str
    status: str
    severity: str
    blocking: bool
    message: str
    estimate: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    margin: float | None = None
    mde: float | None = None
    unit: str | None = None
    extra: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def is_problem(self) -> bool:
        """Not a pass: fail, error, inconclusive or warn (skipped and waived are not problems)."""
        return self.status in ("fail", "error", "inconclusive", "warn")

    @property
    def level(self) -> str:
        """``"error"`` (a blocking fail or inconclusive, or any execution error), ``"warning"`` (other problems) or ``"notice"``."""
        if self.status == "error" or (self.status in ("fail", "inconclusive") and self.blocking):
            return "error"
        if self.is_problem:
            return "warning"
        return "notice"

    def excess(self) -> float:
        """How far the estimate is from the margin (absolute, in the check's unit; 0 when unknown)."""
        if self.estimate is None or self.margin is None:
            return 0.0
        return abs(self.estimate - self.margin)


def _num(x) -> float | None:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else None


def check_rows(report: dict) -> list[CheckRow]:
    """The report's check results as :class:`CheckRow` (``report["checks"]`` if present, else ``findings``).

    Raises:
        ValueError: a check has an unknown status.
    """
    checks = report.get("checks")
    listed = (report.get("summary") or {}).get("blocking")  # the policy engine's "<variant>:<id>" of blocking results
    rows = []
    if checks:
        for c in checks:
            sev = str(c.get("severity") or "error").lower()
            blocking = c.get("blocking")
            if blocking is None and isinstance(listed, list) and normalise_status(c.get("status")) != "pass":
                blocking = f"{c.get('variant')}:{c.get('id')}" in listed
            rows.append(CheckRow(
                id=str(c.get("id")), variant=str(c.get("variant", "")), status=normalise_status(c.get("status")),
                severity=sev, blocking=bool(blocking) if blocking is not None else _SEVERITY_RANK.get(sev, 0) == 0,
                message=str(c.get("message") or ""), estimate=_num(c.get("estimate")), ci_low=_num(c.get("ci_low")),
                ci_high=_num(c.get("ci_high")), margin=_num(c.get("margin")), mde=_num(c.get("mde")),
                unit=c.get("unit"), extra=c,
            ))
        return rows
    for f in report.get("findings") or []:
        rows.append(CheckRow(id=str(f.get("id")), variant=str(f.get("variant", "")), status=normalise_status(f.get("status")),
                             severity="error", blocking=True, message=str(f.get("message") or ""), extra=f))
    return rows


def top_findings(rows: list[CheckRow], limit: int | None = None) -> list[CheckRow]:
    """Problems only, ranked as described in the module docstring; at most ``limit`` (all when ``None``)."""
    order = {"error": 0, "warning": 1}
    problems = [r for r in rows if r.is_problem]
    problems.sort(key=lambda r: (order[r.level], 0 if r.status == "fail" else 1, -r.excess(), r.id, r.variant))
    return problems if limit is None else problems[:limit]


def status_counts(rows: list[CheckRow]) -> dict[str, int]:
    """Number of rows per status, every status in :data:`STATUSES` present (zeros included)."""
    counts = {s: 0 for s in STATUSES}
    for r in rows:
        counts[r.status] += 1
    return counts


def variant_by_name(report: dict, name: str) -> dict | None:
    """The variant entry called ``name`` or ``None``."""
    return next((v for v in report.get("variants") or [] if v.get("name") == name), None)


def candidates(report: dict) -> list[dict]:
    """The variant entries whose role is ``"candidate"`` (report order)."""
    return [v for v in report.get("variants") or [] if v.get("role") == "candidate"]


def artifact_digest(variant: dict) -> str | None:
    """The variant's artifact root digest (hex sha256) or ``None`` when the report has none."""
    return ((variant.get("artifact") or {}).get("digest") or {}).get("sha256")


def policy_digest(report: dict) -> str | None:
    """The sha256 of the policy the report was judged with (``digests.policy`` or ``config.policy.sha256``)."""
    d = ((report.get("digests") or {}).get("policy") or {}).get("sha256")
    return d or ((report.get("config") or {}).get("policy") or {}).get("sha256")


def fmt_num(x: float | None, spec: str = ".3g") -> str:
    """``x`` formatted with ``spec``, or ``"n/a"``."""
    return "n/a" if x is None else format(x, spec)


def fmt_interval(row: CheckRow) -> str:
    """``"0.12 [0.05, 0.19]"``, the estimate alone, or ``"n/a"``."""
    if row.estimate is None:
        return "n/a"
    if row.ci_low is None or row.ci_high is None:
        return fmt_num(row.estimate)
    return f"{fmt_num(row.estimate)} [{fmt_num(row.ci_low)}, {fmt_num(row.ci_high)}]"


def phase_stats(bench: dict, phase: str) -> tuple[dict, str]:
    """One latency phase's stats dict and a label, for either bench layout.

    ``bench[phase]`` is either a stats dict (``p50``, ``p95``, ...; the decode phase) or, for prefill,
    ``{"<prompt_tokens>": stats}`` per prompt length; then the longest prompt is used.

    Returns:
        ``(stats, label)`` with ``label`` e.g. ``"prefill 128 tokens"``; ``({}, phase)`` when absent.
    """
    data = (bench or {}).get(phase) or {}
    if not isinstance(data, dict) or not data:
        return {}, phase
    if "p50" in data:
        return data, phase.replace("_ms_per_token", "").replace("_ms", "")
    lengths = [k for k, v in data.items() if isinstance(v, dict) and "p50" in v and str(k).isdigit()]
    if not lengths:
        return {}, phase
    longest = max(lengths, key=int)
    return data[longest], f"{phase.replace('_ms', '')} {longest} tokens"


def off_target_note(report: dict) -> str:
    """Suffix of the verdict line when the run was not on the profile's target device ("" when it was, or unknown).

    Example: `` — measured on x86_64 host, not on the raspberry-pi-5 target (aarch64 Cortex-A76): latency and memory
    are not the device's``. ``report["execution"]`` comes from ``gate.runtime.providers.target_check``.
    """
    ex = report.get("execution") or {}
    if ex.get("on_target", True):
        return ""
    prof = (report.get("profile") or {}).get("name", "?")
    core = ex.get("target_core_type")
    target = f"{ex.get('target_arch')} {core}" if core and core not in ("any", "native") else f"{ex.get('target_arch')}"
    return (f" — measured on {ex.get('measured_arch')} host, not on the {prof} target ({target}): "
            f"latency and memory are not the device's")


def context_line(report: dict) -> str:
    """One line for the top of a projection: why the verdict, on which profile, and whether on the target.

    Example: ``3 blocking check(s) failed · profile raspberry-pi-5 — measured on x86_64 host, not on the
    raspberry-pi-5 target (aarch64 Cortex-A76): latency and memory are not the device's``.
    """
    reason = (report.get("summary") or {}).get("reason")
    prof = (report.get("profile") or {}).get("name")
    parts = [p for p in (reason, f"profile {prof}" if prof else None) if p]
    return " · ".join(parts) + off_target_note(report)
