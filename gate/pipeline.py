"""``prunegate check``: the whole gate, one stage after another.

Data flows one way: profile + model → artifacts (compress, export, verify) → measurements (ONNX
Runtime, fresh child processes) + predictions (BBQ on the artifact) → statistics → findings → report.
Inputs are validated before any heavy work, so bad input fails in seconds with exit code 2.
"""

from __future__ import annotations

import gc
import json
import os
import time
import traceback
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from exporters.candidates import CandidateSpec, parse_candidate
from exporters.digest import sha256_json
from hardware_profiles import ProfileError, load_profile

from gate.measure.harness import BenchSettings, measure_variants
from gate.bbq.data import HOW_TO_GET_BBQ, accuracy_only_categories, load_bbq_dir
from gate.bbq.metrics import bbq_scores
from gate.runtime.environment import environment
from gate.runtime.errors import ExitCode, InputError
from gate.runtime.ort_decoder import OrtDecoder, SessionConfig
from gate.bbq.paired import paired_comparison
from gate.runtime.providers import op_placement, resolve_providers, target_check
from gate.policy.decision import apply_decision
from gate.policy.file import load_policy
from gate.report.build import SCHEMA_URI, SCHEMA_VERSION
from gate.report.outputs import FORMATS as REPORT_FORMATS, ci_context, variant_slug, write_report
from gate.runtime.bbq_scoring import check_scoring_options, describe_scoring
from gate.device.gate_steps import attach_device, close_device, device_providers, measure_on_device, open_device
from gate.device.ssh import SshOptions
from gate.bbq.suite import build_suite_manifest, load_suite, sample_suite

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
        scoring_mode: ``"loglik"`` or ``"letter"`` (see ``gate.runtime.bbq_scoring``).
        length_normalize: loglik per token instead of the sum.
        permute_options: letter mode over every cyclic order of the options.
        allow_fallback: run on the available execution providers when the profile's are missing (``--allow-fallback``).
        calibration_file: text for calibrated pruning (``--calibration-file``; ``None``: ``$PRUNEGATE_CALIBRATION_FILE``).
        calibration_windows: calibration windows (``None``: ``exporters.compression.calibration.DEFAULT_CALIBRATION_WINDOWS``).
        calibration_tokens: tokens per window (``None``: ``exporters.compression.calibration.DEFAULT_CALIBRATION_TOKENS``).
        device: ``ssh://user@host[:port]`` of a remote device (``None``: the profile's, else this host; ``"local"``: this host).
        device_options: how to reach and use the device (``--device-*`` options).
        policy: a ``gate.toml`` laid over the default policy (``--policy``; ``None``: ``gate/policy/default_policy.toml``).
        fail_on: ``--fail-on`` (``"error"``/``"warning"``/``"never"``) overriding the policy's ``gate.fail_on``.
        report_formats: projections written next to ``report.json`` (``--formats``; see ``gate.report.outputs``).
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
    allow_fallback: bool = False
    calibration_file: Path | None = None
    calibration_windows: int | None = None
    calibration_tokens: int | None = None
    device: str | None = None  # --device / profile 'device': run bench, placement and BBQ on a remote device (gate/device)
    device_options: SshOptions = field(default_factory=SshOptions)
    policy: Path | None = None
    fail_on: str | None = None
    report_formats: tuple[str, ...] = REPORT_FORMATS
    perplexity: bool = False
    ppl_file: str | None = None
    ppl_window: int = 512
    ppl_stride: int = 256
    ppl_max_tokens: int | None = 4096


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
        the report (also written). ``report["exit_code"]`` follows ``report["verdict"]`` (gate/policy/decision.py):
        0 pass or warn, 1 fail, 3 inconclusive (policy ``on_inconclusive = "exit-3"``), 4 a check could not be
        computed or none executed.

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
    policy = load_policy(opts.policy)  # PolicyError (exit 2) naming the key, before any heavy work
    specs = [parse_candidate(c) for c in (opts.candidates or ("magnitude:0.5",))]
    names = [s.spec for s in specs]
    if len(set(names)) != len(names):
        raise InputError(f"--candidate given twice: {', '.join(sorted({n for n in names if names.count(n) > 1}))}")
    from exporters.compress import calibration_options, check_calibration

    calibration = calibration_options(opts.calibration_file, opts.calibration_windows, opts.calibration_tokens, opts.seed)
    check_calibration(specs, calibration)  # a calibrated method without calibration text fails now, not after exports
    bbq_path = resolve_bbq_dir(opts.bbq_dir)
    all_items = load_bbq_dir(bbq_path)
    from gate.measure.perplexity import resolve_settings

    ppl_settings = resolve_settings(opts.ppl_file, opts.ppl_window, opts.ppl_stride, opts.ppl_max_tokens, enabled=opts.perplexity)
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
    device = open_device(opts.device, opts.device_options, profile, log)  # None = this host; else probed over SSH
    plan = resolve_providers(profile, opts.allow_fallback, available=device_providers(device))  # InputError when a provider is missing and no fallback
    if plan.fallback:
        log(f"warning: {plan.reason}")
    threads = profile.resolved_threads() if opts.threads is None else (opts.threads or profile.resolved_threads())
    cpus = device.facts["cpus_available"] if device is not None else len(os.sched_getaffinity(0))
    warnings: list[str] = []
    if opts.threads is None and threads > cpus:  # a device profile's threads would oversubscribe a smaller host
        warnings.append(f"profile '{profile.name}' asks for {threads} intra-op threads but {cpus} CPUs are available "
                        f"here; used {cpus}")
        log(f"warning: {warnings[-1]}")
        threads = cpus
    session = plan.session_config(threads)

    _writable_dir(opts.out_dir, "--out")
    _writable_dir(opts.work_dir, "--work-dir")
    report: dict = {
        "schema": SCHEMA_URI,
        "schema_version": SCHEMA_VERSION,
        "report_id": str(uuid.uuid4()),
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
            "perplexity": None if ppl_settings is None else {"corpus_path": str(ppl_settings.corpus_path), "window_tokens": ppl_settings.window_tokens,
                                                              "stride_tokens": ppl_settings.stride_tokens, "max_tokens": ppl_settings.max_tokens},
            "suite_size_requested": opts.suite_size,
            "suite_file": str(opts.suite_file) if opts.suite_file else None,
            "scoring": {"mode": opts.scoring_mode, "length_normalize": opts.length_normalize, "permute_options": opts.permute_options},
            "seed": opts.seed,
            "profile": profile.name,
            "work_dir": str(opts.work_dir),
            "calibration": calibration.to_dict(),
            "policy": {**policy.describe(), "fail_on_cli": opts.fail_on},
        },
        "profile": {**profile.to_dict(), "threads_used": threads},
        "execution": {**plan.to_dict(), "providers_used": None, **target_check(profile), "op_placement": {}},
        "suite": _suite_summary(all_items, suite, manifest),
        "environment": {**environment(), "execution_providers_requested": list(session.providers), "intra_op_threads": threads,
                        "ci": ci_context()},
        "variants": [],
        "findings": [],
        "warnings": warnings,
        "timings_s": {},
    }
    if device is not None:
        attach_device(report, device, profile)
    try:
        _run_stages(opts, report, source, specs, cand_sources, suite, session, log, policy=policy, ppl=ppl_settings, device=device)
    except InputError:
        report["error"] = {"kind": "input", "message": traceback.format_exc(limit=0).strip().splitlines()[-1]}
        report["exit_code"] = int(ExitCode.INPUT)
        report["verdict"] = "error"
        write_report(report, opts.out_dir, opts.report_formats, log)
        raise
    except BaseException as exc:
        report["error"] = {"kind": "execution" if isinstance(exc, Exception) else "interrupted", "message": f"{type(exc).__name__}: {exc}"}
        report["exit_code"] = int(ExitCode.EXECUTION if isinstance(exc, Exception) else ExitCode.INTERRUPTED)
        report["verdict"] = "error"
        write_report(report, opts.out_dir, opts.report_formats, log)
        raise
    finally:
        close_device(device, report)  # removes what was copied to the device, unless --device-keep
    report["timings_s"]["total"] = time.time() - started
    write_report(report, opts.out_dir, opts.report_formats, log)
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


