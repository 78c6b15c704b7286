"""Finishing ``report.json`` (its digests, CI provenance), the registry of its projections, and writing them.

Every projection is a pure function of the report; :data:`REGISTRY` is the one list of them: name, file
name, renderer, whether ``prunegate check`` writes it next to ``report.json`` by default, and a description
(the ``--formats`` of ``check`` and the ``--format`` of ``prunegate report render`` both come from it).
GitHub annotations are not a file: ``prunegate report render --format annotations`` prints them in the
workflow step. A projection that fails is logged and skipped: it never changes the gate's verdict or exit code.
"""

from __future__ import annotations

import json
import os
import re
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from exporters.digest import sha256_json
from gate.report.annotations import default_report_path
from gate.report.view import artifact_digest, candidates
from gate.runtime.atomic import write_json_atomic, write_text_atomic
from gate.runtime.errors import InputError

DEFAULT_REPORT_PATH = "prunegate-out/report.json"
"""Where ``report.json`` is assumed to lie when a caller does not say (locations of code-quality entries)."""


# Renderers: ``(report, report_path, variant) -> text``. Each imports its module when called, so importing this
# registry stays cheap and a test may replace a module's render function.

def _markdown(report: dict, report_path: str, variant: str | None) -> str:
    from gate.report.markdown import render_markdown

    return render_markdown(report)


def _junit(report: dict, report_path: str, variant: str | None) -> str:
    from gate.report.junit import render_junit

    return render_junit(report)


def _html(report: dict, report_path: str, variant: str | None) -> str:
    from gate.report.html import render_html

    return render_html(report)


def _intoto(report: dict, report_path: str, variant: str | None) -> str:
    from gate.report.intoto import render_intoto

    return json.dumps(render_intoto(report, variant), indent=2) + "\n"


def _codequality(report: dict, report_path: str, variant: str | None) -> str:
    from gate.report.annotations import render_gitlab_codequality

    return render_gitlab_codequality(report, report_path)


def _annotations(report: dict, report_path: str, variant: str | None) -> str:
    from gate.report.annotations import render_github_annotations

    return render_github_annotations(report, report_path)


def _model_card(report: dict, report_path: str, variant: str | None) -> str:
    from gate.report.model_card import render_model_card

    return render_model_card(report, variant)


def _model_card_files(fmt: Format, report: dict, report_path: str) -> dict[str, str]:
    """One card per candidate: ``model-card.md`` for one, ``model-card-<slug>.md`` each for several; the baseline's
    card (``model-card.md``) when the report has no candidate; none without variants (a run that stopped early)."""
    if not report.get("variants"):
        return {}  # a run that stopped before any artifact: nothing to describe
    cands = candidates(report)
    if len(cands) <= 1:
        return {fmt.file_name: fmt.render(report, report_path, cands[0]["name"] if cands else None)}
    stem = fmt.file_name.rpartition(".")[0]
    return {f"{stem}-{variant_slug(v['name'])}.md": fmt.render(report, report_path, v["name"]) for v in cands}


def _intoto_files(fmt: Format, report: dict, report_path: str) -> dict[str, str]:
    """One statement per candidate with an artifact digest: ``intoto.json`` for one, ``intoto-<slug>.json`` each
    for several, none without."""
    cands = [v for v in candidates(report) if artifact_digest(v)]
    return {fmt.file_name if len(cands) == 1 else f"intoto-{variant_slug(v['name'])}.json":
            fmt.render(report, report_path, v["name"]) for v in cands}


@dataclass(frozen=True)
class Format:
    """One projection of ``report.json``.

    Attributes:
        name: the name on the command line (``--formats``, ``--format``).
        file_name: the file written next to ``report.json``; ``None`` for a format only printed (annotations).
        render: ``(report, report_path, variant) -> text``; ``report_path`` is where ``report.json`` lies as the
            CI job names it (for locations), ``variant`` the attested candidate (in-toto; ``None`` = the only one).
        default: written by ``prunegate check`` unless ``--formats`` says otherwise.
        description: one phrase for ``--help``.
        files: ``(format, report, report_path) -> {file name: text}`` when a format writes other than one
            ``file_name`` (in-toto: one statement per candidate); ``None`` = ``{file_name: render(...)}``.

    Raises (``render``):
        InputError: the report lacks what the format needs (e.g. in-toto: several candidates and no ``variant``).
        ValueError: a check has an unknown status.
    """

    name: str
    file_name: str | None
    render: Callable[[dict, str, str | None], str]
    default: bool
    description: str
    files: Callable[[Format, dict, str], dict[str, str]] | None = None

    def render_files(self, report: dict, report_path: str = DEFAULT_REPORT_PATH) -> dict[str, str]:
        """The files this format writes for ``report``: ``{file name: text}`` (empty for a printed-only format)."""
        if self.files is not None:
            return self.files(self, report, report_path)
        return {self.file_name: self.render(report, report_path, None)} if self.file_name else {}


REGISTRY: tuple[Format, ...] = (
    Format("md", "report.md", _markdown, True, "Markdown job summary (< 1 MiB, for $GITHUB_STEP_SUMMARY)"),
    Format("junit", "junit.xml", _junit, True, "JUnit XML, one test case per check"),
    Format("html", "report.html", _html, True, "self-contained HTML with inline SVG plots"),
    Format("intoto", "intoto.json", _intoto, True, "unsigned in-toto Statement v1 with the test-result predicate for "
           "one candidate (check writes intoto-<variant>.json each when there are several)", files=_intoto_files),
    Format("codequality", "codequality.json", _codequality, True, "GitLab code-quality JSON"),
    Format("model-card", "model-card.md", _model_card, True, "Hugging Face model card section: model-index YAML front "
           "matter and a Markdown table, for the first candidate or --variant (check writes model-card-<variant>.md "
           "each when there are several)", files=_model_card_files),
    Format("annotations", None, _annotations, False, "GitHub workflow commands for the top findings (printed only)"),
)
"""Every projection of ``report.json``, in display order: the one place formats are listed."""

