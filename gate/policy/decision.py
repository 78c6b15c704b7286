"""The decision rule: each check's status from its confidence interval and margin, then the verdict and exit code.

Per check and group (non-inferiority testing with a margin, e.g. Wellek 2010,
*Testing Statistical Hypotheses of Equivalence and Noninferiority*, 2nd ed., ch. 2), with ``[lo, hi]`` the two-sided
interval at the policy's confidence and ``m`` the margin:

* an "at most" metric (a degradation) is PASS if ``hi <= m``, FAIL if ``lo > m``, else INCONCLUSIVE;
* an "at least" metric (a gain) is PASS if ``lo >= m``, FAIL if ``hi < m``, else INCONCLUSIVE;
* an exact measurement (no interval) is decided on its value;
* a check whose input is missing is ERROR (fail closed); one that does not concern the variant is SKIPPED.

Per-category checks PASS only if every category passes: an intersection-union test, which needs no
multiplicity correction (Berger 1982, Technometrics 24:295-300). Declaring FAIL in any of ``k`` categories is a
union of tests, so the policy's correction applies there: one-sided p-values of ``H0: within the margin`` are taken
from the normal approximation implied by the interval (its half-width on the margin's side divided by
``z_{1-alpha/2}`` as standard error, so an unadjusted p <= alpha/2 is exactly ``lo > m``), adjusted by Holm (1979)
or Bonferroni, and a category FAILs when its adjusted p <= alpha/2.

A measurement the check marks ``undecided`` (latency or memory from fewer than 2 benchmark processes per variant, or
from processes flagged unstable: :func:`gate.policy.checks.undecided_latency`) is INCONCLUSIVE with that reason,
whatever its interval says.

Verdict and exit code (precedence error > fail > inconclusive > warn/pass): 4 when a check is ERROR or no check
executed, or when a candidate has no executed blocking check comparing it with the dense model (it then gets an
ERROR check :data:`COVERAGE_CHECK`: nothing that ran could have stopped it, so it cannot pass; ``export.verify``
alone does not judge a candidate; with ``fail_on = "never"``, where nothing blocks by choice, one executed check of
any severity is needed); 1 when a blocking check FAILs (or is INCONCLUSIVE with ``on_inconclusive = "fail"``); 3 when a blocking
check is INCONCLUSIVE with ``on_inconclusive = "exit-3"``; 0 otherwise (verdict ``warn`` when a non-blocking check
failed, was inconclusive or waived). A check blocks when its severity is at or above ``fail_on`` (``"never"``: none
blocks). Exit 5 (integrity) belongs to ``prunegate verify``; 2 (usage) is raised before any check runs.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import asdict, dataclass, field, replace
from statistics import NormalDist

from gate.bbq.paired import holm
from gate.policy.checks import (
    AT_LEAST,
    AT_MOST,
    BIAS_CHECKS,
    CHECKS,
    Context,
    Measurement,
    NotApplicable,
    NotComputed,
    applicability,
    z_crit,
)
from gate.policy.file import FAIL_ON, Policy, Waiver, active_waivers
from gate.policy.status import ERROR, FAIL, INCONCLUSIVE, PASS, SKIPPED, WAIVED, WARN
from gate.runtime.errors import ExitCode

EXIT_CODES = {PASS: ExitCode.PASS, WARN: ExitCode.PASS, FAIL: ExitCode.FAIL, INCONCLUSIVE: ExitCode.INCONCLUSIVE,
              ERROR: ExitCode.EXECUTION}
"""Exit code (:class:`~gate.runtime.errors.ExitCode`) of each verdict of ``prunegate check``."""
EXIT_INTEGRITY = ExitCode.INTEGRITY  # kept for old imports; use ExitCode.INTEGRITY
BLOCKING_SEVERITIES = {"error": ("error",), "warning": ("error", "warning"), "never": ()}
COVERAGE_CHECK = "gate.coverage"
"""Id of the check added, as ERROR, for a candidate with no executed blocking check (module docstring)."""
EXECUTED_STATUSES = (PASS, FAIL, INCONCLUSIVE, WAIVED)
"""Check statuses that count as executed."""


@dataclass(frozen=True)
class CheckResult:
    """One check on one variant, as written to ``report["checks"]``.

    Attributes:
        id, variant: check id and variant name.
        metric, unit, direction: what was compared (``direction`` ``"at_most"``/``"at_least"``).
        estimate, ci_low, ci_high, confidence: the deciding estimate and its interval (``None`` if exact/undefined).
        margin: the threshold (policy margin, or the profile's budget).
        mde: minimum detectable effect at the policy's power (metric units).
        n, n_unit: sample size behind the interval.
        n_needed: for INCONCLUSIVE, about how many ``n_unit`` would decide it if the estimate held (the interval
            half-width scales as ``1/sqrt(n)``).
        status: pass | fail | inconclusive | waived | error | skipped.
        severity: error | warning (from the policy).
        effect: what the status does to the run: "none", "warning", "fail", "exit-3" or "error".
        waived_by: the waiver label, when waived.
        message: one line for people.
        method: how the numbers were computed.
        group: the deciding BBQ category of a per-category check.
        groups: per-category results (``[]`` when pooled).
        values: raw numbers with units in their keys.
    """

    id: str
    variant: str
    metric: str
    unit: str
    direction: str
    status: str
    severity: str
    message: str
    estimate: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    confidence: float | None = None
    margin: float | None = None
    mde: float | None = None
    n: int | None = None
    n_unit: str | None = None
    n_needed: int | None = None
    effect: str = "none"
    waived_by: str | None = None
    method: str = ""
    per: str | None = None
    group: str | None = None
    groups: list = field(default_factory=list)
    values: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-ready form (no NaN)."""
        return _clean(asdict(self))


def _clean(x):
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_clean(v) for v in x]
    return x


