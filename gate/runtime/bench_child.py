"""One measurement process: load one ONNX decoder, time prefill and decode, read per-phase memory.

Self-contained on purpose: it imports only numpy, onnxruntime and the standard library (no ``gate``
package, no torch), so it can be copied to a target device and run there with that device's own
``python3``::

    python3 bench_child.py < request.json > result.json

It reads one JSON request on stdin and writes one JSON result on stdout; everything else (ORT logs,
warnings, tracebacks) goes to stderr. The local parent is :func:`gate.measure.harness.measure_variants`,
which starts a fresh process per variant and round so that nothing from export, other variants or
earlier rounds (allocator state, arenas, torch) leaks into the numbers.

Request (keys marked * are optional)::

    {"model_path": str,                          # optimum decoder export, model.onnx
     "session": {"providers": [str], "intra_op_threads": int, "graph_optimization": str,
                 "allow_spinning": bool, "cpu_mem_arena"*: bool, "prepacking"*: bool},
     "settings": {"prompt_lengths": [int], "decode_context": int,
                  "warmup_min_runs": int, "warmup_min_seconds": float,
                  "min_runs": int, "min_seconds": float, "max_seconds": float},
     "seed"*: int, "vocab_size"*: int}

Protocol (per process):

1. ``baseline``: ``/proc/self/status`` before the session exists (numpy and onnxruntime imported).
2. ``load``: VmHWM reset (``5`` > ``/proc/self/clear_refs``), ``InferenceSession`` created and timed.
3. ``first_run``: VmHWM reset, one cold prefill at the *largest* prompt length (sizes the arena, as
   recommended by a maintainer in microsoft/onnxruntime issue #11627), timed as ``first_run_ms``.
4. ``warmup``: VmHWM reset, the decode context cache is built, then each phase (every prefill
   length, largest first, then decode) runs untimed until both ``warmup_min_runs`` runs and
   ``warmup_min_seconds`` have passed (optimum-benchmark / LiteRT style: count *and* time).
5. ``steady``: VmHWM reset, each phase is timed until both ``min_runs`` samples and ``min_seconds``
   have passed, or ``max_seconds`` (a hard cap, as LiteRT's ``max_secs``; then ``capped`` is true).
   One sample = one ``session.run`` with inputs built beforehand, timed with
   ``time.perf_counter_ns``; the garbage collector is off while timing.

Prefill sample: ``prompt_length`` tokens from an empty KV cache, batch 1. Decode sample: one token
after a fixed ``decode_context``-token KV cache (the same cache every sample), batch 1, i.e. the
per-token decode latency at that context length. Token ids come from ``numpy.random.default_rng(seed)``.

**Paired mode** (``"mode": "paired"``, :func:`run_paired`): the request names two models,
``"model_paths": [baseline, candidate]``, and ``settings`` has ``min_blocks`` instead of ``min_runs``. Both
sessions live in this one process and see the same inputs; after an interleaved warm-up, each phase is timed
in *blocks* of four runs in the order A B B A or B A A B (chosen by the seeded generator, block by block),
until ``min_blocks`` blocks and ``min_seconds`` have passed (cap ``max_seconds``). A block's statistic is the
ratio of the candidate's two run times to the baseline's two: a linear drift of the machine's speed within
the block cancels out of it, and both models meet the same background load at the same moments. This is
the paired, interleaved design of the benchmarking literature: Google Benchmark's
``--benchmark_enable_random_interleaving`` (repetitions in random order, so that neither side keeps one
position under drifting load), the within-pair ratio of paired A/B benchmarking (tango-bench), and
Kalibera & Jones 2013, "Rigorous Benchmarking in Reasonable Time" (ISMM), on ratios and repetition at
several levels. Memory is not measured in this mode (two sessions share the process): the per-artifact
protocol above measures it in a process of its own.
"""

from __future__ import annotations

import gc
import json
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

import numpy as np
import onnxruntime as ort

MEMORY_FIELDS = ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem")


