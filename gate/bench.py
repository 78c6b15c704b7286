"""Measurement harness: load time, peak memory, prefill and decode latency of ONNX decoders.

Each measurement runs in a fresh child process (``python -m gate.bench_child``) that imports only
numpy and onnxruntime, so that torch, the exporter and other variants cannot inflate memory or
perturb timing. Variants are measured in ``processes`` rounds; each round launches one child per
variant, and the launch order is rotated every round (A B C, B C A, C A B, ...) so that slow drift
of a shared, noisy machine (thermal, neighbours) does not systematically favour one variant.

Protocol details (warmup, timers, percentiles, memory source) are returned with every result under
``"protocol"``; see :func:`measure_variants`.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from gate.errors import InputError
from gate.ort_decoder import SessionConfig

_REPO_ROOT = Path(__file__).resolve().parent.parent
_STDERR_TAIL_LINES = 20


@dataclass(frozen=True)
class BenchSettings:
    """What is measured, and how often.

    Attributes:
        prompt_tokens: prefill length in tokens (one timed prefill = the whole prompt, batch 1).
        decode_context: KV-cache length (tokens) before the timed decode steps.
        decode_tokens: single-token decode steps per timed decode run (fixed token ids, no sampling).
        warmup_runs: untimed runs of each phase (prefill, decode) before timing, per process.
        runs: timed runs per phase per process.
        processes: fresh child processes per variant, interleaved across variants.
        timeout_s: wall-clock limit per child process, in seconds.

    Raises:
        InputError: a count out of range (``prompt_tokens``, ``decode_tokens``, ``runs``,
            ``processes`` must be >= 1; ``decode_context``, ``warmup_runs`` >= 0; ``timeout_s`` > 0).
    """

    prompt_tokens: int = 128
    decode_context: int = 128
    decode_tokens: int = 32
    warmup_runs: int = 2
    runs: int = 10
    processes: int = 3
    timeout_s: float = 900.0

    def __post_init__(self) -> None:
        for name in ("prompt_tokens", "decode_tokens", "runs", "processes"):
            if getattr(self, name) < 1:
                raise InputError(f"bench setting {name} must be >= 1, got {getattr(self, name)}")
        for name in ("decode_context", "warmup_runs"):
            if getattr(self, name) < 0:
                raise InputError(f"bench setting {name} must be >= 0, got {getattr(self, name)}")
        if not self.timeout_s > 0:
            raise InputError(f"bench setting timeout_s must be > 0, got {self.timeout_s}")


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


def summarize(samples: Sequence[float], process_medians: Sequence[float] | None = None) -> dict[str, Any]:
    """Statistics of pooled latency samples.

    Args:
        samples: raw samples (any unit; the caller names it), pooled over processes.
        process_medians: optional per-process medians, for ``median_of_process_medians``.

    Returns:
        ``{"p50", "p90", "p95", "mean", "std", "min", "max", "cv", "n", "samples"}``; percentiles
        use numpy's default linear interpolation. ``median_of_process_medians`` is added when
        ``process_medians`` is given: it is the more robust headline across processes on a noisy
        machine (between-process spread is larger than within-process spread).
    """
    a = np.asarray(samples, dtype=np.float64)
    mean = float(a.mean())
    std = float(a.std(ddof=1)) if a.size > 1 else 0.0
    out: dict[str, Any] = {
        "p50": float(np.percentile(a, 50)),
        "p90": float(np.percentile(a, 90)),
        "p95": float(np.percentile(a, 95)),
        "mean": mean,
        "std": std,
        "min": float(a.min()),
        "max": float(a.max()),
        "cv": std / mean if mean else 0.0,
        "n": int(a.size),
        "samples": [round(float(x), 6) for x in a],
    }
    if process_medians is not None:
        out["median_of_process_medians"] = float(np.median(np.asarray(process_medians, dtype=np.float64)))
    return out


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


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    return env


def _stderr_tail(stderr: str | bytes | None) -> str:
    if isinstance(stderr, bytes):
        stderr = stderr.decode("utf-8", "replace")
    lines = (stderr or "").strip().splitlines()[-_STDERR_TAIL_LINES:]
    return "\n".join(lines) if lines else "(no stderr)"


def _run_child(name: str, request: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    """Run one child process; return its parsed result or raise RuntimeError."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "gate.bench_child"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_child_env(),
    )
    try:
        out, err = proc.communicate(json.dumps(request), timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise RuntimeError(
            f"benchmark of variant '{name}' timed out after {timeout_s:g} s (pid {proc.pid}); "
            f"last stderr lines:\n{_stderr_tail(err)}"
        ) from None
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
        "ld_preload": os.environ.get("LD_PRELOAD", ""),
        "cpus_available": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
    }


