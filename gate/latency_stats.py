"""Compare latencies of two variants: the ratio of medians with a bootstrap confidence interval."""

from __future__ import annotations

from typing import Sequence

import numpy as np


def speedup_ci(baseline_ms: Sequence[float], candidate_ms: Sequence[float], *, confidence: float = 0.95,
               n_resamples: int = 2000, seed: int = 0) -> dict:
    """Speedup = median(baseline) / median(candidate), with a percentile-bootstrap interval.

    Each variant's samples are resampled with replacement independently (``n_resamples`` times) and
    the ratio of medians is recomputed; the interval is the ``(1 ± confidence)/2`` percentiles
    (Efron & Tibshirani 1993, *An Introduction to the Bootstrap*, §13.3, percentile interval). This
    follows the advice in notes/edge_bench.md §11.9 ("bootstrap the ratio of medians"). The samples
    are pooled over processes, so the interval reflects within-run noise plus the spread between the
    processes that were run; with few processes it understates between-process variance.

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
