"""Efficiency numbers behind the gate's findings: speedups, memory and storage savings, budget facts.

Pure functions of report variant entries (``entry["bench"]`` from :func:`gate.measure.harness.measure_variants`,
``entry["size"]`` / ``entry["artifact"]`` for bytes). They produce numbers and confidence intervals
only; the policy engine turns them into PASS/FAIL/INCONCLUSIVE (e.g. ``no_speedup`` when a
compressed candidate's speedup CI upper bound is below the required speedup).

Intervals resample process repeats (two-stage bootstrap, :mod:`gate.measure.latency_stats`), because the
spread between fresh processes is larger than the noise inside one (measured on ONNX Runtime 1.32, CPU EP: five
fresh-process repeats of an int8 model had a between-process CV of the p50 of 6.9 % at 1 token and 17.5 % at 128
tokens; MLPerf Tiny likewise repeats over 5 windows).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gate.measure.latency_stats import (
    decidable,
    ratio_ci_across_processes,
    value_ci_across_processes,
)

CONFIDENCE = 0.95
N_RESAMPLES = 4000


def _speedup(b_stats: dict, c_stats: dict, unstable: bool, seed: int, confidence: float = CONFIDENCE,
             n_resamples: int = N_RESAMPLES) -> dict[str, Any]:
    ci = ratio_ci_across_processes(b_stats["samples_per_process"], c_stats["samples_per_process"],
                                   confidence=confidence, n_resamples=n_resamples, seed=seed)
    return {
        "speedup_x": ci["ratio"],
        "ci_low_x": ci["ci_low"],
        "ci_high_x": ci["ci_high"],
        "confidence": ci["confidence"],
        "bootstrap_tail_percentile": ci["bootstrap_tail_percentile"],
        "baseline_p50_ms": ci["baseline_value"],
        "candidate_p50_ms": ci["candidate_value"],
        "baseline_cv": b_stats.get("cv"),
        "candidate_cv": c_stats.get("cv"),
        "n_processes_baseline": ci["n_processes_baseline"],
        "n_processes_candidate": ci["n_processes_candidate"],
        "unstable": unstable,
        "decidable": decidable([ci["n_processes_baseline"], ci["n_processes_candidate"]], unstable),
        "method": "speedup = baseline / candidate; " + ci["method"],
    }


def paired_decode_speedup(paired: dict | None, baseline_name: str | None = None) -> dict[str, Any] | None:
    """The decode speedup of the paired, interleaved protocol (:func:`gate.measure.harness.measure_paired`), in the
    layout of :func:`efficiency_metrics`'s ``decode_speedup``; ``None`` when there is none.

    Both models ran in the same processes, interleaved in ABBA/BAAB blocks, so the machine's drift cancels from
    the block ratios (:mod:`gate.measure.paired_timing`): the per-process CV flag of the independent protocol does
    not concern it (``unstable`` is False). Its interval is a Student-t interval over processes at the last look's
    share of the error rate (``1 - alpha``, Lan-DeMets spending), so ``confidence`` is ``1 - alpha`` of that look.

    Args:
        paired: a candidate's ``bench["paired_vs_dense"]``.
        baseline_name: the report's baseline; a comparison with another baseline is not used.

    Returns:
        ``speedup_x``, ``ci_low_x``, ``ci_high_x`` (x), ``confidence``, ``look_alpha``, ``n_processes_baseline`` =
        ``n_processes_candidate`` (the paired processes), ``n_blocks``, ``unstable`` (False), ``decidable``
        (>= 2 processes), ``protocol``, ``stop_reason``, ``processes_needed``, ``method``; or ``None``.
    """
    if not paired or (baseline_name is not None and paired.get("baseline") not in (None, baseline_name)):
        return None
    d = (paired.get("phases") or {}).get("decode")
    if not d or d.get("speedup") is None:
        return None
    n = d.get("n_processes")
    return {"speedup_x": d["speedup"], "ci_low_x": d["ci_low"], "ci_high_x": d["ci_high"],
            "confidence": 1.0 - d["alpha"], "look_alpha": d["alpha"], "n_processes_baseline": n,
            "n_processes_candidate": n, "n_blocks": d.get("n_blocks"), "unstable": False,
            "decidable": decidable([n]), "protocol": paired.get("protocol"), "stop_reason": paired.get("stop_reason"),
            "processes_needed": d.get("processes_needed"),
            "method": f"{paired.get('method', 'paired, interleaved protocol')}; {paired.get('spending', '')}".rstrip("; ")}


def _unstable_phases(bench: dict) -> set[str]:
    return {u["phase"] for u in (bench.get("stability") or {}).get("unstable_runs", [])}


def _bytes(entry: dict) -> tuple[int | None, str | None]:
    size = (entry.get("size") or {}).get("bytes_on_disk")
    if size is not None:
        return int(size), "size.bytes_on_disk"
    total = (entry.get("artifact") or {}).get("bytes_total")
    return (int(total), "artifact.bytes_total") if total is not None else (None, None)


def storage_saving(baseline_entry: dict, candidate_entry: dict) -> dict[str, Any] | None:
    """``1 - bytes(candidate) / bytes(baseline)`` on disk (exact, no interval).

    Bytes come from ``entry["size"]["bytes_on_disk"]`` (``.onnx`` plus external data), falling back
    to ``entry["artifact"]["bytes_total"]``.

    Returns:
        ``saving_fraction``, ``baseline_bytes``, ``candidate_bytes``, ``source``; None when either
        entry has no byte count.
    """
    b, b_src = _bytes(baseline_entry)
    c, c_src = _bytes(candidate_entry)
    if b is None or c is None or b <= 0:
        return None
    return {"saving_fraction": 1 - c / b, "baseline_bytes": b, "candidate_bytes": c,
            "source": b_src if b_src == c_src else f"baseline {b_src}, candidate {c_src}"}


def efficiency_metrics(baseline_entry: dict, candidate_entry: dict, *, seed: int = 0, confidence: float = CONFIDENCE,
                       n_resamples: int = N_RESAMPLES) -> dict[str, Any]:
    """Speedups and savings of a candidate over the baseline, each with a CI across process repeats.

    Args:
        baseline_entry: the dense variant's report entry (``bench``, ``size``/``artifact``).
        candidate_entry: the candidate's report entry, same keys.
        seed: bootstrap seed (each metric uses ``seed`` + a fixed offset, so results are reproducible).
        confidence: two-sided level of every interval (the policy's ``statistics.confidence``).
        n_resamples: bootstrap resamples (the policy's ``statistics.resamples``).

    Returns:
        ``decode_speedup``: ``speedup_x`` = median over processes of baseline per-process p50 /
        the same for the candidate (ms per token at ``context_tokens``), ``ci_low_x``,
        ``ci_high_x``, both p50s in ms, CVs, process counts, ``unstable`` (either side had a phase
        marked unstable), ``decidable`` (:func:`gate.measure.latency_stats.decidable`: >= 2 processes per side and
        not unstable; otherwise the comparison must not be decided PASS/FAIL), ``method``; when the candidate's
        bench holds the paired protocol's comparison (``bench["paired_vs_dense"]``), ``decode_speedup`` is that one
        (:func:`paired_decode_speedup`), with the independent-process figure under ``independent_processes``; ``prefill_speedup``: the same per prompt length
        (``{"128": {...}, ...}``, lengths measured for both); ``memory_saving``:
        ``saving_fraction`` = 1 - candidate / baseline of the median over processes of the peak
        above the pre-load baseline (bytes), ``ci_low``/``ci_high`` (bootstrap over processes), both
        medians in bytes, ``decidable`` (>= 2 processes per side; peak memory is not timed, so the latency
        stability flag does not concern it); ``storage_saving``: see :func:`storage_saving`. A part is None when its
        inputs are missing (e.g. a partial report without ``bench``).

    Raises:
        ValueError: malformed bench data (non-positive latencies, empty processes).
    """
    out: dict[str, Any] = {"decode_speedup": None, "prefill_speedup": None, "memory_saving": None,
                           "storage_saving": storage_saving(baseline_entry, candidate_entry)}
    b, c = baseline_entry.get("bench"), candidate_entry.get("bench")
    if not b or not c:
        return out
    unstable = _unstable_phases(b) | _unstable_phases(c)
    b_dec, c_dec = b["decode_ms_per_token"], c["decode_ms_per_token"]
    out["decode_speedup"] = {"context_tokens": b_dec.get("context_tokens"),
                             **_speedup(b_dec, c_dec, "decode" in unstable, seed, confidence, n_resamples)}
    if b_dec.get("context_tokens") != c_dec.get("context_tokens"):
        out["decode_speedup"]["warning"] = "baseline and candidate were decoded at different contexts"
    paired = paired_decode_speedup(c.get("paired_vs_dense"), baseline_entry.get("name"))
    if paired is not None:  # the paired comparison decides; the independent one is kept beside it
        out["decode_speedup"] = {**paired, "context_tokens": b_dec.get("context_tokens"),
                                 "baseline_p50_ms": out["decode_speedup"]["baseline_p50_ms"],
                                 "candidate_p50_ms": out["decode_speedup"]["candidate_p50_ms"],
                                 "independent_processes": out["decode_speedup"]}
    prefill = {}
    for length in sorted(set(b["prefill_ms"]) & set(c["prefill_ms"]), key=int):
        prefill[length] = {"prompt_tokens": int(length),
                           **_speedup(b["prefill_ms"][length], c["prefill_ms"][length],
                                      f"prefill_{length}" in unstable, seed + int(length), confidence, n_resamples)}
    out["prefill_speedup"] = prefill
    b_mem = b["memory"]["peak_above_baseline_bytes_per_process"]
    c_mem = c["memory"]["peak_above_baseline_bytes_per_process"]
    if min(b_mem + c_mem) > 0:
        # candidate / baseline ratio of medians; saving = 1 - ratio, so the CI bounds swap.
        ci = ratio_ci_across_processes([[x] for x in c_mem], [[x] for x in b_mem], confidence=confidence,
                                       n_resamples=n_resamples, seed=seed + 1)
        out["memory_saving"] = {
            "saving_fraction": 1 - ci["ratio"],
            "ci_low": 1 - ci["ci_high"],
            "ci_high": 1 - ci["ci_low"],
            "confidence": confidence,
            "baseline_peak_above_baseline_bytes": ci["candidate_value"],
            "candidate_peak_above_baseline_bytes": ci["baseline_value"],
            "n_processes_baseline": len(b_mem),
            "n_processes_candidate": len(c_mem),
            "decidable": decidable([len(b_mem), len(c_mem)]),
            "basis": "per process: VmHWM over load, first run, warm-up and steady state minus VmRSS before load; "
                     "median over processes",
            "method": "saving = 1 - candidate / baseline; percentile bootstrap over processes",
        }
    return out


def _get(profile: Any, key: str) -> Any:
    return profile.get(key) if isinstance(profile, dict) else getattr(profile, key, None)


LATENCY_PHASES = ("decode", "prefill")
LATENCY_PERCENTILES = (50, 90, 95)
"""Percentiles a profile may budget (``latency_budgets`` keys in ``hardware_profiles/profile.schema.json``)."""
_BUDGET_SUFFIX = {"decode": "_ms_per_token_max", "prefill": "_ms_max"}


@dataclass(frozen=True)
class LatencyBudget:
    """One latency budget of a hardware profile.

    Attributes:
        phase: ``"decode"`` (milliseconds per generated token at the measured decode context) or ``"prefill"``
            (milliseconds per prompt, applied to every measured prompt length).
        percentile: the within-process percentile the budget limits (50, 90 or 95).
        budget_ms: the limit in milliseconds (> 0).
        key: where it comes from, e.g. ``"latency_budgets.decode_p90_ms_per_token_max"``.
    """

    phase: str
    percentile: float
    budget_ms: float
    key: str


def latency_budgets(profile: Any, phase: str | None = None) -> list[LatencyBudget]:
    """Every latency budget the profile sets, for ``phase`` or for both phases.

    The one reading of a profile's latency budgets: ``latency_budgets.<phase>_p<q><suffix>`` with ``q`` in
    :data:`LATENCY_PERCENTILES` and suffix ``_ms_per_token_max`` (decode) or ``_ms_max`` (prefill). A missing or
    zero value is no budget. Every budget set applies (a p50 and a p90 budget are both enforced).

    Args:
        profile: a :class:`hardware_profiles.HardwareProfile` or its dict (``report["profile"]``).
        phase: ``"decode"``, ``"prefill"`` or None for both.

    Returns:
        the budgets, decode before prefill, each phase by increasing percentile; ``[]`` without any.
    """
    table = _get(profile, "latency_budgets") or {}
    out = []
    for ph in LATENCY_PHASES if phase is None else (phase,):
        for q in LATENCY_PERCENTILES:
            key = f"{ph}_p{q}{_BUDGET_SUFFIX[ph]}"
            if table.get(key):
                out.append(LatencyBudget(ph, float(q), float(table[key]), f"latency_budgets.{key}"))
    return out


def latency_against_budgets(bench: dict, profile: Any, *, seed: int = 0, confidence: float = CONFIDENCE,
                            n_resamples: int = N_RESAMPLES) -> list[dict[str, Any]]:
    """Each latency budget of the profile with the measured value it is compared with.

    For every :class:`LatencyBudget` (see :func:`latency_budgets`) and every measured length of its phase (decode:
    the one decode context; prefill: each prompt length), the median over benchmark processes of the per-process
    percentile the budget names, with its two-stage bootstrap interval
    (:func:`gate.measure.latency_stats.value_ci_across_processes`).

    Args:
        bench: a variant's ``entry["bench"]`` (``decode_ms_per_token`` / ``prefill_ms[<length>]`` with
            ``samples_per_process`` in ms).
        profile: a :class:`hardware_profiles.HardwareProfile` or its dict.
        seed: bootstrap seed (decode uses ``seed + 2``, prefill ``seed + 3 + length``).
        confidence, n_resamples: interval level and bootstrap resamples (the policy's statistics settings).

    Returns:
        one dict per (budget, length): ``phase``, ``tokens`` (decode context or prompt length), ``label``
        (e.g. ``"decode p90"``, ``"prefill 128 p50"``), ``percentile``, ``budget_ms``, ``budget_key``, ``value_ms``,
        ``ci_low_ms``, ``ci_high_ms``, ``confidence``, ``n_processes``, ``over_budget`` (True when the CI's lower
        bound exceeds the budget, False when its upper bound is within it, None when the CI straddles it or the
        value is not ``decidable``), ``unstable``, ``decidable`` (>= 2 processes and not unstable,
        :func:`gate.measure.latency_stats.decidable`), ``method``; ``[]`` when the profile sets no latency budget.

    Raises:
        ValueError: a budgeted phase has no samples per process in ``bench`` (the message names the key), or
            malformed samples (as :func:`gate.measure.latency_stats.hierarchical_bootstrap`).
    """
    budgets = latency_budgets(profile)
    if not budgets:
        return []
    unstable = _unstable_phases(bench or {})
    dec = (bench or {}).get("decode_ms_per_token") or {}
    prefill = (bench or {}).get("prefill_ms") or {}
    out = []
    for b in budgets:
        if b.phase == "decode":
            if not dec.get("samples_per_process"):
                raise ValueError("no decode latency samples per process (bench.decode_ms_per_token.samples_per_process)")
            measured = [(dec.get("context_tokens"), dec, "decode", 2, "decode")]
        else:
            lengths = sorted((k for k, s in prefill.items() if s.get("samples_per_process")), key=int)
            if not lengths:
                raise ValueError("no prefill latency samples per process (bench.prefill_ms.<length>.samples_per_process)")
            measured = [(int(k), prefill[k], f"prefill_{k}", 3 + int(k), f"prefill {k}") for k in lengths]
        for tokens, stats, phase_id, offset, label in measured:
            ci = value_ci_across_processes(stats["samples_per_process"], q=b.percentile, confidence=confidence,
                                           n_resamples=n_resamples, seed=seed + offset)
            ok = decidable([ci["n_processes"]], phase_id in unstable)
            over = None if not ok else True if ci["ci_low"] > b.budget_ms else False if ci["ci_high"] <= b.budget_ms else None
            out.append({"phase": b.phase, "tokens": tokens, "label": f"{label} p{b.percentile:g}",
                        "percentile": b.percentile, "budget_ms": b.budget_ms, "budget_key": b.key,
                        "value_ms": ci["value"], "ci_low_ms": ci["ci_low"], "ci_high_ms": ci["ci_high"],
                        "confidence": confidence, "n_processes": ci["n_processes"], "over_budget": over,
                        "unstable": phase_id in unstable, "decidable": ok, "method": ci["method"]})
    return out


def budget_facts(entry: dict, profile: Any, *, seed: int = 0, confidence: float = CONFIDENCE,
                 n_resamples: int = N_RESAMPLES) -> dict[str, Any]:
    """One variant against the hardware profile's budgets.

    Args:
        entry: a variant's report entry (``bench``, ``size``/``artifact``).
        profile: a :class:`hardware_profiles.HardwareProfile` or its dict (``report["profile"]``).
            Budgets read (0 or missing = no budget): ``storage_budget_bytes``, ``ram_budget_bytes``,
            and the latency budgets of :func:`latency_budgets`.
        seed: bootstrap seed.
        confidence, n_resamples: interval level and bootstrap resamples (the policy's statistics settings).

    Returns:
        ``storage``: ``bytes``, ``source``, ``budget_bytes``, ``over_budget`` (bytes > budget;
        None without a budget); ``ram``: ``peak_rss_bytes`` (largest whole-process VmHWM over
        phases and processes: the conservative figure, Python interpreter included),
        ``peak_rss_bytes_median`` with ``ci_low``/``ci_high`` over processes,
        ``peak_above_baseline_bytes``, ``budget_bytes``, ``over_budget`` (worst process over the
        budget); ``latency``: :func:`latency_against_budgets` (one dict per budget and measured length,
        ``[]`` without latency budgets, None when a budgeted phase was not measured). Parts without inputs are
        None.
    """
    out: dict[str, Any] = {"storage": None, "ram": None, "latency": None}
    size, source = _bytes(entry)
    storage_budget = _get(profile, "storage_budget_bytes") or None
    if size is not None:
        out["storage"] = {"bytes": size, "source": source, "budget_bytes": storage_budget,
                          "over_budget": None if storage_budget is None else size > storage_budget}
    bench = entry.get("bench")
    if not bench:
        return out
    ram_budget = _get(profile, "ram_budget_bytes") or None
    peaks = bench["memory"]["peak_rss_bytes_per_process"]
    ci = value_ci_across_processes([[p] for p in peaks], confidence=confidence, n_resamples=n_resamples, seed=seed)
    out["ram"] = {
        "peak_rss_bytes": max(peaks),
        "peak_rss_bytes_median": ci["value"],
        "ci_low": ci["ci_low"],
        "ci_high": ci["ci_high"],
        "peak_above_baseline_bytes": bench["memory"]["peak_above_baseline_bytes"],
        "budget_bytes": ram_budget,
        "over_budget": None if ram_budget is None else max(peaks) > ram_budget,
        "basis": "whole-process VmHWM (interpreter, numpy and onnxruntime included), worst process",
    }
    try:
        out["latency"] = latency_against_budgets(bench, profile, seed=seed, confidence=confidence,
                                                 n_resamples=n_resamples)
    except ValueError:  # a budgeted phase without samples: no latency facts (the budget.latency check says why)
        out["latency"] = None
    return out
