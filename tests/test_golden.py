"""Behaviour is preserved: the golden runs recorded before the restructuring give the same reports now.

``tests/golden/make_golden.py`` records a ``prunegate check`` on the tiny model and a ``prunegate bbq score`` on
UnifiedQA's Age predictions. This test runs both again and compares every field, except what a re-run may
change by nature: wall-clock timings and latency/memory samples (and the checks decided from them), ids, dates,
absolute paths and the environment. ``method`` texts are compared without the source-file names they
used to carry.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from conftest import SHARED

GOLDEN = Path(__file__).resolve().parent / "golden"
# fields whose value is a measurement of time or memory, an id, a date, a path or the machine
VOLATILE = re.compile(r"(/bench/|/timings_s|seconds|_s$|/report_id$|/started_at$|/finished_at$|/environment/|path|"
                      r"/files/\d+$|/dir$|/work_dir$|/config/model$|/predictions$|/bbq_dir$|/out_dir$|/reused$|/tokenizer$|"
                      r"/execution/measured_cpu$)")
# floating-point results differ in their last bits between CPUs and thread schedules (recorded on AMD EPYC, seen
# again on Intel Xeon: perplexity equal to 1e-9 relative, ORT-vs-torch logit difference 1.2e-07 vs 1.8e-07);
# numbers are compared to this tolerance, also where a message prints them
REL_TOL, ABS_TOL = 1e-6, 1e-5
NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?")
# checks decided from latency or memory samples: only their presence is compared
MEASURED_CHECKS = {"efficiency.speedup", "efficiency.memory", "budget.latency", "budget.memory"}
# report fields no longer name source files (a move must not change a report): the recorded ``method`` texts
# said e.g. "(gate/paired_stats.py)"; both sides are compared with such mentions removed
# fields whose recorded value named a source file or a machine path, changed on purpose so that reports no
# longer do (their digests follow); each is listed with what it says now
EXPECTED_CHANGES = {
    "/config/policy/content": "the default policy's comments name its new place, gate/policy/default_policy.toml",
    "/config/policy/sha256": "digest of that text",
    "/digests/policy/sha256": "digest of that text",
    "/suite/manifest/sampling": "names the sampling method, not the module that implements it",
    "/suite/manifest/digest": "digest of the manifest, which holds the sampling text",
    "/suite/manifest_digest": "the same digest",
    "/digests/suite_manifest/sha256": "the same digest",
    "/profile/sources/1": "no longer points at a research note on the developers' machine",
}
EXPECTED_ADDITIONS = {  # keys added since the recording (report schema 1.1: additive); pattern -> why
    r"^/tokenization/": "the tokenizer and its BOS rule, checked against the model's metadata (issue 16 item 6)",
    r"^/variants/\d+/perplexity/tokenization/(bos_id|first_ids)": "the BOS rule as the perplexity stage applied it",
    r"^/variants/\d+/bbq/tokenization/": "the BOS rule as BBQ scoring applied it",
}
EXPECTED_ADDITIONS.update({
    r"/mcnemar/(chi2_clustered|p_value_clustered|n_clusters|method_clustered)$":
        "Obuchowski's clustered McNemar test beside the exact one (issue 13 item 2)",
    r"/mde/(delta_srs_unclustered|design_effect|n_clusters)$": "the MDE's design effect over template instances",
})
RENAMED_IN_NEW = {  # the recorded value lives under a new name now; compared there, so it still must not change
    r"/mde/delta_srs_unclustered$": "/mde/delta_srs",  # delta_srs is now inflated by the design effect
}
EXPECTED_CHANGE_PATTERNS = {
    r"/mde/method$": "the MDE's method names the design-effect inflation",
    r"/size/bytes_gzip$": "gzip is opt-in now (67 s per 539 MB artifact, single-threaded); null by default",
}
EXPECTED_ADDITIONS[r"^/((checks|findings)/|config/policy/effective/checks/)efficiency\.structural"] = (
    "the kernels' decode speedup bound from the ORT-optimized graph (issue 12 item 3)")
EXPECTED_ADDITIONS[r"^/warnings/\d+$"] = (
    "the console's warnings now reach report.json (noisy latency, which depends on the machine; the suite's MDE)")
EXPECTED_REMOVALS = {r"/size/compression_settings/gzip/(library|level|mtime)$": "gzip not run by default"}
EXPECTED_ADDITIONS.update({
    r"/size/op_types/static_cost/": "FLOPs, weight bytes and kernels per token from the ORT-optimized graph (issue 12 item 3)",
    r"/size/compression_settings/gzip/skipped$": "why bytes_gzip is null",
})
EXPECTED_CHANGES["/schema_version"] = "1.0.0 -> 1.1.0: the additions above"
SOURCE_MENTION = re.compile(r"\s*\((?:gate|exporters)/[^)]*\)")


def _flatten(obj, prefix=""):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _flatten(v, f"{prefix}/{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _flatten(v, f"{prefix}/{i}")
    else:
        yield prefix, obj


def _close(a, b, rel=REL_TOL) -> bool:
    return abs(a - b) <= max(ABS_TOL, rel * max(abs(a), abs(b)))


def _same(a, b) -> bool:
    """Equal, numbers to the tolerance; strings equal once their numbers (as printed, 4 digits) are."""
    if isinstance(a, bool) or isinstance(b, bool) or a is None or b is None:
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return _close(float(a), float(b))
    if isinstance(a, str) and isinstance(b, str):
        if NUMBER.sub("#", a) != NUMBER.sub("#", b):
            return False
        na, nb = NUMBER.findall(a), NUMBER.findall(b)
        return all(x == y or _close(float(x), float(y), rel=1e-3) for x, y in zip(na, nb))
    return a == b


def test_tolerance_is_tight():
    assert _same(298.46937393996944, 298.46937403608223) and _same("1.192e-07 (exact)", "1.788e-07 (exact)")
    assert not _same(298.47, 298.5) and not _same("0.988 <= 1.2", "0.991 <= 1.2") and not _same(3, 4)
    assert not _same("FAIL", "PASS") and not _same(True, 1)


def _comparable(report: dict) -> dict:
    report = json.loads(json.dumps(report))
    for key in ("checks", "findings"):
        if key not in report:
            continue
        if key == "checks":  # every check is listed in every run: the measured ones by presence only
            report[key] = [c if c.get("id") not in MEASURED_CHECKS else {"id": c["id"], "variant": c.get("variant")}
                           for c in report[key]]
        else:  # a measured check is a finding or not depending on the measurement: left out
            report[key] = [c for c in report[key] if c.get("id") not in MEASURED_CHECKS]
        # keyed by check and variant, not by position: a check added to the registry moves the others
        report[key] = {f"{c.get('id')}@{c.get('variant')}@{c.get('group') or ''}": c for c in report[key]}
    report.pop("summary", None)  # counts by status include the measured checks
    return {p: SOURCE_MENTION.sub("", v) if isinstance(v, str) else v
            for p, v in _flatten(report) if not VOLATILE.search(p)}


@pytest.fixture(scope="module")
def rerun(tmp_path_factory):
    if not (SHARED / "bbq" / "data").is_dir() or not (SHARED / "reference" / "unifiedqa" / "Age.csv").is_file():
        pytest.skip("shared BBQ data or UnifiedQA reference not found")
    import sys

    sys.path.insert(0, str(GOLDEN))
    from make_golden import run_golden

    return run_golden(tmp_path_factory.mktemp("golden"))


@pytest.mark.parametrize("name", ["check_report", "bbq_score_age"])
def test_same_report_as_the_golden_run(rerun, name):
    golden = json.loads((GOLDEN / f"{name}.json").read_text())
    new = rerun[name]
    want, got = _comparable(golden), _comparable(new)
    for pattern, old_name in RENAMED_IN_NEW.items():
        for p in [p for p in got if re.search(pattern, p)]:
            got[re.sub(pattern, old_name, p)] = got.pop(p)
    missing = sorted(p for p in set(want) - set(got) if not any(re.search(r, p) for r in EXPECTED_REMOVALS))
    extra = sorted(p for p in set(got) - set(want) if not any(re.search(r, p) for r in EXPECTED_ADDITIONS))
    changed = sorted(p for p in set(want) & set(got) if not _same(want[p], got[p]) and p not in EXPECTED_CHANGES
                     and not any(re.search(r, p) for r in EXPECTED_CHANGE_PATTERNS))
    assert not missing and not extra and not changed, {"missing": missing[:20], "extra": extra[:20],
                                                       "changed": [(p, want[p], got[p]) for p in changed[:20]]}
    assert len(want) > (500 if name == "check_report" else 60)  # the whole report, not an empty shell