def interval_status(estimate: float, ci_low: float | None, ci_high: float | None, margin: float, direction: str) -> str:
    """PASS / FAIL / INCONCLUSIVE of one interval against a margin (module docstring); exact when no interval.

    Raises:
        ValueError: an unknown direction.
    """
    lo = estimate if ci_low is None else ci_low
    hi = estimate if ci_high is None else ci_high
    if direction == AT_MOST:
        return PASS if hi <= margin else FAIL if lo > margin else INCONCLUSIVE
    if direction == AT_LEAST:
        return PASS if lo >= margin else FAIL if hi < margin else INCONCLUSIVE
    raise ValueError(f"unknown direction {direction!r}")


def fail_p_value(m: Measurement, margin: float, direction: str) -> float:
    """One-sided p-value of ``H0: the metric is within the margin`` from the interval's normal approximation.

    ``se`` = half-width on the margin's side / ``z_{1-alpha/2}``; ``p = 1 - Phi((estimate - margin) / se)`` for
    "at most" (mirrored for "at least"). An exact measurement gives 0 (beyond the margin) or 1.
    """
    beyond = m.estimate - margin if direction == AT_MOST else margin - m.estimate
    side = None
    if m.ci_low is not None and m.ci_high is not None:
        side = (m.estimate - m.ci_low) if direction == AT_MOST else (m.ci_high - m.estimate)
    if not side or side <= 0:
        return 0.0 if beyond > 0 else 1.0
    se = side / z_crit(m.confidence)
    return 1.0 - NormalDist().cdf(beyond / se)


def n_needed(m: Measurement, margin: float) -> int | None:
    """Items (or runs) at which the interval would exclude the margin if the estimate held (``1/sqrt(n)`` scaling).

    ``n * (half-width / |estimate - margin|)^2``; ``None`` without an interval or sample size, or when the estimate
    sits on the margin (no finite sample decides it). A measurement that computes its own count states it in
    ``values["processes_needed"]`` (the paired latency protocol's Student-t count,
    :meth:`gate.measure.paired_timing.PairedInterval.processes_needed`); that count is used instead.
    """
    own = (m.values or {}).get("processes_needed")
    if isinstance(own, int) and not isinstance(own, bool) and own > 0:
        return own
    if m.ci_low is None or m.ci_high is None or not m.n:
        return None
    distance = abs(m.estimate - margin)
    if distance == 0:
        return None
    half = (m.ci_high - m.ci_low) / 2.0
    return max(m.n + 1, math.ceil(m.n * (half / distance) ** 2))


def _adjust(p_values: list[float], method: str) -> list[float]:
    if method == "holm":
        return holm(p_values)
    if method == "bonferroni":
        return [min(1.0, len(p_values) * p) for p in p_values]
    return list(p_values)


def _waiver_for(waivers: list[Waiver], cid: str, variant: str, category: str | None) -> Waiver | None:
    for w in waivers:
        if w.check == cid and w.variant in (None, variant) and w.category in (None, category):
            return w
    return None


def _fmt(x, spec=".4g") -> str:
    return "n/a" if x is None else format(x, spec)