def _aggregate(
    name: str, path: Path, results: list[dict[str, Any]], session: SessionConfig, protocol: dict[str, Any]
) -> dict[str, Any]:
    per_process = [
        {
            "pid": r["pid"],
            "load_s": r["load_s"],
            "rss_baseline_bytes": r["rss_baseline_bytes"],
            "load_peak_rss_bytes": r["load_peak_rss_bytes"],
            "peak_rss_bytes": r["peak_rss_bytes"],
            "inference_peak_rss_bytes": r["inference_peak_rss_bytes"],
            "first_prefill_ms": r["first_prefill_ms"],
            "prefill_ms_p50": float(np.median(r["prefill_ms"])),
            "decode_ms_per_token_p50": float(np.median(r["decode_ms_per_token"])),
            "providers_used": r["providers_used"],
            "torch_imported": r["torch_imported"],
        }
        for r in results
    ]
    load = [r["load_s"] for r in results]
    return {
        "model_path": str(path),
        "load_s": float(np.median(load)),
        "load_s_stats": summarize(load),
        "peak_rss_bytes": max(r["peak_rss_bytes"] for r in results),
        "load_peak_rss_bytes": max(r["load_peak_rss_bytes"] for r in results),
        "inference_peak_rss_bytes": (
            None
            if any(r["inference_peak_rss_bytes"] is None for r in results)
            else max(r["inference_peak_rss_bytes"] for r in results)
        ),
        "rss_baseline_bytes": int(np.median([r["rss_baseline_bytes"] for r in results])),
        "first_prefill_ms": summarize([r["first_prefill_ms"] for r in results]),
        "prefill_ms": summarize(
            [x for r in results for x in r["prefill_ms"]], [p["prefill_ms_p50"] for p in per_process]
        ),
        "decode_ms_per_token": summarize(
            [x for r in results for x in r["decode_ms_per_token"]],
            [p["decode_ms_per_token_p50"] for p in per_process],
        ),
        "decode_step_ms": summarize([x for r in results for x in r["decode_step_ms"]]),
        "per_process": per_process,
        "providers_requested": list(session.providers),
        "providers_used": results[0]["providers_used"],
        "threads": session.intra_op_threads,
        "vocab_size": results[0]["vocab_size"],
        "vocab_source": results[0]["vocab_source"],
        "protocol": protocol,
    }


