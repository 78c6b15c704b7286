"""Throughput of prunegate's BBQ scoring on ONNX Runtime vs a straightforward PyTorch implementation.

Both sides score the same items with the same prompts and the same token ids (``gate.runtime.bbq_scoring``'s ``loglik``
mode: prompt ``{context}\\nQuestion: {question}\\nAnswer:``, each option as the continuation ``" " + answer``):

* **prunegate**: ``gate.runtime.bbq_scoring.score_items`` on the exported ONNX model (prompt run once, its KV cache shared
  by the 3 options run as one batch, and the KV prefix shared with recent prompts reused).
* **pytorch**: the way lm-evaluation-harness's multiple-choice ``loglikelihood`` scores a request, one request at
  a time: one full forward pass of ``prompt + option`` per option (3 per item) with ``transformers``, log-softmax
  over the whole sequence, sum of the option tokens' log-probs, argmax.

The engines run alternately (prunegate, pytorch, prunegate, pytorch, ...) ``--repeats`` times after an untimed
warm-up, with the same thread count (ORT ``intra_op_num_threads`` and ``torch.set_num_threads``) and no spin-waiting
on either side (ORT ``allow_spinning=0``, the prunegate default; ``OMP_WAIT_POLICY=PASSIVE`` for PyTorch unless the
environment sets it). The throughput
ratio is median(prunegate items/s) / median(pytorch items/s). Predictions of the two engines are compared item by
item; any disagreement is printed with both engines' log-likelihoods and the margin between the top two options.

Usage (from the repository root)::

    .venv/bin/python benchmarks/bench_bbq_scoring.py --out results.json

This is a benchmark, not a test: it asserts nothing and the machine may be shared and noisy.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# PyTorch's OpenMP threads busy-wait between parallel regions by default; on a shared or oversubscribed CPU a
# descheduled spinning thread slows every barrier (measured here: 2 threads ~7x slower than 1 under load). prunegate's
# ORT sessions run with spinning off (SessionConfig.allow_spinning=False), so the baseline gets the same treatment.
# Must be set before torch is imported; an explicit value in the environment wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from gate.bbq.data import load_bbq_dir  # noqa: E402
from gate.runtime.bbq_scoring import build_prompt, score_items  # noqa: E402
from gate.runtime.ort_decoder import OrtDecoder, SessionConfig  # noqa: E402
from gate.report.build import write_json_atomic  # noqa: E402
from gate.bbq.suite import sample_suite  # noqa: E402

DEFAULT_MODEL_KEY = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"  # SmolLM2-135M-Instruct fp32
CACHE_ROOTS = (REPO / ".prunegate-cache",)


def _default(kind: str) -> Path | None:
    for root in CACHE_ROOTS:
        p = root / kind / DEFAULT_MODEL_KEY
        if p.is_dir():
            return p
    return None


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--onnx-dir", type=Path, default=_default("onnx"), help="exported model directory (model.onnx)")
    ap.add_argument("--checkpoint", type=Path, default=_default("checkpoints"), help="HF checkpoint (tokenizer + weights)")
    ap.add_argument("--bbq-dir", type=Path, default=REPO.parent / "shared" / "bbq" / "data")
    ap.add_argument("--n-items", type=int, default=96, help="suite size (gate.bbq.suite.sample_suite, whole template instances)")
    ap.add_argument("--seed", type=int, default=0, help="suite sample seed")
    ap.add_argument("--threads", type=int, default=2, help="threads for both engines")
    ap.add_argument("--repeats", type=int, default=2, help="timed runs per engine (alternated), >= 2")
    ap.add_argument("--warmup-items", type=int, default=4, help="items scored untimed by each engine first")
    ap.add_argument("--ablation", action="store_true",
                    help="also time prunegate without cross-prompt prefix reuse (prefix_cache_entries=0)")
    ap.add_argument("--out", type=Path, default=None, help="write JSON results here")
    args = ap.parse_args(argv)
    if args.onnx_dir is None or args.checkpoint is None:
        ap.error("default model export not found in .prunegate-cache; pass --onnx-dir and --checkpoint")
    if args.repeats < 2:
        ap.error("--repeats must be at least 2")
    return args


class TorchBaseline:
    """One full forward pass per (prompt + option), lm-evaluation-harness style, batch size 1."""

    def __init__(self, checkpoint: Path, threads: int):
        import torch
        from transformers import AutoModelForCausalLM

        self.torch = torch
        torch.set_num_threads(threads)
        self.model = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.float32).eval()

    def score_items(self, tokenizer, items) -> tuple[list[dict], float]:
        torch = self.torch
        t0 = time.perf_counter()
        out = []
        with torch.inference_mode():
            for item in items:
                prompt = tokenizer(build_prompt(item.context, item.question)).input_ids
                lls = []
                for answer in item.answers:
                    cont = tokenizer(" " + answer.strip(), add_special_tokens=False).input_ids
                    seq = torch.tensor([prompt + cont])
                    logp = torch.log_softmax(self.model(seq).logits[0], dim=-1)  # [len, vocab], whole sequence
                    picked = logp[len(prompt) - 1: len(prompt) - 1 + len(cont)].gather(1, torch.tensor(cont)[:, None])
                    lls.append(float(picked.double().sum()))
                out.append({"uid": item.uid, "loglik": lls, "pred": int(np.argmax(lls))})
        return out, time.perf_counter() - t0


def _versions() -> dict:
    import onnxruntime
    import torch
    import transformers

    return {"OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY"), "python": platform.python_version(),
            "onnxruntime": onnxruntime.__version__, "torch": torch.__version__,
            "transformers": transformers.__version__, "numpy": np.__version__, "machine": platform.machine(),
            "cpu_count": os.cpu_count()}


def main(argv=None) -> dict:
    args = parse_args(argv)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(args.checkpoint)
    items = sample_suite(load_bbq_dir(args.bbq_dir), args.n_items, args.seed)
    print(f"{len(items)} BBQ items, {args.threads} threads, {args.repeats} repeats, model {args.onnx_dir.name[:12]}…",
          flush=True)

    decoder = OrtDecoder(args.onnx_dir / "model.onnx", SessionConfig(intra_op_threads=args.threads))
    baseline = TorchBaseline(args.checkpoint, args.threads)

    engines = {
        "prunegate": lambda its: _prunegate(decoder, tokenizer, its, None),
        "pytorch": lambda its: baseline.score_items(tokenizer, its),
    }
    if args.ablation:
        engines["prunegate_no_prefix_reuse"] = lambda its: _prunegate(decoder, tokenizer, its, 0)

    load_before = os.getloadavg()
    for name, run in engines.items():  # warm-up, untimed
        run(items[: args.warmup_items])

    runs = []
    results: dict[str, list[list[dict]]] = {name: [] for name in engines}
    for rep in range(args.repeats):
        for name, run in engines.items():
            scored, seconds = run(items)
            results[name].append(scored)
            runs.append({"engine": name, "repeat": rep, "seconds": seconds, "items_per_s": len(items) / seconds})
            print(f"  repeat {rep} {name:<26} {seconds:7.1f} s  {len(items) / seconds:6.2f} items/s", flush=True)

    load_after = os.getloadavg()
    med = {name: statistics.median(r["items_per_s"] for r in runs if r["engine"] == name) for name in engines}
    ours, ref = results["prunegate"][0], results["pytorch"][0]
    disagreements = []
    max_diff = 0.0
    for item, a, b in zip(items, ours, ref):
        max_diff = max(max_diff, float(np.max(np.abs(np.asarray(a["loglik"]) - np.asarray(b["loglik"])))))
        if a["pred"] != b["pred"]:
            top2 = sorted(b["loglik"], reverse=True)[:2]
            disagreements.append({"uid": item.uid, "prunegate": a, "pytorch": b, "pytorch_margin": top2[0] - top2[1]})
    stable = {name: all([s["pred"] for s in r] == [s["pred"] for s in rs[0]] for r in rs) for name, rs in results.items()}
    reuse = results["prunegate"][0]
    summary = {
        "n_items": len(items),
        "threads": args.threads,
        "repeats": args.repeats,
        "items_per_s_median": med,
        "ratio_prunegate_over_pytorch": med["prunegate"] / med["pytorch"],
        "prediction_disagreements": len(disagreements),
        "disagreement_details": disagreements,
        "max_abs_loglik_diff": max_diff,
        "predictions_identical_across_repeats": stable,
        "prompt_tokens_reused_fraction": sum(s["reused_tokens"] for s in reuse) / sum(s["prompt_tokens"] for s in reuse),
        "target_3x_identical_predictions": bool(med["prunegate"] / med["pytorch"] >= 3 and not disagreements),
    }
    if args.ablation:
        summary["ratio_prefix_reuse_over_no_reuse"] = med["prunegate"] / med["prunegate_no_prefix_reuse"]

    print()
    print(f"{'engine':<28}{'items/s (median)':>18}{'s/item':>10}")
    for name in engines:
        print(f"{name:<28}{med[name]:>18.2f}{1 / med[name]:>10.3f}")
    print(f"ratio prunegate / pytorch (medians): {summary['ratio_prunegate_over_pytorch']:.2f}x")
    print(f"prediction disagreements: {len(disagreements)} / {len(items)}; max |Δ loglik| {max_diff:.2e}")
    for d in disagreements:
        print(f"  {d['uid']}: prunegate {d['prunegate']['loglik']} vs pytorch {d['pytorch']['loglik']}"
              f" (pytorch margin {d['pytorch_margin']:.2e})")
    print(f"prompt tokens reused from earlier prompts: {summary['prompt_tokens_reused_fraction']:.0%}")
    print(f"load average before/after: {load_before[0]:.1f} / {load_after[0]:.1f} on {os.cpu_count()} CPUs")

    record = {
        "benchmark": "bbq_scoring_throughput",
        "config": {"onnx_dir": str(args.onnx_dir), "checkpoint": str(args.checkpoint), "bbq_dir": str(args.bbq_dir),
                   "n_items_requested": args.n_items, "seed": args.seed, "threads": args.threads,
                   "repeats": args.repeats, "warmup_items": args.warmup_items, "scoring_mode": "loglik",
                   "engines": {"prunegate": "gate.runtime.bbq_scoring.score_items on ONNX Runtime (CPUExecutionProvider)",
                               "pytorch": "transformers, one full forward per prompt+option, batch 1, log_softmax "
                                          "over the sequence (lm-eval multiple_choice style)"}},
        "environment": {**_versions(), "loadavg_1_5_15_before": load_before, "loadavg_1_5_15_after": load_after},
        "runs": runs,
        "summary": summary,
    }
    if args.out:
        write_json_atomic(args.out, record)
        print(f"wrote {args.out}")
    return record


def _prunegate(decoder, tokenizer, items, entries):
    kw = {} if entries is None else {"prefix_cache_entries": entries}
    scores, seconds = score_items(decoder, tokenizer, items, **kw)
    return [{"uid": s.uid, "loglik": list(s.loglik), "pred": s.pred, "prompt_tokens": s.prompt_tokens,
             "reused_tokens": s.reused_tokens} for s in scores], seconds


if __name__ == "__main__":
    main()
