"""``prunegate report validate|render|diff|sign|keygen`` and ``prunegate verify``: working with a finished ``report.json``."""

from __future__ import annotations

import sys
from pathlib import Path

import click
import rich_click

from gate.cli._help import TOOL_CODES, exit_codes_help
from gate.report.outputs import RENDER_FORMATS, formats_help, render
from gate.runtime.errors import ExitCode

REPORT_EXIT_CODES_HELP = exit_codes_help(*TOOL_CODES, INPUT="bad input or usage (e.g. an invalid report)")
VERIFY_EXIT_CODES_HELP = exit_codes_help(
    *TOOL_CODES, ExitCode.INTEGRITY,
    PASS="the directory holds exactly the bytes of a candidate that passed the gate (any variant with --any-verdict)",
    INTEGRITY="integrity error (a file differs, is missing, is not in the report, is a symlink or special file; "
              "the report is inconsistent or its signature does not verify) or the artifact did not pass the gate "
              "(the baseline, or a failed, inconclusive or errored run)")

DIFF_EXIT_CODES_HELP = exit_codes_help(
    *TOOL_CODES, ExitCode.FAIL, PASS="NEW did not regress on a blocking check",
    FAIL="NEW regressed: a blocking check got worse (status, or its estimate crossed the margin)",
    INPUT="bad input or usage (an invalid or inconsistent report, different suites or scoring settings without "
          "--allow-different-suite, an invalid predictions file)")

_report_opt = click.option("--report", "report_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
                           metavar="FILE", help="A report.json written by prunegate check.")


@click.group("report", cls=rich_click.RichGroup)
def report_group() -> None:
    """Validate, render, diff or sign a report.json (all formats are projections of the JSON), or make a signing key pair."""


@report_group.command("validate", epilog=REPORT_EXIT_CODES_HELP)
@_report_opt
def validate_cmd(report_path: Path) -> None:
    """Check a report against its JSON Schema (report.schema.json, shipped in the gate.report package) and
    that its fields agree: the verdict with the checks and the decision rule, the exit code with the verdict,
    the summary and findings with the checks, the digests with the report's files (gate/report/consistency.py).
    """
    from gate.report.consistency import load_consistent_report

    report = load_consistent_report(report_path)
    click.echo(f"{report_path}: valid and consistent prunegate report, schema {report['schema_version']}, "
               f"verdict {report['verdict']}")


@report_group.command("sign", epilog=REPORT_EXIT_CODES_HELP)
@click.argument("positional_report", metavar="[REPORT]", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--report", "report_path", default=None, type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="A report.json written by prunegate check (as in report validate/render and verify). The REPORT "
                   "argument is the deprecated spelling.")
@click.option("--key", "key_path", required=True, type=click.Path(dir_okay=False, path_type=Path), metavar="PRIVATE.pem",
              help="Ed25519 private key, PEM (prunegate report keygen DIR, or openssl genpkey -algorithm ed25519); "
                   "an encrypted key is read with $PRUNEGATE_SIGNING_KEY_PASSWORD.")
def sign_cmd(positional_report: Path | None, report_path: Path | None, key_path: Path) -> None:
    """Sign the report (--report) and each in-toto statement beside it (intoto.json / intoto-<variant>.json).

    Writes <file>.sig next to each: a DSSE v1 envelope over the file's exact bytes, signed with Ed25519
    (gate/report/signing.py). The report must be valid and consistent, and each statement must be the one the
    report implies, else nothing is signed (exit 2). Check with prunegate verify --signature --public-key.
    """
    from gate.report.signing import load_private_key, sign_report
    from gate.runtime.errors import InputError

    if positional_report is not None:
        if report_path is not None and report_path != positional_report:
            raise InputError(f"report sign: REPORT {positional_report} and --report {report_path} differ; pass --report once")
        click.echo("warning: report sign REPORT is deprecated; use --report REPORT (as report validate, render and "
                   "verify do)", err=True)
        report_path = positional_report
    if report_path is None:
        raise click.UsageError("Missing option '--report'.")
    key = load_private_key(key_path)
    for s in sign_report(report_path, key):
        click.echo(f"signed {s.path} -> {s.signature}")


