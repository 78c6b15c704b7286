"""Finishing ``report.json`` (its digests, CI provenance) and writing its projections next to it.

Projections (each a pure function of the report; see the ``report_*`` modules):

=============  =====================  ==================================================================
format         file                   module
=============  =====================  ==================================================================
md             report.md              :mod:`gate.report.markdown` (CI job summary, < 1 MiB)
junit          junit.xml              :mod:`gate.report.junit`
html           report.html            :mod:`gate.report.html` (self-contained, inline SVG plots)
intoto         intoto.json            :mod:`gate.report.intoto` (one candidate; with several,
                                      ``intoto-<variant>.json`` per candidate)
codequality    codequality.json       :mod:`gate.report.annotations` (GitLab code quality)
=============  =====================  ==================================================================

GitHub annotations are printed by ``prunegate report render --format annotations`` in the workflow step.
A projection that fails is logged and skipped: it never changes the gate's verdict or exit code.
"""

from __future__ import annotations

import os
import re
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from exporters.digest import sha256_json

from gate.runtime.errors import InputError
from gate.runtime.atomic import write_json_atomic, write_text_atomic
from gate.report.view import artifact_digest, candidates

FORMATS = ("md", "junit", "html", "intoto", "codequality")
FILE_NAMES = {"md": "report.md", "junit": "junit.xml", "html": "report.html", "intoto": "intoto.json",
              "codequality": "codequality.json"}


def parse_formats(value: str | None) -> tuple[str, ...]:
    """``--formats`` (comma-separated; ``all`` or ``none``) as a tuple of :data:`FORMATS`.

    Raises:
        InputError: an unknown format name.
    """
    if value is None or value.strip().lower() == "all":
        return FORMATS
    names = [s.strip().lower() for s in value.split(",") if s.strip()]
    if names == ["none"]:
        return ()
    unknown = [n for n in names if n not in FORMATS]
    if unknown:
        raise InputError(f"--formats {value}: unknown format(s) {', '.join(unknown)}; use a comma-separated subset of "
                         f"{','.join(FORMATS)}, or all, or none")
    return tuple(dict.fromkeys(names))


def ci_context(env: dict[str, str] | None = None) -> dict:
    """Which CI run produced the report, from the standard CI environment variables.

    GitHub Actions: ``GITHUB_SERVER_URL``/``GITHUB_REPOSITORY``/``GITHUB_RUN_ID``/``GITHUB_SHA``/``GITHUB_REF``;
    GitLab CI: ``CI_JOB_URL``/``CI_PROJECT_PATH``/``CI_COMMIT_SHA``/``CI_COMMIT_REF_NAME``.

    Returns:
        ``{"provider", "run_url", "repository", "commit", "ref"}`` or ``{}`` outside CI.
    """
    env = os.environ if env is None else env
    if env.get("GITHUB_ACTIONS") == "true":
        server, repo, run = env.get("GITHUB_SERVER_URL"), env.get("GITHUB_REPOSITORY"), env.get("GITHUB_RUN_ID")
        return {"provider": "github-actions", "run_url": f"{server}/{repo}/actions/runs/{run}" if server and repo and run else None,
                "repository": repo, "commit": env.get("GITHUB_SHA"), "ref": env.get("GITHUB_REF")}
    if env.get("GITLAB_CI") == "true":
        return {"provider": "gitlab-ci", "run_url": env.get("CI_JOB_URL"), "repository": env.get("CI_PROJECT_PATH"),
                "commit": env.get("CI_COMMIT_SHA"), "ref": env.get("CI_COMMIT_REF_NAME")}
    return {}