def _run_stages(opts, report, source, specs, cand_sources, suite, session, log, policy=None, ppl=None, device=None) -> None:
    from exporters.model_source import load_tokenizer, materialize_checkpoint

    timings = report["timings_s"]
    t = time.time()
    dense_ckpt = materialize_checkpoint(source, opts.work_dir, log)
    tokenizer = load_tokenizer(dense_ckpt)
    variants = [_Variant("dense", "baseline", None, checkpoint=dense_ckpt)]
    variants += [_Variant(s.spec, "candidate", s) for s in specs]
    timings["load_model"] = time.time() - t

    t = time.time()
    calibration = _load_calibration(opts, specs, tokenizer, log)  # loaded once, shared by every calibrated candidate
    for v in variants:
        v.entry = _build_artifact(v, opts, source, dense_ckpt, cand_sources, tokenizer, log, calibration=calibration)
        report["variants"].append(v.entry)
    if opts.scoring_mode == "letter":  # fail now, not after the benchmark, if the tokenizer cannot do letters
        from gate.runtime.bbq_scoring import build_letter_prompt, letter_prompt_ids

        letter_prompt_ids(tokenizer, build_letter_prompt(tokenizer, suite[0].context, suite[0].question, suite[0].answers))
    timings["artifacts"] = time.time() - t

    t = time.time()
    _artifact_stats(variants, opts.work_dir, session, log)  # entry["sparsity"], entry["size"] (gate/measure/artifact_stats.py)
    timings["artifact_stats"] = time.time() - t

    t = time.time()
    _measure(variants, session, opts.bench, report, log, device=device)
    timings["bench"] = time.time() - t
    t = time.time()
    _placement(variants, session, report, log, device=device)
    timings["op_placement"] = time.time() - t
    if ppl is not None:
        t = time.time()
        _perplexity(variants, tokenizer, ppl, session, log)  # entry["perplexity"] (gate/measure/perplexity.py)
        timings["perplexity"] = time.time() - t
    else:  # --no-perplexity: the perplexity checks are skipped, and the report says why
        for v in variants:
            v.entry["perplexity"] = {"measured": False, "reason": "disabled with --no-perplexity"}
        report.setdefault("warnings", []).append("perplexity not measured (--no-perplexity): perplexity.ratio and "
                                                 "perplexity.paradox are skipped")

    t = time.time()
    preds = {v.name: _score_bbq(v, suite, tokenizer, session, opts, log, device=device) for v in variants}
    policy = policy or load_policy(opts.policy)
    st = policy.statistics  # the policy's confidence, resamples and seed also drive the paired bootstrap
    for v in variants[1:]:
        v.entry["paired_vs_baseline"] = paired_comparison(suite, preds["dense"], preds[v.name], confidence=st.confidence,
                                                          n_resamples=st.resamples, seed=st.seed)
    timings["bbq"] = time.time() - t

    # checks -> verdict -> exit code (gate/policy/decision.py): report["checks"], ["findings"], ["summary"], ["verdict"]
    decision = apply_decision(report, policy, fail_on=opts.fail_on)
    for w in decision.warnings:
        log(f"warning: {w}")
    report["partial"] = False


