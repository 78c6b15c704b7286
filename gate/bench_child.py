"""One measurement process: load one ONNX decoder, time prefill and decode, report memory.

Run as ``python -m gate.bench_child``. It reads one JSON request on stdin and writes one JSON result
on stdout; everything else (ORT logs, warnings, tracebacks) goes to stderr. The parent is
:func:`gate.bench.measure_variants`, which starts a fresh process per variant and round so that
nothing from export, other variants or earlier rounds (allocator state, arenas, page cache in the
heap, torch) leaks into the numbers.

Request (all keys required unless noted)::

    {"model_path": str,
     "session": {"providers": [str], "intra_op_threads": int, "graph_optimization": str,
                 "allow_spinning": bool},
     "settings": {"prompt_tokens": int, "decode_context": int, "decode_tokens": int,
                  "warmup_runs": int, "runs": int},
     "seed": int,                    # optional, default 0
     "vocab_size": int}              # optional; used when the logits' vocab dim is symbolic

Result: see :func:`run`.

Only numpy, onnxruntime and :mod:`gate.ort_decoder` are imported: torch or transformers would add
hundreds of MB of RSS to the measurement.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import time
import traceback
from typing import Any

import numpy as np
import onnxruntime as ort

from gate.ort_decoder import OrtDecoder, SessionConfig


def read_proc_status() -> dict[str, int]:
    """Memory fields of ``/proc/self/status`` in bytes.

    Returns:
        ``{"VmRSS": bytes, "VmHWM": bytes, "RssAnon": ..., "RssFile": ..., "RssShmem": ...}`` for the
        fields present. Off Linux, ``VmHWM`` falls back to ``ru_maxrss`` and the rest are missing.
    """
    fields = {"VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem"}
    out: dict[str, int] = {}
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                key, _, rest = line.partition(":")
                if key in fields:
                    value, unit = rest.split()
                    out[key] = int(value) * (1024 if unit == "kB" else 1)
    except OSError:
        import resource

        out["VmHWM"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return out


def reset_peak_rss() -> bool:
    """Reset this process's VmHWM to its current RSS (``5`` to ``/proc/self/clear_refs``, Linux >= 4.0).

    Returns:
        True when the reset worked; False where it is not supported (then later VmHWM readings
        still include earlier phases).
    """
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _vocab_size(decoder: OrtDecoder, requested: int | None) -> tuple[int, str]:
    """Vocabulary size: static logits dim, else the request's value, else a one-token probe."""
    logits = next(o for o in decoder.session.get_outputs() if o.name == "logits")
    dim = logits.shape[-1] if logits.shape else None
    if isinstance(dim, int) and dim > 0:
        return dim, "logits output shape"
    if requested:
        return int(requested), "request"
    out, _ = decoder.step(np.zeros((1, 1), dtype=np.int64))
    return int(out.shape[-1]), "probe run"


def _ms(t0: int, t1: int) -> float:
    return (t1 - t0) / 1e6


