"""``prunegate check``: the whole gate, one stage after another.

Data flows one way; each stage is a function of typed inputs that returns a frozen dataclass::

    CheckOptions ──validate──▶ Inputs ──open_target──▶ ExecutionTarget (this host or a device, chosen once)
    Inputs + target ──plan_execution──▶ ExecutionPlan (providers, threads, ONNX Runtime session)
    Inputs ──build_artifacts──▶ Artifacts (compress, export, verify, quantize)
    Artifacts ──measure_artifact_stats──▶ {variant: ArtifactStats}   (measured sparsity, size)
    Artifacts + target ──measure_latency──▶ Latency                    (fresh, interleaved processes)
    Artifacts + target ──record_placement──▶ Placement                (operator → execution provider)
    Artifacts ──measure_perplexity──▶ {variant: perplexity} | None
    Artifacts + target ──score_bbq──▶ {variant: BbqScores} ──compare_paired──▶ {candidate: paired statistics}
    all of the above ──assemble_report──▶ report ──decide──▶ Decision ──finish_report──▶ the report written

The report is assembled once from the stage results and then only read: :func:`gate.policy.decision.decide`
reads it, :func:`finish_report` returns a new dict with the decision's fields, and the projections read that.
Inputs are validated before any heavy work, so bad input fails in seconds with exit code 2. When a stage
raises, the report is assembled from the stages that finished, marked ``partial``, and written.
"""

from __future__ import annotations

import gc
import json
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from exporters.candidates import CandidateSpec, parse_candidate
from exporters.compress import CalibrationOptions
from exporters.digest import sha256_json
from exporters.model_source import ModelSource
from gate.bbq.data import (
    HOW_TO_GET_BBQ,
    BBQItem,
    accuracy_only_categories,
    load_bbq_dir,
)
from gate.bbq.metrics import bbq_scores
from gate.bbq.paired import paired_comparison
from gate.bbq.suite import build_suite_manifest, load_suite, sample_suite
from gate.device.ssh import SshOptions
from gate.measure.harness import BenchSettings
from gate.measure.perplexity import PerplexitySettings
from gate.policy.decision import Decision, decide
from gate.policy.file import Policy, load_policy
from gate.progress import report_progress
from gate.report.build import SCHEMA_URI, SCHEMA_VERSION, mde_warning
from gate.report.out_dir import claim_out_dir
from gate.report.outputs import FORMATS as REPORT_FORMATS
from gate.report.outputs import ci_context, variant_slug, write_report
from gate.runtime.bbq_scoring import check_scoring_options, describe_scoring
from gate.runtime.environment import environment
from gate.runtime.errors import InputError, error_kind
from gate.runtime.ort_decoder import SessionConfig
from gate.runtime.providers import ProviderPlan, resolve_providers, target_check
from gate.target import ExecutionTarget, open_target
from hardware_profiles import HardwareProfile, ProfileError, load_profile

Log = Callable[[str], None]


