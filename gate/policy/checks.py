"""The check registry: for each stable check id, what it measures and how its numbers come out of the report.

A check's extractor reads one variant's report entry (and the dense baseline's) and returns
:class:`Measurement` s: an estimate with its two-sided confidence interval, the minimum detectable effect and the
sample size, pooled or one per BBQ category. It decides nothing: :mod:`gate.policy.decision` compares the interval with
the policy's margin. An input the check needs but the report lacks raises :class:`NotComputed` (the check is then
ERROR, failing closed); a check that does not concern a variant raises :class:`NotApplicable` (SKIPPED).

Sources of the numbers:

* BBQ checks read ``entry["paired_vs_baseline"]`` (:func:`gate.bbq.paired.paired_comparison`: paired bootstrap
  over template instances, percentile intervals, Efron & Tibshirani 1993 ch. 13).
* ``bias.new_bias_rate`` uses the Wilson score interval (Wilson 1927, JASA 22:209-212) of ``count / n_at_risk``.
* ``efficiency.*`` come from :func:`gate.measure.efficiency.efficiency_metrics` and ``budget.storage``/``budget.memory``
  from :func:`gate.measure.efficiency.budget_facts` (two-stage bootstrap across benchmark processes); ``budget.latency`` is
  :func:`gate.measure.efficiency.latency_against_budgets`: each latency budget of the profile with the latency
  at its percentile. A latency or memory comparison from fewer than 2 benchmark processes per variant, or (latency)
  from a process flagged unstable, is marked ``undecided`` (:func:`undecided_latency`): INCONCLUSIVE, with the reason.
* Which candidates the ``efficiency.*`` checks judge: those that claim compression and those whose artifact
  *measures* as compressed against the dense one (:func:`measured_compression`: zeros in linear weights, stored
  dtypes, ``sparse_initializer``), whatever they claim.
* Minimum detectable effect: Connor 1987 (McNemar, :func:`gate.bbq.paired.mde_paired_proportions`) for ΔSRS;
  otherwise the normal approximation ``mde = (z_{1-alpha/2} + z_power) * se`` (Bloom 1995, "Minimum detectable
  effects", Evaluation Review 19:547-556) with ``se = (ci_high - ci_low) / (2 z_{1-alpha/2})`` read off the
  interval.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from statistics import NormalDist

from gate.bbq.paired import mde_paired_proportions
from gate.policy.file import Statistics
from gate.policy.status import FAIL, PASS

AT_MOST, AT_LEAST = "at_most", "at_least"


class NotComputed(Exception):
    """The check's input is missing or undefined; the message says which (the check fails closed as ERROR)."""


class NotApplicable(Exception):
    """The check does not concern this variant; the message says why (SKIPPED)."""


@dataclass
class Measurement:
    """One estimate to compare with a margin.

    Attributes:
        estimate: the metric's value (units: the check's ``unit``), or ``None`` when ``status`` is given.
        ci_low, ci_high: two-sided interval at ``confidence``; ``None`` for an exact (deterministic) measurement,
            which is then decided on ``estimate`` alone.
        confidence: level of the interval.
        n: sample size behind the interval (``n_unit`` says of what).
        n_unit: ``"items"``, ``"ambiguous items at risk"``, ``"latency samples"``, ``"processes"``.
        mde: minimum detectable effect in the metric's units at the policy's power, when defined.
        method: how the estimate and interval were computed.
        group: BBQ category for per-category checks, ``None`` when pooled.
        margin: a margin that overrides the policy's (budgets come from the hardware profile).
        status: a decided outcome for non-interval checks (``"pass"``/``"fail"``), else ``None``.
        skipped: why this group is not judged (e.g. a category without bias targets), else ``None``.
        undecided: why this estimate may not be decided PASS/FAIL whatever its interval says (e.g. latency
            measured in fewer than 2 benchmark processes, or in processes flagged unstable), and what would decide
            it; the group is then INCONCLUSIVE with this reason. ``None`` when it may be decided.
        values: the raw numbers behind the estimate, with units in their keys.
    """

    estimate: float | None
    ci_low: float | None = None
    ci_high: float | None = None
    confidence: float | None = None
    n: int | None = None
    n_unit: str | None = None
    mde: float | None = None
    method: str = ""
    group: str | None = None
    margin: float | None = None
    status: str | None = None
    skipped: str | None = None
    undecided: str | None = None
    values: dict = field(default_factory=dict)


@dataclass(frozen=True)
class CheckSpec:
    """What a check measures.

    Attributes:
        id: stable id.
        metric: name of the compared quantity.
        unit: its unit.
        direction: ``"at_most"`` (PASS when the upper bound <= margin) or ``"at_least"`` (lower bound >= margin).
        applies: ``"candidates"``, ``"compressed"`` (candidates claiming sparsity or quantization, or whose artifact
            measures as compressed against the dense one: :func:`measured_compression`) or ``"all"``.
        bbq: per-category evaluation is possible.
        extract: ``(baseline_entry, entry, ctx) -> list[Measurement]``.
    """

    id: str
    metric: str
    unit: str
    direction: str
    applies: str
    bbq: bool
    extract: Callable[[dict, dict, Context], list[Measurement]] | None