def run(request: dict[str, Any]) -> dict[str, Any]:
    """Measure one model in this process.

    Args:
        request: the parsed JSON request (see the module docstring).

    Returns:
        A JSON-ready dict: ``load_s`` (session creation, s), ``rss_baseline_bytes`` (VmRSS before
        session creation), ``load_peak_rss_bytes`` (VmHWM right after load), ``first_prefill_ms``
        (first prefill after load, cold), ``prefill_ms`` (list, one per timed run),
        ``decode_ms_per_token`` (list, one per timed run: the run's step times summed / steps),
        ``decode_step_ms`` (list, every timed single-token step), ``peak_rss_bytes`` (process
        high-water mark after all timed runs: max of the load peak and the inference peak),
        ``inference_peak_rss_bytes`` (VmHWM from just after load, reset through
        ``/proc/self/clear_refs``, to the end of the timed runs; None where the reset is
        unsupported), ``memory_end`` (``/proc/self/status`` fields at the end, bytes),
        ``providers_used``, ``vocab_size``, ``vocab_source``, ``onnxruntime_version``,
        ``torch_imported``, ``pid``.

    Raises:
        Whatever ORT raises for a bad model or shape; the process then exits non-zero.
    """
    s = request["settings"]
    sess = request["session"]
    config = SessionConfig(
        providers=tuple(sess["providers"]),
        intra_op_threads=int(sess["intra_op_threads"]),
        graph_optimization=sess["graph_optimization"],
        allow_spinning=bool(sess["allow_spinning"]),
    )
    prompt_tokens, decode_context = int(s["prompt_tokens"]), int(s["decode_context"])
    decode_tokens, warmup_runs, runs = int(s["decode_tokens"]), int(s["warmup_runs"]), int(s["runs"])

    gc.collect()
    baseline = read_proc_status()
    t0 = time.perf_counter_ns()
    decoder = OrtDecoder(request["model_path"], config)
    t1 = time.perf_counter_ns()
    load_s = (t1 - t0) / 1e9
    after_load = read_proc_status()
    # From here VmHWM covers inference only; the overall peak is max(load peak, inference peak).
    hwm_reset = reset_peak_rss()

    vocab, vocab_source = _vocab_size(decoder, request.get("vocab_size"))
    rng = np.random.default_rng(int(request.get("seed", 0)))
    prompt_ids = rng.integers(0, vocab, size=(1, prompt_tokens), dtype=np.int64)
    context_ids = rng.integers(0, vocab, size=(1, decode_context), dtype=np.int64)
    decode_ids = rng.integers(0, vocab, size=(1, decode_tokens), dtype=np.int64)

    def prefill() -> float:
        a = time.perf_counter_ns()
        decoder.step(prompt_ids)
        return _ms(a, time.perf_counter_ns())

    # The KV cache after decode_context tokens; every decode run restarts from it, so the timed
    # steps always see past lengths decode_context .. decode_context + decode_tokens - 1.
    context_cache = decoder.step(context_ids)[1] if decode_context else decoder.empty_cache()

    def decode() -> list[float]:
        cache = context_cache
        steps = []
        for t in range(decode_tokens):
            a = time.perf_counter_ns()
            _, cache = decoder.step(decode_ids[:, t : t + 1], cache)
            steps.append(_ms(a, time.perf_counter_ns()))
        return steps

    first_prefill_ms = prefill()
    for _ in range(warmup_runs):
        prefill()
    for _ in range(warmup_runs):
        decode()

    gc.collect()
    gc.disable()
    try:
        prefill_ms = [prefill() for _ in range(runs)]
        decode_runs = [decode() for _ in range(runs)]
    finally:
        gc.enable()
    end = read_proc_status()

    return {
        "pid": os.getpid(),
        "load_s": load_s,
        "rss_baseline_bytes": baseline.get("VmRSS", 0),
        "load_peak_rss_bytes": after_load.get("VmHWM", 0),
        "first_prefill_ms": first_prefill_ms,
        "prefill_ms": prefill_ms,
        "decode_ms_per_token": [sum(r) / len(r) for r in decode_runs],
        "decode_step_ms": [x for r in decode_runs for x in r],
        "peak_rss_bytes": max(after_load.get("VmHWM", 0), end.get("VmHWM", 0)),
        "inference_peak_rss_bytes": end.get("VmHWM", 0) if hwm_reset else None,
        "memory_end": end,
        "providers_used": decoder.session.get_providers(),
        "vocab_size": vocab,
        "vocab_source": vocab_source,
        "onnxruntime_version": ort.__version__,
        "torch_imported": "torch" in sys.modules,
    }


def main() -> int:
    """Entry point: JSON request on stdin, JSON result on the real stdout, exit code 0 on success."""
    # Keep fd 1 for the result only: anything else that writes to stdout (Python or native code)
    # is sent to stderr while we work.
    result_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    try:
        result = run(json.load(sys.stdin))
    except Exception as exc:  # the parent quotes the tail of stderr: end it with one clear line
        traceback.print_exc()
        print(f"bench_child: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    with os.fdopen(result_fd, "w", encoding="utf-8") as out:
        json.dump(result, out)
        out.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
