"""``prunegate check``: the whole gate, one stage after another.

Data flows one way: profile + model → artifacts (compress, export, verify) → measurements (ONNX
Runtime, fresh child processes) + predictions (BBQ on the artifact) → statistics → findings → report.
Inputs are validated before any heavy work, so bad input fails in seconds with exit code 2.
"""

from __future__ import annotations

import gc
import json
import os
import re
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from exporters.candidates import CandidateSpec, parse_candidate
from exporters.digest import sha256_json
from hardware_profiles import ProfileError, load_profile

from .bench import BenchSettings, measure_variants
from .bbq_data import HOW_TO_GET_BBQ, accuracy_only_categories, load_bbq_dir
from .bbq_metrics import bbq_scores
from .environment import environment
from .errors import InputError
from .ort_decoder import OrtDecoder, SessionConfig
from .paired_stats import paired_comparison
from .policy import Policy, evaluate, export_findings
from .report import SCHEMA_VERSION, write_json_atomic
from .bbq_scoring import check_scoring_options, describe_scoring
from .suite import build_suite_manifest, load_suite, sample_suite

EXIT_PASS, EXIT_FAIL, EXIT_INPUT, EXIT_EXECUTION = 0, 1, 2, 4
BBQ_ENV = "PRUNEGATE_BBQ_DIR"


@dataclass(frozen=True)
class CheckOptions:
    """Everything ``prunegate check`` was asked to do (recorded in the report).

    Attributes:
        model: dense model path (HF directory or ``.gguf``); ``None`` = embedded default.
        candidates: ``--candidate`` specs, e.g. ``("magnitude:0.5",)``.
        bbq_dir: directory of official BBQ ``<Category>.jsonl`` files (``None``: ``$PRUNEGATE_BBQ_DIR``).
        suite_size: target number of BBQ items in the reduced suite.
        seed: seed of the suite sample and of random pruning.
        profile: hardware profile name.
        out_dir: where ``report.json`` and predictions go.
        work_dir: export cache.
        bench: latency/memory protocol settings.
        threads: override of the profile's intra-op thread count (``None`` = profile).
        suite_file: a suite built by ``prunegate suite build`` (overrides ``suite_size``/``seed`` sampling).
        scoring_mode: ``"loglik"`` or ``"letter"`` (see ``gate.bbq_scoring``).
        length_normalize: loglik per token instead of the sum.
        permute_options: letter mode over every cyclic order of the options.
    """

    model: str | None
    candidates: tuple[str, ...]
    bbq_dir: str | None
    suite_size: int
    seed: int
    profile: str
    out_dir: Path
    work_dir: Path
    bench: BenchSettings = field(default_factory=BenchSettings)
    threads: int | None = None
    suite_file: Path | None = None
    scoring_mode: str = "loglik"
    length_normalize: bool = False
    permute_options: bool = False


def options_from_cli(kw: dict) -> CheckOptions:
    """Build ``CheckOptions`` from the keyword arguments click passes to ``prunegate check``.

    Each option group maps its own keys here, one block per group, so options can be added independently.
    """
    kw = dict(kw)
    prompt_tokens = kw.pop("prompt_tokens")
    bench = BenchSettings(prompt_tokens=prompt_tokens, decode_context=prompt_tokens, decode_tokens=kw.pop("decode_tokens"),
                          runs=kw.pop("bench_runs"), processes=kw.pop("bench_processes"))
    return CheckOptions(
        model=kw.pop("model"), candidates=tuple(kw.pop("candidates")), bbq_dir=kw.pop("bbq_dir"),
        suite_size=kw.pop("suite_size"), seed=kw.pop("seed"), profile=kw.pop("profile"), out_dir=kw.pop("out_dir"),
        work_dir=kw.pop("work_dir"), threads=kw.pop("threads"), suite_file=kw.pop("suite_file"),
        scoring_mode=kw.pop("scoring_mode"), length_normalize=kw.pop("length_normalize"),
        permute_options=kw.pop("permute_options"), bench=bench,
    )


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "variant"


@dataclass
class _Variant:
    name: str
    role: str
    spec: CandidateSpec | None
    checkpoint: Path | None = None
    onnx_dir: Path | None = None
    entry: dict = field(default_factory=dict)


def resolve_bbq_dir(bbq_dir: str | None) -> Path:
    """``--bbq-dir`` or ``$PRUNEGATE_BBQ_DIR``.

    Raises:
        InputError: neither given, or the path is a file (a missing directory is left to ``load_bbq_dir``).
    """
    value = bbq_dir or os.environ.get(BBQ_ENV)
    if not value:
        raise InputError(f"no BBQ data given; {HOW_TO_GET_BBQ}")
    path = Path(value).expanduser()
    if path.is_file():
        raise InputError(f"BBQ path {path} is a file; pass the directory that holds the <Category>.jsonl files")
    return path  # a missing directory is reported by load_bbq_dir