def _artifact_stats(variants: list[_Variant], work_dir: Path, session: SessionConfig, log) -> None:
    """Measured sparsity and size accounting of every artifact, cached by the artifact files' digests."""
    from exporters.cache import cached_dir

    from gate.measure.artifact_stats import GZIP_LEVEL, ZSTD_LEVEL, effective_vs_dense, load_inventory, onnx_sparsity, size_accounting

    for v in variants:
        claimed = (v.entry.get("compression") or {}).get("claimed_sparsity")
        key = sha256_json({"files": [f["sha256"] for f in v.entry["artifact"]["files"]], "claimed": claimed, "zstd": ZSTD_LEVEL,
                           "gzip": GZIP_LEVEL, "optimization": session.graph_optimization, "providers": list(session.providers)})

        def build(out: Path, v=v, claimed=claimed) -> dict:
            log(f"measuring sparsity and size of {v.name}")
            inv = load_inventory(v.onnx_dir)
            return {"sparsity": onnx_sparsity(v.onnx_dir, claimed, inventory=inv),
                    "size": size_accounting(v.onnx_dir, inventory=inv, session=session)}

        _, stats = cached_dir(work_dir, "artifact-stats-v1", key, build, log)
        v.entry["sparsity"] = stats["sparsity"]
        v.entry["size"] = {**stats["size"], "files": [f["path"] for f in v.entry["artifact"]["files"]], "reused": stats["reused"]}
    for v in variants[1:]:
        v.entry["sparsity"]["effective_vs_dense"] = effective_vs_dense(v.entry["sparsity"], variants[0].entry["sparsity"])