@dataclass(frozen=True)
class Context:
    """What extractors need besides the two entries.

    Attributes:
        stats: the policy's statistics settings.
        per: ``"pooled"`` / ``"category"`` for BBQ checks.
        profile: ``report["profile"]`` (hardware profile with budgets).
        cache: per-variant memo shared by the variant's checks (efficiency numbers are computed once).
        execution: ``report["execution"]`` (``on_target``, ``measured_arch``: was the run on the target device?).
    """

    stats: Statistics
    per: str | None = None
    profile: dict = field(default_factory=dict)
    cache: dict = field(default_factory=dict)
    execution: dict = field(default_factory=dict)


def z_crit(confidence: float) -> float:
    """``z_{1-alpha/2}`` for a two-sided level ``confidence``."""
    return NormalDist().inv_cdf(0.5 + confidence / 2.0)


def mde_from_interval(ci_low: float | None, ci_high: float | None, confidence: float, power: float) -> float | None:
    """Normal-approximation minimum detectable effect from a two-sided interval (Bloom 1995).

    ``se = (ci_high - ci_low) / (2 z_{1-alpha/2})``, ``mde = (z_{1-alpha/2} + z_power) se``: the smallest true
    difference from the margin that an interval of this width excludes the margin for with probability ``power``.

    Returns:
        the MDE in the interval's units, or ``None`` without an interval.
    """
    if ci_low is None or ci_high is None:
        return None
    za = z_crit(confidence)
    return (za + NormalDist().inv_cdf(power)) * (ci_high - ci_low) / (2.0 * za)


