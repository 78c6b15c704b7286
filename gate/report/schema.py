"""Validation of ``report.json`` against its JSON Schema (``gate/report/report.schema.json``, draft 2020-12)."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from pathlib import Path

from gate.runtime.errors import InputError
from gate.schema_errors import schema_problems


@cache
def report_schema() -> dict:
    """The report's JSON Schema, loaded from the package data (``gate/report/report.schema.json``)."""
    text = resources.files("gate.report").joinpath("report.schema.json").read_text(encoding="utf-8")
    return json.loads(text)


def report_problems(report: object) -> list[str]:
    """Every schema violation of ``report``, one line each (``"<json path>: <what is wrong>"``, e.g.
    ``$.checks[0].status: "maybe" is not allowed; expected one of ...``; :func:`gate.schema_errors.schema_problems`),
    ordered by path.

    Returns:
        an empty list when the report is valid.
    """
    return schema_problems(report, report_schema(), root="$")


def validate_report(report: object, source: str = "report") -> None:
    """Raise when ``report`` does not match the schema.

    Args:
        report: a parsed report.
        source: how to name the report in the error (e.g. its path).

    Raises:
        InputError: naming the first violations (at most 5) and how many there are.
    """
    problems = report_problems(report)
    if problems:
        shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        raise InputError(f"{source}: not a valid prunegate v1 report ({shown}); pass a report.json written by prunegate check >= 1.0")


def load_report(path: str | Path, validate: bool = True, text: bytes | None = None) -> dict:
    """Read and (by default) validate a report file.

    Args:
        path: the report file (named in errors).
        validate: check it against the JSON Schema (:func:`validate_report`).
        text: its bytes when already read (e.g. the bytes a signature was checked over); ``None`` = read ``path``.

    Raises:
        InputError: the file is missing, not JSON, or (``validate``) does not match the schema.
    """
    p = Path(path)
    try:
        data = json.loads(p.read_bytes() if text is None else text)
    except FileNotFoundError:
        raise InputError(f"--report {p}: no such file; pass the report.json written by prunegate check") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"--report {p}: cannot be read as JSON ({exc}); pass the report.json written by prunegate check") from None
    if validate:
        validate_report(data, f"--report {p}")
    return data