def fmt_level(confidence: float) -> str:
    """``"95%"``, or ``"99.53%"`` when the level is not a whole percent (a sequential look's share of the error
    rate), so that 0.9953 never prints as "100%"."""
    whole = abs(confidence * 100 - round(confidence * 100)) < 1e-9
    return format(confidence, ".0%" if whole else ".2%")


def _describe(m: Measurement, margin: float, direction: str, status: str) -> str:
    cmp = "<=" if direction == AT_MOST else ">="
    where = f"[{m.group}] " if m.group else ""
    if m.ci_low is None:
        text = f"{where}{_fmt(m.estimate)} (exact), required {cmp} {_fmt(margin)}"
    else:
        level = fmt_level(m.confidence)
        text = (f"{where}{_fmt(m.estimate)}, {level} CI [{_fmt(m.ci_low)}, {_fmt(m.ci_high)}], "
                f"required {cmp} {_fmt(margin)}")
    if status == INCONCLUSIVE and m.undecided:
        text += f": {m.undecided}"
    elif status == INCONCLUSIVE:
        need = n_needed(m, margin)
        text += (f": the interval contains the margin; MDE {_fmt(m.mde, '.3g')}"
                 + (f"; about {need} {m.n_unit} would decide it at this estimate" if need else ""))
    return text


def _judge(spec, cp, variant: str, measures: list[Measurement], policy: Policy, waivers: list[Waiver]) -> CheckResult:
    """Status of one check on one variant from its measurements (pooled: one; per category: several)."""
    direction = spec.direction
    judged = [m for m in measures if m.skipped is None]
    base = dict(id=spec.id, variant=variant, metric=spec.metric, unit=spec.unit, direction=direction,
                severity=cp.severity, per=cp.per if spec.bbq else None)
    if not judged:
        return CheckResult(**base, status=ERROR, message="not computed: the metric is undefined in every category; "
                                                          "failing closed")
    margins = [cp.margin if m.margin is None else m.margin for m in judged]
    raw = [INCONCLUSIVE if m.undecided else m.status or interval_status(m.estimate, m.ci_low, m.ci_high, mg, direction)
           for m, mg in zip(judged, margins)]
    adjusted: list[float | None] = [None] * len(judged)
    statuses = list(raw)
    if len(judged) > 1 and policy.statistics.multiple_comparisons != "none":
        ps = [fail_p_value(m, mg, direction) for m, mg in zip(judged, margins)]
        adjusted = _adjust(ps, policy.statistics.multiple_comparisons)
        alpha = 1.0 - (judged[0].confidence or policy.statistics.confidence)
        statuses = [FAIL if s == FAIL and p <= alpha / 2 else INCONCLUSIVE if s == FAIL else s
                    for s, p in zip(raw, adjusted)]
    waived = [None] * len(judged)
    for i, (m, s) in enumerate(zip(judged, statuses)):
        if s in (FAIL, INCONCLUSIVE):
            w = _waiver_for(waivers, spec.id, variant, m.group)
            if w:
                waived[i] = w.label()
    final = [WAIVED if w else s for s, w in zip(statuses, waived)]
    status = FAIL if FAIL in final else INCONCLUSIVE if INCONCLUSIVE in final else WAIVED if WAIVED in final else PASS

    def slack(i: int) -> float:  # distance of the decisive bound from the margin (negative = beyond it)
        m = judged[i]
        lo = m.estimate if m.ci_low is None else m.ci_low
        hi = m.estimate if m.ci_high is None else m.ci_high
        if m.estimate is None:
            return 0.0
        return margins[i] - hi if direction == AT_MOST else lo - margins[i]

    rank = {FAIL: 0, INCONCLUSIVE: 1, WAIVED: 2, PASS: 3}
    i = min(range(len(judged)), key=lambda k: (rank[final[k]], slack(k)))
    m, margin = judged[i], margins[i]
    groups = []
    if len(measures) > 1 or judged[0].group is not None:
        for k, mk in enumerate(judged):
            groups.append({"group": mk.group, "status": final[k], "estimate": mk.estimate, "ci_low": mk.ci_low,
                           "ci_high": mk.ci_high, "mde": mk.mde, "n": mk.n, "p_value_fail_adjusted": adjusted[k],
                           "waived_by": waived[k], "message": _describe(mk, margins[k], direction, statuses[k])})
        groups += [{"group": mk.group, "status": SKIPPED, "message": mk.skipped} for mk in measures if mk.skipped]
    message = _describe(m, margin, direction, statuses[i])
    if len(judged) > 1:
        n_bad = sum(s in (FAIL, INCONCLUSIVE, WAIVED) for s in final)
        message = f"{n_bad} of {len(judged)} categories not passed; deciding " + message
        if policy.statistics.multiple_comparisons != "none" and FAIL in raw:
            message += f" ({policy.statistics.multiple_comparisons} adjustment across {len(judged)} categories)"
    waived_by = waived[i] if final[i] == WAIVED else None
    if status == WAIVED:
        message += f"; waived by {waived_by}"
    return CheckResult(**base, status=status, message=message, estimate=m.estimate, ci_low=m.ci_low,
                       ci_high=m.ci_high, confidence=m.confidence, margin=margin, mde=m.mde, n=m.n, n_unit=m.n_unit,
                       n_needed=n_needed(m, margin) if statuses[i] == INCONCLUSIVE and not m.undecided else None,
                       waived_by=waived_by,
                       method=m.method, group=m.group, groups=groups, values=m.values)


