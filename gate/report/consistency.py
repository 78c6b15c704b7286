"""Is a ``report.json`` consistent with itself? The checks behind ``prunegate report validate`` and ``verify``.

The JSON Schema (:mod:`gate.report.schema`) says a report has the right shape; it cannot say that its fields agree.
A report edited by hand (``"verdict": "pass"`` while a blocking check is ``fail``, a file digest "fixed" without
its root digest) is still schema-valid. This module recomputes what the other fields imply and lists every
disagreement:

* **effects and verdict** -- each check's ``effect`` from its ``status`` and ``severity`` and the run's
  ``summary.fail_on`` / ``summary.on_inconclusive``, then the verdict from the effects, by the decision rule of
  :func:`gate.policy.decision.decide` (error > fail > exit-3 > warning > pass; no executed check = error). A
  non-partial report without checks can only have the verdict ``error``; a partial one (or one with an
  ``error``) must say ``error`` too;
* **exit code** -- ``exit_code == EXIT_CODES[verdict]`` (:data:`gate.policy.decision.EXIT_CODES`); a run that
  stopped early (``partial`` or ``error``) exits 2, 4 or 130 (:data:`UNFINISHED_EXIT_CODES`);
* **summary** -- ``checks_total``, ``executed``, ``by_status`` and ``blocking`` agree with the checks;
* **findings** -- exactly the checks with an effect (or waived), with the same status and effect;
* **digests** -- ``digests`` equals :func:`gate.report.outputs.report_digests` of the report; each variant's
  artifact root digest equals :func:`exporters.artifact.digest_of_digests` of its listed files, ``n_files``
  and ``bytes_total`` agree with them, and no file is listed twice;
* **names** -- variant names are unique, every check names a variant of the report, no (variant, check id)
  pair appears twice.

A consistent report can still be forged whole (every field recomputed together): only a signature
(:mod:`gate.report.signing`) binds it to whoever produced it.
"""

from __future__ import annotations

from collections import Counter

from exporters.artifact import digest_of_digests
from gate.policy.decision import BLOCKING_SEVERITIES, EXIT_CODES
from gate.policy.status import ERROR, FAIL, INCONCLUSIVE, PASS, SKIPPED, WAIVED, WARN
from gate.report.outputs import report_digests
from gate.report.view import normalise_status
from gate.runtime.errors import ExitCode, InputError

EXECUTED = (PASS, FAIL, INCONCLUSIVE, WAIVED)
"""Check statuses that count as executed (the decision rule's ``executed``)."""
BLOCKING_EFFECTS = ("fail", "exit-3", "error")
"""Effects that stop a run; a check with one of them blocks (``summary.blocking``)."""
UNFINISHED_EXIT_CODES = (int(ExitCode.INPUT), int(ExitCode.EXECUTION), int(ExitCode.INTERRUPTED))
"""Exit codes of a run that stopped before the decision (``partial`` or ``error`` recorded; gate/pipeline.py)."""
_INCONCLUSIVE_EFFECT = {"fail": "fail", "exit-3": "exit-3", "warn": "warning"}


def expected_effect(status: str, severity: str | None, fail_on: str, on_inconclusive: str) -> str:
    """What a check's status does to the run (the rule of :func:`gate.policy.decision.decide`).

    Args:
        status: a normalised check status.
        severity: the check's severity; ``None`` or unknown counts as ``"error"`` (fail closed).
        fail_on: ``"error"``, ``"warning"`` or ``"never"``.
        on_inconclusive: ``"fail"``, ``"exit-3"`` or ``"warn"``.

    Returns:
        ``"none"``, ``"warning"``, ``"fail"``, ``"exit-3"`` or ``"error"``.

    Raises:
        KeyError: an unknown ``fail_on`` or ``on_inconclusive``.
    """
    sev = severity if severity in ("error", "warning") else "error"
    blocks = sev in BLOCKING_SEVERITIES[fail_on]
    if status == ERROR:
        return "error"
    if status == FAIL:
        return "fail" if blocks else "warning"
    if status == INCONCLUSIVE:
        return _INCONCLUSIVE_EFFECT[on_inconclusive] if blocks else "warning"
    if status in (WAIVED, WARN):
        return "warning"
    return "none"


def verdict_of(effects: list[str], n_executed: int) -> str:
    """The verdict implied by the checks' effects (decision rule; no executed check is ``error``)."""
    if n_executed == 0 or "error" in effects:
        return ERROR
    if "fail" in effects:
        return FAIL
    if "exit-3" in effects:
        return INCONCLUSIVE
    if "warning" in effects:
        return WARN
    return PASS


