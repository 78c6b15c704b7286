"""Benchmark of the measurement harness itself (not a test): its noise, its cost, and its agreement
with a plain ONNX Runtime timing loop.

What it does, in one run on the same model and inputs:

1. A/A through the full protocol (:func:`gate.measure.harness.measure_variants`): the dense export measured as
   two variants, interleaved, in fresh processes, with the product defaults (``BenchSettings()``,
   or the overrides given). Reports the speedup CI width per phase (the harness's resolution: a
   real speedup smaller than this cannot be shown), the CV per phase and per process, the memory
   spread, the stability flags and the wall time per variant.
2. A plain loop equivalent to ``onnxruntime_perf_test -m times -r N`` (not in the pip wheel): one
   session in this process, the same session options and the same fixed inputs, one warm-up run,
   then N runs with ``time.perf_counter_ns`` around ``session.run``; no child processes. N = the
   harness's median per-process sample count for that phase. Percentiles are given both
   nearest-rank (``sorted[int(n*q)]``, as perf_test) and linear (as the harness).
3. Ratios harness/plain for p50 per phase.

Usage::

    .venv/bin/python benchmarks/bench_harness.py                      # dense export from the cache
    .venv/bin/python benchmarks/bench_harness.py --onnx-dir DIR --processes 3 --out result.json

Writes JSON (``--out``) and a Markdown summary beside it (same name, ``.md``).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from gate.measure.harness import (
    CHILD_SCRIPT,
    BenchSettings,
    measure_variants,
    parse_prompt_lengths,
)
from gate.measure.efficiency import efficiency_metrics
from gate.runtime.ort_decoder import SessionConfig


def _dense_export(work_dir: Path) -> Path:
    from exporters.model_source import resolve_model
    from exporters.onnx_export import cached_export

    found = cached_export(work_dir, resolve_model(None).digest)
    if found is None:
        sys.exit(f"no cached dense export under {work_dir}/exports-v1; run `prunegate check` once or pass --onnx-dir")
    return found


def _nearest_rank(a: np.ndarray, q: float) -> float:
    s = np.sort(a)
    return float(s[min(len(s) - 1, int(len(s) * q))])


def plain_loop(model: Path, session: SessionConfig, settings: BenchSettings, runs: dict[str, int]) -> dict:
    """perf_test-style timing in this process: one session, fixed inputs, 1 warm-up run, then ``runs[phase]`` runs."""
    import onnxruntime as ort

    spec = importlib.util.spec_from_file_location("bench_child_inputs", CHILD_SCRIPT)
    child = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(child)  # the same input builder and session options as the harness child
    sess_json = {"providers": list(session.providers), "intra_op_threads": session.intra_op_threads,
                 "graph_optimization": session.graph_optimization, "allow_spinning": session.allow_spinning,
                 "cpu_mem_arena": settings.cpu_mem_arena, "prepacking": settings.prepacking}
    t0 = time.perf_counter_ns()
    sess = ort.InferenceSession(str(model), child.session_options(sess_json), providers=list(session.providers))
    load_ms = (time.perf_counter_ns() - t0) / 1e6
    feeds = child.Feeds(sess)
    vocab, _ = child._vocab_size(sess, feeds, None)
    rng = np.random.default_rng(0)  # same draw order as bench_child.run: prompts (largest first), context, token
    lengths = sorted(settings.prompt_lengths, reverse=True)
    prompts = {L: feeds.build(rng.integers(0, vocab, size=(1, L), dtype=np.int64), None) for L in lengths}
    ctx = settings.decode_context
    context_ids = rng.integers(0, vocab, size=(1, ctx), dtype=np.int64)
    cache = dict(zip(feeds.past, sess.run(feeds.presents, feeds.build(context_ids, None)))) if ctx else None
    decode = feeds.build(rng.integers(0, vocab, size=(1, 1), dtype=np.int64), cache)
    out = {"load_ms": load_ms, "phases": {}}
    for name, f in [*((f"prefill_{L}", prompts[L]) for L in lengths), ("decode", decode)]:
        sess.run(None, f)  # perf_test: exactly one warm-up run
        samples = []
        for _ in range(runs[name]):
            a = time.perf_counter_ns()
            sess.run(None, f)
            samples.append((time.perf_counter_ns() - a) / 1e6)
        a = np.asarray(samples)
        out["phases"][name] = {
            "n": len(samples), "mean_ms": float(a.mean()), "cv": float(a.std(ddof=1) / a.mean()) if a.size > 1 else 0.0,
            "p50_ms_linear": float(np.percentile(a, 50)), "p90_ms_linear": float(np.percentile(a, 90)),
            "p95_ms_linear": float(np.percentile(a, 95)),
            "p50_ms_nearest_rank": _nearest_rank(a, 0.5), "p90_ms_nearest_rank": _nearest_rank(a, 0.9),
            "p95_ms_nearest_rank": _nearest_rank(a, 0.95), "samples_ms": [round(x, 4) for x in samples],
        }
    return out


def _repo_relative(obj):
    """``obj`` with every string path under the repository rewritten relative to it (results are committed)."""
    if isinstance(obj, dict):
        return {k: _repo_relative(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_repo_relative(v) for v in obj]
    if isinstance(obj, str) and obj.startswith(f"{REPO}{os.sep}"):
        return obj[len(str(REPO)) + 1:]
    return obj


def _phase_stats(entry: dict) -> dict[str, dict]:
    out = {f"prefill_{k}": v for k, v in entry["prefill_ms"].items()}
    out["decode"] = entry["decode_ms_per_token"]
    return out


def main(argv: list[str] | None = None) -> int:
    d = BenchSettings()
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--onnx-dir", type=Path, help="optimum export directory (default: the cached dense export)")
    ap.add_argument("--work-dir", type=Path, default=REPO / ".prunegate-cache")
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--prompt-lengths", default=",".join(map(str, d.prompt_lengths)))
    ap.add_argument("--decode-context", type=int, default=d.decode_context)
    ap.add_argument("--min-runs", type=int, default=d.min_runs)
    ap.add_argument("--min-seconds", type=float, default=d.min_seconds)
    ap.add_argument("--processes", type=int, default=d.processes)
    ap.add_argument("--cv-limit", type=float, default=d.cv_limit)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "bench_harness.json")
    args = ap.parse_args(argv)

    onnx_dir = args.onnx_dir or _dense_export(args.work_dir)
    model = onnx_dir / "model.onnx"
    settings = replace(d, prompt_lengths=parse_prompt_lengths(args.prompt_lengths), decode_context=args.decode_context,
                       min_runs=args.min_runs, min_seconds=args.min_seconds, processes=args.processes,
                       cv_limit=args.cv_limit)
    session = SessionConfig(providers=("CPUExecutionProvider",), intra_op_threads=args.threads)
    load_before = os.getloadavg()
    started = time.time()
    bench = measure_variants([("dense", model), ("dense-again", model)], session, settings,
                             log=lambda s: print(s, file=sys.stderr, flush=True))
    harness_s = time.time() - started
    m = efficiency_metrics({"bench": bench["dense"]}, {"bench": bench["dense-again"]})
    stats = _phase_stats(bench["dense"])
    runs = {ph: int(np.median(s["process_ns"])) for ph, s in stats.items()}
    print(f"plain loop: {runs}", file=sys.stderr, flush=True)
    t = time.time()
    plain = plain_loop(model, session, settings, runs)
    plain_s = time.time() - t
    load_after = os.getloadavg()

    speedups = {"decode": m["decode_speedup"], **{f"prefill_{k}": v for k, v in m["prefill_speedup"].items()}}
    phases = {}
    for ph, s in stats.items():
        s2 = _phase_stats(bench["dense-again"])[ph]
        sp = speedups[ph]
        pl = plain["phases"][ph]
        phases[ph] = {
            "harness_p50_ms_median_of_process_medians": s["median_of_process_medians"],
            "harness_p50_ms_pooled": s["p50"], "harness_p90_ms_pooled": s["p90"], "harness_p95_ms_pooled": s["p95"],
            "harness_cv_pooled": s["cv"], "harness_cv_per_process": s["process_cvs"] + s2["process_cvs"],
            "harness_p50_ms_per_process": s["process_p50s"] + s2["process_p50s"],
            "aa_speedup_x": sp["speedup_x"], "aa_ci_low_x": sp["ci_low_x"], "aa_ci_high_x": sp["ci_high_x"],
            "aa_ci_width_x": sp["ci_high_x"] - sp["ci_low_x"], "aa_ci_contains_1": sp["ci_low_x"] <= 1 <= sp["ci_high_x"],
            "aa_unstable": sp["unstable"],
            "plain_p50_ms": pl["p50_ms_linear"], "plain_p50_ms_nearest_rank": pl["p50_ms_nearest_rank"],
            "plain_p90_ms": pl["p90_ms_linear"], "plain_cv": pl["cv"], "plain_n": pl["n"],
            "ratio_harness_to_plain_p50": s["median_of_process_medians"] / pl["p50_ms_linear"],
        }
    mem = bench["dense"]["memory"]
    peaks_all = np.asarray(mem["peak_rss_bytes_per_process"] + bench["dense-again"]["memory"]["peak_rss_bytes_per_process"], float)
    loads_all = np.asarray(bench["dense"]["load_ms"]["process_p50s"] + bench["dense-again"]["load_ms"]["process_p50s"])
    result = {
        "what": "A/A run of the prunegate measurement harness on the dense export, and a perf_test-style plain loop",
        "model": str(model), "model_bytes": model.stat().st_size,
        "settings": asdict(settings), "threads": args.threads,
        "machine_note": "shared 2-vCPU VM, other jobs running (load averages recorded); figures are noisy",
        "load_average_1_5_15_before": load_before, "load_average_1_5_15_after": load_after,
        "harness_wall_s_total": harness_s,
        "harness_wall_s_per_variant": {n: b["bench_wall_s"] for n, b in bench.items()},
        "plain_loop_wall_s": plain_s,
        "phases": phases,
        "memory_saving_aa": m["memory_saving"],
        "memory_peak_rss_bytes_per_process": mem["peak_rss_bytes_per_process"] + bench["dense-again"]["memory"]["peak_rss_bytes_per_process"],
        "memory_peak_above_baseline_bytes_per_process": mem["peak_above_baseline_bytes_per_process"]
        + bench["dense-again"]["memory"]["peak_above_baseline_bytes_per_process"],
        "memory_peak_rss_cv_across_processes": float(np.std(peaks_all, ddof=1) / np.mean(peaks_all)),
        "load_ms_cv_across_processes": float(np.std(loads_all, ddof=1) / np.mean(loads_all)),
        "memory_phases_dense": {k: {"peak_above_baseline_bytes_median": v["peak_above_baseline_bytes"]["median"],
                                    "rss_anon_bytes": v["rss_anon_bytes"], "rss_file_bytes": v["rss_file_bytes"]}
                                for k, v in mem["phases"].items()},
        "load_ms_per_process": bench["dense"]["load_ms"]["process_p50s"] + bench["dense-again"]["load_ms"]["process_p50s"],
        "plain_load_ms": plain["load_ms"],
        "stability": {n: b["stability"] for n, b in bench.items()},
        "raw": {"harness": bench, "plain": plain},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(_repo_relative(result), indent=1))
    lines = [f"# Harness A/A and plain-loop comparison ({model.name}, {result['model_bytes'] / 1e6:.0f} MB, {args.threads} threads)", "",
             f"Settings: {json.dumps({k: v for k, v in asdict(settings).items() if k != 'timeout_s'})}", "",
             (f"Load average before {tuple(round(x, 1) for x in load_before)}, after {tuple(round(x, 1) for x in load_after)} "
              "(shared machine: other jobs were running)."), "",
             "| phase | harness p50 ms | plain p50 ms | harness/plain | A/A speedup [95% CI] | CI width | CV per process | unstable |",
             "|---|---|---|---|---|---|---|---|"]
    for ph, r in phases.items():
        lines.append(f"| {ph} | {r['harness_p50_ms_median_of_process_medians']:.2f} | {r['plain_p50_ms']:.2f} | "
                     f"{r['ratio_harness_to_plain_p50']:.3f} | {r['aa_speedup_x']:.3f} [{r['aa_ci_low_x']:.3f}, {r['aa_ci_high_x']:.3f}] | "
                     f"{r['aa_ci_width_x']:.3f} | {min(r['harness_cv_per_process']):.1%}–{max(r['harness_cv_per_process']):.1%} | {r['aa_unstable']} |")
    ms = m["memory_saving"]
    per_variant = ", ".join(f"{n} {w:.0f} s" for n, w in result["harness_wall_s_per_variant"].items())
    peaks_mb = [round(x / 1e6, 1) for x in result["memory_peak_rss_bytes_per_process"]]
    lines += ["",
              (f"Memory A/A saving {ms['saving_fraction']:+.4f} [{ms['ci_low']:+.4f}, {ms['ci_high']:+.4f}]; "
               f"peak RSS per process {peaks_mb} MB."),
              f"Wall time: harness {harness_s:.0f} s total ({per_variant}); plain loop {plain_s:.0f} s."]
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
