"""``prunegate verify``: is this directory the artifact that passed the gate?

The report records, per variant, every artifact file's sha256 and the artifact's root digest (digest of
digests, :func:`exporters.artifact.digest_of_digests`). Verification answers two questions, in order:

1. **Integrity** -- does the directory hold exactly the bytes of one of the report's variants? It re-hashes the
   directory with the same rules (:func:`exporters.artifact.file_digests`) and compares:

   * with ``variant`` given, against that variant;
   * otherwise against the variant whose root digest equals the directory's (a candidate before the baseline
     when several do); when none does, against the variant sharing the most file digests with the directory
     (candidates first on a tie, the others named), so the error names what differs.

   Any difference is an integrity error: a file whose bytes differ, a file the report lists but the directory
   lacks, a file the directory has but the report does not list; and a directory holding a symbolic link, a
   FIFO, a socket, a device, or an ONNX external-data location outside it
   (:class:`exporters.artifact.UnsafeArtifactError`; nothing is followed or hashed then). A report that is not
   consistent with itself (:mod:`gate.report.consistency`, e.g. a root digest that does not match its own file
   list, or a verdict the checks do not give) is one too.

2. **Verdict** -- did that variant pass? Only a *candidate* whose gate passed counts: the report's verdict is
   ``pass`` or ``warn``, the run finished (not ``partial``), the candidate has at least one executed check and
   none of its checks blocks (effect ``fail``, ``exit-3`` or ``error``). The baseline, or a candidate of a
   failed, inconclusive or errored run, is refused. ``any_verdict=True`` skips this question (integrity only).

Both refusals are exit code :attr:`~gate.runtime.errors.ExitCode.INTEGRITY` (5) in the CLI.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from exporters.artifact import UnsafeArtifactError, digest_of_digests, file_digests
from gate.policy.status import PASS, WARN
from gate.report.consistency import BLOCKING_EFFECTS, EXECUTED, consistency_problems
from gate.report.view import artifact_digest, normalise_status, variant_by_name
from gate.runtime.errors import ExitCode, InputError

EXIT_INTEGRITY = ExitCode.INTEGRITY  # kept for old imports; use ExitCode.INTEGRITY


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of :func:`verify_artifact`.

    Attributes:
        ok: the directory holds exactly the bytes the report describes for ``variant`` and (unless
            ``any_verdict``) that variant is a candidate that passed the gate.
        variant: the variant compared with (``None`` when the report has none to compare with).
        integrity_ok: the bytes match (whatever the verdict).
        passed: the variant is a candidate that passed the gate (``None`` when not asked or not reached).
        role: the variant's role (``"baseline"`` or ``"candidate"``), ``None`` when not reached.
        verdict: the report's overall verdict.
        expected_sha256: that variant's root digest in the report.
        actual_sha256: the directory's root digest.
        mismatched, missing, extra: relative file names whose bytes differ / that the directory lacks / that
            the report does not list.
        also_matching: other variants with the same root digest (an identical artifact, e.g. an A/A check).
        message: one line for people.
    """

    ok: bool
    variant: str | None
    expected_sha256: str | None
    actual_sha256: str
    mismatched: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    also_matching: list[str] = field(default_factory=list)
    message: str = ""
    integrity_ok: bool = False
    passed: bool | None = None
    role: str | None = None
    verdict: str | None = None
    kind: str = "integrity"
    """``"integrity"`` (bytes, unsafe entries, an inconsistent report), ``"verdict"`` (did not pass) or ``"ok"``."""


def recorded_files(variant: dict) -> dict[str, str]:
    """``{relative name: sha256}`` of every artifact file the report lists for ``variant`` (model and other files)."""
    art = variant.get("artifact") or {}
    return {f["name"]: f["sha256"] for f in (art.get("files") or []) + (art.get("other_files") or [])}


def _names(xs: list[str], limit: int = 10) -> str:
    return ", ".join(xs[:limit]) + (f" and {len(xs) - limit} more" if len(xs) > limit else "")


def gate_status(report: dict, variant: dict) -> tuple[bool, str]:
    """Did ``variant`` pass the gate (module docstring, question 2)?

    Returns:
        ``(passed, reason)``: ``reason`` is one phrase, e.g. ``"the baseline, not a candidate"``.
    """
    name = variant.get("name")
    verdict = report.get("verdict")
    if variant.get("role") != "candidate":
        return False, f"{name} is the {variant.get('role') or 'unnamed-role'} variant, not a candidate: it is not what the gate passed"
    if report.get("partial") or report.get("error"):
        return False, f"the run did not finish (verdict {verdict}): candidate {name} was not judged"
    if verdict not in (PASS, WARN):
        return False, f"the gate's verdict is {verdict}: candidate {name} did not pass"
    mine = [c for c in report.get("checks") or [] if c.get("variant") == name]
    try:
        executed = [c for c in mine if normalise_status(c.get("status")) in EXECUTED]
    except ValueError as exc:
        return False, f"candidate {name}: {exc}"
    if not executed:
        return False, f"candidate {name} has no executed check: it was not judged"
    blocking = [c.get("id") for c in mine if c.get("effect") in BLOCKING_EFFECTS]
    if blocking:
        return False, f"candidate {name} has blocking check(s) {', '.join(map(str, blocking))}"
    return True, f"candidate {name} passed the gate (verdict {verdict})"


