"""``prunegate report validate|render`` and ``prunegate verify``: working with a finished ``report.json``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from gate.runtime.errors import ExitCode

REPORT_EXIT_CODES_HELP = "Exit codes: 0 success, 2 bad input or usage (e.g. an invalid report), 4 execution error."
VERIFY_EXIT_CODES_HELP = ("Exit codes: 0 the directory holds exactly the reported bytes, 5 integrity error (a file differs, "
                          "is missing or is not in the report), 2 bad input or usage.")
RENDER_FORMATS = ("md", "junit", "annotations", "codequality", "intoto", "html")

_report_opt = click.option("--report", "report_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
                           metavar="FILE", help="A report.json written by prunegate check.")


@click.group("report")
def report_group() -> None:
    """Validate a report.json or render it in another format (all formats are projections of the JSON)."""


@report_group.command("validate", epilog=REPORT_EXIT_CODES_HELP)
@_report_opt
def validate_cmd(report_path: Path) -> None:
    """Check a report against its JSON Schema (gate/report/report.schema.json)."""
    from gate.report.schema import load_report

    report = load_report(report_path)
    click.echo(f"{report_path}: valid prunegate report, schema {report['schema_version']}, verdict {report['verdict']}")


@report_group.command("render", epilog=REPORT_EXIT_CODES_HELP)
@_report_opt
@click.option("--format", "fmt", required=True, type=click.Choice(RENDER_FORMATS),
              help="md: Markdown job summary (< 1 MiB); junit: JUnit XML; annotations: GitHub workflow commands for the "
                   "top findings; codequality: GitLab code-quality JSON; intoto: in-toto Statement v1 with the "
                   "test-result predicate; html: self-contained HTML with plots.")
@click.option("--out", "out_path", default="-", show_default=True, type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
              metavar="FILE", help="Where to write; - = standard output.")
@click.option("--variant", default=None, metavar="NAME", help="intoto: the candidate attested (needed when there are several).")
@click.option("--annotation-path", default=None, metavar="PATH",
              help="annotations/codequality: the file findings point at when no policy file line is known "
                   "(default: --report relative to the current directory).")
def render_cmd(report_path: Path, fmt: str, out_path: Path, variant: str | None, annotation_path: str | None) -> None:
    """Render a report.json as Markdown, JUnit XML, CI annotations, an in-toto statement or HTML.

    Example, in a GitHub Actions step:

    \b
        prunegate report render --report prunegate-out/report.json --format md >> "$GITHUB_STEP_SUMMARY"
    """
    from gate.report.annotations import (
        default_report_path,
        render_github_annotations,
        render_gitlab_codequality,
    )
    from gate.report.html import render_html
    from gate.report.intoto import render_intoto
    from gate.report.junit import render_junit
    from gate.report.markdown import render_markdown
    from gate.report.schema import load_report

    report = load_report(report_path)
    where = annotation_path or default_report_path(report_path)
    if fmt == "md":
        text = render_markdown(report)
    elif fmt == "junit":
        text = render_junit(report)
    elif fmt == "annotations":
        text = render_github_annotations(report, where)
    elif fmt == "codequality":
        text = render_gitlab_codequality(report, where)
    elif fmt == "intoto":
        text = json.dumps(render_intoto(report, variant), indent=2) + "\n"
    else:
        text = render_html(report)
    if str(out_path) == "-":
        click.echo(text, nl=False)
    else:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text(text, encoding="utf-8")


@click.command("verify", epilog=VERIFY_EXIT_CODES_HELP)
@_report_opt
@click.option("--artifact", "artifact_dir", required=True, type=click.Path(path_type=Path), metavar="DIR",
              help="The artifact directory to check (e.g. the ONNX export you ship).")
@click.option("--variant", default=None, metavar="NAME",
              help="The report's variant to compare with; default: the one whose artifact digest matches.")
def verify_cmd(report_path: Path, artifact_dir: Path, variant: str | None) -> None:
    """Confirm that a report belongs to exactly these artifact bytes.

    Re-hashes every file of DIR (sha256) and the artifact's digest of digests, and compares them with the
    report's. Any differing, missing or extra file is an integrity error (exit 5) naming the file.
    """
    from gate.report.schema import load_report
    from gate.report.verify import verify_artifact

    report = load_report(report_path)
    result = verify_artifact(report, artifact_dir, variant)
    if result.ok:
        same = f" (identical to {', '.join(result.also_matching)})" if result.also_matching else ""
        click.echo(f"ok: {result.message}{same}")
        return
    click.echo(f"integrity error: {result.message}", err=True)
    sys.exit(ExitCode.INTEGRITY)
