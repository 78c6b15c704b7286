"""The one registry of report formats: what ``check --formats`` writes and ``report render --format`` prints."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from gate.report.outputs import (
    BY_NAME,
    FILE_NAMES,
    FORMATS,
    REGISTRY,
    RENDER_FORMATS,
    WRITABLE_FORMATS,
    parse_formats,
    render,
    render_files,
)
from gate.runtime.errors import ExitCode, InputError


def test_every_name_comes_from_the_registry():
    names = tuple(f.name for f in REGISTRY)
    assert RENDER_FORMATS == names and set(BY_NAME) == set(names)
    assert FORMATS == ("md", "junit", "html", "intoto", "codequality", "model-card")  # written by check by default
    assert "annotations" in RENDER_FORMATS and "annotations" not in WRITABLE_FORMATS  # printed, not a file
    assert FILE_NAMES == {f.name: f.file_name for f in REGISTRY if f.file_name}


def test_parse_formats():
    assert parse_formats(None) == FORMATS and parse_formats("ALL") == FORMATS and parse_formats("none") == ()
    assert parse_formats("html, md,md") == ("html", "md")
    with pytest.raises(InputError, match="unknown format"):
        parse_formats("md,annotations")
    with pytest.raises(ValueError, match="unknown format"):
        render("pdf", {})
    with pytest.raises(ValueError, match="unknown format"):
        render_files({}, ("pdf",))


def test_render_help_lists_every_format_and_exit_codes_from_the_enum():
    from gate.cli.report import (
        REPORT_EXIT_CODES_HELP,
        VERIFY_EXIT_CODES_HELP,
        report_group,
    )

    out = CliRunner().invoke(report_group, ["render", "--help"]).output
    flat = "".join(out.split())  # click wraps lines (also after hyphens)
    for f in REGISTRY:
        assert "".join(f"{f.name}: {f.description}".split()) in flat
    assert f"{int(ExitCode.INPUT)} bad input or usage" in REPORT_EXIT_CODES_HELP
    assert f"{int(ExitCode.INTEGRITY)} integrity error" in VERIFY_EXIT_CODES_HELP
    assert f"{int(ExitCode.PASS)} the directory holds exactly the bytes of a candidate that passed the gate" in VERIFY_EXIT_CODES_HELP