def verify_artifact(report: dict, artifact_dir: str | Path, variant: str | None = None, *,
                    any_verdict: bool = False) -> VerifyResult:
    """Is ``artifact_dir`` the artifact that passed the gate (rules: module docstring)?

    Args:
        report: a schema-validated prunegate v1 report (:func:`gate.report.schema.load_report`); its consistency is
            checked here.
        artifact_dir: the directory to check (e.g. the ONNX export you are about to ship).
        variant: the variant to compare with; ``None`` = find it by digest.
        any_verdict: check integrity only (any variant, any verdict).

    Returns:
        the :class:`VerifyResult`; ``ok`` is False for any integrity problem and (unless ``any_verdict``) when the
        variant is not a candidate that passed.

    Raises:
        InputError: ``artifact_dir`` is not a directory; ``variant`` is not in the report; the report has no
            variant with an artifact digest.
    """
    root = Path(artifact_dir)
    if not root.is_dir():
        raise InputError(f"--artifact {root}: not a directory; pass the artifact directory the report describes")
    with_digest = [v for v in report.get("variants") or [] if artifact_digest(v)]
    if not with_digest:
        raise InputError("--report: no variant has an artifact digest (the run stopped before any export finished); "
                         "re-run prunegate check")
    problems = consistency_problems(report)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        return VerifyResult(False, variant, None, "", message=f"the report is inconsistent: {problems[0]}{more}",
                            verdict=report.get("verdict"))
    try:
        actual = {name: d["sha256"] for name, d in file_digests(root).items()}
    except UnsafeArtifactError as exc:
        return VerifyResult(False, variant, None, "", extra=[exc.name], message=str(exc), verdict=report.get("verdict"))
    actual_root = digest_of_digests(actual)
    if variant is not None:
        chosen = variant_by_name(report, variant)
        if chosen is None or not artifact_digest(chosen):
            names = ", ".join(v["name"] for v in with_digest)
            raise InputError(f"--variant {variant}: not a variant with an artifact digest in this report ({names}); pass one of them")
    tied: list[str] = []
    if variant is None:
        matching = [v for v in with_digest if artifact_digest(v) == actual_root]
        if matching:  # identical artifacts (an A/A check): a candidate that passed, then any candidate, then the rest
            matching.sort(key=lambda v: (v.get("role") != "candidate", not gate_status(report, v)[0]))
            chosen = matching[0]
        else:
            def shared(v: dict) -> int:
                return sum(1 for n, d in recorded_files(v).items() if actual.get(n) == d)

            best = max(shared(v) for v in with_digest)
            closest = [v for v in with_digest if shared(v) == best]
            closest.sort(key=lambda v: v.get("role") != "candidate")  # a tie: the shipped candidates first
            chosen, tied = closest[0], [v["name"] for v in closest[1:]]
    expected = recorded_files(chosen)
    expected_root = artifact_digest(chosen)
    name = chosen["name"]
    if digest_of_digests(expected) != expected_root:  # caught by consistency_problems already; kept as a guard
        return VerifyResult(False, name, expected_root, actual_root,
                            message=f"report's artifact digest for {name} does not match its own file list: the report was altered")
    mismatched = sorted(n for n in expected.keys() & actual.keys() if expected[n] != actual[n])
    missing = sorted(expected.keys() - actual.keys())
    extra = sorted(actual.keys() - expected.keys())
    others = [v["name"] for v in with_digest if v is not chosen and artifact_digest(v) == actual_root]
    verdict = report.get("verdict")
    if not (mismatched or missing or extra) and expected_root == actual_root:
        matched = f"{root} matches variant {name} ({len(actual)} files, sha256 {actual_root})"
        common = {"also_matching": others, "integrity_ok": True, "role": chosen.get("role"), "verdict": verdict}
        if any_verdict:
            return VerifyResult(True, name, expected_root, actual_root, message=f"{matched}; verdict not checked "
                                f"(--any-verdict; the gate's verdict is {verdict})", kind="ok", **common)
        passed, why = gate_status(report, chosen)
        if passed:
            return VerifyResult(True, name, expected_root, actual_root, message=f"{matched}; {why}", passed=True,
                                kind="ok", **common)
        return VerifyResult(False, name, expected_root, actual_root, message=f"{matched}, but {why}", passed=False,
                            kind="verdict", **common)
    parts = []
    if mismatched:
        parts.append(f"content differs: {_names(mismatched)}")
    if missing:
        parts.append(f"missing: {_names(missing)}")
    if extra:
        parts.append(f"not in the report: {_names(extra)}")
    if variant is None:
        tie = f" (equally close: {', '.join(tied)}; pass --variant NAME to compare with one)" if tied else ""
        message = f"{root} matches no variant of the report; compared with the closest, {name}{tie}: {'; '.join(parts)}"
    else:
        message = f"{root} does not match variant {name}: {'; '.join(parts)}"
    return VerifyResult(False, name, expected_root, actual_root, mismatched, missing, extra, message=message,
                        role=chosen.get("role"), verdict=verdict)
