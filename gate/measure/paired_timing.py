"""Paired, interleaved latency comparison with sequential stopping: is the candidate faster than the baseline?

Naming rule of this module: a *block* is four runs in one process, ``ABBA`` or ``BAAB`` (A = baseline,
B = candidate; :func:`gate.runtime.bench_child.run_paired`); a *process* is one fresh measuring process holding
both sessions; a *look* is a moment, after a process finishes, at which the evidence is checked. Ratios are
candidate time / baseline time; *speedup* is its inverse (baseline / candidate, > 1 = faster).

Why paired: on a shared runner the machine's speed drifts by tens of percent within minutes (measured here:
per-process decode p50 of one artifact ranged 94-166 ms at load average 3). Two artifacts timed in separate
processes, one after the other, see different load, and their ratio carries that drift; the same two timed in
one process, interleaved run by run, see the same load, and the drift cancels from the within-block ratio
(Kalibera & Jones 2013, "Rigorous Benchmarking in Reasonable Time", ISMM, sec. 3-4: repetition at several
levels and the ratio of means; Google Benchmark's random interleaving, ``--benchmark_enable_random_interleaving``;
the paired ABBA design is the classical crossover that cancels a linear trend).

The statistic, per phase (prefill at each prompt length, decode):

* a block's log ratio ``r = log(sum of B's two times / sum of A's two times)``;
* a process's estimate ``m_p = mean of its blocks' r`` (equal weight per block);
* the comparison's estimate ``m = mean over processes of m_p`` and a Student-t interval over the process
  estimates, ``m ± t(1 - a/2; k - 1) * sd(m_p) / sqrt(k)``, ``k >= 2`` processes. The process is the top
  level of the hierarchy, so its spread includes load-time and memory-layout effects that no amount of
  within-process repetition shows (Kalibera & Jones 2013, sec. 4: the interval comes from the variation of the
  highest level that is repeated). ``speedup = exp(-m)``, interval ``[exp(-hi), exp(-lo)]``.

Sequential stopping (:func:`look_alphas`): processes are added one at a time and the interval is looked at
after each, from the 2nd to the ``max_processes``-th; a look uses the share of the error rate ``alpha`` that
the Lan-DeMets spending function assigns to it, ``alpha_j = A(t_j) - A(t_{j-1})`` with information fraction
``t_j = j / J`` over the ``J = max_processes - 1`` looks, Pocock-type ``A(t) = alpha * ln(1 + (e - 1) t)``
(Lan & DeMets 1983, "Discrete sequential boundaries for clinical trials", Biometrika 70(3), 659-663, eq. 3).
Every look's interval is a ``1 - alpha_j`` interval; the chance that any look decides the wrong side of a
margin is at most ``sum_j alpha_j = alpha`` (Bonferroni over looks), whatever the correlation between looks
and whenever the run stops, which is what makes stopping early on a decided interval valid (a fixed-sample
interval looked at after every process would not be: "peeking" inflates the error rate). The rule is
conservative: exact group-sequential boundaries would use the correlation between looks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

MIN_PROCESSES = 2
"""Fewest processes an interval is computed from: one process shows no between-process spread."""

SPENDING = "Lan-DeMets Pocock-type alpha spending, A(t) = alpha ln(1 + (e - 1) t), Bonferroni over looks"


def block_log_ratios(blocks: Sequence[Sequence[float]]) -> np.ndarray:
    """Per block ``log(b_ms / a_ms)``: shape ``(n_blocks,)``.

    Args:
        blocks: ``[[a_ms, b_ms], ...]`` from :func:`gate.runtime.bench_child.timed_blocks` (sums of two runs each).

    Raises:
        ValueError: no block, or a time that is not a positive finite number.
    """
    x = np.asarray(blocks, dtype=float)
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] != 2:
        raise ValueError("blocks must be a non-empty list of [a_ms, b_ms] pairs")
    if not np.all(np.isfinite(x)) or np.any(x <= 0):
        raise ValueError("block times must be positive finite milliseconds")
    return np.log(x[:, 1] / x[:, 0])


def process_means(processes: Sequence[Sequence[Sequence[float]]]) -> np.ndarray:
    """Each process's mean block log ratio: shape ``(n_processes,)`` (see the module docstring)."""
    return np.array([float(np.mean(block_log_ratios(b))) for b in processes])


def spending(t: float, alpha: float) -> float:
    """Lan & DeMets (1983) Pocock-type spending function ``alpha * ln(1 + (e - 1) t)``, ``0 <= t <= 1``."""
    t = min(max(float(t), 0.0), 1.0)
    return alpha * math.log(1.0 + (math.e - 1.0) * t)