def _artifact_problems(v: dict) -> list[str]:
    art = v.get("artifact") or {}
    name = v.get("name")
    listed = [f.get("name") for f in (art.get("files") or []) + (art.get("other_files") or [])]
    problems = []
    dup = sorted(n for n, k in Counter(listed).items() if k > 1)
    if dup:
        problems.append(f"variants[{name}].artifact lists {', '.join(map(str, dup))} more than once")
    digests = {f.get("name"): f.get("sha256") for f in (art.get("files") or []) + (art.get("other_files") or [])}
    root = (art.get("digest") or {}).get("sha256")
    if root:
        try:
            recomputed = digest_of_digests(digests)
        except (ValueError, TypeError) as exc:
            problems.append(f"variants[{name}].artifact: a file digest is not a sha256 ({exc})")
        else:
            if recomputed != root:
                problems.append(f"variants[{name}].artifact.digest.sha256 {root[:12]}... is not the digest of its own "
                                f"file list ({recomputed[:12]}...): the report was altered")
    if "n_files" in art and art["n_files"] != len(digests):
        problems.append(f"variants[{name}].artifact.n_files is {art['n_files']} but {len(digests)} files are listed")
    sizes = [f.get("bytes") for f in art.get("files") or []]
    if all(isinstance(s, int) for s in sizes) and art.get("bytes_total") != sum(sizes):
        problems.append(f"variants[{name}].artifact.bytes_total is {art.get('bytes_total')} but its model files sum "
                        f"to {sum(sizes)}")
    return problems


