"""``prunegate prune``: write a pruned Hugging Face checkpoint, and the calibration options shared with ``check``.

The output is a standard checkpoint (``save_pretrained`` + tokenizer) plus ``prunegate-compression.json``
(what was done, with the input's digest); it can be passed back as ``prunegate check --candidate DIR``.
The input model is only read: it is loaded into memory and pruned there.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import click
import rich_click

from exporters.compress import CALIBRATION_ENV
from gate.cli._help import (
    DEFAULT_SEED,
    DEFAULT_WORK_DIR,
    TOOL_CODES,
    WORK_DIR_ENV,
    exit_codes_help,
)
from gate.cli._options import alias_target, deprecated_alias
from gate.cli._progress import make_log
from gate.runtime.errors import InputError

METADATA_FILE = "prunegate-compression.json"
HELP_DEFAULT_WINDOWS, HELP_DEFAULT_TOKENS = 32, 256
"""``exporters.compression.calibration.DEFAULT_CALIBRATION_WINDOWS``/``DEFAULT_CALIBRATION_TOKENS``, repeated for the
help text only (importing that module loads torch, ~4 s, too slow for --help); a test in the candidate-grammar tests
checks they agree. The values used come from there (the options default to None)."""


def calibration_click_options(func):
    """Add ``--calibration-file``, ``--calibration-windows`` and ``--calibration-tokens`` to a click command.

    Defaults: file ``$PRUNEGATE_CALIBRATION_FILE`` (read by click); counts ``exporters.compression.calibration.DEFAULT_CALIBRATION_WINDOWS``
    and ``DEFAULT_CALIBRATION_TOKENS`` (resolved when the command runs, see ``exporters.compress.calibration_options``).
    """
    options = [
        click.option("--calibration-file", metavar="FILE", envvar=CALIBRATION_ENV, show_envvar=True, default=None,
                     type=click.Path(path_type=Path),
                     help="UTF-8 text the calibrated methods (wanda, sparsegpt, structured) draw their calibration windows "
                          "from, e.g. ../shared/wikitext-2/valid.txt. Required only by those methods."),
        click.option("--calibration-windows", metavar="N", type=click.IntRange(min=1), default=None,
                     help=f"Number of calibration windows, drawn at seeded random offsets (--seed). Default: {HELP_DEFAULT_WINDOWS}."),
        click.option("--calibration-tokens", metavar="N", type=click.IntRange(min=2), default=None,
                     help=f"Tokens per calibration window (no padding). Default: {HELP_DEFAULT_TOKENS}."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@click.command("prune", cls=rich_click.RichCommand, epilog=exit_codes_help(*TOOL_CODES))
@click.option("--model", "model", metavar="PATH", default=None,
              help="Dense model: a local Hugging Face model directory or a .gguf file (never modified). "
                   "Default: the embedded SmolLM2-135M-Instruct.")
@click.option("--candidate", "method", metavar="SPEC", callback=alias_target("method", "--candidate", required=True),
              help="[required] Pruning spec, the grammar of check --candidate: magnitude:S, random:S, wanda:S, sparsegpt:S (S a sparsity in [0,1)), METHOD:N:M "
                   "(N zeros in every M weights, e.g. wanda:2:4) or structured:R (remove a fraction R of the MLP "
                   "neurons of every layer). Quantization (int8/int4) applies to ONNX artifacts: use `check --candidate`.")
@deprecated_alias("--method", "method", "--candidate")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path), metavar="DIR",
              help="Output directory for the pruned checkpoint; must not exist or be empty.")
@click.option("--seed", default=DEFAULT_SEED, show_default=True, type=int, metavar="S",
              help="Seed of random pruning and of the calibration windows.")
@click.option("--work-dir", default=DEFAULT_WORK_DIR, show_default=True, type=click.Path(file_okay=False, path_type=Path),
              envvar=WORK_DIR_ENV, show_envvar=True, help="Cache of dequantized GGUF checkpoints.")
@calibration_click_options
def prune_cmd(model, method, out_dir, seed, work_dir, calibration_file, calibration_windows, calibration_tokens) -> None:
    """Prune a model and write the result as a Hugging Face checkpoint. Example:

    \b
        prunegate prune --candidate wanda:0.5 --out pruned-wanda \\
            --calibration-file ../shared/wikitext-2/valid.txt
    """
    with make_log() as log:
        info = prune_checkpoint(model, method, out_dir, seed=seed, work_dir=work_dir, calibration_file=calibration_file,
                                calibration_windows=calibration_windows, calibration_tokens=calibration_tokens, log=log)
    c = info["compression"]
    what = (f"intermediate_size {c['intermediate_size_before']} -> {c['intermediate_size_after']}, "
            f"{c['param_reduction']:.1%} fewer parameters") if c["method"] == "structured" else f"sparsity {c['sparsity']:.4f} over the pruned linears"
    click.echo(f"wrote {out_dir}: {method}, {what}, {c['seconds']:.1f} s")


def prune_checkpoint(model: str | Path | None, method: str, out_dir: Path, *, seed: int = DEFAULT_SEED,
                     work_dir: Path = Path(DEFAULT_WORK_DIR),
                     calibration_file: str | Path | None = None, calibration_windows: int | None = None,
                     calibration_tokens: int | None = None, log=print) -> dict:
    """Load ``model``, prune it as ``method`` says and save it to ``out_dir`` (atomically: built in a
    temporary sibling directory, then renamed).

    Args:
        model: HF directory or ``.gguf`` (``None`` = embedded default); never modified.
        method: a pruning spec (``exporters.candidates`` grammar, without quantization).
        out_dir: output directory; must not exist or be empty.
        seed: seed of random pruning and of the calibration draw.
        work_dir: cache for dequantized GGUF checkpoints.
        calibration_file, calibration_windows, calibration_tokens: see ``calibration_click_options``.
        log: receives progress lines.

    Returns:
        the metadata written to ``out_dir/prunegate-compression.json``: ``{"source", "spec", "compression"}``.

    Raises:
        InputError: bad spec (incl. quantization), non-empty ``out_dir``, missing calibration, bad model.
    """
    from exporters.candidates import parse_candidate
    from exporters.compress import (
        calibration_options,
        check_calibration,
        compress_model,
        load_calibration,
    )
    from exporters.model_source import (
        load_causal_lm,
        materialize_checkpoint,
        resolve_model,
    )
    from gate.report.build import write_json_atomic

    spec = parse_candidate(method)
    if spec.method == "checkpoint" or not spec.prunes:
        raise InputError(f"--candidate {method!r}: not a pruning method; use e.g. magnitude:0.5, wanda:2:4 or structured:0.3")
    if spec.quantization:
        raise InputError(f"--candidate {method!r}: quantization ({spec.quantization}) applies to the ONNX export, not to a checkpoint; "
                         f"prune with --candidate {method.split('+')[0]} and pass the result to `prunegate check --candidate DIR` "
                         f"or use `check --candidate {method}`")
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise InputError(f"--out {out_dir}: exists and is not an empty directory; pass a new or empty directory (nothing is overwritten)")
    cal_opts = calibration_options(calibration_file, calibration_windows, calibration_tokens, seed)
    check_calibration([spec], cal_opts)
    source = resolve_model(model)
    checkpoint = materialize_checkpoint(source, Path(work_dir), log)
    if out_dir.exists() and out_dir.resolve() == Path(checkpoint).resolve():
        raise InputError(f"--out {out_dir}: is the input model; pass a different directory")
    torch_model, tokenizer = load_causal_lm(checkpoint)
    calibration = load_calibration(cal_opts, tokenizer) if spec.needs_calibration else None
    log(f"pruning {source.name}: {spec.spec}")
    compression = compress_model(torch_model, spec, seed=seed, calibration=calibration)
    info = {"source": {"path": str(source.path), "sha256": source.digest, "kind": source.kind}, "spec": spec.spec,
            "compression": compression}
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    try:
        torch_model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        write_json_atomic(tmp / METADATA_FILE, info)
        if out_dir.exists():
            out_dir.rmdir()  # empty (checked above)
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o777 & ~mask)  # mkdtemp creates 0700
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return info