@report_group.command("keygen", epilog=REPORT_EXIT_CODES_HELP)
@click.argument("out_dir", metavar="DIR", type=click.Path(file_okay=False, path_type=Path))
def keygen_cmd(out_dir: Path) -> None:
    """Make an Ed25519 key pair in DIR: prunegate-signing-key.pem (private, mode 0600) and
    prunegate-signing-key.pub.pem (public). Existing files are never overwritten (exit 2).

    Keep the private key secret (e.g. a CI secret); give the public key to whoever runs prunegate verify.
    """
    from gate.report.signing import generate_keypair

    priv, pub = generate_keypair(out_dir)
    click.echo(f"private key {priv} (keep it secret), public key {pub}")


@report_group.command("render", epilog=REPORT_EXIT_CODES_HELP)
@_report_opt
@click.option("--format", "fmt", required=True, type=click.Choice(RENDER_FORMATS), help=formats_help())
@click.option("--out", "out_path", default="-", show_default=True, type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
              metavar="FILE", help="Where to write; - = standard output.")
@click.option("--variant", default=None, metavar="NAME",
              help="intoto: the candidate attested (needed when there are several); model-card: the variant described "
                   "(default: the first candidate).")
@click.option("--annotation-path", default=None, metavar="PATH",
              help="annotations/codequality: the file findings point at when no policy file line is known "
                   "(default: --report relative to the current directory).")
def render_cmd(report_path: Path, fmt: str, out_path: Path, variant: str | None, annotation_path: str | None) -> None:
    """Render a report.json in one of the formats of --format (each a projection of the JSON).

    Example, in a GitHub Actions step:

    \b
        prunegate report render --report prunegate-out/report.json --format md >> "$GITHUB_STEP_SUMMARY"
    """
    from gate.report.annotations import default_report_path
    from gate.report.schema import load_report

    report = load_report(report_path)
    text = render(fmt, report, annotation_path or default_report_path(report_path), variant)
    _emit(text, out_path)


def _emit(text: str, out_path: Path) -> None:
    """Print ``text`` (``-``) or write it to ``out_path`` atomically (gate/runtime/atomic.py)."""
    from gate.runtime.atomic import write_text_atomic

    if str(out_path) == "-":
        click.echo(text, nl=False)
    else:
        write_text_atomic(out_path, text)