def _perplexity(variants: list[_Variant], tokenizer, ppl, session: SessionConfig, log) -> None:
    """Perplexity of every artifact on the same corpus windows (ONNX Runtime); candidates get ``ratio_to_dense``."""
    from gate.measure.perplexity import artifact_perplexity, corpus_token_ids, describe_corpus

    tokens = corpus_token_ids(tokenizer, ppl.corpus_path, ppl.max_tokens)
    corpus = describe_corpus(ppl.corpus_path)
    for v in variants:
        log(f"perplexity of {v.name} on {ppl.corpus_path.name} ({len(tokens[0])} tokens, window {ppl.window_tokens}, stride {ppl.stride_tokens})")
        v.entry["perplexity"] = artifact_perplexity(v.onnx_dir, tokenizer, ppl.corpus_path, ppl.window_tokens, ppl.stride_tokens,
                                                    ppl.max_tokens, session, tokens=tokens, corpus=corpus)
    dense = variants[0].entry["perplexity"]["value"]
    for v in variants[1:]:
        v.entry["perplexity"]["ratio_to_dense"] = v.entry["perplexity"]["value"] / dense


def _load_calibration(opts, specs: list[CandidateSpec], tokenizer, log):
    """The calibration windows, loaded once when some candidate's method needs them (else ``None``)."""
    from exporters.compress import calibration_options, load_calibration

    needing = [s.spec for s in specs if s.needs_calibration]
    if not needing:
        return None
    cal = calibration_options(opts.calibration_file, opts.calibration_windows, opts.calibration_tokens, opts.seed)
    log(f"calibration for {', '.join(needing)}: {cal.n_windows} windows x {cal.window_tokens} tokens from {cal.file}")
    return load_calibration(cal, tokenizer)


def _build_artifact(v: _Variant, opts, source, dense_ckpt: Path, cand_sources, tokenizer, log, calibration=None) -> dict:
    """Compress (if needed), export and verify one variant, then quantize the verified fp32 export when the
    spec asks for ``+int8``/``+int4``. Cached exports and quantized artifacts are reused as they are.

    Args:
        calibration: the ``CalibrationSet`` shared by calibrated methods (wanda, sparsegpt, structured).

    Returns:
        the variant's report entry: ``name``, ``role``, ``compression`` (with ``quantization``),
        ``claims_sparsity``, ``claims``, ``artifact``, ``export``.
    """
    from exporters.artifact import describe_artifact
    from exporters.compress import compress_model, compression_cache_key
    from exporters.model_source import load_causal_lm, materialize_checkpoint
    from exporters.onnx_export import cached_export, export_onnx
    from exporters.verify import verify_export

    work = opts.work_dir
    spec = v.spec
    if v.role == "baseline" or spec.method == "none":  # quantization only: the dense export is quantized
        key = source.digest
        compression: dict = {"method": "none", "pattern": None, "claimed_sparsity": None, "calibration": None}

        def load_model():
            return load_causal_lm(dense_ckpt)[0]
    elif spec.method == "checkpoint":
        cs = cand_sources[spec.spec]
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
        key = compression_cache_key(source.digest, spec, opts.seed, calibration)
        compression = {"method": spec.method, "pattern": spec.pattern_label, "claimed_sparsity": spec.sparsity, "seed": opts.seed}

        def load_model():
            model = load_causal_lm(dense_ckpt)[0]
            log(f"pruning {v.name}")
            compression.update(compress_model(model, spec, seed=opts.seed, calibration=calibration))
            return model

    if v.onnx_dir is not None:
        meta = {"export_s": None, "reused": True, "note": "user-supplied ONNX export"}
        verification = {"passed": None, "note": "user-supplied ONNX export: no PyTorch model to compare with"}
    else:
        model = None
        if cached_export(work, key) is None:
            model = load_model()
            if v.checkpoint is None and v.role != "baseline" and spec.method != "none":
                v.checkpoint = _save_checkpoint(model, tokenizer, work, key, log)

        def checks(onnx_dir: Path) -> dict:
            return {"verification": verify_export(model, tokenizer, onnx_dir), "compression": compression}

        v.onnx_dir, meta = export_onnx(v.checkpoint or dense_ckpt, work, key, log, label=v.name, after_export=checks)
        verification, compression = meta["checks"]["verification"], dict(meta["checks"]["compression"])
        if not verification["passed"]:
            log(f"export check failed for {v.name}: max |Δlogit| {verification['max_abs_logit_diff']:.3g} > {verification['tolerance']:.3g}")
        del model
        gc.collect()
    export = {"seconds": meta.get("export_s"), "reused": meta.get("reused"), "verification": verification}
    compression["quantization"] = None
    if spec is not None and spec.quantization:
        from exporters.quantize import cached_quantize

        fp32_dir = v.onnx_dir
        v.onnx_dir, qmeta = cached_quantize(fp32_dir, work, key, spec.quantization, tokenizer, log)
        compression["quantization"] = qmeta["quantization"]
        export["quantization"] = {"seconds": qmeta["quantization"]["seconds"], "reused": qmeta["reused"], "fp32_artifact": str(fp32_dir)}
    return {
        "name": v.name,
        "role": v.role,
        "compression": compression,
        "claims_sparsity": bool(spec and spec.claims_sparsity),
        "claims": spec.claims if spec is not None and spec.method != "checkpoint" else None,
        "artifact": describe_artifact(v.onnx_dir),
        "export": export,
    }