def consistency_problems(report: dict) -> list[str]:
    """Every disagreement between a (schema-valid) report's fields, one line each (rules: module docstring).

    Args:
        report: a parsed report that passed :func:`gate.report.schema.validate_report`.

    Returns:
        lines such as ``"verdict is pass but the checks give fail (the decision rule, fail_on error): ..."``;
        an empty list when the report is consistent.
    """
    problems: list[str] = []
    variants = report.get("variants") or []
    names = [v.get("name") for v in variants]
    dup = sorted(n for n, k in Counter(names).items() if k > 1)
    if dup:
        problems.append(f"variant name(s) {', '.join(map(str, dup))} appear more than once")
    for v in variants:
        problems += _artifact_problems(v)
    if "digests" in report:
        expected = report_digests(report)
        if report["digests"] != expected:
            bad = sorted(k for k in expected.keys() | report["digests"].keys()
                         if report["digests"].get(k) != expected.get(k))
            problems.append(f"digests.{'/'.join(bad)} do not match the report's own policy, suite and artifacts "
                            "(recomputed by gate.report.outputs.report_digests): the report was altered")

    verdict, exit_code = report.get("verdict"), report.get("exit_code")
    partial = bool(report.get("partial")) or bool(report.get("error"))
    checks = report.get("checks")
    summary = report.get("summary")
    if partial:
        if verdict != ERROR:
            problems.append(f"verdict is {verdict} but the run did not finish (partial or error recorded): it can only be error")
        if exit_code not in UNFINISHED_EXIT_CODES:
            problems.append(f"exit_code is {exit_code} but an unfinished run exits "
                            f"{', '.join(map(str, UNFINISHED_EXIT_CODES))} (bad input, execution error, interrupted)")
    if verdict in EXIT_CODES and exit_code != int(EXIT_CODES[verdict]) and not partial:
        problems.append(f"exit_code is {exit_code} but verdict {verdict} exits {int(EXIT_CODES[verdict])} "
                        "(gate.policy.decision.EXIT_CODES)")
    if not checks:
        if not partial and verdict != ERROR:
            problems.append(f"verdict is {verdict} but the report has no checks: nothing was judged, so it can only be error")
        return problems

    seen = Counter((c.get("variant"), c.get("id")) for c in checks)
    twice = sorted(f"{v}:{i}" for (v, i), k in seen.items() if k > 1)
    if twice:
        problems.append(f"check(s) {', '.join(twice)} appear more than once")
    unknown = sorted({str(c.get("variant")) for c in checks} - {str(n) for n in names})
    if unknown:
        problems.append(f"checks name variant(s) {', '.join(unknown)} that are not in the report")

    if not isinstance(summary, dict) or summary.get("fail_on") not in BLOCKING_SEVERITIES \
            or summary.get("on_inconclusive") not in _INCONCLUSIVE_EFFECT:
        problems.append("summary.fail_on / summary.on_inconclusive are missing or unknown: the verdict cannot be "
                        "checked against the decision rule")
        return problems
    fail_on, on_inc = summary["fail_on"], summary["on_inconclusive"]

    statuses, effects, wrong_effect = [], [], []
    for c in checks:
        try:
            status = normalise_status(c.get("status"))
        except ValueError as exc:
            problems.append(f"checks[{c.get('variant')}:{c.get('id')}]: {exc}")
            continue
        effect = expected_effect(status, c.get("severity"), fail_on, on_inc)
        statuses.append(status)
        effects.append(effect)
        if c.get("effect", "none") != effect:
            wrong_effect.append(f"{c.get('variant')}:{c.get('id')} ({status}, severity {c.get('severity')}) has effect "
                                f"{c.get('effect', 'none')}, not {effect}")
    if wrong_effect:
        problems.append(f"check effects disagree with the decision rule (fail_on {fail_on}, on_inconclusive {on_inc}): "
                        + "; ".join(wrong_effect[:5]) + (f"; and {len(wrong_effect) - 5} more" if len(wrong_effect) > 5 else ""))
    n_executed = sum(s in EXECUTED for s in statuses)
    implied = verdict_of(effects, n_executed)
    if not partial and verdict != implied:
        blocking = [f"{c.get('variant')}:{c.get('id')} {s}" for c, s, e in zip(checks, statuses, effects) if e in BLOCKING_EFFECTS]
        why = f" (blocking: {', '.join(blocking[:5])})" if blocking else ""
        problems.append(f"verdict is {verdict} but the checks give {implied} by the decision rule "
                        f"(fail_on {fail_on}, on_inconclusive {on_inc}){why}")

    by_status = {s: 0 for s in (PASS, FAIL, INCONCLUSIVE, WAIVED, ERROR, SKIPPED)}
    for s in statuses:
        by_status[s] = by_status.get(s, 0) + 1
    recorded = summary.get("by_status")
    if isinstance(recorded, dict) and {k: v for k, v in recorded.items() if v} != {k: v for k, v in by_status.items() if v}:
        problems.append(f"summary.by_status {recorded} does not count the checks ({by_status})")
    if "checks_total" in summary and summary["checks_total"] != len(checks):
        problems.append(f"summary.checks_total is {summary['checks_total']} but the report has {len(checks)} checks")
    if "executed" in summary and summary["executed"] != n_executed:
        problems.append(f"summary.executed is {summary['executed']} but {n_executed} checks executed")
    blocking = [f"{c.get('variant')}:{c.get('id')}" for c, e in zip(checks, effects) if e in BLOCKING_EFFECTS]
    if "blocking" in summary and sorted(summary["blocking"] or []) != sorted(blocking):
        problems.append(f"summary.blocking {summary['blocking']} is not the blocking checks ({blocking})")

    if len(statuses) == len(checks):
        want = sorted((str(c.get("variant")), str(c.get("id")), s, e) for c, s, e in zip(checks, statuses, effects)
                      if e != "none" or s == WAIVED)
        try:
            have = sorted((str(f.get("variant")), str(f.get("id")), normalise_status(f.get("status")), f.get("effect", "none"))
                          for f in report.get("findings") or [])
        except ValueError as exc:
            problems.append(f"findings: {exc}")
        else:
            if have != want:
                missing = [f"{v}:{i}" for v, i, _, _ in want if (v, i) not in {(a, b) for a, b, _, _ in have}]
                problems.append("findings do not list exactly the checks with an effect"
                                + (f" (missing: {', '.join(missing[:5])})" if missing else ""))
    return problems


def check_consistency(report: dict, source: str = "report") -> None:
    """Raise when the report's fields disagree (:func:`consistency_problems`).

    Raises:
        InputError: naming ``source`` and the first problems (at most 3), and how many there are.
    """
    problems = consistency_problems(report)
    if problems:
        shown = "; ".join(problems[:3]) + (f"; and {len(problems) - 3} more" if len(problems) > 3 else "")
        raise InputError(f"{source}: inconsistent report ({shown}); use the report.json exactly as prunegate check wrote it")


def load_consistent_report(path, text: bytes | None = None) -> dict:
    """Read, schema-validate (:func:`gate.report.schema.validate_report`) and consistency-check a report.

    Args:
        path: the report file (named in errors).
        text: its bytes when already read (e.g. the bytes a signature was checked over); ``None`` = read ``path``.

    Raises:
        InputError: missing, not JSON, schema-invalid (message from :mod:`gate.report.schema`) or inconsistent.
    """
    from gate.report.schema import load_report

    report = load_report(path, text=text)
    check_consistency(report, f"--report {path}")
    return report
