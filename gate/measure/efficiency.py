"""Efficiency numbers behind the gate's findings: speedups, memory and storage savings, budget facts.

Pure functions of report variant entries (``entry["bench"]`` from :func:`gate.measure.harness.measure_variants`,
``entry["size"]`` / ``entry["artifact"]`` for bytes). They produce numbers and confidence intervals
only; the policy engine turns them into PASS/FAIL/INCONCLUSIVE (e.g. ``no_speedup`` when a
compressed candidate's speedup CI upper bound is below the required speedup).

Intervals resample process repeats (two-stage bootstrap, :mod:`gate.measure.latency_stats`), because the
spread between fresh processes is larger than the noise inside one (notes/edge_bench.md §10).
"""

from __future__ import annotations

from typing import Any

from gate.measure.latency_stats import ratio_ci_across_processes, value_ci_across_processes

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
        "method": "speedup = baseline / candidate; " + ci["method"],
    }


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
        marked unstable), ``method``; ``prefill_speedup``: the same per prompt length
        (``{"128": {...}, ...}``, lengths measured for both); ``memory_saving``:
        ``saving_fraction`` = 1 - candidate / baseline of the median over processes of the peak
        above the pre-load baseline (bytes), ``ci_low``/``ci_high`` (bootstrap over processes), both
        medians in bytes; ``storage_saving``: see :func:`storage_saving`. A part is None when its
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
            "basis": "per process: VmHWM over load, first run, warm-up and steady state minus VmRSS before load; "
                     "median over processes",
            "method": "saving = 1 - candidate / baseline; percentile bootstrap over processes",
        }
    return out


def _get(profile: Any, key: str) -> Any:
    return profile.get(key) if isinstance(profile, dict) else getattr(profile, key, None)


def latency_budget(profile: Any, phase: str) -> tuple[float | None, float, str | None]:
    """The profile's latency budget for ``phase`` (``"decode"`` or ``"prefill"``).

    Looks in ``latency_budgets`` (hardware_profiles: ``decode_p50_ms_per_token_max``,
    ``decode_p90_ms_per_token_max``, ``prefill_p50_ms_max``, ``prefill_p90_ms_max``) and then at the flat
    keys ``decode_latency_budget_ms`` / ``prefill_latency_budget_ms`` (p90 budgets).

    Returns:
        ``(budget_ms or None, percentile, key)``; without a budget the percentile is 90 and the key None.
    """
    table = _get(profile, "latency_budgets") or {}
    suffix = "_ms_per_token_max" if phase == "decode" else "_ms_max"
    for q in (50, 90):
        key = f"{phase}_p{q}{suffix}"
        if table.get(key):
            return float(table[key]), float(q), f"latency_budgets.{key}"
    flat = _get(profile, f"{phase}_latency_budget_ms")
    return (float(flat), 90.0, f"{phase}_latency_budget_ms") if flat else (None, 90.0, None)


def budget_facts(entry: dict, profile: Any, *, seed: int = 0, confidence: float = CONFIDENCE,
                 n_resamples: int = N_RESAMPLES) -> dict[str, Any]:
    """One variant against the hardware profile's budgets.

    Args:
        entry: a variant's report entry (``bench``, ``size``/``artifact``).
        profile: a :class:`hardware_profiles.HardwareProfile` or its dict (``report["profile"]``).
            Budgets read (0 or missing = no budget): ``storage_budget_bytes``, ``ram_budget_bytes``,
            and the latency budgets found by :func:`latency_budget` (decode: ms per token at the
            measured decode context; prefill: ms per prompt, applied to every measured length).
        seed: bootstrap seed.
        confidence, n_resamples: interval level and bootstrap resamples (the policy's statistics settings).

    Returns:
        ``storage``: ``bytes``, ``source``, ``budget_bytes``, ``over_budget`` (bytes > budget;
        None without a budget); ``ram``: ``peak_rss_bytes`` (largest whole-process VmHWM over
        phases and processes: the conservative figure, Python interpreter included),
        ``peak_rss_bytes_median`` with ``ci_low``/``ci_high`` over processes,
        ``peak_above_baseline_bytes``, ``budget_bytes``, ``over_budget`` (worst process over the
        budget); ``latency``: ``decode`` and ``prefill`` (per length), each ``percentile`` (the
        budget's, else 90 as MLPerf SingleStream), ``value_ms`` (median over processes of the
        per-process percentile), ``ci_low_ms``, ``ci_high_ms``, ``budget_ms``, ``budget_key``,
        ``over_budget`` (True when the CI's lower bound exceeds the budget, False when its upper
        bound is within it, None when the CI straddles the budget or there is no budget),
        ``unstable``. Parts without inputs are None.
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
    unstable = _unstable_phases(bench)

    def latency(stats: dict, kind: str, phase: str, offset: int) -> dict[str, Any]:
        budget, q, key = latency_budget(profile, kind)
        lat = value_ci_across_processes(stats["samples_per_process"], q=q, confidence=confidence,
                                        n_resamples=n_resamples, seed=seed + offset)
        over = None
        if budget:
            over = True if lat["ci_low"] > budget else False if lat["ci_high"] <= budget else None
        return {"percentile": q, "value_ms": lat["value"], "ci_low_ms": lat["ci_low"], "ci_high_ms": lat["ci_high"],
                "confidence": confidence, "budget_ms": budget, "budget_key": key, "over_budget": over,
                "unstable": phase in unstable, "method": lat["method"]}

    dec = bench["decode_ms_per_token"]
    out["latency"] = {
        "decode": {"context_tokens": dec.get("context_tokens"), **latency(dec, "decode", "decode", 2)},
        "prefill": {length: {"prompt_tokens": int(length), **latency(s, "prefill", f"prefill_{length}", 3 + int(length))}
                    for length, s in sorted(bench["prefill_ms"].items(), key=lambda kv: int(kv[0]))},
    }
    return out
