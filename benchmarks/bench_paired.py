"""Benchmark (not a test): the paired, interleaved latency protocol against the between-process one, idle and
under a background load this script creates itself.

What it does, in one run, for each load level (``--loads``, busy-loop processes; default 0 and 2):

1. starts that many bounded busy-loop processes (``python -c 'while time < end: pass'``), and stops them after;
2. for each comparison (A/A = the dense export against itself, and each ``--candidate NAME=DIR``), in the
   same load:

   * **paired**: :func:`gate.measure.harness.measure_paired` with the product's sequential rule (decode margin
     ``--margin``, confidence 0.95, up to ``--max-processes``);
   * **processes**: :func:`gate.measure.harness.measure_variants` (``--processes`` fresh processes per
     variant, interleaved) and the between-process speedup of :func:`gate.measure.efficiency.efficiency_metrics`,
     i.e. the protocol before the paired one;

   and records speedup, interval, its half-width (relative), processes used, stop reason, wall seconds and the
   load averages before and after;
3. ``--aa-gates N``: N short A/A paired gates (margin 1.0: any decided interval is a false alarm), for the
   false-alarm rate.

Usage::

    .venv/bin/python benchmarks/bench_paired.py --dense DIR [--candidate magnitude:0.5=DIR --candidate int4=DIR]
        [--loads 0,2] [--aa-gates 20] [--out benchmarks/results/bench_paired.json]

DIRs are export directories holding ``model.onnx`` (``.prunegate-cache/exports-v1/<key>`` or
``.prunegate-cache/quantized-v*/<key>``; ``prunegate check`` prints the paths it uses). Writes the JSON and a
Markdown summary beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from gate.measure.efficiency import efficiency_metrics  # noqa: E402
from gate.measure.harness import BenchSettings, measure_paired, measure_variants  # noqa: E402
from gate.measure.paired_timing import paired_interval  # noqa: E402
from gate.runtime.ort_decoder import SessionConfig  # noqa: E402

BUSY = "import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end:\n    pass\n"


def start_load(n: int, seconds: float) -> list[subprocess.Popen]:
    """``n`` busy-loop processes that end by themselves after ``seconds`` (and are killed by :func:`stop_load`)."""
    return [subprocess.Popen([sys.executable, "-c", BUSY.format(seconds=seconds)]) for _ in range(n)]


def stop_load(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        p.kill()
        p.wait()


def _processes_speedup(dense: Path, cand: Path, settings: BenchSettings, session: SessionConfig) -> dict:
    bench = measure_variants([("A", dense / "model.onnx"), ("B", cand / "model.onnx")], session, settings,
                             log=lambda s: None)
    m = efficiency_metrics({"bench": bench["A"]}, {"bench": bench["B"]}, seed=0)
    d = m["decode_speedup"]
    return {"speedup": d["speedup_x"], "ci_low": d["ci_low_x"], "ci_high": d["ci_high_x"],
            "unstable": bool(d.get("unstable")), "processes": settings.processes}


def _row(name: str, protocol: str, r: dict, wall: float, la: tuple[float, float]) -> dict:
    est, lo, hi = r["speedup"], r["ci_low"], r["ci_high"]
    return {"comparison": name, "protocol": protocol, "speedup": est, "ci_low": lo, "ci_high": hi,
            "half_width_rel": (hi - lo) / 2 / est if est else None, "processes": r.get("processes"),
            "stop_reason": r.get("stop_reason"), "decided": r.get("decided"), "unstable": r.get("unstable"),
            "wall_s": wall, "load_average_1m_before": la[0], "load_average_1m_after": la[1]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dense", type=Path)
    ap.add_argument("--candidate", action="append", default=[], metavar="NAME=DIR")
    ap.add_argument("--loads", default="0,2")
    ap.add_argument("--margin", type=float, default=1.10)
    ap.add_argument("--max-processes", type=int, default=8)
    ap.add_argument("--processes", type=int, default=5)
    ap.add_argument("--prompt-lengths", default="128")
    ap.add_argument("--aa-gates", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "bench_paired.json")
    ap.add_argument("--render", type=Path, default=None, help="re-render the Markdown of a stored result and exit")
    args = ap.parse_args()
    if args.render is not None:
        result = json.loads(args.render.read_text())
        args.render.with_suffix(".md").write_text(render_md(result))
        print(render_md(result))
        return 0
    session = SessionConfig(intra_op_threads=args.threads)
    lengths = tuple(int(x) for x in args.prompt_lengths.split(","))
    paired_settings = BenchSettings(prompt_lengths=lengths, max_processes=args.max_processes)
    proc_settings = BenchSettings(prompt_lengths=lengths, processes=args.processes, protocol="processes")
    comparisons = [("A/A", args.dense)] + [(c.split("=", 1)[0], Path(c.split("=", 1)[1])) for c in args.candidate]
    rows: list[dict] = []
    for n_load in [int(x) for x in args.loads.split(",")]:
        load = start_load(n_load, 3600)
        try:
            time.sleep(2 if n_load else 0)
            for name, cand in comparisons:
                la0, t0 = os.getloadavg()[0], time.perf_counter()
                # A/A against margin 1.0: the truth sits on it, so it runs to --max-processes (a decision = a false alarm)
                margins = {name: {"decode": 1.0 if name == "A/A" else args.margin}}
                r = measure_paired(("dense", args.dense / "model.onnx"), [(name, cand / "model.onnx")], session,
                                   paired_settings, margins=margins, log=lambda s: None)[name]
                d = r["phases"]["decode"]
                # the same processes' 95 % interval (fixed-sample, for the half-width; the gate uses the look's)
                iv95 = paired_interval([p["phases"]["decode"]["blocks"] for p in r["per_process"]], 0.05)
                rows.append({**_row(name, "paired", {**d, "processes": d["n_processes"],
                                                     "stop_reason": r["stop_reason"]},
                                    time.perf_counter() - t0, (la0, os.getloadavg()[0])), "load_processes": n_load,
                             "ci95": [iv95.ci_low, iv95.ci_high],
                             "half_width_rel_95": (iv95.ci_high - iv95.ci_low) / 2 / iv95.speedup})
                print(json.dumps(rows[-1]), flush=True)
                la0, t0 = os.getloadavg()[0], time.perf_counter()
                r = _processes_speedup(args.dense, cand, proc_settings, session)
                rows.append({**_row(name, "processes", r, time.perf_counter() - t0, (la0, os.getloadavg()[0])),
                             "load_processes": n_load})
                print(json.dumps(rows[-1]), flush=True)
        finally:
            stop_load(load)
    aa = []
    if args.aa_gates:
        short = BenchSettings(prompt_lengths=(128,), decode_context=128, warmup_min_runs=1, warmup_min_seconds=0.2,
                              min_blocks=4, min_seconds=0.5, max_processes=4)
        for g in range(args.aa_gates):
            r = measure_paired(("dense", args.dense / "model.onnx"), [("A/A", args.dense / "model.onnx")], session,
                               short, margins={"A/A": {"decode": 1.0}}, log=lambda s: None)["A/A"]
            d = r["phases"]["decode"]
            aa.append({"gate": g, "speedup": d["speedup"], "ci_low": d["ci_low"], "ci_high": d["ci_high"],
                       "false_alarm": d["decided"] is not None, "processes": d["n_processes"]})
            print(json.dumps(aa[-1]), flush=True)
    import onnxruntime

    result = {"what": "paired vs between-process latency comparison, idle and under busy-loop load",
              "dense": str(args.dense), "candidates": args.candidate, "margin": args.margin,
              "versions": {"python": platform.python_version(), "onnxruntime": onnxruntime.__version__,
                           "machine": platform.machine(), "cpus": os.cpu_count()},
              "rows": rows, "aa_gates": aa,
              "aa_false_alarm_rate": (sum(a["false_alarm"] for a in aa) / len(aa)) if aa else None}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    args.out.with_suffix(".md").write_text(render_md(result))
    print(render_md(result))
    return 0


def render_md(result: dict) -> str:
    """The Markdown summary of a result (also: ``--render RESULT.json`` re-renders a stored one)."""
    lines = ["| load procs | comparison | protocol | speedup | interval (gate's) | ± rel | ± rel (95 %) | processes | stop | "
             "wall s | load 1m |", "|---:|---|---|---:|---|---:|---:|---:|---|---:|---|"]
    for r in result["rows"]:
        hw95 = r.get("half_width_rel_95", r["half_width_rel"])
        stop = r["stop_reason"] or ("unstable" if r["unstable"] else "")
        lines.append(f"| {r['load_processes']} | {r['comparison']} | {r['protocol']} | {r['speedup']:.3f} | "
                     f"[{r['ci_low']:.3f}, {r['ci_high']:.3f}] | {r['half_width_rel']:.1%} | {hw95:.1%} | "
                     f"{r['processes']} | {stop} | {r['wall_s']:.0f} | "
                     f"{r['load_average_1m_before']:.1f} → {r['load_average_1m_after']:.1f} |")
    aa = result.get("aa_gates") or []
    if aa:
        lines.append(f"\nA/A false alarms: {sum(a['false_alarm'] for a in aa)} / {len(aa)} short gates")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
