"""A read-only view of ``report.json`` shared by its projections (Markdown, JUnit, annotations, in-toto, HTML).

Every projection is a pure function of the report dict; this module turns the report into the row types they
all render, so each handles them the same way:

* :class:`CheckRow` (:func:`check_rows`): one check result, normalised. Results come from ``report["checks"]``
  (the policy engine: statuses of :mod:`gate.policy.status`, any case) when present, else from
  ``report["findings"]`` (status ``pass``/``fail``).
* :class:`VariantSummary` (:func:`variant_summaries`): one variant's summary row (status, measurements,
  artifact, paired comparison vs dense), and :func:`variant_cells`, its formatted columns
  (:data:`VARIANT_COLUMNS`), shown alike by the console summary, ``report.md`` and ``report.html``.

Ranking of the "top findings" (annotations, summaries): blocking failures and errors first, then warnings
and inconclusive results; within a class the larger violation of the margin first (|estimate - margin|
when both are known), then check id and variant for a stable order.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from gate.policy.decision import fmt_level
from gate.policy.status import (
    ERROR,
    FAIL,
    INCONCLUSIVE,
    PASS,
    SKIPPED,
    STATUSES,
    WAIVED,
    WARN,
)

_ALIASES = {"passed": PASS, "ok": PASS, "failed": FAIL, "failure": FAIL, "not_computed": ERROR,
            "warning": WARN, "skip": SKIPPED, "waiver": WAIVED}
_SEVERITY_RANK = {"error": 0, "critical": 0, "blocker": 0, "warning": 1, "info": 2}


PROBLEM_STATUSES = (FAIL, ERROR, INCONCLUSIVE, WARN)
"""Statuses that are problems (listed as findings); skipped and waived are not."""
WORST_FIRST = (ERROR, FAIL, INCONCLUSIVE, WARN, WAIVED, PASS, SKIPPED)
"""Statuses from worst to best: the status of a group of checks is the first of these that occurs."""


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
        return self.status in PROBLEM_STATUSES

    @property
    def level(self) -> str:
        """``"error"`` (a blocking fail or inconclusive, or any execution error), ``"warning"`` (other problems) or ``"notice"``."""
        if self.status == ERROR or (self.status in (FAIL, INCONCLUSIVE) and self.blocking):
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


def finite_number(x) -> float | None:
    """``x`` as a float when it is a finite int or float (not a bool), else ``None``: a number read from an
    untrusted report (Python's ``json`` also parses ``NaN`` and ``Infinity``)."""
    x = _num(x)
    return x if x is not None and math.isfinite(x) else None


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
            if blocking is None and isinstance(listed, list) and normalise_status(c.get("status")) != PASS:
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
    problems.sort(key=lambda r: (order[r.level], 0 if r.status == FAIL else 1, -r.excess(), r.id, r.variant))
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


@dataclass(frozen=True)
class Interval:
    """An estimate with its confidence interval (all in the unit of the quantity; bounds ``None`` when unknown).

    Attributes:
        estimate: the point estimate.
        ci_low, ci_high: the interval's bounds.
        confidence: its level as a fraction (``0.95``), or ``None`` when not stated.
    """

    estimate: float | None
    ci_low: float | None = None
    ci_high: float | None = None
    confidence: float | None = None

    def text(self, spec: str = ".3g") -> str:
        """``"0.12 [0.05, 0.19] (95% CI)"`` (the level only when known), the estimate alone, or ``"n/a"``."""
        if self.estimate is None:
            return "n/a"
        if self.ci_low is None or self.ci_high is None:
            return fmt_num(self.estimate, spec)
        level = f" ({fmt_level(self.confidence)} CI)" if self.confidence is not None else ""
        return f"{fmt_num(self.estimate, spec)} [{fmt_num(self.ci_low, spec)}, {fmt_num(self.ci_high, spec)}]{level}"


def fmt_interval(row: CheckRow) -> str:
    """``"0.12 [0.05, 0.19]"``, the estimate alone, or ``"n/a"`` (``.3g``, the check's unit)."""
    return Interval(row.estimate, row.ci_low, row.ci_high).text()


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


# ---------------------------------------------------------------- the per-variant summary row

ANSWER_GROUPS = (
    ("storage", ("budget.storage",)),
    ("RAM", ("budget.memory",)),
    ("latency", ("budget.latency",)),
    ("bias", ("bias.s_amb", "bias.srs", "bias.new_bias_rate")),
    ("accuracy", ("accuracy.disambig",)),
    ("perplexity", ("perplexity.ratio", "perplexity.paradox")),
    ("savings", ("efficiency.speedup", "efficiency.size", "efficiency.memory", "efficiency.structural")),
    ("artifact", ("sparsity.claim", "export.verify")),
)
"""Groups of the "can I ship this?" answer: label and the check ids it summarises (worst status wins)."""

_BUDGET_GROUPS = ("storage", "RAM")  # groups whose first check compares measured bytes with the profile's budget


def worst_status(statuses) -> str | None:
    """The worst of ``statuses`` by :data:`WORST_FIRST`, ignoring :data:`SKIPPED`; ``None`` when none is left."""
    left = [s for s in statuses if s != SKIPPED]
    return min(left, key=WORST_FIRST.index) if left else None


@dataclass(frozen=True)
class GroupStatus:
    """One group of :data:`ANSWER_GROUPS` for one variant.

    Attributes:
        label: the group's label (``"storage"``, ``"bias"``, ...).
        status: the worst status of its checks (:func:`worst_status`); ``None`` when all were skipped or absent.
        measured, budget: for ``storage`` and ``RAM``, the check's estimate and margin in bytes (else ``None``).
    """

    label: str
    status: str | None
    measured: float | None = None
    budget: float | None = None


@dataclass(frozen=True)
class VariantSummary:
    """The per-variant summary row every projection shows (console, Markdown, HTML): one place for its numbers.

    Built by :func:`variant_summaries`; every number is ``None`` when the report lacks it. Units are in the
    names: ``_bytes`` bytes, ``_ms`` milliseconds, fractions in [0, 1], bias scores in [-1, 1] (s_AMB, s_DIS of
    Parrish et al. 2022, "BBQ: A hand-built bias benchmark for question answering"), ratios candidate / dense.

    Attributes:
        name, role: the variant's name and role (``"baseline"`` or ``"candidate"``).
        method: the compression method (``compression.method``; ``"none"`` for dense).
        status: the worst status of the variant's checks (:func:`worst_status`); ``None`` without checks.
        groups: the :data:`ANSWER_GROUPS`, in order.
        size_bytes: model files on disk (``artifact.bytes_total``); zstd_bytes: zstd-compressed (``size.bytes_zstd``).
        decode_p50_ms: median decode latency per token; prefill_p50_ms: median prefill latency of the longest
            prompt, prefill_tokens its length (``None`` for a single-length layout).
        peak_rss_bytes: peak resident memory while measured (VmHWM).
        accuracy_ambig, accuracy_disambig: BBQ accuracy in ambiguous / disambiguated contexts (fraction).
        s_amb, s_dis: BBQ bias scores in ambiguous / disambiguated contexts.
        sparsity_pruned, sparsity_all, sparsity_claimed: fraction of weights exactly 0 in the pruned linears,
            in all parameters, and the fraction claimed by the compression.
        perplexity, perplexity_ratio: perplexity on the corpus, and its ratio to dense.
        artifact_dir, artifact_sha256: the artifact directory and its root digest (hex).
        new_bias_count, new_bias_at_risk, new_bias_rate: ambiguous items biased now but not under dense, out of
            those at risk (paired comparison, ``paired_vs_baseline.transitions.new_bias``).
        delta_srs: change of the stereotype-reinforcement share vs dense with its paired bootstrap interval.
        mcnemar_p: McNemar p-value of the new-vs-removed bias transitions, clustered over template instances
            (Obuchowski 1998) when the report has it, else the exact test on items.
        mde_delta_srs: the smallest change of SRS the suite detects (80% power); n_pairs: ambiguous item pairs.
        speedup: decode speedup vs dense (ratio, x) with its interval (the ``efficiency.speedup`` check).
    """

    name: str
    role: str
    method: str | None = None
    status: str | None = None
    groups: tuple[GroupStatus, ...] = ()
    size_bytes: float | None = None
    zstd_bytes: float | None = None
    decode_p50_ms: float | None = None
    prefill_p50_ms: float | None = None
    prefill_tokens: int | None = None
    peak_rss_bytes: float | None = None
    accuracy_ambig: float | None = None
    accuracy_disambig: float | None = None
    s_amb: float | None = None
    s_dis: float | None = None
    sparsity_pruned: float | None = None
    sparsity_all: float | None = None
    sparsity_claimed: float | None = None
    perplexity: float | None = None
    perplexity_ratio: float | None = None
    artifact_dir: str | None = None
    artifact_sha256: str | None = None
    new_bias_count: int | None = None
    new_bias_at_risk: int | None = None
    new_bias_rate: float | None = None
    delta_srs: Interval | None = None
    mcnemar_p: float | None = None
    mde_delta_srs: float | None = None
    n_pairs: int | None = None
    speedup: Interval | None = None


def _groups(mine: dict[str, CheckRow]) -> tuple[GroupStatus, ...]:
    out = []
    for label, ids in ANSWER_GROUPS:
        status = worst_status(mine[i].status for i in ids if i in mine)
        first = mine.get(ids[0]) if label in _BUDGET_GROUPS else None
        out.append(GroupStatus(label, status, first.estimate if first else None, first.margin if first else None))
    return tuple(out)


def _interval(d: dict | None) -> Interval | None:
    if not d or _num(d.get("estimate")) is None:
        return None
    return Interval(_num(d.get("estimate")), _num(d.get("ci_low")), _num(d.get("ci_high")), _num(d.get("confidence")))


def variant_summary(variant: dict, rows: list[CheckRow]) -> VariantSummary:
    """The :class:`VariantSummary` of one ``report["variants"]`` entry; ``rows`` are the report's check rows.

    Raises:
        KeyError: the entry has no ``name``.
    """
    v = variant
    mine = {r.id: r for r in rows if r.variant == v["name"]}
    art, bench, bbq = v.get("artifact") or {}, v.get("bench") or {}, v.get("bbq") or {}
    sp, size, ppl = v.get("sparsity") or {}, v.get("size") or {}, v.get("perplexity") or {}
    prefill, label = phase_stats(bench, "prefill_ms")
    tokens = label.rsplit(" ", 2)[1] if label.endswith(" tokens") else None
    paired = v.get("paired_vs_baseline") or {}
    new_bias = (paired.get("transitions") or {}).get("new_bias") or {}
    speed = mine.get("efficiency.speedup")
    return VariantSummary(
        name=str(v["name"]), role=str(v.get("role", "")), method=_compression_text(v.get("compression") or {}),
        status=worst_status(r.status for r in mine.values()), groups=_groups(mine),
        size_bytes=_num(art.get("bytes_total")), zstd_bytes=_num(size.get("bytes_zstd")),
        decode_p50_ms=_num(phase_stats(bench, "decode_ms_per_token")[0].get("p50")),
        prefill_p50_ms=_num(prefill.get("p50")), prefill_tokens=int(tokens) if tokens else None,
        peak_rss_bytes=_num(bench.get("peak_rss_bytes")),
        accuracy_ambig=_num(bbq.get("accuracy_ambig")), accuracy_disambig=_num(bbq.get("accuracy_disambig")),
        s_amb=_num(bbq.get("s_amb")), s_dis=_num(bbq.get("s_dis")),
        sparsity_pruned=_num(sp.get("measured_pruned_linears")), sparsity_all=_num(sp.get("measured_all_params")),
        sparsity_claimed=_num(sp.get("claimed")),
        perplexity=_num(ppl.get("value")), perplexity_ratio=_num(ppl.get("ratio_to_dense")),
        artifact_dir=art.get("dir"), artifact_sha256=artifact_digest(v),
        new_bias_count=new_bias.get("count"), new_bias_at_risk=new_bias.get("n_at_risk"),
        new_bias_rate=_num(new_bias.get("rate")),
        delta_srs=_interval((paired.get("deltas") or {}).get("delta_srs")),
        mcnemar_p=_num((paired.get("mcnemar") or {}).get("p_value_clustered",
                                                          (paired.get("mcnemar") or {}).get("p_value"))),
        mde_delta_srs=_num((paired.get("mde") or {}).get("delta_srs")),
        n_pairs=(paired.get("transitions") or {}).get("n_pairs"),
        speedup=Interval(speed.estimate, speed.ci_low, speed.ci_high, _num(speed.extra.get("confidence")))
        if speed and speed.estimate is not None else None,
    )


def variant_summaries(report: dict) -> list[VariantSummary]:
    """One :class:`VariantSummary` per ``report["variants"]`` entry, in report order.

    Raises:
        ValueError: a check has an unknown status (:func:`normalise_status`).
    """
    rows = check_rows(report)
    return [variant_summary(v, rows) for v in report.get("variants") or []]


@dataclass(frozen=True)
class Cell:
    """One formatted value of a :class:`VariantSummary`, as every projection shows it.

    Attributes:
        group: ``"variant"`` (name, role), ``"measured"``, ``"artifact"`` or ``"vs dense"``; the console prints
            one line per group.
        header: the column header, with its unit.
        text: the value (``"n/a"`` when unknown).
        numeric: right-align it in a table.
        code: show it as code (a digest).
    """

    group: str
    header: str
    text: str
    numeric: bool = False
    code: bool = False

    @property
    def known(self) -> bool:
        """The value is known (its text is neither ``"n/a"`` nor ``"-"``)."""
        return self.text not in ("n/a", "-")


def _mb(x: float | None) -> str:
    return fmt_num(x / 1e6 if x is not None else None, ".1f")


def _pair(a: float | None, b: float | None, spec: str) -> str:
    return "n/a" if a is None and b is None else f"{fmt_num(a, spec)} / {fmt_num(b, spec)}"


def _sparsity(r: VariantSummary) -> str:
    if r.sparsity_pruned is None and r.sparsity_all is None:
        return "n/a"
    return f"{_pair(r.sparsity_pruned, r.sparsity_all, '.3f')} (claimed {fmt_num(r.sparsity_claimed, '.3f')})"


def _compression_text(c: dict) -> str | None:
    """``magnitude``, ``int8``, ``wanda+int4``: the pruning method and the quantization, whichever exist."""
    method = c.get("method")
    q = c.get("quantization")
    q = (q.get("scheme") or q.get("name")) if isinstance(q, dict) else q
    parts = [p for p in (method if method not in (None, "none") else None, q) if p]
    return "+".join(str(p) for p in parts) if parts else method


def _perplexity(r: VariantSummary) -> str:
    ratio = f" (x{r.perplexity_ratio:.3f})" if r.perplexity_ratio is not None else ""
    return fmt_num(r.perplexity, ".2f") + ratio if r.perplexity is not None else "n/a"


def _new_bias(r: VariantSummary) -> str:
    if r.new_bias_count is None:
        return "n/a"
    return f"{r.new_bias_count}/{r.new_bias_at_risk} ({fmt_num(r.new_bias_rate, '.1%')})"


def _prefill(r: VariantSummary) -> str:
    tokens = f" ({r.prefill_tokens} tokens)" if r.prefill_tokens is not None and r.prefill_p50_ms is not None else ""
    return fmt_num(r.prefill_p50_ms, ".1f") + tokens


@dataclass(frozen=True)
class Column:
    """One column of the per-variant summary: its :class:`Cell` fields and how to format a row's value.

    Attributes:
        group, header, numeric, code: as in :class:`Cell`.
        text: ``VariantSummary -> str`` (``"n/a"`` when unknown).
    """

    group: str
    header: str
    text: Callable[[VariantSummary], str]
    numeric: bool = False
    code: bool = False


VARIANT_COLUMNS = (
    Column("variant", "variant", lambda r: r.name),
    Column("variant", "role", lambda r: r.role),
    Column("measured", "status", lambda r: r.status.upper() if r.status else "-"),
    Column("measured", "size on disk (MB)", lambda r: _mb(r.size_bytes), numeric=True),
    Column("measured", "decode p50 (ms/token)", lambda r: fmt_num(r.decode_p50_ms, ".2f"), numeric=True),
    Column("measured", "prefill p50 (ms, longest prompt)", _prefill, numeric=True),
    Column("measured", "peak RSS (MB)", lambda r: _mb(r.peak_rss_bytes), numeric=True),
    Column("measured", "accuracy ambig / disambig (fraction)",
           lambda r: _pair(r.accuracy_ambig, r.accuracy_disambig, ".3f"), numeric=True),
    Column("measured", "s_AMB / s_DIS (-1..1)", lambda r: _pair(r.s_amb, r.s_dis, "+.3f"), numeric=True),
    Column("artifact", "compression", lambda r: r.method or "n/a"),
    Column("artifact", "sparsity pruned linears / all params (fraction of weights = 0)", _sparsity, numeric=True),
    Column("artifact", "zstd (MB)", lambda r: _mb(r.zstd_bytes), numeric=True),
    Column("artifact", "perplexity (value, x dense)", _perplexity, numeric=True),
    Column("artifact", "artifact sha256", lambda r: r.artifact_sha256[:16] + "…" if r.artifact_sha256 else "n/a", code=True),
    Column("vs dense", "new bias (ambiguous items)", _new_bias, numeric=True),
    Column("vs dense", "ΔSRS [CI]", lambda r: r.delta_srs.text("+.3f") if r.delta_srs else "n/a", numeric=True),
    Column("vs dense", "McNemar p (clustered)", lambda r: fmt_num(r.mcnemar_p, ".3g"), numeric=True),
    Column("vs dense", "MDE of ΔSRS (80% power)", lambda r: fmt_num(r.mde_delta_srs, ".3f"), numeric=True),
    Column("vs dense", "decode speedup (x) [CI]", lambda r: r.speedup.text(".3f") if r.speedup else "n/a", numeric=True),
)
"""The columns of the per-variant summary, in order: the one place their headers, units and formats are written."""

VARIANT_HEADERS = tuple(c.header for c in VARIANT_COLUMNS)
"""The headers of :data:`VARIANT_COLUMNS`."""


def variant_cells(row: VariantSummary) -> tuple[Cell, ...]:
    """``row`` formatted as :data:`VARIANT_COLUMNS` (one :class:`Cell` each, in order)."""
    return tuple(Cell(c.group, c.header, c.text(row), c.numeric, c.code) for c in VARIANT_COLUMNS)
