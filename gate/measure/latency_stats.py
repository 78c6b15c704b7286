"""Latency statistics: per-run summaries and confidence intervals across process repeats.

Two kinds of noise matter on an edge CPU: noise inside one process (scheduling, caches) and, larger,
the spread *between* fresh processes (allocator and arena layout, thread placement, neighbours,
frequency; measured for this project's default model in benchmarks/README.md, ``bench_harness.py``).
MLPerf Tiny scores the median of 5 independent windows for the same reason (mlcommons/tiny
``benchmark/MLPerfTiny_Rules.adoc``). Intervals here therefore resample processes, not only
samples: a two-stage (hierarchical) bootstrap that first draws processes with replacement and then
draws samples with replacement inside each drawn process (Davison & Hinkley 1997, *Bootstrap Methods
and their Application*, §3.8 "hierarchical data"; Saravanan et al. 2020, "Application of the
hierarchical bootstrap to multi-level data in neuroscience", Neurons Behav. Data Anal. Theory 3(5)).
Intervals are percentile intervals (Efron & Tibshirani 1993, §13.3), expanded for few processes:
with n resampled units the bootstrap distribution is too narrow by about sqrt((n-1)/n) and ignores the
t-distribution's heavier tails, so the percentiles used are alpha'/2 = Phi(-sqrt(n/(n-1)) t_{alpha/2,n-1})
(Hesterberg 2015, "What teachers should know about the bootstrap", The American Statistician 69(4),
"expanded percentile interval"), n = the smaller process count. With 5 processes a 95 % interval uses
the 0.1 % / 99.9 % bootstrap percentiles. With fewer than 5 processes even this cannot reach 95 %
coverage in practice (3 vs 3 processes: all three of one variant are slower with probability 1/20),
so results carry ``n_processes_*`` and gates should require >= 5. A comparison from fewer than
:data:`MIN_PROCESSES_TO_DECIDE` processes per variant, or from a process flagged unstable, is never decided
(:func:`decidable`): its interval cannot hold the between-process spread at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

PERCENTILE_METHOD = "linear (numpy default)"
MIN_PROCESSES_TO_DECIDE = 2
"""Fewest benchmark processes per variant from which a latency or memory comparison may be decided PASS/FAIL: with
one process the two-stage bootstrap's first stage cannot vary (:func:`hierarchical_bootstrap`), so the interval holds
within-process noise only, while the spread between fresh processes is the larger one (module docstring)."""
_MAX_CELLS = 2_000_000  # resample matrix cells per chunk (memory bound for long sample lists)


def expanded_tail(confidence: float, n_units: int) -> float:
    """Lower-tail probability for an expanded percentile interval (Hesterberg 2015).

    Args:
        confidence: nominal level in (0, 1), e.g. 0.95.
        n_units: number of independent units resampled (here: processes); <= 1 means no expansion.

    Returns:
        ``alpha'/2 = Phi(-sqrt(n/(n-1)) * t_{1-alpha/2, n-1})``; ``(1 - confidence) / 2`` when ``n_units <= 1``.
    """
    from scipy import stats

    alpha = 1 - confidence
    if n_units <= 1:
        return alpha / 2
    z = np.sqrt(n_units / (n_units - 1)) * stats.t.ppf(1 - alpha / 2, n_units - 1)
    return float(stats.norm.cdf(-z))


def decidable(n_processes: Sequence[int | None], unstable: bool = False) -> bool:
    """Whether a comparison may be decided PASS/FAIL: every side has >= :data:`MIN_PROCESSES_TO_DECIDE` processes
    and none of the processes it uses was flagged unstable (CV above the limit after a re-run,
    :mod:`gate.measure.harness`).

    Args:
        n_processes: processes per side (one entry for a single variant against a budget, two for a ratio);
            ``None`` (unknown) counts as too few.
        unstable: whether a process the comparison uses was flagged unstable.

    Returns:
        ``True`` when the comparison may be decided.
    """
    return not unstable and bool(n_processes) and all(n is not None and n >= MIN_PROCESSES_TO_DECIDE for n in n_processes)


def summarize(samples_per_process: Sequence[Sequence[float]], unit: str = "ms", decimals: int = 4) -> dict[str, Any]:
    """Statistics of one phase's latency samples, pooled over processes, plus per-process figures.

    Args:
        samples_per_process: one list of raw samples per process (each non-empty).
        unit: unit of the samples, recorded under ``"unit"``.
        decimals: rounding of the stored raw samples (4 = 0.1 µs for ms).

    Returns:
        ``unit``, ``n`` (pooled count), ``p50``, ``p90``, ``p95``, ``mean``, ``std`` (ddof 1),
        ``cv`` (std / mean, pooled), ``min``, ``max``, ``percentile_method``, and per process:
        ``process_p50s``, ``process_p90s``, ``process_cvs`` (each process's own std / mean),
        ``process_ns``; ``median_of_process_medians`` (the robust headline across processes), and
        the raw ``samples_per_process``.

    Raises:
        ValueError: no process, or a process without samples.
    """
    if not samples_per_process or any(len(s) == 0 for s in samples_per_process):
        raise ValueError("summarize needs at least one process with at least one sample")
    arrays = [np.asarray(s, dtype=np.float64) for s in samples_per_process]
    a = np.concatenate(arrays)
    mean = float(a.mean())
    std = float(a.std(ddof=1)) if a.size > 1 else 0.0
    return {
        "unit": unit,
        "n": int(a.size),
        "p50": float(np.percentile(a, 50)),
        "p90": float(np.percentile(a, 90)),
        "p95": float(np.percentile(a, 95)),
        "mean": mean,
        "std": std,
        "cv": std / mean if mean else 0.0,
        "min": float(a.min()),
        "max": float(a.max()),
        "percentile_method": PERCENTILE_METHOD,
        "median_of_process_medians": float(np.median([np.median(x) for x in arrays])),
        "process_p50s": [float(np.median(x)) for x in arrays],
        "process_p90s": [float(np.percentile(x, 90)) for x in arrays],
        "process_cvs": [process_cv(x) for x in arrays],
        "process_ns": [int(x.size) for x in arrays],
        "samples_per_process": [[round(float(v), decimals) for v in x] for x in arrays],
    }


def process_cv(samples: Sequence[float]) -> float:
    """Coefficient of variation ``std (ddof 1) / mean`` of one run's samples (0 for fewer than 2 samples)."""
    a = np.asarray(samples, dtype=np.float64)
    if a.size < 2 or a.mean() == 0:
        return 0.0
    return float(a.std(ddof=1) / a.mean())


def _within_replicates(samples: np.ndarray, q: float, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """``n_resamples`` bootstrap replicates of the ``q``-th percentile of one process's samples."""
    n = samples.size
    if n == 1:
        return np.full(n_resamples, samples[0])
    out = np.empty(n_resamples)
    rows = max(1, _MAX_CELLS // n)
    for start in range(0, n_resamples, rows):
        stop = min(n_resamples, start + rows)
        idx = rng.integers(0, n, (stop - start, n))
        out[start:stop] = np.percentile(samples[idx], q, axis=1)
    return out


def hierarchical_bootstrap(samples_per_process: Sequence[Sequence[float]], q: float = 50.0, *,
                           n_resamples: int = 2000, rng: np.random.Generator) -> tuple[float, np.ndarray]:
    """Point estimate and two-stage bootstrap replicates of "median over processes of each process's q-th percentile".

    Stage 1 draws P processes with replacement; stage 2 draws, for each drawn process, its samples
    with replacement and takes their q-th percentile; the replicate is the median of those P values
    (Davison & Hinkley 1997 §3.8). With one process only stage 2 varies, so the interval then
    reflects within-process noise only.

    Args:
        samples_per_process: raw samples, one non-empty list per process.
        q: percentile in [0, 100] taken inside each process (50 = median).
        n_resamples: bootstrap replicates (>= 1).
        rng: numpy random generator.

    Returns:
        ``(estimate, replicates)``: the median over processes of each process's q-th percentile,
        and an array ``[n_resamples]`` of its bootstrap replicates.

    Raises:
        ValueError: no process, an empty process, or a non-finite sample.
    """
    arrays = [np.asarray(s, dtype=np.float64) for s in samples_per_process]
    if not arrays or any(x.size == 0 for x in arrays) or not all(np.isfinite(x).all() for x in arrays):
        raise ValueError("hierarchical_bootstrap needs at least one process, each with finite samples")
    estimate = float(np.median([np.percentile(x, q) for x in arrays]))
    within = np.stack([_within_replicates(x, q, n_resamples, rng) for x in arrays])  # [P, B]
    p = len(arrays)
    picks = rng.integers(0, p, (n_resamples, p))
    cols = rng.integers(0, n_resamples, (n_resamples, p))
    return estimate, np.median(within[picks, cols], axis=1)


def ratio_ci_across_processes(baseline: Sequence[Sequence[float]], candidate: Sequence[Sequence[float]], *,
                              q: float = 50.0, confidence: float = 0.95, n_resamples: int = 2000,
                              seed: int = 0) -> dict[str, Any]:
    """Ratio ``stat(baseline) / stat(candidate)`` with a two-stage bootstrap interval across process repeats.

    ``stat`` is the median over processes of each process's q-th percentile; the two variants are
    resampled independently (they ran in different processes). For latencies this ratio is the
    speedup (> 1: candidate faster). Its interval is a bootstrap percentile interval of that ratio of
    medians (Efron & Tibshirani 1993, §13.3), resampling processes as well as samples.

    Args:
        baseline: raw values of the baseline, one non-empty list per process (positive).
        candidate: raw values of the candidate, same layout (positive).
        q: percentile taken inside each process (50 = median).
        confidence: interval level in (0, 1).
        n_resamples: bootstrap replicates.
        seed: seed of ``numpy.random.default_rng``.

    Returns:
        ``ratio``, ``ci_low``, ``ci_high``, ``confidence``, ``bootstrap_tail_percentile`` (the
        expanded lower percentile actually used), ``n_resamples``, ``baseline_value``,
        ``candidate_value`` (the two medians of per-process percentiles), ``n_processes_baseline``,
        ``n_processes_candidate``, ``method``.

    Raises:
        ValueError: empty input, a non-positive value, or ``confidence`` outside (0, 1).
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    for values in (baseline, candidate):
        if not values or any(len(v) == 0 or min(v) <= 0 for v in values):
            raise ValueError("ratio_ci_across_processes needs non-empty lists of positive values per process")
    rng = np.random.default_rng(seed)
    b, rb = hierarchical_bootstrap(baseline, q, n_resamples=n_resamples, rng=rng)
    c, rc = hierarchical_bootstrap(candidate, q, n_resamples=n_resamples, rng=rng)
    ratios = rb / rc
    tail = expanded_tail(confidence, min(len(baseline), len(candidate)))
    return {
        "ratio": b / c,
        "ci_low": float(np.percentile(ratios, 100 * tail)),
        "ci_high": float(np.percentile(ratios, 100 * (1 - tail))),
        "confidence": confidence,
        "bootstrap_tail_percentile": 100 * tail,
        "n_resamples": n_resamples,
        "baseline_value": b,
        "candidate_value": c,
        "n_processes_baseline": len(baseline),
        "n_processes_candidate": len(candidate),
        "method": f"ratio of medians over processes of per-process p{q:g}; two-stage percentile bootstrap "
                  "(processes with replacement, then samples within each process), variants resampled independently; "
                  "expanded percentile interval for few processes (Hesterberg 2015)",
    }


def value_ci_across_processes(samples_per_process: Sequence[Sequence[float]], *, q: float = 50.0,
                              confidence: float = 0.95, n_resamples: int = 2000, seed: int = 0) -> dict[str, Any]:
    """One variant's "median over processes of per-process q-th percentile" with its bootstrap interval.

    Args:
        samples_per_process: raw values, one non-empty list per process.
        q: percentile inside each process (e.g. 90 for a p90 latency budget, MLPerf SingleStream style).
        confidence: interval level in (0, 1).
        n_resamples: bootstrap replicates.
        seed: seed of ``numpy.random.default_rng``.

    Returns:
        ``value``, ``ci_low``, ``ci_high``, ``confidence``, ``n_processes``, ``method``.

    Raises:
        ValueError: as :func:`hierarchical_bootstrap`, or ``confidence`` outside (0, 1).
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    est, reps = hierarchical_bootstrap(samples_per_process, q, n_resamples=n_resamples, rng=np.random.default_rng(seed))
    tail = expanded_tail(confidence, len(samples_per_process))
    return {
        "value": est,
        "ci_low": float(np.percentile(reps, 100 * tail)),
        "ci_high": float(np.percentile(reps, 100 * (1 - tail))),
        "confidence": confidence,
        "bootstrap_tail_percentile": 100 * tail,
        "n_processes": len(samples_per_process),
        "method": f"median over processes of per-process p{q:g}; two-stage percentile bootstrap, expanded for few "
                  "processes (Hesterberg 2015)",
    }


def speedup_ci(baseline_ms: Sequence[float], candidate_ms: Sequence[float], *, confidence: float = 0.95,
               n_resamples: int = 2000, seed: int = 0) -> dict:
    """Speedup = median(baseline) / median(candidate) of *pooled* samples, with a percentile-bootstrap interval.

    Each variant's samples are resampled with replacement independently and the ratio of medians is
    recomputed (Efron & Tibshirani 1993, §13.3). This treats all samples as independent, so it
    understates between-process variance; the gate uses :func:`ratio_ci_across_processes` instead.

    Args:
        baseline_ms: latency samples of the baseline (ms), n >= 1.
        candidate_ms: latency samples of the candidate (ms), n >= 1.
        confidence: interval level in (0, 1).
        n_resamples: bootstrap resamples.
        seed: seed of ``numpy.random.default_rng``.

    Returns:
        ``{"speedup_x", "ci_low_x", "ci_high_x", "confidence", "n_resamples", "n_baseline", "n_candidate",
        "method"}``; values > 1 mean the candidate is faster.

    Raises:
        ValueError: an empty sample list or a non-positive sample.
    """
    a = np.asarray(baseline_ms, dtype=np.float64)
    b = np.asarray(candidate_ms, dtype=np.float64)
    if a.size == 0 or b.size == 0 or (a <= 0).any() or (b <= 0).any():
        raise ValueError("speedup_ci needs non-empty lists of positive latencies")
    rng = np.random.default_rng(seed)
    ra = np.median(a[rng.integers(0, a.size, (n_resamples, a.size))], axis=1)
    rb = np.median(b[rng.integers(0, b.size, (n_resamples, b.size))], axis=1)
    ratios = ra / rb
    alpha = 1 - confidence
    return {
        "speedup_x": float(np.median(a) / np.median(b)),
        "ci_low_x": float(np.percentile(ratios, 100 * alpha / 2)),
        "ci_high_x": float(np.percentile(ratios, 100 * (1 - alpha / 2))),
        "confidence": confidence,
        "n_resamples": n_resamples,
        "n_baseline": int(a.size),
        "n_candidate": int(b.size),
        "method": "ratio of medians; percentile bootstrap, each variant's pooled samples resampled independently",
    }