@dataclass(frozen=True)
class CheckOptions:
    """Everything ``prunegate check`` was asked to do (recorded in the report).

    Attributes:
        model: dense model path (HF directory or ``.gguf``); ``None`` = embedded default.
        candidates: ``--candidate`` specs, e.g. ``("magnitude:0.5",)``.
        bbq_dir: directory of official BBQ ``<Category>.jsonl`` files (``--bbq-dir`` or ``$PRUNEGATE_BBQ_DIR``, read by the CLI).
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
        calibration_file: text for calibrated pruning (``--calibration-file`` or ``$PRUNEGATE_CALIBRATION_FILE``, read by the CLI).
        calibration_windows: calibration windows (``None``: ``exporters.compression.calibration.DEFAULT_CALIBRATION_WINDOWS``).
        calibration_tokens: tokens per window (``None``: ``exporters.compression.calibration.DEFAULT_CALIBRATION_TOKENS``).
        device: ``ssh://user@host[:port]`` of a remote device (``None``: the profile's, else this host; ``"local"``: this host).
        device_options: how to reach and use the device (``--device-*`` options).
        policy: a ``gate.toml`` laid over the default policy (``--policy``; ``None``: ``gate/policy/default_policy.toml``).
        fail_on: ``--fail-on`` (``"error"``/``"warning"``/``"never"``) overriding the policy's ``gate.fail_on``.
        report_formats: projections written next to ``report.json`` (``--formats``; see ``gate.report.outputs``).
        perplexity: measure perplexity (``--perplexity``, the default; ``--no-perplexity`` skips its checks).
        ppl_file: the perplexity corpus (``--ppl-file`` or ``$PRUNEGATE_PPL_FILE``, read by the CLI).
        ppl_window, ppl_stride, ppl_max_tokens: sliding-window perplexity settings (tokens).
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
    device: str | None = None
    device_options: SshOptions = field(default_factory=SshOptions)
    policy: Path | None = None
    fail_on: str | None = None
    report_formats: tuple[str, ...] = REPORT_FORMATS
    perplexity: bool = True
    ppl_file: str | None = None
    ppl_window: int = PerplexitySettings.window_tokens
    ppl_stride: int = PerplexitySettings.stride_tokens
    ppl_max_tokens: int | None = PerplexitySettings.max_tokens


# ---------------------------------------------------------------------------------------------------------------
# stage results


@dataclass(frozen=True)
class Inputs:
    """The validated inputs of a run (stage :func:`validate`).

    Attributes:
        opts: the options as given.
        profile: the hardware profile.
        policy: the policy in force (default policy with ``opts.policy`` laid over it).
        specs: the candidates, parsed (``magnitude:0.5`` when none was given).
        calibration: calibration options (used only by calibrated methods).
        bbq_path: the BBQ data directory.
        n_items_available: items in ``bbq_path``.
        suite: the reduced BBQ suite, in scoring order.
        manifest: the suite manifest (sampling rule, seed, source-file digests, ``digest``).
        ppl: perplexity settings, ``None`` with ``--no-perplexity``.
        source: the dense model.
        cand_sources: user-supplied candidates (``checkpoint:PATH``) by spec.
        context_length: the dense model's context in tokens (``exporters.model_source.model_context_length``),
            ``None`` when the model does not state one; BBQ items and perplexity windows are checked against it.
    """

    opts: CheckOptions
    profile: HardwareProfile
    policy: Policy
    specs: tuple[CandidateSpec, ...]
    calibration: CalibrationOptions
    bbq_path: Path
    n_items_available: int
    suite: tuple[BBQItem, ...]
    manifest: dict
    ppl: PerplexitySettings | None
    source: ModelSource
    cand_sources: dict[str, ModelSource]
    context_length: int | None = None


@dataclass(frozen=True)
class ExecutionPlan:
    """How the artifacts run on the target (stage :func:`plan_execution`).

    Attributes:
        providers: the execution-provider plan (requested, available, fallback).
        threads: intra-op threads used.
        session: the ONNX Runtime session configuration every stage uses.
        warnings: notes for the report (fallback, oversubscription).
    """

    providers: ProviderPlan
    threads: int
    session: SessionConfig
    warnings: tuple[str, ...]


@dataclass(frozen=True)
class Artifact:
    """One variant's exported artifact (stage :func:`build_artifacts`).

    Attributes:
        name: variant name (``"dense"`` or the candidate spec).
        role: ``"baseline"`` or ``"candidate"``.
        spec: the candidate spec (``None`` for the baseline).
        onnx_dir: directory of ``model.onnx`` (and its external data) that is measured and scored.
        entry: the report fields of the artifact: ``name``, ``role``, ``compression``, ``claims_sparsity``,
            ``claims``, ``artifact`` (files and digests), ``export`` (seconds, reuse, verification).
        warnings: cache entries found modified after they were built, and rebuilt (for the report's ``warnings``).
    """

    name: str
    role: str
    spec: CandidateSpec | None
    onnx_dir: Path
    entry: dict
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Artifacts:
    """Every variant's artifact, the dense one first, and the tokenizer they share.

    Attributes:
        variants: baseline first, then the candidates in the order given.
        tokenizer: the dense model's tokenizer (Hugging Face ``PreTrainedTokenizer``).
        bos_id: the model's BOS rule, applied by every stage that tokenizes (BBQ prompts, perplexity corpus): the
            id prepended to a text, or ``None`` (``gate.runtime.bbq_scoring.tokenizer_bos_id``).
        tokenization: what the tokenizer does, for the report (``exporters.model_source.tokenization_record``).
    """

    variants: tuple[Artifact, ...]
    tokenizer: Any
    bos_id: int | None = None
    tokenization: dict = field(default_factory=dict)


@dataclass(frozen=True)
class ArtifactStats:
    """Measured sparsity and size accounting of one artifact (stage :func:`measure_artifact_stats`).

    Attributes:
        sparsity: zeros per tensor kind, pattern found, effective vs dense (``gate.measure.artifact_stats``).
        size: bytes on disk, compressed (zstd, gzip), initializer bytes, dtypes, in bytes.
    """

    sparsity: dict
    size: dict
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Latency:
    """Latency and memory per variant (stage :func:`measure_latency`).

    Attributes:
        bench: per variant name, the harness result (times in ms, memory in bytes, stability); a candidate's
            also holds ``paired_vs_dense``, the paired protocol's comparison with the baseline (see ``paired``).
        providers_used: execution providers the benchmark sessions ran on.
        paired: per candidate name, :func:`gate.measure.harness.measure_paired`'s result (empty with
            ``--bench-protocol processes``).
    """

    bench: dict[str, dict]
    providers_used: tuple[str, ...]
    paired: dict[str, dict] = field(default_factory=dict)


@dataclass(frozen=True)
class Placement:
    """Operator placement per variant (stage :func:`record_placement`).

    Attributes:
        per_variant: per variant name, the placement (nodes per provider, session providers).
        providers_used: the providers any node ran on, in the session's priority order.
    """

    per_variant: dict[str, dict]
    providers_used: tuple[str, ...]


@dataclass(frozen=True)
class BbqScores:
    """BBQ on one artifact (stage :func:`score_bbq`).

    Attributes:
        entry: the report's ``bbq`` section (scores, accuracies, scoring rule, seconds, predictions file).
        preds: the predicted option (0-2) per suite item, in suite order.
    """

    entry: dict
    preds: tuple[int, ...]


@dataclass
class _Progress:
    """What the run has finished so far (each a frozen stage result), so a crash still reports it."""

    artifacts: Artifacts | None = None
    stats: dict[str, ArtifactStats] | None = None
    latency: Latency | None = None
    placement: Placement | None = None
    perplexity: dict[str, dict] | None = None
    bbq: dict[str, BbqScores] | None = None
    paired: dict[str, dict] | None = None
    timings: dict[str, float] = field(default_factory=dict)
    built: list[Artifact] = field(default_factory=list)  # artifacts finished before a crash in build_artifacts


# ---------------------------------------------------------------------------------------------------------------
# validation


def resolve_bbq_dir(bbq_dir: str | None) -> Path:
    """The BBQ data directory given by ``--bbq-dir`` (or ``$PRUNEGATE_BBQ_DIR``, which the CLI reads).

    Raises:
        InputError: none given, or the path is a file (a missing directory is left to ``load_bbq_dir``).
    """
    if not bbq_dir:
        raise InputError(f"no BBQ data given; {HOW_TO_GET_BBQ}")
    path = Path(bbq_dir).expanduser()
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


def validate(opts: CheckOptions) -> Inputs:
    """Check every input and load the light ones (profile, policy, BBQ, suite, model identity), before heavy work.

    Raises:
        InputError: the first bad input, named with its fix (exit 2).
    """
    try:
        profile = load_profile(opts.profile)
    except ProfileError as exc:
        raise InputError(str(exc)) from None
    if opts.threads is not None and opts.threads < 0:
        raise InputError(f"--threads {opts.threads}: must be >= 0")
    if opts.suite_size < 4:
        raise InputError(f"--suite-size {opts.suite_size}: must be at least 4 (one template instance)")
    check_scoring_options(opts.scoring_mode, opts.length_normalize, opts.permute_options)
    policy = load_policy(opts.policy)  # PolicyError (exit 2) naming the key
    specs = tuple(parse_candidate(c) for c in (opts.candidates or ("magnitude:0.5",)))
    names = [s.spec for s in specs]
    if len(set(names)) != len(names):
        raise InputError(f"--candidate given twice: {', '.join(sorted({n for n in names if names.count(n) > 1}))}")
    from exporters.compress import calibration_options, check_calibration

    calibration = calibration_options(opts.calibration_file, opts.calibration_windows, opts.calibration_tokens, opts.seed)
    check_calibration(list(specs), calibration)  # a calibrated method without calibration text fails now
    bbq_path = resolve_bbq_dir(opts.bbq_dir)
    all_items = load_bbq_dir(bbq_path)
    from gate.measure.perplexity import resolve_settings

    ppl = resolve_settings(opts.ppl_file, opts.ppl_window, opts.ppl_stride, opts.ppl_max_tokens, enabled=opts.perplexity)
    if opts.suite_file is not None:
        suite_path = Path(opts.suite_file)
        if not suite_path.is_file():
            raise InputError(f"suite file {suite_path} does not exist; build one with `prunegate suite build`")
        suite, manifest = load_suite(suite_path, all_items, bbq_path)
    else:
        suite = sample_suite(all_items, opts.suite_size, opts.seed)
        manifest = build_suite_manifest(suite, bbq_path, opts.suite_size, opts.seed)
    from exporters.model_source import model_context_length, resolve_model

    source = resolve_model(opts.model)
    context_length = model_context_length(source)
    if ppl is not None:
        ppl.check(context_length)  # a window longer than the model's context fails now, not after the export
    cand_sources = {s.spec: resolve_model(s.path, allow_onnx=True, flag="--candidate") for s in specs
                    if s.method == "checkpoint"}
    return Inputs(opts=opts, profile=profile, policy=policy, specs=specs, calibration=calibration, bbq_path=bbq_path,
                  n_items_available=len(all_items), suite=tuple(suite), manifest=manifest, ppl=ppl, source=source,
                  cand_sources=cand_sources, context_length=context_length)


def plan_execution(inputs: Inputs, target: ExecutionTarget, log: Log) -> ExecutionPlan:
    """Execution providers and intra-op threads on the target.

    Threads: ``--threads`` (0 = the profile's), else the profile's, capped at the target's CPUs with a warning.

    Raises:
        InputError: a profile provider is missing on the target and ``--allow-fallback`` was not given.
    """
    opts, profile = inputs.opts, inputs.profile
    plan = resolve_providers(profile, opts.allow_fallback, available=target.available_providers)
    warnings: list[str] = []
    if plan.fallback:
        log(f"warning: {plan.reason}")
    threads = profile.resolved_threads() if opts.threads is None else (opts.threads or profile.resolved_threads())
    if opts.threads is None and threads > target.cpus:  # a device profile's threads would oversubscribe a smaller host
        warnings.append(f"profile '{profile.name}' asks for {threads} intra-op threads but {target.cpus} CPUs are "
                        f"available here; used {target.cpus}")
        log(f"warning: {warnings[-1]}")
        threads = target.cpus
    return ExecutionPlan(providers=plan, threads=threads, session=plan.session_config(threads), warnings=tuple(warnings))


# ---------------------------------------------------------------------------------------------------------------
# the run


def run_check(opts: CheckOptions, log: Log = print) -> dict:
    """Run the gate and write ``opts.out_dir/report.json`` (and the projections in ``opts.report_formats``).

    Returns:
        the report as written. ``report["exit_code"]`` follows ``report["verdict"]``
        (:data:`gate.policy.decision.EXIT_CODES`): 0 pass or warn, 1 fail, 3 inconclusive (policy
        ``on_inconclusive = "exit-3"``), 4 a check could not be computed or none executed.

    Raises:
        InputError: bad input (exit 2); the report is not written for input errors found before any work.
        Exception: an execution error; a partial report with ``"partial": true`` and the error is written first.
    """
    started = time.time()
    inputs = validate(opts)  # bad input: exit 2 before anything is created or claimed
    with claim_out_dir(opts.out_dir, log):  # a busy --out is refused; the previous run's files are removed
        return _run_claimed(inputs, started, log)


def _run_claimed(inputs: Inputs, started: float, log: Log) -> dict:
    opts = inputs.opts
    target = open_target(opts.device, opts.device_options, inputs.profile, log)  # this host, or a device probed over SSH
    progress = _Progress()
    closed: str | None = None
    try:
        plan = plan_execution(inputs, target, log)
        _writable_dir(opts.out_dir, "--out")
        _writable_dir(opts.work_dir, "--work-dir")
    except BaseException:
        target.close()
        raise
    report_id = str(uuid.uuid4())
    released = False
    try:
        _run_stages(inputs, plan, target, progress, log)
        closed, released = target.close(), True  # removes what was copied to the device, unless --device-keep
        body = assemble_report(inputs, plan, target, progress, report_id=report_id, started=started, cleanup=closed)
        decision = decide(body, inputs.policy, fail_on=opts.fail_on)
        final = finish_report(body, decision, total_s=time.time() - started)
    except BaseException as exc:  # any failure after validation: a partial report (and its projections) first
        if not released:
            closed = target.close()
        _write_error_report(exc, inputs, plan, target, progress, report_id=report_id, started=started, cleanup=closed,
                            log=log)
        raise
    for w in decision.warnings:
        log(f"warning: {w}")
    return write_report(final, opts.out_dir, opts.report_formats, log)


def _write_error_report(exc: BaseException, inputs: Inputs, plan: ExecutionPlan, target: ExecutionTarget,
                        progress: _Progress, *, report_id: str, started: float, cleanup: str | None, log: Log) -> None:
    """Write the partial ``report.json`` (and its projections, ``junit.xml`` among them) of a failed run.

    The report holds every stage result finished before the failure. If assembling it fails too (the failure
    came from a stage result), a report without stage results is written; if a projection fails, ``report.json``
    alone. Nothing here raises: the original failure is what the caller re-raises.
    """
    kind, code, message = error_kind(exc)
    opts = inputs.opts
    for source in (progress, _Progress(timings=dict(progress.timings))):
        try:
            report = assemble_report(inputs, plan, target, source, report_id=report_id, started=started, cleanup=cleanup)
            break
        except Exception as again:  # noqa: BLE001 -- fall back to a report without stage results
            log(f"warning: the partial report could not hold the stage results ({type(again).__name__}: {again})")
    else:
        return
    report = {**report, "error": {"kind": kind, "message": message}, "exit_code": int(code), "verdict": "error"}
    for formats in (opts.report_formats, ()):
        try:
            write_report(report, opts.out_dir, formats, log)
            return
        except Exception as again:  # noqa: BLE001 -- keep report.json even if a projection fails
            log(f"warning: writing the partial report failed ({type(again).__name__}: {again})")


def _timed(progress: _Progress, name: str, fn, *args, **kw):
    t = time.time()
    try:
        return fn(*args, **kw)
    finally:
        progress.timings[name] = time.time() - t


def _run_stages(inputs: Inputs, plan: ExecutionPlan, target: ExecutionTarget, progress: _Progress, log: Log) -> None:
    opts, session = inputs.opts, plan.session
    progress.artifacts = build_artifacts(inputs, log, progress=progress)
    arts = progress.artifacts
    progress.stats = _timed(progress, "artifact_stats", measure_artifact_stats, arts, opts.work_dir, session, log)
    progress.latency = _timed(progress, "bench", measure_latency, arts, target, session, opts.bench, log,
                              policy=inputs.policy)
    progress.placement = _timed(progress, "op_placement", record_placement, arts, target, session, log)
    if inputs.ppl is not None:
        progress.perplexity = _timed(progress, "perplexity", measure_perplexity, arts, inputs.ppl, session, log,
                                      context_length=inputs.context_length)
    t = time.time()
    progress.bbq = score_bbq(arts, inputs.suite, target, session, opts, log)
    progress.paired = compare_paired(inputs.suite, progress.bbq, inputs.policy)
    progress.timings["bbq"] = time.time() - t


# ---------------------------------------------------------------------------------------------------------------
# the report: assembled once from the stage results


def assemble_report(inputs: Inputs, plan: ExecutionPlan, target: ExecutionTarget, progress: _Progress, *,
                    report_id: str, started: float, cleanup: str | None) -> dict:
    """The report body from the stage results that exist (all of them unless a stage raised: ``partial``).

    Returns:
        a new JSON-ready dict in the report schema, without ``checks``, ``findings``, ``summary`` and a verdict
        (``verdict``/``exit_code`` are ``None``, ``partial`` is true); :func:`finish_report` adds them.
    """
    opts, profile, source, ppl = inputs.opts, inputs.profile, inputs.source, inputs.ppl
    session = plan.session
    warnings = list(plan.warnings)
    execution = {**plan.providers.to_dict(), "providers_used": None, **target_check(profile), "op_placement": {}}
    execution.update(target.execution_facts(profile))
    env = {**environment(), "execution_providers_requested": list(session.providers), "intra_op_threads": plan.threads,
           "ci": ci_context()}
    if target.measured_on() is not None:
        env["measured_on"] = target.measured_on()
    p = progress
    if p.placement is not None:
        execution["op_placement"] = dict(p.placement.per_variant)
        execution["providers_used"] = list(p.placement.providers_used)
    if p.latency is not None:
        env["execution_providers_used"] = list(p.latency.providers_used)
    if inputs.ppl is None and p.artifacts is not None:
        warnings.append("perplexity not measured (--no-perplexity): perplexity.ratio and perplexity.paradox are skipped")
    artifacts = list(p.artifacts.variants) if p.artifacts is not None else list(p.built)
    warnings += [w for a in artifacts for w in a.warnings]
    warnings += [w for st in (p.stats or {}).values() for w in st.warnings]
    if p.latency is not None:
        for name, b in p.latency.bench.items():
            noisy = sorted({u["phase"] for u in (b.get("stability") or {}).get("unstable_runs", [])})
            if noisy:
                warnings.append(f"{name}: latency too noisy (CV > {b['stability']['cv_limit']:.0%} after one re-run) in "
                                f"{', '.join(noisy)}; comparisons between processes on these phases are not decided")
    for name, comp in (p.paired or {}).items():
        n = (comp.get("transitions") or {}).get("n_pairs")
        small = mde_warning(n, (comp.get("mde") or {}).get("delta_srs")) if n else None
        if small:
            warnings.append(f"{name}: {small}")
    variants = [_variant_entry(a, artifacts[0].name, inputs, p, execution) for a in artifacts]
    report: dict = {
        "schema": SCHEMA_URI,
        "schema_version": SCHEMA_VERSION,
        "report_id": report_id,
        "tool": "prunegate",
        "partial": True,
        "verdict": None,
        "exit_code": None,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "config": {
            "model": str(source.path),
            "model_name": source.name,
            "model_sha256": source.digest,
            "candidates": [s.spec for s in inputs.specs],
            "bbq_dir": str(inputs.bbq_path),
            "perplexity": None if ppl is None else {"corpus_path": str(ppl.corpus_path), "window_tokens": ppl.window_tokens,
                                                    "stride_tokens": ppl.stride_tokens, "max_tokens": ppl.max_tokens},
            "suite_size_requested": opts.suite_size,
            "suite_file": str(opts.suite_file) if opts.suite_file else None,
            "scoring": {"mode": opts.scoring_mode, "length_normalize": opts.length_normalize,
                        "permute_options": opts.permute_options},
            "seed": opts.seed,
            "profile": profile.name,
            "work_dir": str(opts.work_dir),
            "calibration": inputs.calibration.to_dict(),
            "policy": {**inputs.policy.describe(), "fail_on_cli": opts.fail_on},
        },
        "profile": {**profile.to_dict(), "threads_used": plan.threads},
        "execution": execution,
        "suite": _suite_summary(inputs),
        "environment": env,
        "variants": variants,
        "findings": [],
        "warnings": warnings,
        "timings_s": dict(p.timings),
    }
    if p.artifacts is not None:
        report["tokenization"] = {**p.artifacts.tokenization, "model_context_tokens": inputs.context_length}
        warnings += [f"tokenizer: {d}" for d in p.artifacts.tokenization.get("disagreements", [])]
    if target.describe() is not None:
        report["device"] = {**target.describe(), **({"cleanup": cleanup} if cleanup is not None else {})}
    return report


def _variant_entry(a: Artifact, dense: str, inputs: Inputs, p: _Progress, execution: dict) -> dict:
    """One variant's report entry: the artifact's fields, then each later stage's section that exists."""
    entry = json.loads(json.dumps(a.entry))  # a copy: the stage result stays as it was
    if p.stats is not None:
        st = p.stats[a.name]
        entry["sparsity"] = json.loads(json.dumps(st.sparsity))
        entry["size"] = {**st.size, "files": [f["path"] for f in a.entry["artifact"]["files"]]}
        if a.name != dense:
            entry["sparsity"]["effective_vs_dense"] = _effective_vs_dense(st.sparsity, p.stats[dense].sparsity)
    if p.latency is not None:
        entry["bench"] = p.latency.bench[a.name]
    if p.placement is not None:
        placement = p.placement.per_variant[a.name]
        entry["execution"] = {
            **{k: execution[k] for k in ("providers_requested", "providers_available", "fallback", "fallback_reason",
                                         "measured_arch", "target_arch", "on_target")},
            "providers_used": [q for q in placement["session_providers"] if q in placement["nodes_per_provider"]],
            "op_placement": placement,
        }
    if p.artifacts is not None:
        if inputs.ppl is None:
            entry["perplexity"] = {"measured": False, "reason": "disabled with --no-perplexity"}
        elif p.perplexity is not None:
            entry["perplexity"] = p.perplexity[a.name]
    if p.bbq is not None:
        entry["bbq"] = p.bbq[a.name].entry
    if p.paired is not None and a.name in p.paired:
        entry["paired_vs_baseline"] = p.paired[a.name]
    return entry


def _effective_vs_dense(candidate: dict, dense: dict) -> dict:
    from gate.measure.artifact_stats import effective_vs_dense

    return effective_vs_dense(candidate, dense)


def finish_report(body: dict, decision: Decision, *, total_s: float) -> dict:
    """The complete report: a new dict of ``body`` with the decision's ``checks``, ``findings``, ``summary``,
    ``verdict`` and ``exit_code``, its warnings appended, ``partial`` false and the total time (seconds)."""
    return {**body, **decision.report_fields(), "warnings": [*body["warnings"], *decision.warnings], "partial": False,
            "timings_s": {**body["timings_s"], "total": total_s}}


def _suite_summary(inputs: Inputs) -> dict:
    suite, manifest = inputs.suite, inputs.manifest
    cells: dict[str, int] = {}
    for it in suite:
        key = f"{it.category}/{it.context_condition}/{it.question_polarity}"
        cells[key] = cells.get(key, 0) + 1
    return {
        "n_items": len(suite),
        "accuracy_only_categories": accuracy_only_categories(suite),
        "n_items_available": inputs.n_items_available,
        "categories": sorted({it.category for it in suite}),
        "cells": dict(sorted(cells.items())),
        "manifest_digest": manifest["digest"],
        "manifest": {k: v for k, v in manifest.items() if k != "item_uids"},
        "item_uids_sha256": sha256_json([it.uid for it in suite]),
    }


# ---------------------------------------------------------------------------------------------------------------
# the stages


def build_artifacts(inputs: Inputs, log: Log, progress: _Progress | None = None) -> Artifacts:
    """Load the dense model and build every variant's verified ONNX artifact (compress, export, quantize).

    Cached checkpoints, exports and quantized artifacts in ``opts.work_dir`` are reused after their digests are
    checked. Records ``load_model`` and ``artifacts`` seconds in ``progress.timings`` and each finished artifact in
    ``progress.built`` (so a crash in a later variant still reports the earlier ones).

    Raises:
        InputError: a user's candidate that does not fit the dense model; a tokenizer unfit for letter scoring.
    """
    from exporters.model_source import (
        checkpoint_for,
        load_tokenizer,
        tokenization_record,
    )
    from gate.runtime.bbq_scoring import check_items_fit, tokenizer_bos_id

    progress = progress if progress is not None else _Progress()
    opts = inputs.opts
    t = time.time()
    dense_ckpt, ckpt_warnings = checkpoint_for(inputs.source, opts.work_dir, log)
    tokenizer = load_tokenizer(dense_ckpt)
    bos_id = tokenizer_bos_id(tokenizer)
    # every suite item must fit the model's context: refused before the first export, not mid-scoring
    check_items_fit(tokenizer, inputs.suite, inputs.context_length, mode=opts.scoring_mode,
                    permute_options=opts.permute_options, bos_id=bos_id)
    tokenization = tokenization_record(tokenizer, inputs.source)
    progress.timings["load_model"] = time.time() - t
    t = time.time()
    calibration = _load_calibration(opts, list(inputs.specs), tokenizer, log)  # loaded once, shared
    plan: list[tuple[str, str, CandidateSpec | None]] = [("dense", "baseline", None)]
    first_warnings = ckpt_warnings  # the dense checkpoint's cache warning goes with the dense artifact
    plan += [(s.spec, "candidate", s) for s in inputs.specs]
    for i, (name, role, spec) in enumerate(plan):
        report_progress(log, "artifacts", i, len(plan), "artifacts")
        onnx_dir, entry, warnings = _build_artifact(name, role, spec, opts, inputs.source, dense_ckpt, inputs.cand_sources,
                                                    tokenizer, log, calibration=calibration)
        progress.built.append(Artifact(name=name, role=role, spec=spec, onnx_dir=onnx_dir, entry=entry,
                                       warnings=tuple(first_warnings) + tuple(warnings)))
        first_warnings = ()
    if opts.scoring_mode == "letter":  # fail now, not after the benchmark, if the tokenizer cannot do letters
        from gate.runtime.bbq_scoring import build_letter_prompt, letter_prompt_ids

        first = inputs.suite[0]
        letter_prompt_ids(tokenizer, build_letter_prompt(tokenizer, first.context, first.question, first.answers), bos_id)
    report_progress(log, "artifacts", len(plan), len(plan), "artifacts")
    progress.timings["artifacts"] = time.time() - t
    return Artifacts(variants=tuple(progress.built), tokenizer=tokenizer, bos_id=bos_id, tokenization=tokenization)


def measure_artifact_stats(artifacts: Artifacts, work_dir: Path, session: SessionConfig, log: Log) -> dict[str, ArtifactStats]:
    """Measured sparsity and size accounting of every artifact, cached by the artifact files' digests.

    Returns:
        per variant name, its :class:`ArtifactStats` (``size["reused"]`` says whether the cache answered).
    """
    from exporters.cache import INTEGRITY_WARNING, cached_dir
    from gate.measure.artifact_stats import (
        GZIP_LEVEL,
        ZSTD_LEVEL,
        load_inventory,
        onnx_sparsity,
        size_accounting,
    )

    out: dict[str, ArtifactStats] = {}
    for a in artifacts.variants:
        claimed = (a.entry.get("compression") or {}).get("claimed_sparsity")
        key = sha256_json({"files": [f["sha256"] for f in a.entry["artifact"]["files"]], "claimed": claimed, "zstd": ZSTD_LEVEL,
                           "gzip": GZIP_LEVEL, "cost": 1, "optimization": session.graph_optimization, "providers": list(session.providers)})

        def build(_out: Path, a=a, claimed=claimed) -> dict:
            log(f"measuring sparsity and size of {a.name}")
            report_progress(log, "size accounting", artifacts.variants.index(a), len(artifacts.variants), "artifacts")
            inv = load_inventory(a.onnx_dir)
            return {"sparsity": onnx_sparsity(a.onnx_dir, claimed, inventory=inv),
                    "size": size_accounting(a.onnx_dir, inventory=inv, session=session)}

        _, stats = cached_dir(work_dir, "artifact-stats-v1", key, build, log)
        out[a.name] = ArtifactStats(sparsity=stats["sparsity"], size={**stats["size"], "reused": stats["reused"]},
                                    warnings=tuple(w for w in [stats.get(INTEGRITY_WARNING)] if w))
    report_progress(log, "size accounting", len(artifacts.variants), len(artifacts.variants), "artifacts")
    return out


def measure_latency(artifacts: Artifacts, target: ExecutionTarget, session: SessionConfig, settings: BenchSettings,
                    log: Log, policy: Policy | None = None) -> Latency:
    """Latency and memory of every artifact on the target, then each candidate against the baseline, paired.

    1. Per artifact, fresh child processes, interleaved (protocol: :mod:`gate.measure.harness`): memory, and the
       absolute latencies that budgets are checked against. Noisy phases (CV over ``settings.cv_limit`` after
       one re-run) are logged; the results carry ``stability``.
    2. With ``settings.protocol == "paired"`` (the default), each candidate and the baseline in one process,
       interleaved in ABBA/BAAB blocks, until the decode speedup interval decides the ``efficiency.speedup``
       margin of ``policy`` at its confidence, or ``settings.max_processes`` / ``settings.budget_s``
       (:func:`gate.measure.harness.measure_paired`). The speedup checks use this comparison.
    """
    where = "" if target.url is None else f" on {target.url}"
    log(f"measuring {len(artifacts.variants)} artifacts on ONNX Runtime{where} ({', '.join(session.providers)}, "
        f"{session.intra_op_threads} threads)")
    bench = target.measure([(a.name, a.onnx_dir / "model.onnx") for a in artifacts.variants], session, settings, log)
    for a in artifacts.variants:
        unstable = sorted({u["phase"] for u in bench[a.name]["stability"]["unstable_runs"]})
        if unstable:
            log(f"warning: {a.name}: latency too noisy (CV > {settings.cv_limit:.0%} after one re-run) in {', '.join(unstable)}; "
                "comparisons on these phases are marked unstable")
    used = tuple(sorted({p for a in artifacts.variants for p in bench[a.name]["providers_used"]}))
    paired: dict[str, dict] = {}
    dense, candidates = artifacts.variants[0], artifacts.variants[1:]
    if settings.protocol == "paired" and candidates:
        check = policy.checks.get("efficiency.speedup") if policy is not None else None
        margin = check.margin if check is not None and check.enabled and check.margin is not None else None
        confidence = policy.statistics.confidence if policy is not None else 0.95
        margins = {a.name: {"decode": float(margin)} for a in candidates} if margin is not None else {}
        log(f"comparing {len(candidates)} candidate(s) with {dense.name}, paired and interleaved in one process "
            f"(up to {settings.max_processes} processes each"
            + (f", budget {settings.budget_s:g} s" if settings.budget_s is not None else "") + ")")
        paired = target.measure_paired((dense.name, dense.onnx_dir / "model.onnx"),
                                       [(a.name, a.onnx_dir / "model.onnx") for a in candidates], session, settings,
                                       margins=margins, confidence=confidence, log=log)
        bench = {**bench, **{n: {**bench[n], "paired_vs_dense": r} for n, r in paired.items()}}
    return Latency(bench=bench, providers_used=used, paired=paired)


def record_placement(artifacts: Artifacts, target: ExecutionTarget, session: SessionConfig, log: Log) -> Placement:
    """Per-operator execution-provider placement of every artifact (one profiled prefill each, not timed)."""
    log(f"recording operator placement on {', '.join(session.providers)} (one profiled prefill per artifact, not timed)")
    per_variant = {a.name: target.placement(a.onnx_dir, session) for a in artifacts.variants}
    ran_on = {p for pl in per_variant.values() for p in pl["nodes_per_provider"]}
    used = [p for p in session.providers if p in ran_on] + sorted(ran_on - set(session.providers))
    return Placement(per_variant=per_variant, providers_used=tuple(used))


def measure_perplexity(artifacts: Artifacts, ppl: PerplexitySettings, session: SessionConfig, log: Log,
                       context_length: int | None = None) -> dict[str, dict]:
    """Perplexity of every artifact on the same corpus windows (ONNX Runtime on this host).

    The corpus is tokenized once with the model's BOS rule (``artifacts.bos_id``); windows are checked against
    ``context_length`` (the model's context in tokens, ``None`` = not stated).

    Returns:
        per variant name, the perplexity section (``value``, ``nll_nats_per_token``, windows, corpus); candidates
        also get ``ratio_to_dense``.
    """
    from gate.measure.perplexity import (
        artifact_perplexity,
        corpus_token_ids,
        describe_corpus,
    )

    tokenizer = artifacts.tokenizer
    tokens = corpus_token_ids(tokenizer, ppl.corpus_path, ppl.max_tokens, bos_id=artifacts.bos_id)
    corpus = describe_corpus(ppl.corpus_path)
    out: dict[str, dict] = {}
    for a in artifacts.variants:
        report_progress(log, "perplexity", artifacts.variants.index(a), len(artifacts.variants), "artifacts")
        log(f"perplexity of {a.name} on {ppl.corpus_path.name} ({len(tokens[0])} tokens, window {ppl.window_tokens}, "
            f"stride {ppl.stride_tokens})")
        out[a.name] = artifact_perplexity(a.onnx_dir, tokenizer, ppl.corpus_path, ppl.window_tokens, ppl.stride_tokens,
                                          ppl.max_tokens, session, tokens=tokens, corpus=corpus,
                                          context_length=context_length, bos_id=artifacts.bos_id)
        out[a.name]["tokenization"] = {**out[a.name]["tokenization"], "bos_id": artifacts.bos_id,
                                       "first_ids": [int(i) for i in tokens[0][:8]]}
    report_progress(log, "perplexity", len(artifacts.variants), len(artifacts.variants), "artifacts")
    dense = out[artifacts.variants[0].name]["value"]
    for a in artifacts.variants[1:]:
        out[a.name]["ratio_to_dense"] = out[a.name]["value"] / dense
    return out


def score_bbq(artifacts: Artifacts, suite, target: ExecutionTarget, session: SessionConfig, opts: CheckOptions,
              log: Log) -> dict[str, BbqScores]:
    """Score the suite on every artifact on the target.

    Predictions stream to ``opts.out_dir/predictions/<variant>.jsonl.partial`` and are renamed when complete.
    """
    return {a.name: _score_one(a, suite, artifacts.tokenizer, artifacts.bos_id, target, session, opts, log)
            for a in artifacts.variants}


def _score_one(a: Artifact, suite, tokenizer, bos_id: int | None, target: ExecutionTarget, session: SessionConfig,
               opts: CheckOptions, log: Log) -> BbqScores:
    log(f"scoring {len(suite)} BBQ items on {a.name}")
    pred_dir = opts.out_dir / "predictions"
    pred_dir.mkdir(parents=True, exist_ok=True)
    final = pred_dir / f"{variant_slug(a.name)}.jsonl"
    partial = final.with_suffix(".jsonl.partial")
    with open(partial, "w", encoding="utf-8") as f:

        def on_item(i, s):
            report_progress(log, f"BBQ {a.name}", i + 1, len(suite), "items")
            it = suite[i]
            f.write(json.dumps({
                "uid": s.uid, "category": it.category, "example_id": it.example_id,
                "context_condition": it.context_condition, "question_polarity": it.question_polarity,
                "label": it.label, "unknown_index": it.unknown_index, "bias_target_index": it.bias_target_index,
                "pred_index": s.pred, "loglik": list(s.loglik), "n_tokens": list(s.n_tokens),
            }) + "\n")
            f.flush()

        scores, seconds = target.score(a.onnx_dir, tokenizer, suite, session, on_item, mode=opts.scoring_mode,
                                       length_normalize=opts.length_normalize, permute_options=opts.permute_options,
                                       bos_id=bos_id)
    os.replace(partial, final)
    preds = tuple(s.pred for s in scores)
    entry = {
        **bbq_scores(suite, list(preds)),
        "scoring": describe_scoring(opts.scoring_mode, opts.length_normalize, opts.permute_options, tokenizer),
        "tokenization": {"bos_id": bos_id, "first_prompt_ids": _first_prompt_ids(tokenizer, suite[0], opts, bos_id)},
        "seconds": seconds,
        "seconds_per_item": seconds / max(1, len(suite)),
        "predictions": str(final),
    }
    if target.url is not None:
        entry["scored_on"] = target.url  # seconds above: the device's own scoring time
    return BbqScores(entry=entry, preds=preds)


def _first_prompt_ids(tokenizer, item, opts: CheckOptions, bos_id: int | None) -> list[int]:
    """The first 8 token ids of the first item's prompt as scored (the BOS rule made visible in the report)."""
    from gate.runtime.bbq_scoring import (
        build_letter_prompt,
        letter_prompt_ids,
        loglik_token_ids,
    )

    if opts.scoring_mode == "letter":
        ids, _ = letter_prompt_ids(tokenizer, build_letter_prompt(tokenizer, item.context, item.question, item.answers), bos_id)
    else:
        ids, _ = loglik_token_ids(tokenizer, item, bos_id)
    return [int(i) for i in ids[:8]]


def compare_paired(suite, bbq: dict[str, BbqScores], policy: Policy) -> dict[str, dict]:
    """Each candidate against the dense model on the same items (:func:`gate.bbq.paired.paired_comparison`);
    the policy's confidence, resamples and seed drive the paired bootstrap."""
    st = policy.statistics
    names = list(bbq)
    dense = list(bbq[names[0]].preds)
    return {n: paired_comparison(list(suite), dense, list(bbq[n].preds), confidence=st.confidence,
                                 n_resamples=st.resamples, seed=st.seed) for n in names[1:]}


def _load_calibration(opts, specs: list[CandidateSpec], tokenizer, log):
    """The calibration windows, loaded once when some candidate's method needs them (else ``None``)."""
    from exporters.compress import calibration_options, load_calibration

    needing = [s.spec for s in specs if s.needs_calibration]
    if not needing:
        return None
    cal = calibration_options(opts.calibration_file, opts.calibration_windows, opts.calibration_tokens, opts.seed)
    log(f"calibration for {', '.join(needing)}: {cal.n_windows} windows x {cal.window_tokens} tokens from {cal.file}")
    return load_calibration(cal, tokenizer)


def _build_artifact(name: str, role: str, spec: CandidateSpec | None, opts, source, dense_ckpt: Path, cand_sources,
                    tokenizer, log, calibration=None) -> tuple[Path, dict, tuple[str, ...]]:
    """Compress (if needed), export and verify one variant, then quantize the verified fp32 export when the
    spec asks for ``+int8``/``+int4``. Cached exports and quantized artifacts are reused as they are.

    Args:
        calibration: the ``CalibrationSet`` shared by calibrated methods (wanda, sparsegpt, structured).

    Returns:
        ``(onnx_dir, entry, warnings)``: the artifact's directory, its report fields (``name``, ``role``,
        ``compression`` with ``quantization``, ``claims_sparsity``, ``claims``, ``artifact``, ``export``), and the
        cache entries that were found modified after they were built and rebuilt.
    """
    from exporters.artifact import describe_artifact
    from exporters.cache import INTEGRITY_WARNING
    from exporters.compress import compress_model, compression_cache_key
    from exporters.model_source import load_causal_lm, materialize_checkpoint
    from exporters.onnx_export import cached_export, export_onnx
    from exporters.verify import verify_export

    work = opts.work_dir
    warnings: list[str] = []
    checkpoint: Path | None = dense_ckpt if role == "baseline" else None
    onnx_dir: Path | None = None
    if role == "baseline" or spec.method == "none":  # quantization only: the dense export is quantized
        key = source.digest
        compression: dict = {"method": "none", "pattern": None, "claimed_sparsity": None, "calibration": None}

        def load_model():
            return load_causal_lm(dense_ckpt)[0]
    elif spec.method == "checkpoint":
        cs = cand_sources[spec.spec]
        key = cs.digest
        compression = {"method": "checkpoint", "path": str(cs.path), "sha256": cs.digest, "format": cs.kind}
        if cs.kind == "onnx_dir":
            onnx_dir = cs.path
        else:
            checkpoint = materialize_checkpoint(cs, work, log)

        def load_model():
            model = load_causal_lm(checkpoint)[0]
            _check_same_vocabulary(model, tokenizer, name)
            return model
    else:
        key = compression_cache_key(source.digest, spec, opts.seed, calibration)
        compression = {"method": spec.method, "pattern": spec.pattern_label, "claimed_sparsity": spec.sparsity, "seed": opts.seed}

        def load_model():
            model = load_causal_lm(dense_ckpt)[0]
            log(f"pruning {name}")
            compression.update(compress_model(model, spec, seed=opts.seed, calibration=calibration))
            return model

    if onnx_dir is not None:
        from gate.measure.artifact_stats import verify_user_export

        meta = {"export_s": None, "reused": True, "note": "user-supplied ONNX export"}
        # no PyTorch model of a user's export: its KV-cache path is checked against its prefill path, and its
        # logits against the dense model's on the same prompt (recorded)
        dense_model = load_causal_lm(dense_ckpt)[0]
        verification = verify_user_export(onnx_dir, tokenizer, dense_model)
        if not verification["passed"]:
            log(f"export check failed for {name}: {verification['note']}")
        del dense_model
        gc.collect()
    else:
        model = None
        if cached_export(work, key) is None:
            model = load_model()
            if checkpoint is None and role != "baseline" and spec.method != "none":
                checkpoint = _save_checkpoint(model, tokenizer, work, key, log)

        def checks(out_dir: Path) -> dict:
            return {"verification": verify_export(model, tokenizer, out_dir), "compression": compression}

        onnx_dir, meta = export_onnx(checkpoint or dense_ckpt, work, key, log, label=name, after_export=checks)
        warnings += [w for w in [meta.get(INTEGRITY_WARNING)] if w]
        verification, compression = meta["checks"]["verification"], dict(meta["checks"]["compression"])
        if not verification["passed"]:
            log(f"export check failed for {name}: max |Δlogit| {verification['max_abs_logit_diff']:.3g} > {verification['tolerance']:.3g}")
        del model
        gc.collect()
    export = {"seconds": meta.get("export_s"), "reused": meta.get("reused"), "verification": verification}
    compression["quantization"] = None
    if spec is not None and spec.quantization:
        from exporters.quantize import cached_quantize

        fp32_dir = onnx_dir
        onnx_dir, qmeta = cached_quantize(fp32_dir, work, key, spec.quantization, tokenizer, log)
        warnings += [w for w in [qmeta.get(INTEGRITY_WARNING)] if w]
        compression["quantization"] = qmeta["quantization"]
        export["quantization"] = {"seconds": qmeta["quantization"]["seconds"], "reused": qmeta["reused"], "fp32_artifact": str(fp32_dir)}
    return onnx_dir, {
        "name": name,
        "role": role,
        "compression": compression,
        "claims_sparsity": bool(spec and spec.claims_sparsity),
        "claims": spec.claims if spec is not None and spec.method != "checkpoint" else None,
        "artifact": describe_artifact(onnx_dir),
        "export": export,
    }, tuple(warnings)


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
