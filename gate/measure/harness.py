"""Measurement harness: load time, per-phase peak memory, prefill and decode latency of ONNX decoders.

Protocol (defaults and their sources in :class:`BenchSettings`):

* every measurement runs in a fresh child process (:mod:`gate.runtime.bench_child`, a self-contained script
  importing only numpy and onnxruntime), so torch, the exporter and other variants cannot inflate
  memory or perturb timing;
* ``processes`` rounds; each round launches one child per variant, one at a time, and the order is
  rotated every round (A B, B A, A B, ... ; with three variants A B C, B C A, C A B), so variants are
  interleaved and every variant takes every position equally often: slow drift of a shared machine
  cannot favour one variant (LiteRT shuffles configurations for the same reason);
* inside a child: warm-up by count *and* time, then timed runs until a minimum count *and* a
  minimum duration are both met (optimum-benchmark, LiteRT), for prefill at each prompt length and
  for one-token decode at a fixed KV-cache context;
* a run whose own noise is too high (any phase's CV over ``cv_limit``; ExecuTorch's stability
  rule uses 10 %) is retried once; if it is still too noisy it is kept but marked unstable, and
  every comparison built on it carries ``unstable: true`` instead of being trusted;
* memory: the kernel's peak (VmHWM, reset between phases through ``/proc/self/clear_refs``) for
  load, first run, warm-up and steady state, above the process's VmRSS before load; RssAnon and
  RssFile per phase; the arena and pre-packing settings are recorded.

The child can run elsewhere: pass ``run_child`` (e.g. one that copies ``CHILD_SCRIPT`` to a device
over SSH and runs it with the device's ``python3``).
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gate.measure.latency_stats import PERCENTILE_METHOD, process_cv, summarize
from gate.progress import report_progress
from gate.runtime.errors import InputError
from gate.runtime.ort_decoder import SessionConfig

PROCESSES_DEFAULT = {"paired": 2, "processes": 5}
"""Default ``BenchSettings.processes`` per protocol: 2 is the fewest from which a between-process spread exists."""
CHILD_SCRIPT = Path(__file__).resolve().parents[1] / "runtime" / "bench_child.py"
_STDERR_TAIL_LINES = 20
ChildRunner = Callable[[str, dict, float], dict]


@dataclass(frozen=True)
class BenchSettings:
    """What is measured, and for how long.

    Attributes:
        prompt_lengths: prefill lengths in tokens (one sample = the whole prompt from an empty KV
            cache, batch 1).
        decode_context: KV-cache length (tokens) before each timed one-token decode step.
        warmup_min_runs: untimed runs per phase, at least (per process).
        warmup_min_seconds: untimed seconds per phase, at least.
        min_runs: timed samples per phase per process, at least.
        min_seconds: timed seconds per phase per process, at least (both minimums must be met).
        max_seconds: hard cap per phase per process, seconds (the result records ``capped``).
        processes: fresh child processes per variant, interleaved across variants (default
            :data:`PROCESSES_DEFAULT`: 2 with the paired protocol, where they measure memory and the absolute
            latencies of budgets, 5 with ``"processes"``, where they also carry the speedup comparison).
        cv_limit: largest acceptable coefficient of variation (std / mean) of one process's samples
            of one phase; above it the process is re-run once, then marked unstable.
        cpu_mem_arena: ORT ``enable_cpu_mem_arena`` (default on, as ORT).
        prepacking: ORT weight pre-packing (default on, as ORT; off = ``session.disable_prepacking``).
        timeout_s: wall-clock limit per child process, seconds.
        protocol: how candidates are compared with the baseline: ``"paired"`` (:func:`measure_paired`, the
            default) or ``"processes"`` (only the per-artifact processes of :func:`measure_variants`, compared
            across processes by a two-stage bootstrap: valid on a quiet machine, noise under drifting load).
        min_blocks: paired protocol (:func:`measure_paired`): ABBA/BAAB blocks per phase per process, at least
            (``min_seconds`` and ``max_seconds`` apply too).
        max_processes: paired protocol: the most processes per candidate; the error rate is spent over the
            looks after processes 2..max_processes (:mod:`gate.measure.paired_timing`).
        budget_s: paired protocol: stop adding processes when the next round would pass this many seconds
            (``None`` = no budget); the comparisons still undecided are then INCONCLUSIVE.

    Defaults: a CI-sized version of the protocols of established benchmark tools: warm-up
    >= 2 runs and >= 1 s per phase (optimum-benchmark: 10 runs; LiteRT: 1 run and 0.5 s), timed
    >= 10 runs and >= 2 s per phase (optimum-benchmark: 10 runs and 10 s; LiteRT: 50 runs and 1 s;
    fewer seconds because the decision statistic is across processes, not within one), 5 processes
    (MLPerf Tiny: 5 windows; also the fewest for which a 95 % interval across processes is
    meaningful, see gate.measure.latency_stats), CV limit 0.15 (ExecuTorch scores CV >= 10 % as the worst
    stability; 15 % leaves room for ordinary CI-runner noise). Sources: huggingface/optimum-benchmark
    ``optimum_benchmark/scenarios/inference/config.py`` (``warmup_runs``, ``iterations``, ``duration``);
    google-ai-edge/LiteRT ``tflite/tools/benchmark/README.md`` (``warmup_runs``, ``warmup_min_secs``,
    ``num_runs``, ``min_secs``); mlcommons/tiny ``benchmark/MLPerfTiny_Rules.adoc`` (performance mode);
    pytorch/executorch ``extension/benchmark/analyze_latency_stability.py``. benchmarks/README.md has the
    measured noise and cost of these defaults.

    Raises:
        InputError: a value out of range (the message names the setting).
    """

    prompt_lengths: tuple[int, ...] = (128, 512)
    decode_context: int = 512
    warmup_min_runs: int = 2
    warmup_min_seconds: float = 1.0
    min_runs: int = 10
    min_seconds: float = 2.0
    max_seconds: float = 60.0
    processes: int | None = None
    cv_limit: float = 0.15
    cpu_mem_arena: bool = True
    prepacking: bool = True
    timeout_s: float = 900.0
    protocol: str = "paired"
    min_blocks: int = 6
    max_processes: int = 8
    budget_s: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "prompt_lengths", tuple(int(x) for x in self.prompt_lengths))
        if self.processes is None:  # the paired protocol compares speed itself: these processes measure memory
            object.__setattr__(self, "processes", PROCESSES_DEFAULT[self.protocol] if self.protocol in
                               PROCESSES_DEFAULT else 5)
        if not self.prompt_lengths or min(self.prompt_lengths) < 1 or len(set(self.prompt_lengths)) != len(self.prompt_lengths):
            raise InputError(f"bench setting prompt_lengths {list(self.prompt_lengths)}: give distinct token counts >= 1, e.g. 128,512")
        for name in ("min_runs", "processes"):
            if getattr(self, name) < 1:
                raise InputError(f"bench setting {name} must be >= 1, got {getattr(self, name)}")
        for name in ("decode_context", "warmup_min_runs", "warmup_min_seconds", "min_seconds"):
            if getattr(self, name) < 0:
                raise InputError(f"bench setting {name} must be >= 0, got {getattr(self, name)}")
        if not self.max_seconds >= max(self.min_seconds, 1e-3):
            raise InputError(f"bench setting max_seconds ({self.max_seconds}) must be >= min_seconds ({self.min_seconds}) and > 0")
        if not self.cv_limit > 0:
            raise InputError(f"bench setting cv_limit must be > 0 (e.g. 0.15 = 15 %), got {self.cv_limit}")
        if self.protocol not in ("paired", "processes"):
            raise InputError(f"--bench-protocol {self.protocol!r}: use paired or processes")
        if self.min_blocks < 1:
            raise InputError(f"bench setting min_blocks must be >= 1, got {self.min_blocks}")
        if self.max_processes < 2:
            raise InputError(f"--bench-max-processes {self.max_processes}: must be >= 2 (one process shows no "
                             "between-process spread)")
        if self.budget_s is not None and not (math.isfinite(self.budget_s) and self.budget_s > 0):
            raise InputError(f"--bench-budget {self.budget_s}: must be a positive number of seconds")
        if not self.timeout_s > 0:
            raise InputError(f"bench setting timeout_s must be > 0, got {self.timeout_s}")


def parse_prompt_lengths(text: str | Sequence[int]) -> tuple[int, ...]:
    """``"128,512"`` -> ``(128, 512)`` (the ``--prompt-lengths`` option).

    Raises:
        InputError: not a comma-separated list of distinct whole numbers >= 1.
    """
    if not isinstance(text, str):
        return tuple(int(x) for x in text)
    try:
        lengths = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        lengths = ()
    if not lengths or min(lengths) < 1 or len(set(lengths)) != len(lengths):
        raise InputError(f"--prompt-lengths {text!r}: give distinct token counts >= 1, comma-separated, e.g. 128,512")
    return lengths


def launch_order(names: Sequence[str], rounds: int) -> list[list[str]]:
    """The order in which child processes are launched: rotated by one each round.

    Args:
        names: variant names in the caller's order.
        rounds: number of rounds (``BenchSettings.processes``).

    Returns:
        One list of names per round; round ``r`` is ``names`` rotated left by ``r``, so with two
        variants the order alternates (A B, B A, ...) and every variant takes every position
        equally often when ``rounds`` is a multiple of ``len(names)``.
    """
    n = len(names)
    return [[names[(r + i) % n] for i in range(n)] for r in range(rounds)] if n else []


def _check_providers(providers: Sequence[str]) -> list[str]:
    import onnxruntime as ort

    available = ort.get_available_providers()
    if not providers:
        raise InputError("no execution provider requested; available: " + ", ".join(available))
    for p in providers:
        if p not in available:
            raise InputError(
                f"execution provider '{p}' is not available in this onnxruntime build; "
                f"available: {', '.join(available)}"
            )
    return available


def _stderr_tail(stderr: str | bytes | None) -> str:
    if isinstance(stderr, bytes):
        stderr = stderr.decode("utf-8", "replace")
    lines = (stderr or "").strip().splitlines()[-_STDERR_TAIL_LINES:]
    return "\n".join(lines) if lines else "(no stderr)"


def _die_with_parent(parent_pid: int) -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child get SIGKILL when this process dies (Linux ``PR_SET_PDEATHSIG``).

    Why this and not a new session plus ``killpg`` at exit: a process group can only be killed by a parent that
    is still alive to do it, and a parent that receives SIGKILL (the OOM killer, a CI runner's hard stop) runs no
    handler at all. The death signal is armed by the kernel in the child, so it fires however the parent dies.
    It survives the ``exec`` of the interpreter. The race where the parent dies between ``fork`` and ``prctl``
    is closed by checking ``getppid()`` afterwards. ``libc.prctl`` is resolved here, before ``fork``, so the
    child only makes one foreign call. Returns ``None`` off Linux (there the orderly path in
    :func:`run_local_child` still kills the child on an interrupt).
    """
    if not sys.platform.startswith("linux"):
        return None
    import ctypes
    import signal

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig, sigkill = 1, int(signal.SIGKILL)

    def arm() -> None:
        if prctl(pr_set_pdeathsig, sigkill, 0, 0, 0) != 0 or os.getppid() != parent_pid:
            os._exit(70)  # cannot be tied to the parent, or the parent is already gone: do not run orphaned

    return arm