def _measure(variants: list[_Variant], session: SessionConfig, settings: BenchSettings, report: dict, log,
             run_child=None, device=None) -> None:
    """Latency and memory of every artifact on ONNX Runtime (fresh child processes, interleaved; protocol in gate/measure/harness.py).

    ``run_child`` runs one ``bench_child.py`` request elsewhere (e.g. ``gate.device`` over SSH); None = a local process.
    Noisy phases (CV over ``settings.cv_limit`` after one re-run) are logged; the entries carry ``bench.stability``.
    """
    if device is not None:  # every child on the remote device (gate/device), same protocol
        return measure_on_device(device, variants, session, settings, report, log, _measure)
    log(f"measuring {len(variants)} artifacts on ONNX Runtime ({', '.join(session.providers)}, {session.intra_op_threads} threads)")
    extra = {"run_child": run_child} if run_child is not None else {}
    bench = measure_variants([(v.name, v.onnx_dir / "model.onnx") for v in variants], session, settings, log=log, **extra)
    for v in variants:
        v.entry["bench"] = bench[v.name]
        unstable = sorted({u["phase"] for u in bench[v.name]["stability"]["unstable_runs"]})
        if unstable:
            log(f"warning: {v.name}: latency too noisy (CV > {settings.cv_limit:.0%} after one re-run) in {', '.join(unstable)}; "
                "comparisons on these phases are marked unstable")
    report["environment"]["execution_providers_used"] = sorted({p for v in variants for p in v.entry["bench"]["providers_used"]})


def _placement(variants: list[_Variant], session: SessionConfig, report: dict, log, device=None) -> None:
    """Per-operator execution-provider placement of every artifact (one profiled prefill each, not timed).

    Fills ``report["execution"]["op_placement"][variant]``, ``report["execution"]["providers_used"]`` (the providers
    the sessions actually ran nodes on, priority order) and each variant's ``entry["execution"]``.
    """
    execution = report["execution"]
    log(f"recording operator placement on {', '.join(session.providers)} (one profiled prefill per artifact, not timed)")
    ran_on: set[str] = set()
    for v in variants:
        placement = op_placement(v.onnx_dir / "model.onnx", session) if device is None else device.placement(v.onnx_dir, session)
        execution["op_placement"][v.name] = placement
        ran_on |= set(placement["nodes_per_provider"])
        v.entry["execution"] = {
            **{k: execution[k] for k in ("providers_requested", "providers_available", "fallback", "fallback_reason",
                                         "measured_arch", "target_arch", "on_target")},
            "providers_used": [p for p in placement["session_providers"] if p in placement["nodes_per_provider"]],
            "op_placement": placement,
        }
    execution["providers_used"] = [p for p in session.providers if p in ran_on] + sorted(ran_on - set(session.providers))


def _score_bbq(v: _Variant, suite, tokenizer, session: SessionConfig, opts, log, device=None) -> list[int]:
    """Score the suite on one artifact; predictions are streamed to ``predictions/<variant>.jsonl.partial``
    and renamed when complete. Sets ``v.entry["bbq"]`` and returns the predicted option per item."""
    from gate.runtime.bbq_scoring import score_items

    log(f"scoring {len(suite)} BBQ items on {v.name}")
    pred_dir = opts.out_dir / "predictions"
    pred_dir.mkdir(parents=True, exist_ok=True)
    decoder = OrtDecoder(v.onnx_dir / "model.onnx", session) if device is None else None  # remote: runs on the device
    final = pred_dir / f"{variant_slug(v.name)}.jsonl"
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

        scorer = score_items if device is None else device.scorer(v.onnx_dir, session)
        scores, seconds = scorer(decoder, tokenizer, suite, on_item, mode=opts.scoring_mode,
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
    if device is not None:
        v.entry["bbq"]["scored_on"] = device.device.target.url  # seconds above: the device's own scoring time
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