def read_proc_status() -> dict[str, int]:
    """Memory fields of ``/proc/self/status`` in bytes.

    Returns:
        ``{"VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem"}`` in bytes, for the fields present.
        Off Linux only ``VmHWM`` is given, from ``ru_maxrss`` (KiB on Linux, bytes on macOS).
    """
    out: dict[str, int] = {}
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                key, _, rest = line.partition(":")
                if key in MEMORY_FIELDS:
                    value, unit = rest.split()
                    out[key] = int(value) * (1024 if unit == "kB" else 1)
    except OSError:
        import resource

        scale = 1 if sys.platform == "darwin" else 1024
        out["VmHWM"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
    return out


def reset_peak_rss() -> bool:
    """Reset this process's VmHWM to its current RSS (``5`` to ``/proc/self/clear_refs``, Linux >= 4.0).

    Returns:
        True when the reset worked; False where it is unsupported (later VmHWM readings then include
        earlier phases, and the result says so).
    """
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


GRAPH_OPTIMIZATION_LEVELS = {
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
}
"""``graph_optimization`` names (request, :class:`gate.runtime.ort_decoder.SessionConfig`) -> ORT levels.

Defined here, not in ``ort_decoder``, because this script runs standalone (``python -I bench_child.py``, also as
a lone copy at the root of a device bundle) and can import nothing but numpy, onnxruntime and the standard
library; ``ort_decoder`` imports it from here."""


def session_options(sess: dict[str, Any]) -> ort.SessionOptions:
    """``onnxruntime.SessionOptions`` from the request's ``session`` block.

    The one place where prunegate's session knobs become ORT options: ``SessionConfig.session_options`` in
    :mod:`gate.runtime.ort_decoder` calls it too, so a measured session and a scoring session are built the same way.

    Args:
        sess: ``{"intra_op_threads": int, "graph_optimization": str, "allow_spinning": bool,
            "cpu_mem_arena"*: bool, "prepacking"*: bool}`` (* optional, default on as in ORT); other keys ignored.

    Raises:
        KeyError: a required key is missing or ``graph_optimization`` is not a key of
            :data:`GRAPH_OPTIMIZATION_LEVELS`.
    """
    so = ort.SessionOptions()
    so.intra_op_num_threads = int(sess["intra_op_threads"])
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = GRAPH_OPTIMIZATION_LEVELS[sess["graph_optimization"]]
    so.add_session_config_entry("session.intra_op.allow_spinning", "1" if sess["allow_spinning"] else "0")
    so.enable_cpu_mem_arena = bool(sess.get("cpu_mem_arena", True))
    if not sess.get("prepacking", True):
        so.add_session_config_entry("session.disable_prepacking", "1")
    so.log_severity_level = 3
    return so


class Feeds:
    """Input builder for an optimum ``text-generation-with-past`` export (minimal copy of gate.runtime.ort_decoder).

    Args:
        session: the ORT session of ``model.onnx``.

    Raises:
        ValueError: the graph has no ``input_ids``/``logits`` or no ``past_key_values.*`` inputs.
    """

    def __init__(self, session: ort.InferenceSession):
        inputs = {i.name: i for i in session.get_inputs()}
        if "input_ids" not in inputs or "logits" not in [o.name for o in session.get_outputs()]:
            raise ValueError("not a decoder export (needs input 'input_ids' and output 'logits')")
        self.past = sorted((n for n in inputs if n.startswith("past_key_values.")), key=lambda n: (int(n.split(".")[1]), n))
        if not self.past:
            raise ValueError("no KV-cache inputs (past_key_values.*); export with task text-generation-with-past")
        self.presents = [n.replace("past_key_values.", "present.") for n in self.past]
        self.has_mask = "attention_mask" in inputs
        self.has_pos = "position_ids" in inputs
        shape = inputs[self.past[0]].shape
        self.kv_heads, self.head_dim = int(shape[1]), int(shape[3])
        self.dtype = np.float16 if "float16" in inputs[self.past[0]].type else np.float32

    def build(self, ids: np.ndarray, cache: dict[str, np.ndarray] | None) -> dict[str, np.ndarray]:
        """Feeds for ``ids`` ``[1, n]`` after ``cache`` (None = empty cache)."""
        if cache is None:
            z = np.zeros((1, self.kv_heads, 0, self.head_dim), dtype=self.dtype)
            cache = {n: z for n in self.past}
        past = int(next(iter(cache.values())).shape[2])
        n = ids.shape[1]
        feeds = {"input_ids": ids.astype(np.int64)}
        if self.has_mask:
            feeds["attention_mask"] = np.ones((1, past + n), dtype=np.int64)
        if self.has_pos:
            feeds["position_ids"] = np.arange(past, past + n, dtype=np.int64)[None, :]
        feeds.update(cache)
        return feeds


def _vocab_size(session: ort.InferenceSession, feeds: Feeds, requested: int | None) -> tuple[int, str]:
    logits = next(o for o in session.get_outputs() if o.name == "logits")
    dim = logits.shape[-1] if logits.shape else None
    if isinstance(dim, int) and dim > 0:
        return dim, "logits output shape"
    if requested:
        return int(requested), "request"
    out = session.run(["logits"], feeds.build(np.zeros((1, 1), dtype=np.int64), None))[0]
    return int(out.shape[-1]), "probe run"


def timed_loop(fn: Callable[[], Any], min_runs: int, min_seconds: float, max_seconds: float) -> tuple[list[float], bool]:
    """Call ``fn`` until ``min_runs`` calls *and* ``min_seconds`` have passed, or ``max_seconds`` is reached.

    The rule is optimum-benchmark's ``while elapsed < duration or count < iterations`` with LiteRT's
    hard cap (``max_secs``): huggingface/optimum-benchmark ``optimum_benchmark/scenarios/inference/scenario.py``;
    google-ai-edge/LiteRT ``tflite/tools/benchmark/README.md`` (``num_runs``, ``min_secs``, ``max_secs``).

    Args:
        fn: one run (e.g. ``lambda: session.run(None, feeds)``).
        min_runs: minimum number of calls (>= 0).
        min_seconds: minimum total wall time of the loop, seconds.
        max_seconds: stop after this many seconds even if ``min_runs`` is not reached (at least one
            call is always made when ``min_runs`` >= 1).

    Returns:
        ``(samples_ms, capped)``: each call's wall time in ms (``time.perf_counter_ns``), and whether
        the cap stopped the loop before both minimums were met.
    """
    samples: list[float] = []
    start = time.perf_counter_ns()
    cap_ns, min_ns = int(max_seconds * 1e9), int(min_seconds * 1e9)
    while True:
        now = time.perf_counter_ns()
        done = len(samples) >= min_runs and now - start >= min_ns
        if done:
            return samples, False
        if now - start >= cap_ns and samples:
            return samples, True
        a = time.perf_counter_ns()
        fn()
        samples.append((time.perf_counter_ns() - a) / 1e6)


def _phase_memory(status: dict[str, int], baseline_rss: int, reset_ok: bool) -> dict[str, Any]:
    hwm = status.get("VmHWM", 0)
    return {
        "peak_rss_bytes": hwm,
        "peak_above_baseline_bytes": hwm - baseline_rss,
        "rss_bytes": status.get("VmRSS"),
        "rss_anon_bytes": status.get("RssAnon"),
        "rss_file_bytes": status.get("RssFile"),
        "rss_shmem_bytes": status.get("RssShmem"),
        "peak_is_phase_only": reset_ok,
    }


def run(request: dict[str, Any]) -> dict[str, Any]:
    """Measure one model in this process (protocol in the module docstring).

    Args:
        request: the parsed JSON request.

    Returns:
        A JSON-ready dict:

        - ``load_ms``: session creation wall time (ms); ``first_run_ms``: the cold first prefill (ms)
          at ``first_run_prompt_tokens``;
        - ``phases``: ``{"prefill_<L>": {...}, "decode": {...}}``, each with ``kind``,
          ``prompt_tokens`` or ``context_tokens``, ``samples_ms`` (raw), ``warmup_runs``,
          ``warmup_ms`` (total), ``capped``;
        - ``memory``: ``baseline`` (``/proc/self/status`` fields, bytes) and per phase ``load``,
          ``first_run``, ``warmup``, ``steady``: ``peak_rss_bytes`` (VmHWM since the phase's reset),
          ``peak_above_baseline_bytes`` (that minus the baseline VmRSS), ``rss_bytes``,
          ``rss_anon_bytes``, ``rss_file_bytes``, ``rss_shmem_bytes`` (at the phase's end);
          ``peak_rss_bytes`` / ``peak_above_baseline_bytes`` over all phases; ``hwm_reset_supported``;
        - ``session_settings`` (arena, prepacking, threads, ...), ``providers_used``, ``vocab_size``,
          ``vocab_source``, ``onnxruntime_version``, ``python``, ``machine``, ``cpus_available``,
          ``torch_imported``, ``pid``, ``wall_s`` (whole measurement).

    Raises:
        KeyError/ValueError: a malformed request or model; whatever ORT raises for a bad model.
    """
    wall0 = time.perf_counter_ns()
    s, sess = request["settings"], request["session"]
    lengths = sorted({int(x) for x in s["prompt_lengths"]}, reverse=True)
    if not lengths or lengths[-1] < 1 or int(s["decode_context"]) < 0:
        raise ValueError("prompt_lengths must be >= 1 and decode_context >= 0")
    ctx = int(s["decode_context"])
    wu_runs, wu_s = int(s["warmup_min_runs"]), float(s["warmup_min_seconds"])
    min_runs, min_s, max_s = int(s["min_runs"]), float(s["min_seconds"]), float(s["max_seconds"])

    gc.collect()
    baseline = read_proc_status()
    base_rss = baseline.get("VmRSS", baseline.get("VmHWM", 0))
    memory: dict[str, Any] = {"baseline": {k.lower() + "_bytes": v for k, v in baseline.items()}}

    reset_ok = reset_peak_rss()
    options = session_options(sess)
    t0 = time.perf_counter_ns()
    session = ort.InferenceSession(request["model_path"], options, providers=list(sess["providers"]))
    load_ms = (time.perf_counter_ns() - t0) / 1e6
    memory["load"] = _phase_memory(read_proc_status(), base_rss, reset_ok)

    feeds = Feeds(session)
    vocab, vocab_source = _vocab_size(session, feeds, request.get("vocab_size"))
    rng = np.random.default_rng(int(request.get("seed", 0)))
    prompt_feeds = {L: feeds.build(rng.integers(0, vocab, size=(1, L), dtype=np.int64), None) for L in lengths}

    reset_peak_rss()
    t0 = time.perf_counter_ns()
    session.run(None, prompt_feeds[lengths[0]])
    first_run_ms = (time.perf_counter_ns() - t0) / 1e6
    memory["first_run"] = _phase_memory(read_proc_status(), base_rss, reset_ok)

    reset_peak_rss()
    context_ids = rng.integers(0, vocab, size=(1, ctx), dtype=np.int64)
    if ctx:
        outs = session.run(feeds.presents, feeds.build(context_ids, None))
        cache = dict(zip(feeds.past, outs))
    else:
        cache = None
    decode_feeds = feeds.build(rng.integers(0, vocab, size=(1, 1), dtype=np.int64), cache)
    phases: dict[str, dict[str, Any]] = {}
    runners: list[tuple[str, dict[str, Any], dict[str, np.ndarray]]] = []
    for L in lengths:
        runners.append((f"prefill_{L}", {"kind": "prefill", "prompt_tokens": L}, prompt_feeds[L]))
    runners.append(("decode", {"kind": "decode", "context_tokens": ctx, "new_tokens": 1}, decode_feeds))
    for name, meta, f in runners:
        w, _ = timed_loop(lambda f=f: session.run(None, f), wu_runs, wu_s, max(max_s, wu_s))
        phases[name] = {**meta, "warmup_runs": len(w), "warmup_ms": sum(w)}
    memory["warmup"] = _phase_memory(read_proc_status(), base_rss, reset_ok)

    reset_peak_rss()
    gc.collect()
    gc.disable()
    try:
        for name, _, f in runners:
            samples, capped = timed_loop(lambda f=f: session.run(None, f), min_runs, min_s, max_s)
            phases[name].update(samples_ms=samples, capped=capped)
    finally:
        gc.enable()
    memory["steady"] = _phase_memory(read_proc_status(), base_rss, reset_ok)
    peak = max(memory[p]["peak_rss_bytes"] for p in ("load", "first_run", "warmup", "steady"))
    memory.update(peak_rss_bytes=peak, peak_above_baseline_bytes=peak - base_rss, hwm_reset_supported=reset_ok)

    return {
        "pid": os.getpid(),
        "load_ms": load_ms,
        "first_run_ms": first_run_ms,
        "first_run_prompt_tokens": lengths[0],
        "phases": phases,
        "memory": memory,
        "session_settings": {
            "providers": list(sess["providers"]),
            "intra_op_threads": int(sess["intra_op_threads"]),
            "graph_optimization": sess["graph_optimization"],
            "allow_spinning": bool(sess["allow_spinning"]),
            "cpu_mem_arena": bool(sess.get("cpu_mem_arena", True)),
            "prepacking": bool(sess.get("prepacking", True)),
            "mem_pattern": bool(options.enable_mem_pattern),
            "execution_mode": "sequential",
        },
        "providers_used": session.get_providers(),
        "vocab_size": vocab,
        "vocab_source": vocab_source,
        "onnxruntime_version": ort.__version__,
        "numpy_version": np.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus_available": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch_imported": "torch" in sys.modules,
        "wall_s": (time.perf_counter_ns() - wall0) / 1e9,
    }


def _block_orders(rng: np.random.Generator, n: int) -> list[str]:
    """``n`` block orders, each ``"ABBA"`` or ``"BAAB"`` with probability 1/2 (seeded)."""
    return ["ABBA" if bit else "BAAB" for bit in rng.integers(0, 2, size=n)]


def timed_blocks(run_a: Callable[[], Any], run_b: Callable[[], Any], rng: np.random.Generator, min_blocks: int,
                 min_seconds: float, max_seconds: float) -> tuple[list[list[float]], list[str], bool]:
    """Time blocks of four runs, ``ABBA`` or ``BAAB`` (seeded), until ``min_blocks`` blocks *and*
    ``min_seconds`` have passed, or ``max_seconds`` (a hard cap; at least one block is always timed).

    Args:
        run_a, run_b: one run of the baseline / the candidate (inputs built beforehand).
        rng: the generator that picks each block's order.
        min_blocks, min_seconds, max_seconds: the stopping rule of :func:`timed_loop`, counted in blocks.

    Returns:
        ``(blocks, orders, capped)``: per block ``[a_ms, b_ms]``, the sum of the baseline's two run times and
        the sum of the candidate's, milliseconds (``time.perf_counter_ns``); each block's order; whether the cap
        stopped the loop before both minimums were met.
    """
    blocks: list[list[float]] = []
    orders: list[str] = []
    start = time.perf_counter_ns()
    cap_ns, min_ns = int(max_seconds * 1e9), int(min_seconds * 1e9)
    pending: list[str] = []
    while True:
        now = time.perf_counter_ns()
        if len(blocks) >= min_blocks and now - start >= min_ns:
            return blocks, orders, False
        if now - start >= cap_ns and blocks:
            return blocks, orders, True
        if not pending:
            pending = _block_orders(rng, 16)
        order = pending.pop()
        total = {"A": 0.0, "B": 0.0}
        for who in order:
            fn = run_a if who == "A" else run_b
            t = time.perf_counter_ns()
            fn()
            total[who] += (time.perf_counter_ns() - t) / 1e6
        blocks.append([total["A"], total["B"]])
        orders.append(order)


def run_paired(request: dict[str, Any]) -> dict[str, Any]:
    """Time a baseline and a candidate in this one process, interleaved in ABBA/BAAB blocks (module docstring).

    Args:
        request: the parsed JSON request: ``model_paths`` ``[baseline, candidate]``, ``session``, ``settings``
            (``prompt_lengths``, ``decode_context``, ``warmup_min_runs``, ``warmup_min_seconds``, ``min_blocks``,
            ``min_seconds``, ``max_seconds``), ``seed``.

    Returns:
        A JSON-ready dict: ``load_ms`` ``[baseline, candidate]`` (ms; loaded in the seeded ``load_order``);
        ``phases``: ``{"prefill_<L>" | "decode": {"kind", "prompt_tokens" | "context_tokens", "blocks":
        [[a_ms, b_ms], ...], "orders": ["ABBA" | "BAAB", ...], "capped", "warmup_runs"}}``; ``providers_used``
        per model; ``vocab_size``; ``pid``; ``wall_s``; ``load_average_1m`` at the start and at the end.

    Raises:
        KeyError/ValueError: a malformed request; whatever ORT raises for a bad model.
    """
    wall0 = time.perf_counter_ns()
    load0 = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    s, sess = request["settings"], request["session"]
    paths = list(request["model_paths"])
    if len(paths) != 2:
        raise ValueError("paired mode needs model_paths [baseline, candidate]")
    lengths = sorted({int(x) for x in s["prompt_lengths"]}, reverse=True)
    if not lengths or lengths[-1] < 1 or int(s["decode_context"]) < 0:
        raise ValueError("prompt_lengths must be >= 1 and decode_context >= 0")
    ctx = int(s["decode_context"])
    wu_runs, wu_s = int(s["warmup_min_runs"]), float(s["warmup_min_seconds"])
    min_blocks, min_s, max_s = int(s["min_blocks"]), float(s["min_seconds"]), float(s["max_seconds"])
    rng = np.random.default_rng(int(request.get("seed", 0)))

    load_order = [0, 1] if rng.integers(0, 2) else [1, 0]
    sessions: list[Any] = [None, None]
    load_ms = [0.0, 0.0]
    for i in load_order:
        t0 = time.perf_counter_ns()
        sessions[i] = ort.InferenceSession(paths[i], session_options(sess), providers=list(sess["providers"]))
        load_ms[i] = (time.perf_counter_ns() - t0) / 1e6
    feeds = [Feeds(x) for x in sessions]
    vocab = min(_vocab_size(x, f, request.get("vocab_size"))[0] for x, f in zip(sessions, feeds))
    prompt_ids = {L: rng.integers(0, vocab, size=(1, L), dtype=np.int64) for L in lengths}
    context_ids = rng.integers(0, vocab, size=(1, ctx), dtype=np.int64)
    next_id = rng.integers(0, vocab, size=(1, 1), dtype=np.int64)

    def phase_feeds(k: int) -> list[tuple[str, dict[str, Any], dict[str, np.ndarray]]]:
        f, x = feeds[k], sessions[k]
        cache = dict(zip(f.past, x.run(f.presents, f.build(context_ids, None)))) if ctx else None
        out = [(f"prefill_{L}", {"kind": "prefill", "prompt_tokens": L}, f.build(prompt_ids[L], None)) for L in lengths]
        return [*out, ("decode", {"kind": "decode", "context_tokens": ctx, "new_tokens": 1}, f.build(next_id, cache))]

    per_model = [phase_feeds(0), phase_feeds(1)]
    phases: dict[str, dict[str, Any]] = {}
    for (name, meta, fa), (_, _, fb) in zip(*per_model):
        def run_a(fa=fa):
            return sessions[0].run(None, fa)

        def run_b(fb=fb):
            return sessions[1].run(None, fb)

        warm, _, _ = timed_blocks(run_a, run_b, rng, max(1, (wu_runs + 1) // 2), wu_s, max(max_s, wu_s))
        gc.collect()
        gc.disable()
        try:
            blocks, orders, capped = timed_blocks(run_a, run_b, rng, min_blocks, min_s, max_s)
        finally:
            gc.enable()
        phases[name] = {**meta, "blocks": blocks, "orders": orders, "capped": capped, "warmup_runs": 2 * len(warm)}
    return {
        "mode": "paired",
        "pid": os.getpid(),
        "load_order": load_order,
        "load_ms": load_ms,
        "phases": phases,
        "providers_used": [x.get_providers() for x in sessions],
        "vocab_size": vocab,
        "onnxruntime_version": ort.__version__,
        "machine": platform.machine(),
        "cpus_available": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch_imported": "torch" in sys.modules,
        "load_average_1m": [load0, os.getloadavg()[0] if hasattr(os, "getloadavg") else None],
        "wall_s": (time.perf_counter_ns() - wall0) / 1e9,
    }


def main() -> int:
    """Entry point: JSON request on stdin, JSON result on the real stdout, exit code 0 on success."""
    # Keep fd 1 for the result only: anything else that writes to stdout (Python or native code)
    # is sent to stderr while we work.
    result_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    try:
        request = json.load(sys.stdin)
        result = run_paired(request) if request.get("mode") == "paired" else run(request)
    except Exception as exc:  # noqa: BLE001 -- any failure: the parent quotes the tail of stderr: end it with one clear line
        traceback.print_exc()
        print(f"bench_child: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    with os.fdopen(result_fd, "w", encoding="utf-8") as out:
        json.dump(result, out)
        out.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