def _writable_dir(path: Path, option: str) -> None:
    """Create ``path`` if needed and make sure files can be written in it (else ``InputError``)."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".prunegate-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise InputError(f"{option} {path}: cannot write there ({exc.strerror or exc}); pass a writable directory") from None


def run_check(opts: CheckOptions, log: Callable[[str], None] = print) -> dict:
    """Run the gate and write ``opts.out_dir/report.json``.

    Returns:
        the report (also written). ``report["exit_code"]`` is 0 (pass) or 1 (gate failed).

    Raises:
        InputError: bad input (exit 2); the report is not written for input errors found before any work.
        Exception: an execution error; a partial report with ``"partial": true`` and the error is written first.
    """
    started = time.time()
    # ---- validate inputs before heavy work
    try:
        profile = load_profile(opts.profile)
    except ProfileError as exc:
        raise InputError(str(exc)) from None
    if opts.threads is not None and opts.threads < 0:
        raise InputError(f"--threads {opts.threads}: must be >= 0")
    if opts.suite_size < 4:
        raise InputError(f"--suite-size {opts.suite_size}: must be at least 4 (one template instance)")
    check_scoring_options(opts.scoring_mode, opts.length_normalize, opts.permute_options)
    specs = [parse_candidate(c) for c in (opts.candidates or ("magnitude:0.5",))]
    names = [s.spec for s in specs]
    if len(set(names)) != len(names):
        raise InputError(f"--candidate given twice: {', '.join(sorted({n for n in names if names.count(n) > 1}))}")
    bbq_path = resolve_bbq_dir(opts.bbq_dir)
    all_items = load_bbq_dir(bbq_path)
    if opts.suite_file is not None:
        suite_path = Path(opts.suite_file)
        if not suite_path.is_file():
            raise InputError(f"suite file {suite_path} does not exist; build one with `prunegate suite build`")
        suite, manifest = load_suite(suite_path, all_items, bbq_path)
    else:
        suite = sample_suite(all_items, opts.suite_size, opts.seed)
        manifest = build_suite_manifest(suite, bbq_path, opts.suite_size, opts.seed)
    from exporters.model_source import resolve_model

    source = resolve_model(opts.model)
    cand_sources = {s.spec: resolve_model(s.path, allow_onnx=True) for s in specs if s.method == "checkpoint"}
    import onnxruntime as ort

    missing = [p for p in profile.execution_providers if p not in ort.get_available_providers()]
    if missing:
        raise InputError(
            f"profile '{profile.name}' needs execution provider(s) {', '.join(missing)}, not in this ONNX Runtime build "
            f"(available: {', '.join(ort.get_available_providers())}); pick another --profile"
        )
    threads = profile.resolved_threads() if opts.threads is None else (opts.threads or profile.resolved_threads())
    session = SessionConfig(providers=profile.execution_providers, intra_op_threads=threads)

    _writable_dir(opts.out_dir, "--out")
    _writable_dir(opts.work_dir, "--work-dir")
    report: dict = {
        "schema_version": SCHEMA_VERSION,
        "tool": "prunegate",
        "partial": True,
        "verdict": None,
        "exit_code": None,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "config": {
            "model": str(source.path),
            "model_name": source.name,
            "model_sha256": source.digest,
            "candidates": names,
            "bbq_dir": str(bbq_path),
            "suite_size_requested": opts.suite_size,
            "suite_file": str(opts.suite_file) if opts.suite_file else None,
            "scoring": {"mode": opts.scoring_mode, "length_normalize": opts.length_normalize, "permute_options": opts.permute_options},
            "seed": opts.seed,
            "profile": profile.name,
            "work_dir": str(opts.work_dir),
            "policy": Policy().to_dict(),
        },
        "profile": {"name": profile.name, "arch": profile.arch, "execution_providers": list(profile.execution_providers), "threads": threads, "path": profile.path},
        "suite": _suite_summary(all_items, suite, manifest),
        "environment": {**environment(), "execution_providers_requested": list(session.providers), "intra_op_threads": threads},
        "variants": [],
        "findings": [],
        "timings_s": {},
    }
    report_path = opts.out_dir / "report.json"
    try:
        _run_stages(opts, report, source, specs, cand_sources, suite, session, log)
    except InputError:
        report["error"] = {"kind": "input", "message": traceback.format_exc(limit=0).strip().splitlines()[-1]}
        report["exit_code"] = EXIT_INPUT
        report["verdict"] = "error"
        write_json_atomic(report_path, report)
        raise
    except BaseException as exc:
        report["error"] = {"kind": "execution" if isinstance(exc, Exception) else "interrupted", "message": f"{type(exc).__name__}: {exc}"}
        report["exit_code"] = EXIT_EXECUTION if isinstance(exc, Exception) else 130
        report["verdict"] = "error"
        write_json_atomic(report_path, report)
        raise
    report["timings_s"]["total"] = time.time() - started
    write_json_atomic(report_path, report)
    return report


def _suite_summary(all_items, suite, manifest: dict) -> dict:
    cells: dict[str, int] = {}
    for it in suite:
        key = f"{it.category}/{it.context_condition}/{it.question_polarity}"
        cells[key] = cells.get(key, 0) + 1
    no_target = accuracy_only_categories(suite)
    return {
        "n_items": len(suite),
        "accuracy_only_categories": no_target,
        "n_items_available": len(all_items),
        "categories": sorted({it.category for it in suite}),
        "cells": dict(sorted(cells.items())),
        "manifest_digest": manifest["digest"],
        "manifest": {k: v for k, v in manifest.items() if k != "item_uids"},
        "item_uids_sha256": sha256_json([it.uid for it in suite]),
    }


def _run_stages(opts, report, source, specs, cand_sources, suite, session, log) -> None:
    from exporters.model_source import load_tokenizer, materialize_checkpoint

    timings = report["timings_s"]
    t = time.time()
    dense_ckpt = materialize_checkpoint(source, opts.work_dir, log)
    tokenizer = load_tokenizer(dense_ckpt)
    variants = [_Variant("dense", "baseline", None, checkpoint=dense_ckpt)]
    variants += [_Variant(s.spec, "candidate", s) for s in specs]
    timings["load_model"] = time.time() - t

    t = time.time()
    for v in variants:
        v.entry = _build_artifact(v, opts, source, dense_ckpt, cand_sources, tokenizer, log)
        report["variants"].append(v.entry)
    if opts.scoring_mode == "letter":  # fail now, not after the benchmark, if the tokenizer cannot do letters
        from .bbq_scoring import build_letter_prompt, letter_prompt_ids

        letter_prompt_ids(tokenizer, build_letter_prompt(tokenizer, suite[0].context, suite[0].question, suite[0].answers))
    timings["artifacts"] = time.time() - t

    t = time.time()
    _measure(variants, session, opts.bench, report, log)
    timings["bench"] = time.time() - t

    t = time.time()
    preds = {v.name: _score_bbq(v, suite, tokenizer, session, opts, log) for v in variants}
    for v in variants[1:]:
        v.entry["paired_vs_baseline"] = paired_comparison(suite, preds["dense"], preds[v.name], seed=opts.seed)
    timings["bbq"] = time.time() - t

    findings = [f for v in variants for f in export_findings(v.entry)]
    for v in variants[1:]:
        findings += evaluate(variants[0].entry, v.entry, v.entry["claims_sparsity"])
    report["findings"] = [f.to_dict() for f in findings]
    failed = any(f.status == "fail" for f in findings)
    report["verdict"] = "fail" if failed else "pass"
    report["exit_code"] = EXIT_FAIL if failed else EXIT_PASS
    report["partial"] = False


def _build_artifact(v: _Variant, opts, source, dense_ckpt: Path, cand_sources, tokenizer, log) -> dict:
    """Compress (if needed), export and verify one variant; a cached export is reused as it is.

    Returns:
        the variant's report entry: ``name``, ``role``, ``compression``, ``claims_sparsity``, ``artifact``, ``export``.
    """
    from exporters.artifact import describe_artifact
    from exporters.model_source import load_causal_lm, materialize_checkpoint
    from exporters.onnx_export import cached_export, export_onnx
    from exporters.pruning import prune_model
    from exporters.verify import verify_export

    work = opts.work_dir
    if v.role == "baseline":
        key = source.digest
        compression: dict = {"method": "none"}

        def load_model():
            return load_causal_lm(dense_ckpt)[0]
    elif v.spec.method == "checkpoint":
        cs = cand_sources[v.spec.spec]
        key = cs.digest
        compression = {"method": "checkpoint", "path": str(cs.path), "sha256": cs.digest, "format": cs.kind}
        if cs.kind == "onnx_dir":
            v.onnx_dir = cs.path
        else:
            v.checkpoint = materialize_checkpoint(cs, work, log)

        def load_model():
            model = load_causal_lm(v.checkpoint)[0]
            _check_same_vocabulary(model, tokenizer, v.name)
            return model
    else:
        key = sha256_json({"base": source.digest, "method": v.spec.method, "sparsity": v.spec.sparsity, "seed": opts.seed})
        compression = {"method": v.spec.method, "claimed_sparsity": v.spec.sparsity, "seed": opts.seed}

        def load_model():
            model = load_causal_lm(dense_ckpt)[0]
            log(f"pruning {v.name}: {v.spec.method} at sparsity {v.spec.sparsity}")
            tp = time.time()
            compression.update(prune_model(model, v.spec.method, v.spec.sparsity, seed=opts.seed))
            compression["seconds"] = time.time() - tp
            return model

    if v.onnx_dir is not None:
        meta = {"export_s": None, "reused": True, "note": "user-supplied ONNX export"}
        verification = {"passed": None, "note": "user-supplied ONNX export: no PyTorch model to compare with"}
    else:
        model = None
        if cached_export(work, key) is None:
            model = load_model()
            if v.checkpoint is None:
                v.checkpoint = _save_checkpoint(model, tokenizer, work, key, log)

        def checks(onnx_dir: Path) -> dict:
            return {"verification": verify_export(model, tokenizer, onnx_dir), "compression": compression}

        v.onnx_dir, meta = export_onnx(v.checkpoint or dense_ckpt, work, key, log, label=v.name, after_export=checks)
        verification, compression = meta["checks"]["verification"], meta["checks"]["compression"]
        if not verification["passed"]:
            log(f"export check failed for {v.name}: max |Δlogit| {verification['max_abs_logit_diff']:.3g} > {verification['tolerance']:.3g}")
        del model
        gc.collect()
    return {
        "name": v.name,
        "role": v.role,
        "compression": compression,
        "claims_sparsity": bool(v.spec and v.spec.claims_sparsity),
        "artifact": describe_artifact(v.onnx_dir),
        "export": {"seconds": meta.get("export_s"), "reused": meta.get("reused"), "verification": verification},
    }


def _measure(variants: list[_Variant], session: SessionConfig, settings: BenchSettings, report: dict, log) -> None:
    """Latency and memory of every artifact on ONNX Runtime (fresh child processes, interleaved)."""
    log(f"measuring {len(variants)} artifacts on ONNX Runtime ({', '.join(session.providers)}, {session.intra_op_threads} threads)")
    bench = measure_variants([(v.name, v.onnx_dir / "model.onnx") for v in variants], session, settings, log=log)
    for v in variants:
        v.entry["bench"] = bench[v.name]
    report["environment"]["execution_providers_used"] = sorted({p for v in variants for p in v.entry["bench"]["providers_used"]})


def _score_bbq(v: _Variant, suite, tokenizer, session: SessionConfig, opts, log) -> list[int]:
    """Score the suite on one artifact; predictions are streamed to ``predictions/<variant>.jsonl.partial``
    and renamed when complete. Sets ``v.entry["bbq"]`` and returns the predicted option per item."""
    from .bbq_scoring import score_items

    log(f"scoring {len(suite)} BBQ items on {v.name}")
    pred_dir = opts.out_dir / "predictions"
    pred_dir.mkdir(parents=True, exist_ok=True)
    decoder = OrtDecoder(v.onnx_dir / "model.onnx", session)
    final = pred_dir / f"{_slug(v.name)}.jsonl"
    partial = final.with_suffix(".jsonl.partial")
    with open(partial, "w", encoding="utf-8") as f:

        def on_item(i, s):
            it = suite[i]
            f.write(json.dumps({
                "uid": s.uid, "category": it.category, "example_id": it.example_id,
                "context_condition": it.context_condition, "question_polarity": it.question_polarity,
                "label": it.label, "unknown_index": it.unknown_index, "bias_target_index": it.bias_target_index,
                "pred_index": s.pred, "loglik": list(s.loglik), "n_tokens": list(s.n_tokens),
            }) + "\n")
            f.flush()

        scores, seconds = score_items(decoder, tokenizer, suite, on_item, mode=opts.scoring_mode,
                                      length_normalize=opts.length_normalize, permute_options=opts.permute_options)
    os.replace(partial, final)
    preds = [s.pred for s in scores]
    v.entry["bbq"] = {
        **bbq_scores(suite, preds),
        "scoring": describe_scoring(opts.scoring_mode, opts.length_normalize, opts.permute_options, tokenizer),
        "seconds": seconds,
        "seconds_per_item": seconds / max(1, len(suite)),
        "predictions": str(final),
    }
    return preds


def _check_same_vocabulary(model, tokenizer, name: str) -> None:
    """A user's candidate is scored with the dense model's tokenizer, so its vocabulary must match."""
    if model.config.vocab_size < len(tokenizer):
        raise InputError(
            f"--candidate {name}: vocabulary size {model.config.vocab_size} does not cover the dense model's tokenizer "
            f"({len(tokenizer)} tokens); a candidate must be a compressed version of --model"
        )


def _save_checkpoint(model, tokenizer, work: Path, key: str, log) -> Path:
    from exporters.cache import cached_dir

    def build(out: Path) -> dict:
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)
        return {"key": key}

    path, _ = cached_dir(work, "checkpoints", key, build, log)
    return path