@report_group.command("diff", epilog=DIFF_EXIT_CODES_HELP)
@click.argument("old_path", metavar="OLD", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("new_path", metavar="NEW", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(("md", "json")), default="md", show_default=True,
              help="md: Markdown (e.g. for $GITHUB_STEP_SUMMARY); json: every field, for tools.")
@click.option("--allow-different-suite", is_flag=True,
              help="Compare even when the BBQ suite manifest digests or the scoring settings differ (the paired "
                   "comparison of predictions is then not computed).")
@click.option("--out", "out_path", default="-", show_default=True, type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
              metavar="FILE", help="Where to write; - = standard output.")
def diff_cmd(old_path: Path, new_path: Path, fmt: str, allow_different_suite: bool, out_path: Path) -> None:
    """Compare two reports: per variant (by name) and check, OLD's status, estimate and interval against NEW's.

    Both reports must be valid and consistent (as report validate checks), and judge the same BBQ suite with the
    same scoring settings (else exit 2, unless --allow-different-suite). A check regressed when its status got
    worse (pass < inconclusive < fail/error) or its estimate crossed its margin in the bad direction; NEW's
    policy decides which regressions block. When both reports' predictions files are beside them, NEW's answers
    are compared with OLD's on the items both scored (exact McNemar test, paired bootstrap intervals;
    gate/bbq/paired.py); that verdict is shown but does not change the exit code (gate/report/diff.py).

    Example, in a release job:

    \b
        prunegate report diff last-release/report.json prunegate-out/report.json >> "$GITHUB_STEP_SUMMARY"
    """
    from gate.report.diff import diff_reports, render_diff_json, render_diff_markdown

    d = diff_reports(old_path, new_path, allow_different_suite=allow_different_suite)
    _emit(render_diff_json(d) if fmt == "json" else render_diff_markdown(d), out_path)
    if d.exit_code:
        sys.exit(ExitCode.FAIL)


@click.command("verify", cls=rich_click.RichCommand, epilog=VERIFY_EXIT_CODES_HELP)
@click.argument("dir_arg", metavar="[DIR]", required=False, type=click.Path(path_type=Path))
@_report_opt
@click.option("--artifact", "artifact_dir", default=None, type=click.Path(path_type=Path), metavar="DIR",
              help="The artifact directory to check (e.g. the ONNX export you ship); the same as the DIR argument.")
@click.option("--variant", default=None, metavar="NAME",
              help="The report's variant to compare with; default: the one whose artifact digest matches.")
@click.option("--any-verdict", is_flag=True,
              help="Check integrity only: exit 0 for the bytes of any variant (the baseline too), whatever the verdict.")
@click.option("--signature", "sig_path", default=None, type=click.Path(dir_okay=False, path_type=Path),
              metavar="FILE", help="The report's DSSE signature (prunegate report sign); default with --public-key: "
                                   "REPORT.sig.")
@click.option("--public-key", "public_key_path", default=None, type=click.Path(dir_okay=False, path_type=Path),
              metavar="PUB.pem", help="Ed25519 public key (PEM) the report must be signed with.")
def verify_cmd(dir_arg: Path | None, report_path: Path, artifact_dir: Path | None, variant: str | None,
               any_verdict: bool, sig_path: Path | None, public_key_path: Path | None) -> None:
    """Confirm that DIR is the artifact that passed the gate.

    Re-hashes every file of DIR (sha256) and the artifact's digest of digests, and compares them with the
    report's. Exit 0 only when DIR holds exactly the bytes of a candidate whose gate passed (the report's
    verdict is pass or warn and none of that candidate's checks blocks). Exit 5 (one line saying why): a
    differing, missing or extra file; a symlink, FIFO, socket or device in DIR, or ONNX external data outside it;
    an inconsistent report; the baseline's bytes; a candidate of a failed, inconclusive or errored run; with
    --public-key, a missing or bad signature of the report.
    """

    from gate.report.consistency import check_consistency
    from gate.report.schema import load_report
    from gate.report.signing import (
        SignatureError,
        load_public_key,
        signature_path,
        verify_report_signature,
    )
    from gate.report.verify import verify_artifact
    from gate.runtime.errors import InputError

    if dir_arg is not None and artifact_dir is not None and dir_arg != artifact_dir:
        raise InputError(f"verify: DIR {dir_arg} and --artifact {artifact_dir} differ; pass the artifact directory once")
    target = dir_arg if dir_arg is not None else artifact_dir
    if target is None:
        raise InputError("verify: no artifact directory; pass DIR (or --artifact DIR), the directory you ship")
    if sig_path is not None and public_key_path is None:
        raise InputError(f"--signature {sig_path}: needs --public-key PUB.pem, the key to check it with")

    def refuse(message: str) -> None:
        click.echo(f"integrity error: {message}", err=True)
        sys.exit(ExitCode.INTEGRITY)

    if public_key_path is not None:
        key = load_public_key(public_key_path)
        sig = sig_path if sig_path is not None else signature_path(report_path)
        try:
            body = verify_report_signature(report_path, sig, key)
        except SignatureError as exc:
            refuse(str(exc))
        report = load_report(report_path, text=body)
    else:
        report = load_report(report_path)
    try:
        check_consistency(report, f"--report {report_path}")
    except InputError as exc:
        refuse(str(exc))
    result = verify_artifact(report, target, variant, any_verdict=any_verdict)
    if result.ok:
        same = f" (identical to {', '.join(result.also_matching)})" if result.also_matching else ""
        signed = f"; report signed with {public_key_path}" if public_key_path is not None else ""
        click.echo(f"ok: {result.message}{same}{signed}")
        return
    if result.kind == "verdict":
        click.echo(f"not the artifact that passed: {result.message}", err=True)
        sys.exit(ExitCode.INTEGRITY)
    refuse(result.message)