def launch_child(script: Path | None = None) -> subprocess.Popen:
    """Start ``bench_child.py`` (or ``script``) as ``python -I`` with pipes, tied to this process's life.

    The child receives SIGKILL if this process dies for any reason (see :func:`_die_with_parent`); use
    :func:`run_local_child` to run one request.
    """
    return subprocess.Popen(
        [sys.executable, "-I", str(script or CHILD_SCRIPT)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=_die_with_parent(os.getpid()),  # noqa: PLW1509 (one foreign call; needed to survive SIGKILL)
    )


def run_local_child(name: str, request: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    """Run ``bench_child.py`` in a fresh local Python process (``python -I``: no user site, no cwd on sys.path).

    The child never outlives the gate: it is killed (and reaped) when the wait is interrupted (Ctrl-C, or SIGTERM,
    which the CLI turns into ``KeyboardInterrupt``), and the kernel kills it if this process dies outright
    (SIGKILL included; see :func:`_die_with_parent`).

    Args:
        name: variant name, for error messages.
        request: the child's JSON request (see :mod:`gate.runtime.bench_child`).
        timeout_s: wall-clock limit, seconds.

    Returns:
        The child's parsed JSON result.

    Raises:
        RuntimeError: the child failed, timed out or wrote no valid JSON; the message names the
            variant and quotes the last lines of its stderr.
    """
    proc = launch_child()
    try:
        out, err = proc.communicate(json.dumps(request), timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise RuntimeError(
            f"benchmark of variant '{name}' timed out after {timeout_s:g} s (pid {proc.pid}); "
            f"last stderr lines:\n{_stderr_tail(err)}"
        ) from None
    except BaseException:  # KeyboardInterrupt (Ctrl-C, SIGTERM through the CLI's handler), SystemExit, ...
        proc.kill()
        proc.wait()
        raise
    if proc.returncode != 0:
        raise RuntimeError(
            f"benchmark of variant '{name}' failed: child exited with code {proc.returncode}; "
            f"last stderr lines:\n{_stderr_tail(err)}"
        )
    try:
        return json.loads(out)
    except json.JSONDecodeError:
        raise RuntimeError(
            f"benchmark of variant '{name}': child wrote no valid JSON result; "
            f"stdout began {out[:200]!r}; last stderr lines:\n{_stderr_tail(err)}"
        ) from None


def _environment(available: list[str]) -> dict[str, Any]:
    import onnxruntime as ort

    return {
        "python": platform.python_version(),
        "executable": sys.executable,
        "onnxruntime": ort.__version__,
        "numpy": np.__version__,
        "available_providers": available,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "allocator": os.environ.get("LD_PRELOAD") or "glibc malloc (no LD_PRELOAD)",
        "cpus_available": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "load_average_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }


def _phase_cvs(result: dict[str, Any]) -> dict[str, float]:
    return {name: process_cv(p["samples_ms"]) for name, p in result["phases"].items()}


def _memory_summary(results: list[dict[str, Any]], settings: dict[str, Any]) -> dict[str, Any]:
    def spread(values: list[int]) -> dict[str, Any]:
        return {"median": float(np.median(values)), "min": int(min(values)), "max": int(max(values)), "per_process": values}

    phases = {}
    for phase in ("load", "first_run", "warmup", "steady"):
        rows = [r["memory"][phase] for r in results]
        phases[phase] = {
            "peak_rss_bytes": spread([m["peak_rss_bytes"] for m in rows]),
            "peak_above_baseline_bytes": spread([m["peak_above_baseline_bytes"] for m in rows]),
            **{k: (None if any(m[k] is None for m in rows) else float(np.median([m[k] for m in rows])))
               for k in ("rss_bytes", "rss_anon_bytes", "rss_file_bytes")},
        }
    peaks = [r["memory"]["peak_rss_bytes"] for r in results]
    above = [r["memory"]["peak_above_baseline_bytes"] for r in results]
    return {
        "peak_rss_bytes": int(max(peaks)),
        "peak_rss_bytes_per_process": peaks,
        "peak_above_baseline_bytes": float(np.median(above)),
        "peak_above_baseline_bytes_per_process": above,
        "baseline_rss_bytes": float(np.median([r["memory"]["baseline"].get("vmrss_bytes", 0) for r in results])),
        "phases": phases,
        "hwm_reset_supported": all(r["memory"]["hwm_reset_supported"] for r in results),
        "settings": {k: settings[k] for k in ("cpu_mem_arena", "prepacking", "mem_pattern")},
        "method": "VmHWM from /proc/self/status, reset at the start of each phase by writing 5 to /proc/self/clear_refs "
                  "(phases: load = session creation; first_run = first prefill at the largest prompt length; "
                  "warmup; steady = timed runs); above_baseline = minus VmRSS before load (numpy + onnxruntime "
                  "imported); peak_rss_bytes = the largest whole-process peak over phases and processes; "
                  "rss_*_bytes = at the end of the phase, median over processes",
    }


def _aggregate(path: Path, results: list[dict[str, Any]], attempts: list[dict[str, Any]], session: SessionConfig,
               settings: BenchSettings, protocol: dict[str, Any], wall_s: float) -> dict[str, Any]:
    phases = list(results[0]["phases"])
    stats = {name: summarize([r["phases"][name]["samples_ms"] for r in results]) for name in phases}
    for name in phases:
        stats[name]["capped_processes"] = sum(bool(r["phases"][name]["capped"]) for r in results)
        stats[name]["warmup_runs_per_process"] = [r["phases"][name]["warmup_runs"] for r in results]
    prefill = {}
    for L in sorted(settings.prompt_lengths):
        prefill[str(L)] = {"prompt_tokens": L, **stats[f"prefill_{L}"]}
    decode = {"context_tokens": settings.decode_context, "new_tokens_per_sample": 1, **stats["decode"]}
    unstable = [{"process": i, "phase": ph, "cv": a["retry_cvs"][ph], "first_attempt_cv": a["first_cvs"][ph]}
                for i, a in enumerate(attempts) for ph in a["unstable_phases"]]
    per_process = [
        {
            "pid": r["pid"],
            "wall_s": r["wall_s"],
            "load_ms": r["load_ms"],
            "first_run_ms": r["first_run_ms"],
            "phases": {n: {"p50_ms": float(np.median(p["samples_ms"])), "cv": process_cv(p["samples_ms"]),
                           "n": len(p["samples_ms"]), "capped": p["capped"]} for n, p in r["phases"].items()},
            "retried": a["retried"],
            "unstable_phases": a["unstable_phases"],
            "memory": r["memory"],
            "providers_used": r["providers_used"],
            "torch_imported": r["torch_imported"],
        }
        for r, a in zip(results, attempts)
    ]
    memory = _memory_summary(results, results[0]["session_settings"])
    return {
        "model_path": str(path),
        "prefill_ms": prefill,
        "decode_ms_per_token": decode,
        "load_ms": summarize([[r["load_ms"]] for r in results]),
        "first_run_ms": {"prompt_tokens": results[0]["first_run_prompt_tokens"], **summarize([[r["first_run_ms"]] for r in results])},
        "memory": memory,
        "peak_rss_bytes": memory["peak_rss_bytes"],
        "stability": {
            "cv_limit": settings.cv_limit,
            "unstable": bool(unstable),
            "unstable_runs": unstable,
            "retried_processes": [i for i, a in enumerate(attempts) if a["retried"]],
            "rule": "a process whose samples of any phase have CV (std/mean) above cv_limit is re-run once; "
                    "if the re-run is still above, it is kept and listed here as unstable",
        },
        "per_process": per_process,
        "providers_requested": list(session.providers),
        "providers_used": results[0]["providers_used"],
        "threads": session.intra_op_threads,
        "vocab_size": results[0]["vocab_size"],
        "vocab_source": results[0]["vocab_source"],
        "bench_wall_s": wall_s,
        "protocol": protocol,
    }


def measure_variants(
    variants: Sequence[tuple[str, Path]],
    session: SessionConfig,
    settings: BenchSettings,
    log: Callable[[str], Any] = print,
    run_child: ChildRunner = run_local_child,
) -> dict[str, dict]:
    """Measure each ONNX decoder variant in fresh, interleaved child processes (protocol: module docstring).

    Args:
        variants: ``(name, path to model.onnx)`` pairs; names must be unique (the same path twice is
            allowed: that is the A/A check).
        session: ONNX Runtime session configuration used for every variant.
        settings: what to measure and for how long.
        log: called with one progress line per child launch and per finished child.
        run_child: runs one child request and returns its result (default: a local subprocess).

    Returns:
        Per variant name, a JSON-ready dict (times in ms, memory in bytes):

        - ``prefill_ms``: ``{"<prompt_tokens>": stats}`` for every prompt length;
        - ``decode_ms_per_token``: stats of one-token decode steps after ``context_tokens`` cached tokens;
        - ``load_ms``, ``first_run_ms``: stats with one sample per process (session creation; the
          cold first prefill at the largest prompt length);
        - ``memory``: ``peak_rss_bytes`` (largest whole-process VmHWM over phases and processes),
          ``peak_above_baseline_bytes`` (median over processes of the peak minus VmRSS before load),
          per-process lists, ``baseline_rss_bytes``, ``phases`` (load, first_run, warmup, steady:
          peak and peak above baseline with median/min/max/per_process, RssAnon/RssFile/VmRSS at
          the phase end), ``settings`` (arena, prepacking, mem_pattern), ``method``;
        - ``peak_rss_bytes``: same as ``memory.peak_rss_bytes``;
        - ``stability``: ``cv_limit``, ``unstable``, ``unstable_runs``, ``retried_processes``;
        - ``per_process``: one dict per process in launch order (pid, wall_s, p50 and CV per phase,
          retried, unstable_phases, memory);
        - ``providers_requested``, ``providers_used``, ``threads``, ``vocab_size``, ``bench_wall_s``
          (parent-side wall time of this variant's children, retries included), ``protocol``.

        Each stats dict is :func:`gate.measure.latency_stats.summarize` output (p50/p90/p95, mean, std, CV,
        min, max, per-process p50s/CVs and the raw ``samples_per_process``).

    Raises:
        InputError: duplicate variant names, no or an unavailable execution provider (checked
            before anything is launched).
        RuntimeError: a child failed, timed out or wrote no result (the message names the variant).
    """
    names = [name for name, _ in variants]
    if len(set(names)) != len(names):
        raise InputError(f"bench variant names must be unique, got {names}")
    available = _check_providers(session.providers)
    if not variants:
        return {}
    paths = {name: Path(path).resolve() for name, path in variants}
    order = launch_order(names, settings.processes)
    session_json = {
        "providers": list(session.providers),
        "intra_op_threads": session.intra_op_threads,
        "graph_optimization": session.graph_optimization,
        "allow_spinning": session.allow_spinning,
        "cpu_mem_arena": settings.cpu_mem_arena,
        "prepacking": settings.prepacking,
    }
    child_settings = {
        "prompt_lengths": list(settings.prompt_lengths),
        "decode_context": settings.decode_context,
        "warmup_min_runs": settings.warmup_min_runs,
        "warmup_min_seconds": settings.warmup_min_seconds,
        "min_runs": settings.min_runs,
        "min_seconds": settings.min_seconds,
        "max_seconds": settings.max_seconds,
    }
    seed = 0
    protocol = {
        **asdict(settings),
        "session": session_json,
        "seed": seed,
        "launch_order": order,
        "isolation": "one fresh child process (python -I gate/runtime/bench_child.py) per variant per round, one at a time; "
                     "launch order rotated each round (interleaved A B, B A, ...)",
        "timer": "time.perf_counter_ns around session.run with inputs built beforehand; gc disabled while timing",
        "warmup": "per phase until warmup_min_runs runs and warmup_min_seconds have both passed, after one cold "
                  "first run at the largest prompt length",
        "timed_loop": "per phase until min_runs samples and min_seconds have both passed, capped at max_seconds",
        "prefill": "one sample = prompt_tokens tokens from an empty KV cache, batch 1",
        "decode": "one sample = one new token after a fixed decode_context-token KV cache, batch 1",
        "percentile_method": PERCENTILE_METHOD,
        "stability": f"CV per process and phase; above cv_limit={settings.cv_limit}: re-run once, then marked unstable",
        "environment": _environment(available),
    }

    results: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    attempts: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    wall: dict[str, float] = {name: 0.0 for name in names}
    total = len(order) * len(names)
    k = 0
    for r, round_names in enumerate(order):
        for name in round_names:
            k += 1
            log(f"bench: round {r + 1}/{len(order)} launch {k}/{total}: {name}")
            report_progress(log, "benchmark", k - 1, total, "processes")
            request = {"model_path": str(paths[name]), "session": session_json, "settings": child_settings, "seed": seed}
            t0 = time.perf_counter()
            res = run_child(name, request, settings.timeout_s)
            first_cvs = _phase_cvs(res)
            noisy = [ph for ph, cv in first_cvs.items() if cv > settings.cv_limit]
            attempt = {"retried": False, "first_cvs": first_cvs, "retry_cvs": first_cvs, "unstable_phases": []}
            if noisy:
                log(f"bench:   {name}: CV above {settings.cv_limit:.0%} in {', '.join(f'{p} ({first_cvs[p]:.0%})' for p in noisy)}; re-running once")
                res = run_child(name, request, settings.timeout_s)
                retry_cvs = _phase_cvs(res)
                attempt.update(retried=True, retry_cvs=retry_cvs,
                               unstable_phases=[ph for ph, cv in retry_cvs.items() if cv > settings.cv_limit])
                if attempt["unstable_phases"]:
                    log(f"bench:   {name}: still noisy ({', '.join(attempt['unstable_phases'])}): marked unstable")
            wall[name] += time.perf_counter() - t0
            results[name].append(res)
            attempts[name].append(attempt)
            medians = ", ".join(f"{ph} {np.median(p['samples_ms']):.2f} ms" for ph, p in res["phases"].items())
            log(f"bench:   {name}: load {res['load_ms']:.0f} ms, peak RSS {res['memory']['peak_rss_bytes'] / 1e6:.0f} MB, p50 {medians}")
            missing = [p for p in session.providers if p not in res["providers_used"]]
            if missing:
                log(f"bench:   warning: {name}: requested providers not used by the session: {', '.join(missing)}")

    report_progress(log, "benchmark", total, total, "processes")
    return {name: _aggregate(paths[name], results[name], attempts[name], session, settings, protocol, wall[name])
            for name in names}


PAIRED_PROTOCOL = "paired-interleaved"


def measure_paired(
    baseline: tuple[str, Path],
    candidates: Sequence[tuple[str, Path]],
    session: SessionConfig,
    settings: BenchSettings,
    *,
    margins: dict[str, dict[str, float]] | None = None,
    confidence: float = 0.95,
    log: Callable[[str], Any] = print,
    run_child: ChildRunner = run_local_child,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, dict]:
    """Compare each candidate's latency with the baseline's, paired and interleaved, stopping when decided.

    Protocol (statistics and sources in :mod:`gate.measure.paired_timing`): round after round, one fresh
    process per still-undecided candidate (candidates in a seeded random order) holds the baseline and that
    candidate and times every phase in ABBA/BAAB blocks (:func:`gate.runtime.bench_child.run_paired`). After
    each round from the second on, every phase's speedup interval is computed at that look's share of the
    error rate; a candidate stops when every phase that has a margin is decided (its interval excludes the
    margin), at ``settings.max_processes``, or when the next round would pass ``settings.budget_s`` (at least
    two processes are always measured: one shows no between-process spread).

    Args:
        baseline: ``(name, path to model.onnx)``.
        candidates: ``(name, path)`` pairs; names unique and different from the baseline's.
        session: ONNX Runtime session configuration (the same for both models).
        settings: ``prompt_lengths``, ``decode_context``, warm-up, ``min_blocks``, ``min_seconds``,
            ``max_seconds`` per phase, ``max_processes``, ``budget_s``, ``timeout_s``.
        margins: per candidate, ``{phase: speedup margin (x)}`` the gate compares with (e.g.
            ``{"decode": 1.10}``); phases without a margin are reported, not waited for.
        confidence: the policy's confidence; ``1 - confidence`` is spent over the looks.
        log: progress lines.
        run_child: runs one child request (default: a local subprocess; a device passes its own).
        clock: seconds, monotonic (tests pass a fake one).

    Returns:
        Per candidate name, a JSON-ready dict: ``protocol``, ``baseline``, ``phases`` (per phase: ``speedup``,
        ``ci_low``, ``ci_high`` (x), ``alpha``, ``n_processes``, ``n_blocks``, ``margin``, ``decided``
        (``"above"``/``"below"``/``None``), ``processes_needed``), ``stop_reason`` (``"decided"``,
        ``"max_processes"``, ``"budget"``), ``looks`` (the decode interval at every look), ``per_process`` (pid,
        load ms, load averages, wall s, raw blocks and orders), ``confidence``, ``spending``, ``max_processes``,
        ``budget_s``, ``wall_s``, ``method``.

    Raises:
        InputError: duplicate names, or an unavailable execution provider (before anything runs).
        RuntimeError: a child failed (the message names the candidate).
    """
    from gate.measure.paired_timing import SPENDING, look, look_alphas

    names = [baseline[0]] + [n for n, _ in candidates]
    if len(set(names)) != len(names):
        raise InputError(f"bench variant names must be unique, got {names}")
    _check_providers(session.providers)
    margins = margins or {}
    alphas = look_alphas(settings.max_processes, 1 - confidence)
    base_path = str(Path(baseline[1]).resolve())
    paths = {n: str(Path(p).resolve()) for n, p in candidates}
    session_json = {"providers": list(session.providers), "intra_op_threads": session.intra_op_threads,
                    "graph_optimization": session.graph_optimization, "allow_spinning": session.allow_spinning,
                    "cpu_mem_arena": settings.cpu_mem_arena, "prepacking": settings.prepacking}
    # prefill is compared at the shortest prompt length only (each length's absolute latency is measured per
    # artifact by measure_variants); decode is what the speedup check gates
    child_settings = {"prompt_lengths": [min(settings.prompt_lengths)], "decode_context": settings.decode_context,
                      "warmup_min_runs": settings.warmup_min_runs, "warmup_min_seconds": settings.warmup_min_seconds,
                      "min_blocks": settings.min_blocks, "min_seconds": settings.min_seconds,
                      "max_seconds": settings.max_seconds}
    rng = np.random.default_rng(0)
    results: dict[str, list[dict]] = {n: [] for n in paths}
    looks: dict[str, list] = {n: [] for n in paths}
    stop: dict[str, str | None] = {n: None for n in paths}
    t_start = clock()
    proc_s: list[float] = []  # wall seconds of each paired process so far
    for k in range(1, settings.max_processes + 1):
        active = [n for n in paths if stop[n] is None]
        if not active:
            break
        if settings.budget_s is not None and k > 2:
            projected = clock() - t_start + float(np.mean(proc_s)) * len(active)
            if projected > settings.budget_s:
                for n in active:
                    stop[n] = "budget"
                log(f"bench: --bench-budget {settings.budget_s:g} s would be passed by another round; stopping")
                break
        for n in [active[i] for i in rng.permutation(len(active))]:
            log(f"bench: paired process {k}/{settings.max_processes}: {baseline[0]} vs {n}")
            report_progress(log, f"paired {n}", k - 1, settings.max_processes, "processes")
            request = {"mode": "paired", "model_paths": [base_path, paths[n]], "session": session_json,
                       "settings": child_settings, "seed": int(k)}
            t_proc = clock()
            results[n].append(run_child(n, request, settings.timeout_s))
            proc_s.append(clock() - t_proc)
        if k < 2:
            continue
        for n in active:
            lk = look([{ph: r["phases"][ph]["blocks"] for ph in r["phases"]} for r in results[n]], alphas[k - 2],
                      margins.get(n, {}))
            looks[n].append(lk)
            d = lk.intervals.get("decode")
            if d is not None:
                log(f"bench:   {n}: decode speedup {d.speedup:.3f}x [{d.ci_low:.3f}, {d.ci_high:.3f}] "
                    f"after {k} processes (look error rate {lk.alpha:.4f})")
            if lk.all_decided:
                stop[n] = "decided"
                report_progress(log, f"paired {n}", k, k, "processes")
    wall = clock() - t_start
    out: dict[str, dict] = {}
    for n in paths:
        report_progress(log, f"paired {n}", len(results[n]), len(results[n]), "processes")
        final = looks[n][-1] if looks[n] else None
        reason = stop[n] or "max_processes"
        phases = {}
        if final is not None:
            for ph, iv in final.intervals.items():
                m = margins.get(n, {}).get(ph)
                phases[ph] = {"speedup": iv.speedup, "ci_low": iv.ci_low, "ci_high": iv.ci_high, "alpha": iv.alpha,
                              "n_processes": iv.n_processes, "n_blocks": iv.n_blocks, "sd_log_between_processes":
                              None if math.isnan(iv.sd_log) else iv.sd_log, "margin": m,
                              "decided": None if m is None else iv.decides(m),
                              "processes_needed": None if m is None or iv.decides(m) else
                              iv.processes_needed(m, alphas[-1])}
        out[n] = {
            "protocol": PAIRED_PROTOCOL,
            "baseline": baseline[0],
            "phases": phases,
            "stop_reason": reason,
            "looks": [{"n_processes": lk.n_processes, "alpha": lk.alpha,
                       **({"decode": {"speedup": lk.intervals["decode"].speedup, "ci_low": lk.intervals["decode"].ci_low,
                                      "ci_high": lk.intervals["decode"].ci_high}} if "decode" in lk.intervals else {})}
                      for lk in looks[n]],
            "per_process": [{"pid": r["pid"], "load_ms": r["load_ms"], "load_order": r["load_order"],
                             "load_average_1m": r["load_average_1m"], "wall_s": r["wall_s"],
                             "phases": {ph: {"blocks": v["blocks"], "orders": v["orders"], "capped": v["capped"]}
                                        for ph, v in r["phases"].items()}} for r in results[n]],
            "providers_used": results[n][0]["providers_used"] if results[n] else None,
            "confidence": confidence,
            "spending": SPENDING,
            "max_processes": settings.max_processes,
            "budget_s": settings.budget_s,
            "wall_s": wall,
            "method": "speedup = exp(-mean over processes of the mean block log(candidate ms / baseline ms)); "
                      "blocks of 4 runs ABBA/BAAB (seeded) in one process holding both sessions; Student-t interval "
                      "over processes at the look's error rate (Lan-DeMets spending); Kalibera & Jones 2013",
        }
    return out