def measure_variants(
    variants: Sequence[tuple[str, Path]],
    session: SessionConfig,
    settings: BenchSettings,
    log: Callable[[str], Any] = print,
) -> dict[str, dict]:
    """Measure each ONNX decoder variant in fresh, interleaved child processes.

    For each of ``settings.processes`` rounds, one child per variant is launched, one after the
    other (never concurrently), in the order given by :func:`launch_order`. Each child: reads VmRSS,
    times ``OrtDecoder(...)`` creation, runs one cold prefill, ``warmup_runs`` untimed prefill and
    decode runs, then ``runs`` timed prefills of ``prompt_tokens`` tokens and ``runs`` timed decode
    runs of ``decode_tokens`` single-token steps from a fixed ``decode_context``-token KV cache
    (token ids from ``numpy.random.default_rng(0)``, below the model's vocabulary size), and
    finally reads the kernel high-water mark VmHWM.

    Args:
        variants: ``(name, path to model.onnx)`` pairs; names must be unique.
        session: ONNX Runtime session configuration used for every variant.
        settings: what to measure and how often.
        log: called with one progress line per child launch and per finished child.

    Returns:
        Per variant name, a JSON-ready dict:

        - ``load_s``: session-creation wall time in seconds, median over processes;
        - ``load_s_stats``: stats of the same, one sample per process;
        - ``peak_rss_bytes``: VmHWM after the timed runs, max over processes (bytes; includes the
          interpreter, numpy and onnxruntime, see ``rss_baseline_bytes``);
        - ``load_peak_rss_bytes``: VmHWM right after session creation, max over processes (ORT's
          load transient; for large fp32 models it is usually the overall peak);
        - ``inference_peak_rss_bytes``: VmHWM of the inference phases only (reset after load via
          ``/proc/self/clear_refs``), max over processes; None where the reset is unsupported;
        - ``rss_baseline_bytes``: VmRSS just before session creation, median over processes;
        - ``first_prefill_ms``: stats of the first (cold) prefill after load, one per process;
        - ``prefill_ms``: stats of whole-prompt prefill time in ms, samples pooled over processes
          (``n = runs * processes``), plus ``median_of_process_medians``;
        - ``decode_ms_per_token``: stats of ms per token, one sample per decode run (the run's
          step times summed / ``decode_tokens``), pooled (``n = runs * processes``);
        - ``decode_step_ms``: stats of every single decode step (inter-token latency, ms),
          ``n = runs * decode_tokens * processes``;
        - ``per_process``: one dict per process in launch order (``load_s``, ``peak_rss_bytes``,
          ``prefill_ms_p50``, ``decode_ms_per_token_p50``, ...);
        - ``providers_requested``, ``providers_used`` (``session.get_providers()`` in the child),
          ``threads`` (``session.intra_op_threads``; 0 = ORT's default), ``vocab_size``;
        - ``protocol``: settings, session options, percentile method, memory source, launch order,
          environment.

        Each stats dict has ``p50``, ``p90``, ``p95``, ``mean``, ``std``, ``min``, ``max``, ``cv``,
        ``n`` and the raw ``samples``.

    Raises:
        InputError: duplicate variant names, no or an unavailable execution provider (checked
            against ``onnxruntime.get_available_providers()`` before anything is launched).
        RuntimeError: a child process failed, timed out or wrote no result; the message names the
            variant and quotes the last lines of the child's stderr.
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
    }
    settings_json = asdict(settings)
    seed = 0
    protocol = {
        **settings_json,
        "session": session_json,
        "seed": seed,
        "launch_order": order,
        "isolation": "one fresh child process per variant per round (python -m gate.bench_child), "
        "run one at a time; launch order rotated each round",
        "percentile_method": "linear (numpy)",
        "pooling": "latency samples pooled over processes for the percentiles; "
        "median_of_process_medians kept as well",
        "timer": "time.perf_counter_ns around OrtDecoder.step (feed building included); gc disabled "
        "during timed runs",
        "load": "wall time of OrtDecoder(...) (InferenceSession creation), seconds",
        "warmup": "1 cold prefill (reported as first_prefill_ms), then warmup_runs untimed prefills "
        "and warmup_runs untimed decode runs",
        "prefill": "one step of prompt_tokens tokens from an empty KV cache, batch 1",
        "decode": "decode_tokens single-token steps per run, each run restarting from the same "
        "decode_context-token KV cache; decode_ms_per_token = run total / decode_tokens",
        "memory": "VmHWM after the timed runs (kernel high-water mark, /proc/self/status), "
        "max over processes; baseline = VmRSS before session creation; load peak = VmHWM after "
        "session creation; inference peak = VmHWM after a reset (/proc/self/clear_refs) following load; "
        "ORT defaults (CPU arena on, prepacking on), glibc malloc unless LD_PRELOAD says otherwise",
        "environment": _environment(available),
    }

    child_keys = ("prompt_tokens", "decode_context", "decode_tokens", "warmup_runs", "runs")
    child_settings = {key: settings_json[key] for key in child_keys}
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    total = len(order) * len(names)
    k = 0
    for r, round_names in enumerate(order):
        for name in round_names:
            k += 1
            log(f"bench: round {r + 1}/{len(order)} launch {k}/{total}: {name}")
            request = {
                "model_path": str(paths[name]),
                "session": session_json,
                "settings": child_settings,
                "seed": seed,
            }
            res = _run_child(name, request, settings.timeout_s)
            results[name].append(res)
            log(
                f"bench:   {name}: load {res['load_s']:.2f} s, peak RSS {res['peak_rss_bytes'] / 1e6:.0f} MB, "
                f"prefill p50 {np.median(res['prefill_ms']):.2f} ms, "
                f"decode p50 {np.median(res['decode_ms_per_token']):.2f} ms/token"
            )
            missing = [p for p in session.providers if p not in res["providers_used"]]
            if missing:
                log(f"bench:   warning: {name}: requested providers not used by the session: {', '.join(missing)}")

    return {name: _aggregate(name, paths[name], results[name], session, protocol) for name in names}