def _paradox(cp, variant: str, results: list[CheckResult]) -> CheckResult:
    spec = CHECKS["perplexity.paradox"]
    base = dict(id=spec.id, variant=variant, metric=spec.metric, unit=spec.unit, direction=spec.direction,
                severity=cp.severity)
    ppl = next((r for r in results if r.id == "perplexity.ratio"), None)
    bias = [r for r in results if r.id in BIAS_CHECKS and r.status not in (SKIPPED,)]
    if ppl is None or ppl.status == SKIPPED:
        return CheckResult(**base, status=SKIPPED, message="perplexity.ratio is disabled: nothing to compare")
    if ppl.status == ERROR:
        return CheckResult(**base, status=ERROR, message="not computed: perplexity.ratio could not be computed")
    failing = [r.id for r in bias if r.status == FAIL]
    values = {"perplexity_ratio_status": ppl.status, "failing_bias_checks": failing}
    if ppl.status == PASS and failing:
        return CheckResult(**base, status=FAIL, values=values, estimate=1.0,
                           message=f"perplexity within tolerance ({ppl.message}) while {', '.join(failing)} failed: "
                                   "perplexity gave false assurance about bias (Rath & Maliakkal 2026)")
    return CheckResult(**base, status=PASS, values=values, estimate=0.0,
                       message="no false assurance: perplexity did not pass while a bias check failed")


def evaluate_checks(report: dict, policy: Policy, *, today: dt.date | None = None) -> list[CheckResult]:
    """Run every enabled check of ``policy`` on every variant of ``report`` (statuses, no verdict yet).

    Args:
        report: a report with ``variants`` (the baseline first, role ``"baseline"``) and ``profile``.
        policy: the policy in force.
        today: date against which waivers expire (default: today, UTC).

    Returns:
        one :class:`CheckResult` per (variant, check id), variants in report order, checks in
        :data:`gate.policy.checks.CHECKS` order; disabled checks are SKIPPED.
    """
    waivers, _ = active_waivers(policy, today)
    variants = report.get("variants") or []
    baseline = next((v for v in variants if v.get("role") == "baseline"), None)
    out: list[CheckResult] = []
    for entry in variants:
        name = entry.get("name", "?")
        mine: list[CheckResult] = []
        cache: dict = {}
        for cid, spec in CHECKS.items():
            cp = policy.checks[cid]
            common = dict(id=cid, variant=name, metric=spec.metric, unit=spec.unit, direction=spec.direction,
                          severity=cp.severity)
            reason = applicability(spec, entry, baseline)
            if reason is not None:
                if entry.get("role") == "candidate" or spec.applies == "all":
                    mine.append(CheckResult(**common, status=SKIPPED, message=f"not applicable: {reason}"))
                continue
            if not cp.enabled:
                mine.append(CheckResult(**common, status=SKIPPED, message="disabled by the policy"))
                continue
            if spec.extract is None:
                continue  # derived checks (the paradox) are judged after the others
            ctx = Context(stats=policy.statistics, per=cp.per if spec.bbq else None,
                          profile=report.get("profile") or {}, cache=cache, execution=report.get("execution") or {})
            try:
                if baseline is None and spec.applies != "all":
                    raise NotComputed("no baseline variant in the report")
                measures = spec.extract(baseline, entry, ctx)
            except NotApplicable as exc:
                mine.append(CheckResult(**common, status=SKIPPED, message=f"not applicable: {exc}"))
                continue
            except NotComputed as exc:
                mine.append(CheckResult(**common, status=ERROR, message=f"not computed: {exc}; failing closed"))
                continue
            except Exception as exc:  # a broken extractor must not pass a model: fail closed, keep the others
                mine.append(CheckResult(**common, status=ERROR,
                                        message=f"not computed: {type(exc).__name__}: {exc}; failing closed"))
                continue
            mine.append(_judge(spec, cp, name, measures, policy, waivers))
        cp = policy.checks["perplexity.paradox"]
        if entry.get("role") == "candidate" and cp.enabled:
            idx = list(CHECKS).index("perplexity.paradox")
            mine.insert(min(idx, len(mine)), _paradox(cp, name, mine))
        out += mine
    return out