BY_NAME = {f.name: f for f in REGISTRY}
RENDER_FORMATS = tuple(f.name for f in REGISTRY)
"""Every format ``prunegate report render --format`` accepts."""
WRITABLE_FORMATS = tuple(f.name for f in REGISTRY if f.file_name)
"""Formats written as files next to ``report.json`` (what ``--formats`` accepts)."""
FORMATS = tuple(f.name for f in REGISTRY if f.default)
"""Formats ``prunegate check`` writes by default (``--formats all``)."""
FILE_NAMES = {f.name: f.file_name for f in REGISTRY if f.file_name}


def formats_help(names: tuple[str, ...] = RENDER_FORMATS, files: bool = False) -> str:
    """``"md: Markdown job summary ...; junit: ..."`` for ``--help``; with ``files``, each file name too."""
    def one(f: Format) -> str:
        return f"{f.name}: {f.description}" + (f" ({f.file_name})" if files and f.file_name else "")

    return "; ".join(one(BY_NAME[n]) for n in names) + "."


def render(name: str, report: dict, report_path: str = DEFAULT_REPORT_PATH, variant: str | None = None) -> str:
    """The text of format ``name`` for ``report`` (for printing; :func:`render_files` for writing).

    Raises:
        ValueError: an unknown format; whatever the format's renderer raises (see :class:`Format`).
    """
    if name not in BY_NAME:
        raise ValueError(f"unknown format {name!r}; expected one of {', '.join(RENDER_FORMATS)}")
    return BY_NAME[name].render(report, report_path, variant)


def parse_formats(value: str | None) -> tuple[str, ...]:
    """``--formats`` (comma-separated; ``all`` or ``none``) as a tuple of :data:`WRITABLE_FORMATS`.

    ``all`` (and ``None``) means :data:`FORMATS`, the default ones.

    Raises:
        InputError: an unknown format name, or one that is not written as a file.
    """
    if value is None or value.strip().lower() == "all":
        return FORMATS
    names = [s.strip().lower() for s in value.split(",") if s.strip()]
    if names == ["none"]:
        return ()
    unknown = [n for n in names if n not in WRITABLE_FORMATS]
    if unknown:
        raise InputError(f"--formats {value}: unknown format(s) {', '.join(unknown)}; use a comma-separated subset of "
                         f"{','.join(WRITABLE_FORMATS)}, or all, or none")
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


def report_digests(report: dict) -> dict:
    """What the report is bound to (its ``digests`` field).

    * ``policy``: the sha256 of the policy file's bytes when the policy engine recorded it
      (``config.policy.sha256``), else of the effective policy as canonical JSON (``exporters.digest.sha256_json``);
      ``method`` says which.
    * ``suite_manifest``: the BBQ suite manifest's digest (``suite.manifest_digest``).
    * ``artifacts``: each variant's artifact root digest (``artifact.digest``), by variant name.

    Returns:
        ``{"policy": {"sha256", "method"}, "suite_manifest": {"sha256"}, "artifacts": {variant: {"sha256"}}}``
        (hex SHA-256); the report is not changed.
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
    return digests


def variant_slug(name: str) -> str:
    """A file-name-safe form of a variant name: runs of characters other than ``A-Za-z0-9._-`` become ``_``.

    Leading/trailing ``_`` are stripped; a name with nothing left becomes ``"variant"``. Never raises.
    """
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "variant"


def render_files(report: dict, formats: tuple[str, ...], report_path: str = DEFAULT_REPORT_PATH) -> dict[str, str]:
    """Render ``formats`` of ``report`` as files: ``{file name: text}`` (see :meth:`Format.render_files`).

    ``report_path`` is where ``report.json`` lies (the code-quality entries point at it when no policy line fits).
    The in-toto statement needs a candidate with an artifact digest: it is left out when there is none.

    Raises:
        ValueError: an unknown format; whatever a renderer raises.
    """
    out: dict[str, str] = {}
    for fmt in formats:
        if fmt not in BY_NAME:
            raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(RENDER_FORMATS)}")
        out.update(BY_NAME[fmt].render_files(report, report_path))
    return out


def write_report(report: dict, out_dir: Path, formats: tuple[str, ...] = FORMATS,
                 log: Callable[[str], None] = print) -> dict:
    """Write ``out_dir/report.json`` atomically, with its :func:`report_digests` and ``finished_at``, then its projections.

    ``report.json`` is written first, so it exists even if a projection crashes. Each projection is written
    atomically too; one that raises is logged (one line) and skipped.

    Returns:
        the report as written: a new dict, ``report`` with ``digests`` and ``finished_at`` (``report`` itself is
        not changed).

    Raises:
        whatever writing ``report.json`` raises (e.g. ``ValueError`` for a NaN, ``OSError``).
    """
    report = {**report, "digests": report_digests(report), "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    path = out_dir / "report.json"
    write_json_atomic(path, report)
    for fmt in formats:
        try:
            for name, text in render_files(report, (fmt,), default_report_path(path)).items():
                write_text_atomic(out_dir / name, text)
        except Exception as exc:  # noqa: BLE001 -- a projection must never decide the gate
            log(f"could not write the {fmt} projection of the report: {type(exc).__name__}: {exc}")
            if os.environ.get("PRUNEGATE_DEBUG"):
                log(traceback.format_exc())
    return report
