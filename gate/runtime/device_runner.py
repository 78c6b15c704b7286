"""prunegate's device runner: runs on the measurement device with the device's own Python.

It needs only the standard library, ``numpy`` and ``onnxruntime`` on the device. It is copied there as part of
a small bundle (see :func:`gate.device.remote.bundle_files`)::

    runner.py          (this file)
    bench_child.py     (gate/runtime/bench_child.py, run as a standalone script)
    gate/__init__.py   gate/runtime/*.py (the whole package)

so that the BBQ scoring on the device runs *the same code* as a local run (``gate.runtime.ort_decoder.OrtDecoder``,
``gate.runtime.bbq_scoring.PrefixCache`` and its option log-likelihood), and predictions match a local run's exactly
(up to the device's own floating-point arithmetic). Those modules import nothing beyond numpy, onnxruntime and
the standard library (checked by tests/test_device_ssh.py). Tokenization stays on the host: only token ids
travel.

Commands (``python3 runner.py COMMAND``; requests are JSON on stdin, results JSON on stdout, logs on stderr)::

    facts    device facts (works from stdin too: ``python3 - facts < runner.py``; never fails on a missing
             numpy/onnxruntime, it reports them under "missing")
    score    {"model_path", "session": {SessionConfig fields}, "prefix_cache_entries",
              "items": [{"runs": [{"ids": [int], "options": [[int]]} | {"ids": [int], "next": [int]}]}]}
             -> one line per item as it is scored: {"i": k, "runs": [{"values": [float], "reused": int}]},
                then {"done": true, "seconds": float, "items": n}
             "options": per option, the summed natural-log probability of its tokens after "ids" (the loglik
             mode of gate.runtime.bbq_scoring); "next": the log-probability of each given token right after "ids"
             (the letter mode). The KV caches of recent prompts are reused exactly as in a local run.
    placement {"model_path", "session", "prompt_tokens"} -> gate.runtime.providers.op_placement(...) run on the device
    logits   {"model_path", "session", "prompts": [[int]], "out": path.npz}
             -> saves the full logits of each prompt ([len, vocab] float32, arrays "p0", "p1", ...) to "out"
                and prints {"argmax": [[int]], "vocab": int, "seconds": float}
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time

# Arm CPU part numbers (implementer 0x41 = Arm Ltd), from util-linux sys-utils/lscpu-arm.c (arm_part table).
_ARM_PARTS = {
    0xD03: "Cortex-A53", 0xD04: "Cortex-A35", 0xD05: "Cortex-A55", 0xD07: "Cortex-A57", 0xD08: "Cortex-A72",
    0xD09: "Cortex-A73", 0xD0A: "Cortex-A75", 0xD0B: "Cortex-A76", 0xD0C: "Neoverse-N1", 0xD0D: "Cortex-A77",
    0xD40: "Neoverse-V1", 0xD41: "Cortex-A78", 0xD44: "Cortex-X1", 0xD46: "Cortex-A510", 0xD47: "Cortex-A710",
    0xD48: "Cortex-X2", 0xD49: "Neoverse-N2", 0xD4B: "Cortex-A78C", 0xD4D: "Cortex-A715", 0xD4E: "Cortex-X3",
    0xD4F: "Neoverse-V2", 0xD80: "Cortex-A520", 0xD81: "Cortex-A720", 0xD82: "Cortex-X4",
}


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return None


def cpu_facts() -> dict:
    """CPU model and features from ``/proc/cpuinfo`` (x86 ``model name``/``flags``; Arm ``CPU part``/``Features``).

    Returns:
        ``{"cpu": str, "cpu_features": [str], "cpu_parts": [str]}``; on Arm, ``cpu`` names the distinct cores
        (big.LITTLE devices list several), e.g. ``"Cortex-A76 x4 + Cortex-A55 x4"``.
    """
    text = _read("/proc/cpuinfo") or ""
    model, features, parts = None, [], []
    implementer = None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip().lower(), value.strip()
        if key in ("model name", "hardware", "cpu model") and not model:
            model = value
        elif key in ("flags", "features") and not features:
            features = value.split()
        elif key == "cpu implementer":
            implementer = value
        elif key == "cpu part":
            try:
                part = int(value, 16)
            except ValueError:
                continue
            name = _ARM_PARTS.get(part, f"part {value}") if implementer == "0x41" else f"implementer {implementer} part {value}"
            parts.append(name)
    if parts:
        counts: dict[str, int] = {}
        for p in parts:
            counts[p] = counts.get(p, 0) + 1
        arm = " + ".join(f"{p} x{n}" for p, n in counts.items())
        model = f"{model} ({arm})" if model else arm
    return {"cpu": model or platform.processor() or "unknown", "cpu_features": features, "cpu_parts": parts}


def _meminfo() -> dict:
    out = {}
    for line in (_read("/proc/meminfo") or "").splitlines():
        key, _, rest = line.partition(":")
        if key in ("MemTotal", "MemAvailable") and rest.split():
            out[key] = int(rest.split()[0]) * 1024
    return {"mem_total_bytes": out.get("MemTotal"), "mem_available_bytes": out.get("MemAvailable")}


def device_facts() -> dict:
    """What the device is and runs: architecture, CPU, memory, Python, numpy and ONNX Runtime.

    Returns:
        a JSON-ready dict; ``missing`` lists the required modules that failed to import (with the error), and
        ``onnxruntime``/``onnxruntime_available_providers`` are ``None`` when it is missing.
    """
    facts = {
        "machine": platform.machine(),
        "system": platform.system(),
        "kernel": platform.release(),
        "hostname": platform.node(),
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "cwd": os.getcwd(),
        "cpuinfo_text": _read("/proc/cpuinfo") or "",
        "board": ((_read("/proc/device-tree/model") or "").strip("\x00\n ") or None),
        "cpu_count_logical": os.cpu_count(),
        "cpus_available": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        **cpu_facts(),
        **_meminfo(),
        "numpy": None,
        "onnxruntime": None,
        "onnxruntime_available_providers": None,
        "missing": {},
    }
    try:
        import numpy

        facts["numpy"] = numpy.__version__
    except Exception as exc:  # report, do not crash: the host turns this into an install hint
        facts["missing"]["numpy"] = f"{type(exc).__name__}: {exc}"
    try:
        import onnxruntime

        facts["onnxruntime"] = onnxruntime.__version__
        facts["onnxruntime_available_providers"] = list(onnxruntime.get_available_providers())
    except Exception as exc:
        facts["missing"]["onnxruntime"] = f"{type(exc).__name__}: {exc}"
    return facts


def _session_config(session: dict):
    from gate.runtime.ort_decoder import SessionConfig

    return SessionConfig(providers=tuple(session["providers"]), intra_op_threads=int(session["intra_op_threads"]),
                         graph_optimization=session.get("graph_optimization", "all"),
                         allow_spinning=bool(session.get("allow_spinning", False)),
                         provider_options={k: dict(v) for k, v in (session.get("provider_options") or {}).items()})


def score(request: dict, emit) -> None:
    """Score pre-tokenized BBQ prompts exactly as ``gate.runtime.bbq_scoring.score_items`` does on the host.

    Args:
        request: see the module docstring (``score``).
        emit: called with one JSON-ready dict per item, then a final ``{"done": true, ...}``.
    """
    from gate.runtime.bbq_scoring import PrefixCache, _log_softmax, _option_logliks
    from gate.runtime.ort_decoder import OrtDecoder

    t0 = time.perf_counter()
    decoder = OrtDecoder(request["model_path"], _session_config(request["session"]))
    prefix = PrefixCache(decoder, int(request["prefix_cache_entries"]))
    for i, item in enumerate(request["items"]):
        runs = []
        for run in item["runs"]:
            last, cache, reused = prefix.run(run["ids"])
            if "options" in run:
                values = _option_logliks(decoder, last, cache, run["options"])
            else:
                logp = _log_softmax(last)
                values = [float(logp[t]) for t in run["next"]]
            runs.append({"values": [float(v) for v in values], "reused": int(reused)})
        emit({"i": i, "runs": runs})
    emit({"done": True, "seconds": time.perf_counter() - t0, "items": len(request["items"])})


def logits(request: dict) -> dict:
    """Full logits of each prompt from an empty KV cache (``OrtDecoder.logits``), saved as ``.npz``.

    Args:
        request: see the module docstring (``logits``).

    Returns:
        ``{"argmax": [[int]] per prompt and position, "vocab": int, "seconds": float, "out": path}``.
    """
    import numpy as np

    from gate.runtime.ort_decoder import OrtDecoder

    t0 = time.perf_counter()
    decoder = OrtDecoder(request["model_path"], _session_config(request["session"]))
    arrays = {f"p{k}": decoder.logits(ids).astype(np.float32) for k, ids in enumerate(request["prompts"])}
    np.savez(request["out"], **arrays)
    return {"argmax": [arrays[f"p{k}"].argmax(axis=-1).tolist() for k in range(len(arrays))],
            "vocab": int(arrays["p0"].shape[-1]) if arrays else 0,
            "seconds": time.perf_counter() - t0, "out": request["out"]}


def placement(request: dict) -> dict:
    """Per-operator execution-provider placement on this device: ``gate.runtime.providers.op_placement`` run here.

    Args:
        request: ``{"model_path", "session", "prompt_tokens"}``.

    Returns:
        ``op_placement``'s dict (one profiled prefill; not timed).
    """
    from gate.runtime.providers import op_placement

    return op_placement(request["model_path"], _session_config(request["session"]), int(request.get("prompt_tokens", 8)))


def main(argv: list[str]) -> int:
    """Entry point; see the module docstring. Exit status 0 on success, 1 on an error (traceback on stderr)."""
    if len(argv) != 1 or argv[0] not in ("facts", "score", "logits", "placement"):
        print("usage: runner.py facts|score|logits|placement  (JSON request on stdin)", file=sys.stderr)
        return 2
    out = sys.stdout
    sys.stdout = sys.stderr  # anything else printing to stdout must not corrupt the JSON lines

    def emit(obj: dict) -> None:
        out.write(json.dumps(obj) + "\n")
        out.flush()

    cmd = argv[0]
    if cmd == "facts":
        emit(device_facts())
        return 0
    request = json.load(sys.stdin)
    try:
        if cmd == "score":
            score(request, emit)
        elif cmd == "placement":
            emit(placement(request))
        else:
            emit(logits(request))
    except MemoryError:
        print("runner: error: MemoryError (out of memory)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
