"""``intoto.json``: an in-toto Statement v1 binding a candidate artifact to its gate result (signing: below).

Format: in-toto attestation framework, ``spec/v1/statement.md`` (``_type``, ``subject`` = ResourceDescriptors
with ``name`` + ``digest``, ``predicateType``, ``predicate``) with the Test Result predicate
``https://in-toto.io/attestation/test-result/v0.1`` (``spec/predicates/test-result.md``: ``result`` =
PASSED | WARNED | FAILED, ``configuration`` = ResourceDescriptors of what configured the tests, ``url``,
``passedTests``, ``warnedTests``, ``failedTests``).

* subject: the candidate artifact, ``{name, digest: {sha256: <root digest>}}``; the root digest is the
  model-signing v1.0 digest of digests (:func:`exporters.artifact.digest_of_digests`), so the same value
  names the model in a model-signing signature.
* configuration: the policy (its sha256), the BBQ suite manifest (its sha256) and the baseline artifact.
* tests: the checks of that candidate, by check id. A blocking failure, an error or a blocking inconclusive
  result is a failed test; a non-blocking problem is a warned test; pass, skipped and waived are passed tests
  (waived and skipped are listed under their own name with a ``#waived``/``#skipped`` suffix so a policy can
  tell them apart). A partial report (crashed or interrupted run) is FAILED with the test ``prunegate.run``.

Signing: ``prunegate report sign REPORT --key PRIVATE.pem`` writes ``<statement>.sig`` beside each statement, a
DSSE v1 envelope (payload type ``application/vnd.in-toto+json``, in-toto ``spec/v1/envelope.md``) signed with
Ed25519 (:mod:`gate.report.signing`), after checking that the statement is the one :func:`render_intoto` gives for
the report. A CI may sign instead (e.g. ``cosign attest --type https://in-toto.io/attestation/test-result/v0.1``).
"""

from __future__ import annotations

from gate.policy.status import PASS, SKIPPED, WAIVED
from gate.report.view import (
    artifact_digest,
    candidates,
    check_rows,
    policy_digest,
    variant_by_name,
)
from gate.runtime.errors import InputError

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
TEST_RESULT_TYPE = "https://in-toto.io/attestation/test-result/v0.1"


def _descriptor(name: str, sha256: str | None, **extra) -> dict | None:
    if not sha256:
        return None
    return {"name": name, "digest": {"sha256": sha256}, **extra}


def select_candidate(report: dict, variant: str | None) -> dict:
    """The candidate the statement is about: ``variant`` by name, or the only candidate.

    Raises:
        InputError: ``variant`` is unknown or not a candidate; no candidate; several candidates and no ``variant``.
    """
    cands = candidates(report)
    names = ", ".join(v["name"] for v in cands) or "none"
    if variant is not None:
        v = variant_by_name(report, variant)
        if v is None or v.get("role") != "candidate":
            raise InputError(f"--variant {variant}: not a candidate of this report (candidates: {names}); pass one of them")
        return v
    if len(cands) != 1:
        raise InputError(f"the report has {len(cands)} candidates ({names}); pass --variant NAME to pick the attested one")
    return cands[0]


def render_intoto(report: dict, variant: str | None = None, url: str | None = None) -> dict:
    """Build the in-toto Statement for one candidate.

    Args:
        report: a prunegate report (schema v1).
        variant: the candidate's name (may be omitted when the report has exactly one candidate).
        url: where the test results can be seen (e.g. the CI run); default ``environment.ci.run_url`` if recorded.

    Returns:
        the Statement as a JSON-ready dict.

    Raises:
        InputError: see :func:`select_candidate`; or the candidate's artifact has no digest (nothing to bind to).
    """
    cand = select_candidate(report, variant)
    digest = artifact_digest(cand)
    if not digest:
        raise InputError(f"variant {cand['name']}: the report has no artifact digest for it (export did not finish); "
                         "re-run prunegate check")
    rows = [r for r in check_rows(report) if r.variant == cand["name"]]
    passed, warned, failed = [], [], []
    for r in rows:
        if r.status == PASS:
            passed.append(r.id)
        elif r.status in (SKIPPED, WAIVED):
            passed.append(f"{r.id}#{r.status}")
        elif r.level == "error":
            failed.append(r.id)
        else:
            warned.append(r.id)
    if report.get("partial") or report.get("error"):
        failed.append("prunegate.run")
    result = "FAILED" if failed else "WARNED" if warned else "PASSED"
    baseline = next((v for v in report.get("variants") or [] if v.get("role") == "baseline"), None)
    config = [
        _descriptor("policy", policy_digest(report)),
        _descriptor("bbq-suite-manifest", (report.get("suite") or {}).get("manifest_digest")),
        _descriptor(f"baseline:{baseline['name']}", artifact_digest(baseline)) if baseline else None,
    ]
    predicate = {
        "result": result,
        "configuration": [c for c in config if c],
        "passedTests": passed,
        "warnedTests": warned,
        "failedTests": failed,
    }
    url = url or ((report.get("environment") or {}).get("ci") or {}).get("run_url")
    if url:
        predicate["url"] = url
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": cand["name"], "digest": {"sha256": digest}}],
        "predicateType": TEST_RESULT_TYPE,
        "predicate": predicate,
    }