def look_alphas(max_processes: int, alpha: float) -> list[float]:
    """The error rate spent at each look: ``[alpha_2, ..., alpha_K]`` for looks after process 2..K.

    Args:
        max_processes: ``K``, the most processes the comparison may use (>= 2).
        alpha: the total two-sided error rate, ``1 - confidence``.

    Returns:
        ``K - 1`` values summing to ``alpha`` (module docstring: Lan & DeMets 1983, eq. 3).

    Raises:
        ValueError: ``max_processes < 2`` or ``alpha`` not in (0, 1).
    """
    if max_processes < MIN_PROCESSES:
        raise ValueError(f"max_processes must be >= {MIN_PROCESSES}")
    if not 0 < alpha < 1:
        raise ValueError("alpha must be in (0, 1)")
    looks = max_processes - 1
    return [spending(j / looks, alpha) - spending((j - 1) / looks, alpha) for j in range(1, looks + 1)]


@dataclass(frozen=True)
class PairedInterval:
    """A paired speedup estimate and its interval at one look.

    Attributes:
        speedup: ``exp(-m)``: baseline time / candidate time (x), > 1 = the candidate is faster.
        ci_low, ci_high: the ``1 - alpha`` Student-t interval, mapped to speedup (x).
        alpha: the two-sided error rate of this interval (the look's share, :func:`look_alphas`).
        n_processes: processes it comes from; n_blocks: blocks over those processes.
        sd_log: standard deviation of the process estimates (natural-log units), ``nan`` for one process.
    """

    speedup: float
    ci_low: float
    ci_high: float
    alpha: float
    n_processes: int
    n_blocks: int
    sd_log: float

    def decides(self, margin: float) -> str | None:
        """``"above"`` when the whole interval is above ``margin`` (x), ``"below"`` when below, else ``None``."""
        if self.ci_low > margin:
            return "above"
        if self.ci_high < margin:
            return "below"
        return None

    def processes_needed(self, margin: float, alpha: float) -> int | None:
        """Processes that would make a ``1 - alpha`` interval of this spread exclude ``margin``, if the estimate
        stays where it is (``None`` when the estimate sits on the margin or the spread is unknown)."""
        from scipy.stats import t as student_t

        gap = abs(math.log(self.speedup) - math.log(margin))
        if not math.isfinite(self.sd_log) or gap == 0:
            return None
        if self.sd_log == 0:
            return self.n_processes
        for k in range(MIN_PROCESSES, 1001):
            if student_t.ppf(1 - alpha / 2, k - 1) * self.sd_log / math.sqrt(k) < gap:
                return k
        return None


def paired_interval(processes: Sequence[Sequence[Sequence[float]]], alpha: float) -> PairedInterval:
    """The speedup of B over A and its ``1 - alpha`` interval from per-process blocks (module docstring).

    Args:
        processes: per process, its blocks ``[[a_ms, b_ms], ...]``.
        alpha: two-sided error rate of the interval, in (0, 1).

    Returns:
        the :class:`PairedInterval`; with one process the interval is ``[0, inf]`` (nothing is decided).

    Raises:
        ValueError: no process, a malformed block, or ``alpha`` not in (0, 1).
    """
    from scipy.stats import t as student_t

    if not 0 < alpha < 1:
        raise ValueError("alpha must be in (0, 1)")
    m_p = process_means(processes)
    if m_p.size == 0:
        raise ValueError("no process")
    k = int(m_p.size)
    n_blocks = sum(len(b) for b in processes)
    m = float(np.mean(m_p))
    if k < MIN_PROCESSES:
        return PairedInterval(math.exp(-m), 0.0, math.inf, alpha, k, n_blocks, math.nan)
    sd = float(np.std(m_p, ddof=1))
    half = float(student_t.ppf(1 - alpha / 2, k - 1)) * sd / math.sqrt(k)
    return PairedInterval(math.exp(-m), math.exp(-(m + half)), math.exp(-(m - half)), alpha, k, n_blocks, sd)


@dataclass(frozen=True)
class Look:
    """One look of the sequential rule: after ``n_processes`` processes, at error rate ``alpha``.

    Attributes:
        n_processes: processes so far; alpha: the look's share of the error rate.
        intervals: per phase, the :class:`PairedInterval` at ``alpha``.
        decided: per phase that has a margin, ``"above"``/``"below"`` or ``None``.
    """

    n_processes: int
    alpha: float
    intervals: dict[str, PairedInterval]
    decided: dict[str, str | None]

    @property
    def all_decided(self) -> bool:
        """Every phase with a margin is decided (vacuously true with none)."""
        return all(v is not None for v in self.decided.values())


def look(processes: Sequence[dict[str, Sequence[Sequence[float]]]], alpha_look: float,
         margins: dict[str, float]) -> Look:
    """Compute every phase's interval at one look and whether each phase with a margin is decided.

    Args:
        processes: per process, ``{phase: blocks}``.
        alpha_look: the look's error rate (:func:`look_alphas`).
        margins: per phase, the speedup the policy compares with (x); phases without one are reported only.
    """
    phases = list(processes[0]) if processes else []
    intervals = {ph: paired_interval([p[ph] for p in processes], alpha_look) for ph in phases}
    decided = {ph: intervals[ph].decides(m) for ph, m in margins.items() if ph in intervals}
    return Look(len(processes), alpha_look, intervals, decided)


__all__ = ["MIN_PROCESSES", "SPENDING", "Look", "PairedInterval", "block_log_ratios", "look", "look_alphas",
           "paired_interval", "process_means", "spending"]