def _with_coverage(checks: list[CheckResult], report: dict, blocking: tuple[str, ...]) -> list[CheckResult]:
    """``checks`` with an ERROR :data:`COVERAGE_CHECK` after each candidate that has no executed blocking check.

    A check counts when its status is executed (:data:`EXECUTED_STATUSES`), it compares the candidate with the
    dense model (``applies`` is ``"candidates"`` or ``"compressed"``: ``export.verify``, which every variant gets,
    says the export is faithful, not that the candidate is fit), it is not derived from others
    (``perplexity.paradox``) and its severity blocks at the run's ``fail_on`` (any severity when nothing blocks,
    ``fail_on = "never"``). A candidate whose every such check was disabled, skipped or not computed was not
    judged: a PASS for it would say nothing.
    """
    out: list[CheckResult] = []
    cands = [v.get("name", "?") for v in report.get("variants") or [] if v.get("role") == "candidate"]
    by_variant: dict[str, list[CheckResult]] = {}
    for r in checks:
        by_variant.setdefault(r.variant, []).append(r)
    for name in by_variant.keys() | set(cands):
        if name not in cands:
            continue
        mine = by_variant.get(name, [])
        counted = [r for r in mine if r.status in EXECUTED_STATUSES and CHECKS.get(r.id) is not None
                   and CHECKS[r.id].extract is not None and CHECKS[r.id].applies != "all"
                   and (not blocking or r.severity in blocking)]
        if counted:
            continue
        not_run = {}
        for r in mine:
            not_run.setdefault(r.status, []).append(r.id)
        detail = "; ".join(f"{st}: {', '.join(ids)}" for st, ids in sorted(not_run.items())) or "no check at all"
        need = "blocking check (severity " + " or ".join(blocking) + ")" if blocking else "check"
        by_variant[name] = mine + [CheckResult(
            id=COVERAGE_CHECK, variant=name, metric="executed blocking checks of the candidate", unit="checks",
            direction=AT_LEAST, status=ERROR, severity="error", effect="error", estimate=0.0, margin=1.0,
            message=f"no {need} comparing it with the dense model was executed for this candidate, so nothing "
                    f"judged it and it cannot pass ({detail}); enable a check that concerns it in the policy",
            method="count of executed (pass, fail, inconclusive, waived) non-derived checks whose severity blocks at "
                   "fail_on", values={"not_executed": not_run})]
    seen: set[str] = set()
    for r in checks:  # report order: each variant's checks, the coverage check last
        if r.variant not in seen:
            seen.add(r.variant)
            out += by_variant.get(r.variant, [])
    out += [r for n in cands if n not in seen for r in by_variant.get(n, [])]
    return out