def attach_digests(report: dict) -> dict:
    """Set ``report["digests"]``: what the report is bound to.

    * ``policy``: the sha256 of the policy file's bytes when the policy engine recorded it
      (``config.policy.sha256``), else of the effective policy as canonical JSON (``exporters.digest.sha256_json``);
      ``method`` says which.
    * ``suite_manifest``: the BBQ suite manifest's digest (``suite.manifest_digest``).
    * ``artifacts``: each variant's artifact root digest (``artifact.digest``), by variant name.

    Returns:
        the same report (modified in place).
    """
    pol = (report.get("config") or {}).get("policy") or {}
    if isinstance(pol.get("sha256"), str) and re.fullmatch(r"[0-9a-f]{64}", pol["sha256"]):
        policy = {"sha256": pol["sha256"], "method": "sha256 of the policy file's bytes"}
    else:
        policy = {"sha256": sha256_json(pol), "method": "sha256 of the effective policy as canonical JSON"}
    digests = {"policy": policy, "suite_manifest": {}, "artifacts": {}}
    manifest = (report.get("suite") or {}).get("manifest_digest")
    if manifest:
        digests["suite_manifest"] = {"sha256": manifest}
    for v in report.get("variants") or []:
        d = artifact_digest(v)
        if d:
            digests["artifacts"][v["name"]] = {"sha256": d}
    report["digests"] = digests
    return report


def variant_slug(name: str) -> str:
    """A file-name-safe form of a variant name: runs of characters other than ``A-Za-z0-9._-`` become ``_``.

    Leading/trailing ``_`` are stripped; a name with nothing left becomes ``"variant"``. Never raises.
    """
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "variant"


def render_files(report: dict, formats: tuple[str, ...], report_path: str = "prunegate-out/report.json") -> dict[str, str]:
    """Render ``formats`` of ``report``: ``{file name: text}``.

    ``report_path`` is where ``report.json`` lies (the code-quality entries point at it when no policy line fits).

    The in-toto statement needs a candidate with an artifact digest: it is left out when there is none.
    """
    import json

    out: dict[str, str] = {}
    for fmt in formats:
        if fmt == "md":
            from gate.report.markdown import render_markdown

            out[FILE_NAMES[fmt]] = render_markdown(report)
        elif fmt == "junit":
            from gate.report.junit import render_junit

            out[FILE_NAMES[fmt]] = render_junit(report)
        elif fmt == "html":
            from gate.report.html import render_html

            out[FILE_NAMES[fmt]] = render_html(report)
        elif fmt == "codequality":
            from gate.report.annotations import render_gitlab_codequality

            out[FILE_NAMES[fmt]] = render_gitlab_codequality(report, report_path)
        elif fmt == "intoto":
            from gate.report.intoto import render_intoto

            cands = [v for v in candidates(report) if artifact_digest(v)]
            for v in cands:
                name = FILE_NAMES[fmt] if len(cands) == 1 else f"intoto-{variant_slug(v['name'])}.json"
                out[name] = json.dumps(render_intoto(report, v["name"]), indent=2) + "\n"
        else:
            raise ValueError(f"unknown format {fmt!r}")
    return out


def write_report(report: dict, out_dir: Path, formats: tuple[str, ...] = FORMATS,
                 log: Callable[[str], None] = print) -> Path:
    """Write ``out_dir/report.json`` atomically (after :func:`attach_digests`, with ``finished_at``), then its projections.

    ``report.json`` is written first, so it exists even if a projection crashes. Each projection is written
    atomically too; one that raises is logged (one line) and skipped.

    Returns:
        the path of ``report.json``.

    Raises:
        whatever writing ``report.json`` raises (e.g. ``ValueError`` for a NaN, ``OSError``).
    """
    attach_digests(report)
    report["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    path = out_dir / "report.json"
    write_json_atomic(path, report)
    for fmt in formats:
        try:
            for name, text in render_files(report, (fmt,), _relative(out_dir / "report.json")).items():
                write_text_atomic(out_dir / name, text)
        except Exception as exc:  # noqa: BLE001 -- a projection must never decide the gate
            log(f"could not write the {fmt} projection of the report: {type(exc).__name__}: {exc}")
            if os.environ.get("PRUNEGATE_DEBUG"):
                log(traceback.format_exc())
    return path


def _relative(path: Path) -> str:
    """``path`` relative to the current directory when it lies below it (how a CI job names it), else absolute."""
    try:
        return Path(os.path.relpath(path.resolve(), Path.cwd())).as_posix() if path.resolve().is_relative_to(Path.cwd()) else str(path.resolve())
    except (OSError, ValueError):
        return str(path)
