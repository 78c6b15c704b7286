"""``prunegate verify``: does a report belong to exactly these artifact bytes?

The report records, per variant, every artifact file's sha256 and the artifact's root digest (digest of
digests, ``exporters/artifact.py``). Verification re-hashes the directory with the same rules and compares:

* with ``variant`` given, against that variant;
* otherwise against the variant whose root digest equals the directory's; when none does, against the
  variant sharing the most file digests with the directory (candidates first on a tie, the others named),
  so the error names what differs.

Any difference is an integrity error (exit code :attr:`~gate.runtime.errors.ExitCode.INTEGRITY`, notes/gate_ux.md §4.4): a file whose
bytes differ, a file the report lists but the directory lacks, or a file the directory has but the report
does not list. A report whose root digest does not match its own file list (edited by hand) is one too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from exporters.artifact import digest_of_digests, file_digests

from gate.runtime.errors import ExitCode, InputError
from gate.report.view import artifact_digest, variant_by_name

EXIT_INTEGRITY = ExitCode.INTEGRITY  # kept for old imports; use ExitCode.INTEGRITY


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of :func:`verify_artifact`.

    Attributes:
        ok: the directory holds exactly the bytes the report describes for ``variant``.
        variant: the variant compared with (``None`` when the report has none to compare with).
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


def recorded_files(variant: dict) -> dict[str, str]:
    """``{relative name: sha256}`` of every artifact file the report lists for ``variant`` (model and other files)."""
    art = variant.get("artifact") or {}
    return {f["name"]: f["sha256"] for f in (art.get("files") or []) + (art.get("other_files") or [])}


def _names(xs: list[str], limit: int = 10) -> str:
    return ", ".join(xs[:limit]) + (f" and {len(xs) - limit} more" if len(xs) > limit else "")


def verify_artifact(report: dict, artifact_dir: str | Path, variant: str | None = None) -> VerifyResult:
    """Compare an artifact directory with a report's digests (rules: module docstring).

    Args:
        report: a validated prunegate v1 report.
        artifact_dir: the directory to check (e.g. the ONNX export you are about to ship).
        variant: the variant to compare with; ``None`` = find it by digest.

    Returns:
        the :class:`VerifyResult`; ``ok`` is False for any integrity problem.

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
    actual = {name: d["sha256"] for name, d in file_digests(root).items()}
    actual_root = digest_of_digests(actual)
    if variant is not None:
        chosen = variant_by_name(report, variant)
        if chosen is None or not artifact_digest(chosen):
            names = ", ".join(v["name"] for v in with_digest)
            raise InputError(f"--variant {variant}: not a variant with an artifact digest in this report ({names}); pass one of them")
    tied: list[str] = []
    if variant is None:
        matching = [v for v in with_digest if artifact_digest(v) == actual_root]
        if matching:
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
    if digest_of_digests(expected) != expected_root:
        return VerifyResult(False, name, expected_root, actual_root,
                            message=f"report's artifact digest for {name} does not match its own file list: the report was altered")
    mismatched = sorted(n for n in expected.keys() & actual.keys() if expected[n] != actual[n])
    missing = sorted(expected.keys() - actual.keys())
    extra = sorted(actual.keys() - expected.keys())
    others = [v["name"] for v in with_digest if v is not chosen and artifact_digest(v) == actual_root]
    if not (mismatched or missing or extra) and expected_root == actual_root:
        return VerifyResult(True, name, expected_root, actual_root, also_matching=others,
                            message=f"{root} matches variant {name} ({len(actual)} files, sha256 {actual_root})")
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
    return VerifyResult(False, name, expected_root, actual_root, mismatched, missing, extra, message=message)