@dataclass(frozen=True)
class Decision:
    """The outcome of the gate.

    Attributes:
        checks: every check result, with ``effect`` filled in.
        verdict: pass | warn | fail | inconclusive | error.
        exit_code: :data:`EXIT_CODES` of the verdict.
        fail_on, fail_on_source: the severity threshold used and where it came from ("policy" or "cli").
        on_inconclusive: from the policy.
        warnings: expired waivers and other notes.
        reason: one line explaining the verdict.
    """

    checks: list[CheckResult]
    verdict: str
    exit_code: int
    fail_on: str
    fail_on_source: str
    on_inconclusive: str
    warnings: list[str]
    reason: str

    def findings(self) -> list[dict]:
        """The checks that did something to the run (failures, warnings, errors, waivers), for ``report["findings"]``."""
        keep = ("id", "variant", "status", "severity", "effect", "message", "waived_by")
        return [{k: r.to_dict()[k] for k in keep} | {"values": r.to_dict()["values"]}
                for r in self.checks if r.effect != "none" or r.status == WAIVED]

    def report_fields(self) -> dict:
        """The report's fields this decision owns: ``checks``, ``findings``, ``summary``, ``verdict``, ``exit_code``
        (the decision's ``warnings`` are appended to the report's by the caller)."""
        return {"checks": [r.to_dict() for r in self.checks], "findings": self.findings(), "summary": self.summary(),
                "verdict": self.verdict, "exit_code": self.exit_code}

    def summary(self) -> dict:
        """Counts by status, blocking checks, the rule applied."""
        by_status = {s: 0 for s in (PASS, FAIL, INCONCLUSIVE, WAIVED, ERROR, SKIPPED)}
        for r in self.checks:
            by_status[r.status] += 1
        return {"checks_total": len(self.checks), "executed": sum(by_status[s] for s in (PASS, FAIL, INCONCLUSIVE, WAIVED)),
                "by_status": by_status, "fail_on": self.fail_on, "fail_on_source": self.fail_on_source,
                "on_inconclusive": self.on_inconclusive,
                "blocking": [f"{r.variant}:{r.id}" for r in self.checks if r.effect in ("fail", "exit-3", "error")],
                "reason": self.reason}


def decide(report: dict, policy: Policy, *, fail_on: str | None = None, today: dt.date | None = None) -> Decision:
    """Evaluate the checks and turn them into a verdict and exit code (rules: module docstring).

    Args:
        report: the report (see :func:`evaluate_checks`).
        policy: the policy in force.
        fail_on: ``--fail-on`` (``"error"``, ``"warning"``, ``"never"``) overriding ``policy.fail_on``; ``None``
            keeps the policy's.
        today: expiry date for waivers (default: today, UTC).

    Returns:
        the :class:`Decision`; ``exit_code == EXIT_CODES[verdict]`` always.

    Raises:
        ValueError: an unknown ``fail_on``.
    """
    if fail_on is not None and fail_on not in FAIL_ON:
        raise ValueError(f"fail_on={fail_on!r}; expected one of {', '.join(FAIL_ON)}")
    threshold = fail_on or policy.fail_on
    blocking = BLOCKING_SEVERITIES[threshold]
    checks = evaluate_checks(report, policy, today=today)
    _, warnings = active_waivers(policy, today)

    def effect(r: CheckResult) -> str:
        blocks = r.severity in blocking
        if r.status == ERROR:
            return "error"
        if r.status == FAIL:
            return "fail" if blocks else "warning"
        if r.status == INCONCLUSIVE:
            return {"fail": "fail", "exit-3": "exit-3", "warn": "warning"}[policy.on_inconclusive] if blocks else "warning"
        if r.status == WAIVED:
            return "warning"
        return r.effect

    checks = [replace(r, effect=effect(r)) for r in checks]
    checks = _with_coverage(checks, report, blocking)
    executed = [r for r in checks if r.status in EXECUTED_STATUSES]
    effects = {r.effect for r in checks}
    if not executed:
        verdict, reason = ERROR, "no check executed: nothing was judged, so the gate cannot pass"
    elif "error" in effects:
        n = sum(r.effect == "error" and r.id != COVERAGE_CHECK for r in checks)
        unjudged = [r.variant for r in checks if r.id == COVERAGE_CHECK]
        parts = ([f"{n} check(s) could not be computed (fail closed)"] if n else []) + (
            [f"no blocking check executed for {', '.join(unjudged)}"] if unjudged else [])
        verdict, reason = ERROR, "; ".join(parts)
    elif "fail" in effects:
        failed = sum(r.effect == "fail" and r.status == FAIL for r in checks)
        undecided = sum(r.effect == "fail" and r.status != FAIL for r in checks)
        reason = f"{failed} blocking check(s) failed" + (
            f", {undecided} inconclusive (policy: on_inconclusive = fail)" if undecided else "")
        verdict = FAIL
    elif "exit-3" in effects:
        verdict, reason = INCONCLUSIVE, "blocking check(s) inconclusive at the stated confidence (policy: exit-3)"
    elif "warning" in effects:
        verdict, reason = WARN, f"passed with {sum(r.effect == 'warning' for r in checks)} warning(s)"
    else:
        verdict, reason = PASS, f"all {len(executed)} executed check(s) passed"
    return Decision(checks=checks, verdict=verdict, exit_code=int(EXIT_CODES[verdict]), fail_on=threshold,
                    fail_on_source="cli" if fail_on else "policy", on_inconclusive=policy.on_inconclusive,
                    warnings=warnings, reason=reason)