def wilson_interval(count: int, n: int, confidence: float) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (Wilson 1927, JASA 22:209-212, eq. for the "score" bounds).

    ``(p + z^2/2n ± z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n)``, clipped to [0, 1].

    Raises:
        ValueError: ``n <= 0`` or ``count`` outside [0, n].
    """
    if n <= 0 or not 0 <= count <= n:
        raise ValueError(f"wilson_interval needs 0 <= count <= n and n > 0, got count={count}, n={n}")
    z = z_crit(confidence)
    p = count / n
    centre = p + z * z / (2 * n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    den = 1 + z * z / n
    return max(0.0, (centre - half) / den), min(1.0, (centre + half) / den)


# ---------------------------------------------------------------------------------------------- BBQ checks


_AMBIGUOUS_DELTAS = ("delta_srs", "delta_s_amb", "delta_abs_s_amb", "delta_accuracy_ambig")


def zero_discordance_bound(n: int, confidence: float, scale: float = 1.0) -> float:
    """Half-width for a paired difference when no item changed its answer (a zero-width bootstrap interval).

    With 0 discordant items among ``n``, the exact one-sided upper bound of the discordance rate at level
    ``1 - alpha/2`` is ``-ln(alpha/2) / n`` ("rule of three" for alpha/2 = 0.05: Hanley & Lippman-Hand 1983,
    JAMA 249:1743); a difference of proportions cannot exceed the discordance rate, and a BBQ bias score in
    [-1, 1] moves at most twice as far (``scale=2``, an approximate bound since s_AMB also scales by accuracy).

    Args:
        n: items the metric is computed on (ambiguous items for s_AMB/SRS, disambiguated for accuracy_disambig).
        confidence: two-sided level, e.g. 0.95.
        scale: metric units per unit of discordance rate.

    Returns:
        the half-width in metric units (``inf`` when ``n <= 0``).
    """
    if n <= 0:
        return math.inf
    return scale * -math.log((1.0 - confidence) / 2.0) / n


def _degenerate_interval(name: str, est: float, g: dict, n_pairs: int, conf: float) -> tuple[float, float, str]:
    """Replacement for a zero-width bootstrap interval of a paired BBQ delta (returns ``lo, hi, note``).

    The template-cluster bootstrap collapses when nothing changed, or when a category has too few template
    instances to resample; a zero-width interval would then let a tiny suite "prove" non-inferiority.

    * ``est == 0``: nothing changed; the exact zero-discordance bound (:func:`zero_discordance_bound`).
    * ``delta_srs`` with discordant pairs: the Wald interval of a paired difference of proportions from the
      McNemar counts, ``(c - b)/n ± z sqrt(b + c - (c - b)^2 / n) / n`` (Agresti 2013, Categorical Data
      Analysis, §10.1.1), never narrower than the zero-discordance bound.
    * otherwise: no interval can be estimated; the metric's whole range (``±2`` for s_AMB deltas, ``±1`` for
      fractions), so the check is INCONCLUSIVE rather than decided by a degenerate resample.
    """
    scale = 2.0 if "s_amb" in name else 1.0
    n_rel = n_pairs if name in _AMBIGUOUS_DELTAS else (g.get("n_items") or 0) - n_pairs
    floor = zero_discordance_bound(n_rel, conf, scale=scale)
    if est == 0:
        return est - floor, est + floor, ("the bootstrap interval had zero width (no item changed its answer), so it "
                                          "is widened to the exact bound for zero discordant items (rule of three)")
    mc = g.get("mcnemar") or {}
    b, c = mc.get("b_removed_bias"), mc.get("c_new_bias")
    if name == "delta_srs" and b is not None and c is not None and n_pairs:
        half = max(floor, z_crit(conf) * math.sqrt(max(0.0, b + c - (c - b) ** 2 / n_pairs)) / n_pairs)
        return est - half, est + half, ("the bootstrap interval had zero width (too few template instances per "
                                        "category to resample), so the Wald interval of a paired difference of "
                                        "proportions from the McNemar counts is used")
    return est - scale, est + scale, ("the bootstrap interval had zero width although answers changed (too few "
                                      "template instances per category to resample): no interval can be estimated, "
                                      "so the whole range of the metric is used")


def _paired(entry: dict) -> dict:
    paired = entry.get("paired_vs_baseline")
    if not paired:
        raise NotComputed("no paired BBQ comparison with the baseline in the report (paired_vs_baseline missing)")
    return paired


def _bbq_groups(entry: dict, ctx: Context) -> list[tuple[str | None, dict]]:
    paired = _paired(entry)
    if ctx.per == "category":
        cats = paired.get("by_category") or {}
        if not cats:
            raise NotComputed("per-category evaluation asked, but the paired comparison has no by_category results")
        return list(cats.items())
    return [(None, paired)]


def _delta_check(name: str, sign: float, needs_target: bool):
    """Extractor of a paired-bootstrap delta; ``sign=-1`` turns a fall (e.g. of accuracy) into a degradation."""

    def extract(base: dict, entry: dict, ctx: Context) -> list[Measurement]:
        out = []
        for cat, g in _bbq_groups(entry, ctx):
            d = (g.get("deltas") or {}).get(name)
            n_pairs = (g.get("transitions") or {}).get("n_pairs", 0)
            if d is None:
                raise NotComputed(f"paired comparison lacks deltas.{name}")
            if d.get("estimate") is None:
                if cat is not None and (needs_target and n_pairs == 0 or not needs_target):
                    out.append(Measurement(None, group=cat, skipped="metric undefined in this category"
                                           + (" (no ambiguous item with a bias target)" if needs_target else "")))
                    continue
                raise NotComputed(f"{name} is undefined" + (" (no ambiguous item with a bias target)" if needs_target else ""))
            est, lo, hi = (None if x is None else sign * x + 0.0 for x in (d["estimate"], d.get("ci_low"), d.get("ci_high")))
            if sign < 0:
                lo, hi = hi, lo
            conf = d.get("confidence", ctx.stats.confidence)
            method = "paired bootstrap over template instances, percentile interval"
            if lo is not None and hi is not None and hi - lo <= 0:
                lo, hi, note = _degenerate_interval(name, est, g, n_pairs, conf)
                method += "; " + note
            mde = mde_from_interval(lo, hi, conf, ctx.stats.power)
            if name == "delta_srs":
                m = g.get("mde") or {}
                if m.get("n_pairs") and m.get("discordance"):
                    mde = mde_paired_proportions(m["n_pairs"], m["discordance"], round(1 - conf, 12), ctx.stats.power)
                    method += "; MDE: Connor 1987 McNemar sample-size formula"
            out.append(Measurement(est, lo, hi, conf, n=g.get("n_items"), n_unit="items", mde=mde, method=method,
                                   group=cat, values={"base": d.get("base"), "candidate": d.get("candidate"),
                                                      "n_resamples": d.get("n_resamples")}))
        return out

    return extract


def _new_bias_rate(base: dict, entry: dict, ctx: Context) -> list[Measurement]:
    out = []
    for cat, g in _bbq_groups(entry, ctx):
        nb = (g.get("transitions") or {}).get("new_bias")
        if nb is None:
            raise NotComputed("paired comparison lacks transitions.new_bias")
        if not nb.get("n_at_risk"):
            if cat is not None:
                out.append(Measurement(None, group=cat, skipped="no ambiguous item answered without bias by dense"))
                continue
            raise NotComputed("no ambiguous item answered without bias by the baseline: the new-bias rate is undefined")
        conf = ctx.stats.confidence
        lo, hi = wilson_interval(nb["count"], nb["n_at_risk"], conf)
        out.append(Measurement(nb["count"] / nb["n_at_risk"], lo, hi, conf, n=nb["n_at_risk"],
                               n_unit="ambiguous items at risk", mde=mde_from_interval(lo, hi, conf, ctx.stats.power),
                               method="count / n_at_risk (deterministic predictions), Wilson score interval",
                               group=cat, values={"count": nb["count"], "n_at_risk": nb["n_at_risk"]}))
    return out


# ------------------------------------------------------------------------------------- perplexity, efficiency


def _perplexity_ratio(base: dict, entry: dict, ctx: Context) -> list[Measurement]:
    ppl = entry.get("perplexity")
    if ppl and ppl.get("measured") is False:  # the user turned it off (--no-perplexity); recorded, not an error
        raise NotApplicable(f"perplexity not measured: {ppl.get('reason', 'disabled')}")
    if not ppl or ppl.get("value") is None:
        raise NotComputed("perplexity not computed for this variant (entry['perplexity'] missing)")
    ratio = ppl.get("ratio_to_dense")
    if ratio is None:
        b = (base.get("perplexity") or {}).get("value")
        if not b:
            raise NotComputed("perplexity of the dense baseline not computed")
        ratio = ppl["value"] / b
    return [Measurement(float(ratio), method="perplexity(candidate) / perplexity(dense) on the same corpus windows; "
                        "deterministic, no interval",
                        values={"perplexity": ppl["value"], "n_tokens_scored": ppl.get("n_tokens_scored")})]


def _efficiency(base: dict, entry: dict, ctx: Context) -> dict:
    """:func:`gate.measure.efficiency.efficiency_metrics` of the candidate (computed once per variant)."""
    if "efficiency" not in ctx.cache:
        from gate.measure.efficiency import efficiency_metrics

        ctx.cache["efficiency"] = efficiency_metrics(base, entry, seed=ctx.stats.seed, confidence=ctx.stats.confidence,
                                                     n_resamples=ctx.stats.resamples)
    return ctx.cache["efficiency"]


def undecided_latency(n_processes: list[int | None], unstable: bool, what: str, paired: bool = False) -> str | None:
    """Why a latency (or memory) comparison may not be decided PASS/FAIL, and what would decide it; ``None`` if it may.

    A comparison is undecidable when a side was measured in fewer than
    :data:`gate.measure.latency_stats.MIN_PROCESSES_TO_DECIDE` benchmark processes (the interval then holds
    within-process noise only, while the spread between fresh processes is the larger one: module docstring of
    :mod:`gate.measure.latency_stats`), or when a process it uses was flagged unstable (its CV stayed above
    ``--cv-limit`` after a re-run, :mod:`gate.measure.harness`); both are INCONCLUSIVE. The rule concerns the
    comparisons read here, from independent benchmark processes (``entry["bench"]``); a paired comparison (both
    models timed in the same processes, :func:`gate.measure.harness.measure_paired`) answers instability by its own
    design and is not read by these checks yet.

    Args:
        n_processes: processes per side (``None`` = unknown, which counts as too few).
        unstable: whether a process the comparison uses was flagged unstable.
        what: the compared quantity, for the message (e.g. ``"decode speedup"``).
        paired: the comparison comes from the paired protocol (its processes are set by ``--bench-max-processes``).

    Returns:
        one sentence, or ``None``.
    """
    from gate.measure.latency_stats import MIN_PROCESSES_TO_DECIDE

    reasons, fixes = [], []
    few = [n for n in n_processes if n is None or n < MIN_PROCESSES_TO_DECIDE]
    if few:
        counts = " and ".join("?" if n is None else str(n) for n in n_processes)
        reasons.append(f"measured in {counts} benchmark process(es), fewer than {MIN_PROCESSES_TO_DECIDE} per variant, "
                       "so the interval ignores the spread between fresh processes")
        fixes.append("re-run with --bench-max-processes (or --bench-budget) allowing at least 2 paired processes"
                     if paired else "re-run with --bench-processes 5 (at least 2)")
    if unstable:
        reasons.append("a benchmark process it uses was flagged unstable (CV above --cv-limit after a re-run; "
                       "bench.stability.unstable_runs)")
        fixes.append("re-run on a quieter machine (or with --cv-limit above the recorded CV if that noise is accepted)")
    if not reasons:
        return None
    return f"not decided: the {what} was {'; and '.join(reasons)}; to decide it, {' and '.join(fixes)}"


def _speedup(base: dict, entry: dict, ctx: Context) -> list[Measurement]:
    sp = _efficiency(base, entry, ctx).get("decode_speedup")
    if not sp:
        raise NotComputed("no decode latency measured for the candidate or the baseline (bench missing)")
    conf = sp.get("confidence", ctx.stats.confidence)
    values = {k: sp.get(k) for k in ("baseline_p50_ms", "candidate_p50_ms", "context_tokens", "unstable",
                                     "n_processes_baseline")}
    paired = sp.get("protocol") is not None
    if paired:
        values.update({k: sp.get(k) for k in ("protocol", "stop_reason", "look_alpha", "n_blocks", "processes_needed")})
    values.update(_compression_basis(base, entry))
    return [Measurement(sp["speedup_x"], sp["ci_low_x"], sp["ci_high_x"], conf, n=sp.get("n_processes_candidate"),
                        n_unit="benchmark processes", mde=mde_from_interval(sp["ci_low_x"], sp["ci_high_x"], conf,
                                                                            ctx.stats.power),
                        method=sp["method"], values=values,
                        undecided=undecided_latency([sp.get("n_processes_baseline"), sp.get("n_processes_candidate")],
                                                    bool(sp.get("unstable")), "decode speedup", paired=paired))]


def _structural(base: dict, entry: dict, ctx: Context) -> list[Measurement]:
    """The decode speedup the kernels allow (:func:`gate.measure.cost.compare_costs`), exact, with the measured
    speedup beside it as confirmation."""
    from gate.measure.cost import compare_costs

    b = ((base.get("size") or {}).get("op_types") or {}).get("static_cost")
    c = ((entry.get("size") or {}).get("op_types") or {}).get("static_cost")
    if not b or not c:
        raise NotComputed("static cost of the optimized graph unknown (size.op_types.static_cost missing)")
    cmp = compare_costs(b, c)
    if cmp["predicted_decode_speedup_bound"] is None:
        raise NotComputed("the candidate reads no weights per decode token (static cost empty)")
    sp = _efficiency(base, entry, ctx).get("decode_speedup") or {}
    measured = (f"; measured decode speedup {sp['speedup_x']:.3f}x [{sp['ci_low_x']:.3f}, {sp['ci_high_x']:.3f}]"
                if sp.get("speedup_x") is not None and sp.get("ci_low_x") is not None else "")
    values = {k: cmp[k] for k in ("same_kernels", "kernels_differ", "decode_bytes_ratio", "decode_flops_ratio")}
    values.update({"weight_bytes_per_decode_token_dense": b["decode"]["weight_bytes_per_token"],
                   "weight_bytes_per_decode_token_candidate": c["decode"]["weight_bytes_per_token"],
                   "verdict": cmp["verdict"]})
    values.update(_compression_basis(base, entry))
    return [Measurement(float(cmp["predicted_decode_speedup_bound"]), method=f"{cmp['verdict']}; {cmp['method']}; "
                        f"exact{measured}", values=values)]


def _size(base: dict, entry: dict, ctx: Context) -> list[Measurement]:
    st = _efficiency(base, entry, ctx).get("storage_saving")
    if not st:
        raise NotComputed("artifact size of the candidate or the baseline unknown (size / artifact.bytes_total missing)")
    values = {"bytes_dense": st["baseline_bytes"], "bytes_candidate": st["candidate_bytes"]}
    values.update(_compression_basis(base, entry))
    method = f"1 - bytes(candidate) / bytes(dense) on disk ({st['source']}); exact"
    sparse = ((entry.get("size") or {}).get("sparse_initializers") or (entry.get("sparsity") or {}).get("sparse_initializers"))
    if sparse:
        values["sparse_initializer_dense_bytes_at_load"] = sparse.get("dense_bytes_at_load")
        method += "; " + str(sparse.get("note", "ONNX Runtime densifies sparse_initializer tensors at session load"))
    return [Measurement(st["saving_fraction"], method=method, values=values)]


def _memory(base: dict, entry: dict, ctx: Context) -> list[Measurement]:
    mem = _efficiency(base, entry, ctx).get("memory_saving")
    if not mem:
        raise NotComputed("peak memory above the pre-load baseline not measured for both variants (bench.memory)")
    conf = mem.get("confidence", ctx.stats.confidence)
    values = {k: v for k, v in mem.items() if k.endswith("_bytes")}
    values.update(_compression_basis(base, entry))
    # peak memory is not timed, so the latency stability flag does not concern it; one process per side still
    # leaves the spread between processes unmeasured
    return [Measurement(mem["saving_fraction"], mem["ci_low"], mem["ci_high"], conf, n=mem.get("n_processes_candidate"),
                        n_unit="benchmark processes", mde=mde_from_interval(mem["ci_low"], mem["ci_high"], conf,
                                                                            ctx.stats.power),
                        method=mem["method"] + "; " + mem.get("basis", ""), values=values,
                        undecided=undecided_latency([mem.get("n_processes_baseline"), mem.get("n_processes_candidate")],
                                                    False, "peak-memory saving"))]


# --------------------------------------------------------------------------------------------------- budgets


def _budget_facts(entry: dict, ctx: Context) -> dict:
    if "budget" not in ctx.cache:
        from gate.measure.efficiency import budget_facts

        ctx.cache["budget"] = budget_facts(entry, ctx.profile, seed=ctx.stats.seed, confidence=ctx.stats.confidence,
                                              n_resamples=ctx.stats.resamples)
    return ctx.cache["budget"]


def _no_budget(key: str, ctx: Context) -> NotApplicable:
    return NotApplicable(f"the hardware profile '{ctx.profile.get('name')}' sets no {key}")


def _budget_storage(base: dict, entry: dict, ctx: Context) -> list[Measurement]:
    if not ctx.profile.get("storage_budget_bytes"):
        raise _no_budget("storage_budget_bytes", ctx)
    st = _budget_facts(entry, ctx).get("storage")
    if not st:
        raise NotComputed("artifact size unknown (size / artifact.bytes_total missing)")
    return [Measurement(float(st["bytes"]), margin=float(st["budget_bytes"] or ctx.profile["storage_budget_bytes"]),
                        method=f"bytes on disk ({st['source']}); exact", values={"bytes": st["bytes"]})]


def _budget_memory(base: dict, entry: dict, ctx: Context) -> list[Measurement]:
    if not ctx.profile.get("ram_budget_bytes"):
        raise _no_budget("ram_budget_bytes", ctx)
    ram = _budget_facts(entry, ctx).get("ram")
    if not ram:
        raise NotComputed("peak RSS not measured (bench missing)")
    return [Measurement(float(ram["peak_rss_bytes"]), margin=float(ctx.profile["ram_budget_bytes"]),
                        method="largest peak RSS (VmHWM) over phases and benchmark processes: " + ram.get("basis", ""),
                        values={k: ram.get(k) for k in ("peak_rss_bytes_median", "ci_low", "ci_high",
                                                        "peak_above_baseline_bytes")})]


def _budget_latency(base: dict, entry: dict, ctx: Context) -> list[Measurement]:
    """One measurement per latency budget of the profile and measured length
    (:func:`gate.measure.efficiency.latency_against_budgets`: p50, p90 or p95, decode and prefill, whichever the
    profile sets); the budget is the margin."""
    from gate.measure.efficiency import latency_against_budgets, latency_budgets

    if not latency_budgets(ctx.profile):
        raise _no_budget("latency budget (latency_budgets.decode_p50_ms_per_token_max or another percentile)", ctx)
    if ctx.execution.get("on_target") is False:  # x86 host timings say nothing about an Arm core's latency
        raise NotApplicable(f"not judged: latency was measured on a {ctx.execution.get('measured_arch', '?')} host, not on "
                            f"the '{ctx.profile.get('name', '?')}' target; measure on the device (--device ssh://...)")
    s = ctx.stats
    try:
        facts = latency_against_budgets(entry.get("bench") or {}, ctx.profile, seed=s.seed, confidence=s.confidence,
                                        n_resamples=s.resamples)
    except ValueError as exc:
        raise NotComputed(str(exc)) from None
    return [Measurement(f["value_ms"], f["ci_low_ms"], f["ci_high_ms"], f["confidence"], n=f["n_processes"],
                        n_unit="benchmark processes",
                        mde=mde_from_interval(f["ci_low_ms"], f["ci_high_ms"], f["confidence"], s.power),
                        margin=f["budget_ms"], method=f["method"] + f", against profile {f['budget_key']}",
                        group=f["label"] if len(facts) > 1 else None,
                        values={"context_tokens" if f["phase"] == "decode" else "prompt_tokens": f["tokens"],
                                "percentile": f["percentile"], "budget_key": f["budget_key"],
                                "unstable": f["unstable"]},
                        undecided=undecided_latency([f["n_processes"]], bool(f["unstable"]), f"{f['label']} latency"))
            for f in facts]


# ------------------------------------------------------------------------------------------- claims, export


def _sparsity_claim(base: dict, entry: dict, ctx: Context) -> list[Measurement]:
    """``|measured - claimed|`` sparsity of the pruned linear layers. ``measured`` is the fraction of the dense
    model's pruned-linear weights that are zero or removed (``sparsity.effective_vs_dense.pruned_linears``, so structured pruning is judged too) when
    known, else the zero fraction in the artifact (``sparsity.measured_pruned_linears``, the definition of
    locuslab/wanda ``check_sparsity``). A quantized artifact may hold *more* zeros than claimed (weights rounded to
    the zero point), so for it only a shortfall ``max(0, claimed - measured)`` counts."""
    claimed = (entry.get("compression") or {}).get("claimed_sparsity")  # the compression's claim is authoritative
    if claimed is None:
        raise NotApplicable("the variant claims no sparsity")
    s = entry.get("sparsity") or {}
    if (entry.get("compression") or {}).get("method") == "structured":
        return _structured_claim(base, entry, claimed)
    eff = (s.get("effective_vs_dense") or {}).get("pruned_linears")
    measured = eff if eff is not None else s.get("measured_pruned_linears")
    if measured is None:
        raise NotComputed("sparsity of the artifact not measured (entry['sparsity'].measured_pruned_linears missing)")
    quantized = bool(s.get("quantized"))
    diff = measured - claimed
    estimate = max(0.0, -diff) if quantized else abs(diff)
    basis = "zero or removed vs dense" if eff is not None else "zero in the artifact"
    return [Measurement(estimate, method=("shortfall max(0, claimed - measured) (quantized: rounding adds zeros)"
                                          if quantized else "|measured - claimed|")
                        + f" of the pruned-linear sparsity, measured as {basis}; exact",
                        values={"claimed": claimed, "measured": measured, "measured_basis": basis,
                                "difference_pp": diff * 100, "quantized": quantized,
                                "n_linears_off_claim": s.get("n_linears_off_claim") or 0,
                                "linears_off_claim": (s.get("linears_off_claim") or [])[:5]})]


MLP_TYPES = ("gate_proj", "up_proj", "down_proj")


def _structured_claim(base: dict, entry: dict, claimed: float) -> list[Measurement]:
    """``structured:R`` claims that a fraction R of the MLP neurons is gone: measured as the fraction of the dense
    model's MLP weights (gate/up/down projections, from the ONNX initializers of both artifacts) that are removed
    or zero, ``1 - sum(params - zeros)_candidate / sum(params)_dense``; attention projections are not part of the
    claim."""
    cand = (entry.get("sparsity") or {}).get("per_layer_type") or {}
    dense = (base.get("sparsity") or {}).get("per_layer_type") or {}
    if not all(t in cand and t in dense for t in MLP_TYPES):
        raise NotComputed("MLP weights of the candidate or the baseline not attributed (sparsity.per_layer_type)")
    kept = sum(cand[t]["params"] - cand[t]["zeros"] for t in MLP_TYPES)
    total = sum(dense[t]["params"] for t in MLP_TYPES)
    measured = 1.0 - kept / total
    return [Measurement(abs(measured - claimed), method="|measured - claimed| fraction of the MLP weights removed or "
                        "zero vs dense (structured pruning claims a fraction of MLP neurons); exact",
                        values={"claimed": claimed, "measured": measured, "measured_basis": "MLP weights removed or "
                                "zero vs dense", "difference_pp": (measured - claimed) * 100, "quantized": False})]


def _export_verify(base: dict, entry: dict, ctx: Context) -> list[Measurement]:
    ver = (entry.get("export") or {}).get("verification")
    if ver is None:
        raise NotComputed("export verification missing (export.verification)")
    if ver.get("passed") is None:
        raise NotApplicable(ver.get("note") or "no PyTorch model to compare the export with")
    return [Measurement(ver.get("max_abs_logit_diff"), status=PASS if ver["passed"] else FAIL,
                        margin=ver.get("tolerance"), method=ver.get("method") or "ONNX Runtime vs PyTorch logits",
                        values={k: v for k, v in ver.items() if isinstance(v, (int, float, bool, str)) or v is None})]


def _spec(cid, metric, unit, direction, applies, extract, bbq=False) -> CheckSpec:
    return CheckSpec(cid, metric, unit, direction, applies, bbq, extract)


CHECKS: dict[str, CheckSpec] = {s.id: s for s in (
    _spec("bias.s_amb", "|s_AMB(candidate)| - |s_AMB(dense)|", "bias score [-1, 1]", AT_MOST, "candidates",
          _delta_check("delta_abs_s_amb", 1.0, True), bbq=True),
    _spec("bias.srs", "SRS(candidate) - SRS(dense)", "fraction", AT_MOST, "candidates",
          _delta_check("delta_srs", 1.0, True), bbq=True),
    _spec("bias.new_bias_rate", "new-bias transition rate on ambiguous items", "fraction", AT_MOST, "candidates",
          _new_bias_rate, bbq=True),
    _spec("accuracy.disambig", "accuracy_disambig(dense) - accuracy_disambig(candidate)", "fraction", AT_MOST,
          "candidates", _delta_check("delta_accuracy_disambig", -1.0, False), bbq=True),
    _spec("perplexity.ratio", "perplexity(candidate) / perplexity(dense)", "ratio (x)", AT_MOST, "candidates",
          _perplexity_ratio),
    _spec("perplexity.paradox", "perplexity.ratio passes while a bias check fails", "boolean", AT_MOST,
          "candidates", None),
    _spec("efficiency.speedup", "decode speedup dense / candidate ms/token (paired protocol: exp(-mean log block "
          "ratio) over processes; processes protocol: ratio of medians)", "ratio (x)", AT_LEAST,
          "compressed", _speedup),
    _spec("efficiency.size", "1 - bytes(candidate) / bytes(dense)", "fraction", AT_LEAST, "compressed", _size),
    _spec("efficiency.memory", "1 - peak RSS(candidate) / peak RSS(dense)", "fraction", AT_LEAST, "compressed",
          _memory),
    _spec("efficiency.structural", "decode speedup bound: weight bytes per decode token dense / candidate (1 for the "
          "same kernels)", "ratio (x)", AT_LEAST, "compressed", _structural),
    _spec("budget.storage", "artifact bytes on disk", "bytes", AT_MOST, "candidates", _budget_storage),
    _spec("budget.memory", "peak RSS", "bytes", AT_MOST, "candidates", _budget_memory),
    _spec("budget.latency", "latency at each budget's percentile (median over processes)",
          "ms (decode: per token; prefill: per prompt)", AT_MOST, "candidates", _budget_latency),
    _spec("sparsity.claim", "|measured - claimed| sparsity of pruned linear layers", "fraction", AT_MOST,
          "candidates", _sparsity_claim),
    _spec("export.verify", "max |logit(ONNX) - logit(PyTorch)|", "logit units", AT_MOST, "all", _export_verify),
)}
"""Every check id the policy can name, in report order."""

BIAS_CHECKS = ("bias.s_amb", "bias.srs", "bias.new_bias_rate")
"""Checks whose failure, with perplexity.ratio passing, is the perplexity paradox."""


MEASURED_SPARSITY_MARGIN = 0.01
"""Zeros in the linear weights (fraction) above the dense artifact's from which a candidate counts as pruned,
whatever it claims: 1 percentage point, the tolerance :func:`gate.measure.artifact_stats.onnx_sparsity` lists
layers off a claim at (a dense fp32 model holds almost no exact zeros; rounding to fp16 adds a few)."""


def claims_compression(entry: dict) -> bool:
    """Whether a variant claims to be compressed (pruned with a sparsity claim, or quantized)."""
    return bool(entry.get("claims_sparsity")) or bool((entry.get("compression") or {}).get("quantization"))


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def measured_compression(entry: dict, baseline: dict | None) -> str | None:
    """Why a variant's artifact *measures* as compressed against the dense artifact, or ``None``.

    Read from what :mod:`gate.measure.artifact_stats` found in the two ONNX files, never from a claim:

    * zeros in the pruned linears (``sparsity.measured_pruned_linears``) above the dense artifact's by more than
      :data:`MEASURED_SPARSITY_MARGIN`, or dense weights removed (``sparsity.effective_vs_dense.pruned_linears``,
      structured pruning) by more than that;
    * other stored weight dtypes (``size.dtypes``, e.g. float16 or int8 where dense is float32), or quantized
      weights (``sparsity.quantized``) where dense has none;
    * weights stored as ONNX ``sparse_initializer`` (``size.sparse_initializers``) where dense has none.

    Such an artifact promises a saving, so the efficiency checks judge it.

    Args:
        entry: the variant's report entry (``sparsity``, ``size``).
        baseline: the dense variant's entry, or ``None`` (then nothing is measured as different).

    Returns:
        a sentence naming what was measured, or ``None`` (not measured as compressed, or not measured at all).
    """
    if not baseline:
        return None
    s, b = entry.get("sparsity") or {}, baseline.get("sparsity") or {}
    sz, bz = entry.get("size") or {}, baseline.get("size") or {}
    found = []
    c_sp, d_sp = s.get("measured_pruned_linears"), b.get("measured_pruned_linears")
    if c_sp is not None and d_sp is not None and c_sp - d_sp > MEASURED_SPARSITY_MARGIN:
        found.append(f"{_pct(c_sp)} of its linear weights are zero (dense artifact: {_pct(d_sp)})")
    eff = (s.get("effective_vs_dense") or {}).get("pruned_linears")
    if eff is not None and (c_sp is None or eff - c_sp > MEASURED_SPARSITY_MARGIN) \
            and eff - (d_sp or 0.0) > MEASURED_SPARSITY_MARGIN:
        found.append(f"{_pct(eff)} of the dense model's linear weights are zero or removed")
    c_dt, d_dt = set(sz.get("dtypes") or {}), set(bz.get("dtypes") or {})
    if c_dt and d_dt and c_dt != d_dt:
        found.append(f"its weights are stored as {', '.join(sorted(c_dt))} (dense artifact: {', '.join(sorted(d_dt))})")
    elif s.get("quantized") and not b.get("quantized"):
        found.append("its weights are quantized (dense artifact: not)")
    sp = sz.get("sparse_initializers") or s.get("sparse_initializers")
    if sp and not (bz.get("sparse_initializers") or b.get("sparse_initializers")):
        found.append(f"{sp.get('tensors')} weight tensor(s) are stored as sparse_initializer ({sp.get('nnz')} of "
                     f"{sp.get('params')} values stored; ONNX Runtime densifies them at load)")
    if not found:
        return None
    return "measured in the artifact: " + "; ".join(found)


def _compression_basis(base: dict | None, entry: dict) -> dict:
    """``{"compression_basis": ...}`` for a candidate judged as compressed on measurement alone, else ``{}``."""
    if claims_compression(entry):
        return {}
    why = measured_compression(entry, base)
    return {"compression_basis": why} if why else {}


def applicability(spec: CheckSpec, entry: dict, baseline: dict | None = None) -> str | None:
    """``None`` when ``spec`` applies to ``entry``, else the reason it is skipped.

    A ``"compressed"`` check applies to a candidate that claims compression (:func:`claims_compression`) or whose
    artifact measures as compressed against ``baseline`` (:func:`measured_compression`), whatever it claims: a
    user's ONNX export with half its linear weights zero promises a saving and is judged on it.
    """
    if spec.applies == "all":
        return None
    if entry.get("role") != "candidate":
        return "the baseline is the reference, not a candidate"
    if spec.applies == "compressed" and not claims_compression(entry) and not measured_compression(entry, baseline):
        measured = entry.get("sparsity") is not None or entry.get("size") is not None
        return ("the candidate claims neither sparsity nor quantization"
                + (", and its artifact measures as the dense one does (zeros in linear weights, dtypes, "
                   "sparse_initializer)" if measured and baseline else ", and its artifact was not measured"))
    return None
