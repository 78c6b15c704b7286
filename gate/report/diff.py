"""``prunegate report diff OLD NEW``: what changed between two reports, and whether NEW regressed.

Both reports are untrusted input: each goes through the schema (:func:`gate.report.schema.load_report`) and the
consistency rules (:func:`gate.report.consistency.check_consistency`) before anything is compared.

**Comparable?** Two reports are compared only when they judged the same BBQ suite (``suite.manifest_digest``) with
the same scoring settings (``config.scoring`` and, for every variant in both, ``bbq.scoring``'s ``mode``,
``length_normalize``, ``permute_options``, ``chat_template`` and ``letters``). Otherwise :func:`diff_reports`
refuses (:class:`~gate.runtime.errors.InputError`, exit 2), unless ``allow_different_suite``; the differences are
then listed in the output and the paired comparison is not computed. A different policy (``digests.policy``) is
reported, not refused: the regression rule uses NEW's margins and severities.

**Per variant and check.** Variants are matched by name and checks by ``(variant, id)`` (unique in a consistent
report). For each pair the old and new status, estimate and interval are shown. A check **regressed** when

* its status got worse: ``pass`` < ``inconclusive`` < ``fail`` = ``error`` (e.g. pass -> fail or inconclusive);
  ``warn``, ``waived`` and ``skipped`` are not ranked; or
* its estimate crossed the check's margin (NEW's ``margin``) in the bad direction (``direction``, see
  :class:`gate.policy.checks.CheckSpec`): for ``at_most``, old estimate <= margin < new estimate; for
  ``at_least``, old estimate >= margin > new estimate. Not applied when NEW's check is waived or skipped.

A regression **blocks** when the check's severity blocks under NEW's ``summary.fail_on``
(:data:`gate.policy.decision.BLOCKING_SEVERITIES`); the exit code is 1 when one does, else 0. Checks and
variants present in only one report are listed, never counted as regressions.

**Paired verdict on the items both scored.** When the suite is the same and both reports' prediction files exist
(each variant's ``bbq.predictions``; looked up beside the report, ``<report dir>/predictions/<file name>``, first,
then at the recorded path when it lies inside the report's directory; a report never makes ``diff`` read a file
outside its own directory), NEW's predictions are compared with OLD's, item by item, on the items both scored, by
:func:`gate.bbq.paired.paired_comparison` (OLD = base, NEW = candidate): bias transitions, the exact McNemar test,
and paired bootstrap intervals of ΔSRS, Δ|s_AMB| and Δaccuracy, with NEW's policy statistics (confidence,
resamples, seed). Prediction files do not record the template id; items are grouped into template instances by
``<category>/<example_id // 4>`` (the official generator writes each instance as 4 consecutive example ids; see
:func:`gate.bbq.data.template_id_for`). A missing file is said in the output (``paired.status = "not
computed"``); a file that is not valid, or does not reproduce the report's own BBQ accuracies, is bad input. The
paired verdict is information: it does not change the exit code.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from gate.policy.decision import BLOCKING_SEVERITIES
from gate.report.view import (
    Interval,
    finite_number,
    fmt_num,
    normalise_status,
    variant_by_name,
)
from gate.runtime.errors import InputError

STATUS_RANK = {"pass": 0, "inconclusive": 1, "fail": 2, "error": 2}
"""How bad a check status is, for "the status got worse" (unranked statuses never regress by status)."""
SCORING_KEYS = ("mode", "length_normalize", "permute_options", "chat_template", "letters")
"""Keys of a variant's ``bbq.scoring`` that must agree for two reports to be compared."""
MAX_PREDICTION_BYTES = 64 * 1024 * 1024
"""A predictions file larger than this is refused (a suite of 10^5 items is about 30 MB)."""
MAX_RESAMPLES = 100_000
"""Largest bootstrap resample count taken from a report's policy (an untrusted report must not stall diff)."""
_PRED_FIELDS = ("uid", "category", "example_id", "context_condition", "question_polarity", "label", "unknown_index",
                "bias_target_index", "pred_index")
_GOLD_FIELDS = ("category", "example_id", "context_condition", "question_polarity", "label", "unknown_index",
                "bias_target_index")


@dataclass(frozen=True)
class CheckDiff:
    """One ``(variant, check id)`` in OLD and/or NEW.

    Attributes:
        variant, id: the variant's name and the check's id.
        old, new: the check dicts (``None`` when absent from that report).
        regressed: whether NEW regressed on this check (rule: module docstring); ``reasons`` says why.
        blocking: the regression blocks under NEW's ``fail_on`` (counts for the exit code).
    """

    variant: str
    id: str
    old: dict | None
    new: dict | None
    regressed: bool = False
    blocking: bool = False
    reasons: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        """JSON-ready: ``{variant, id, old, new, margin, direction, unit, severity, regressed, blocking, reasons}``;
        ``old``/``new`` = ``{status, estimate, ci_low, ci_high, confidence, margin}`` or ``None``."""
        def side(c):
            if c is None:
                return None
            return {"status": _status(c), **{k: finite_number(c.get(k)) for k in ("estimate", "ci_low", "ci_high", "confidence", "margin")}}
        ref = self.new or self.old or {}
        return {"variant": self.variant, "id": self.id, "old": side(self.old), "new": side(self.new),
                "margin": finite_number(ref.get("margin")), "direction": ref.get("direction"), "unit": ref.get("unit"),
                "severity": ref.get("severity"), "regressed": self.regressed, "blocking": self.blocking,
                "reasons": list(self.reasons)}


@dataclass(frozen=True)
class ReportDiff:
    """The comparison of two reports (:func:`diff_reports`).

    Attributes:
        old, new: ``{path, report_id, verdict, finished_at, policy_sha256, suite_manifest}`` of each report.
        differences: what makes the reports not comparable (suite, scoring), empty when comparable.
        notes: other differences worth knowing (policy, variants only in one report).
        checks: one :class:`CheckDiff` per ``(variant, id)``, NEW's order first, then OLD-only ones.
        paired: per variant in both reports, the paired comparison of NEW vs OLD predictions (``status``
            ``"computed"`` with the statistics, or ``"not computed"`` with the ``reason``).
    """

    old: dict
    new: dict
    differences: tuple[str, ...]
    notes: tuple[str, ...]
    checks: tuple[CheckDiff, ...]
    paired: dict = field(default_factory=dict)

    @property
    def regressions(self) -> list[CheckDiff]:
        """The checks on which NEW regressed."""
        return [c for c in self.checks if c.regressed]

    @property
    def exit_code(self) -> int:
        """1 when a regression blocks under NEW's policy, else 0."""
        return 1 if any(c.blocking for c in self.checks) else 0

    def to_dict(self) -> dict:
        """JSON-ready form (what ``--format json`` prints)."""
        return {"old": self.old, "new": self.new, "comparable": not self.differences,
                "differences": list(self.differences), "notes": list(self.notes),
                "checks": [c.to_dict() for c in self.checks],
                "regressions": [f"{c.variant}:{c.id}" for c in self.regressions],
                "blocking_regressions": [f"{c.variant}:{c.id}" for c in self.checks if c.blocking],
                "paired": self.paired, "exit_code": self.exit_code}




def _status(c: dict) -> str:
    return normalise_status(c.get("status"))


# ---------------------------------------------------------------- loading


def load_for_diff(path: str | Path, label: str) -> dict:
    """Read, schema-validate and consistency-check one report (:func:`gate.report.schema.load_report`,
    :func:`gate.report.consistency.check_consistency`).

    Args:
        path: the report file.
        label: how the command line names it (``"OLD"``, ``"NEW"``), used in errors.

    Raises:
        InputError: the file is missing, not a regular file, not JSON, schema-invalid or inconsistent (one line
            naming ``label`` and the path).
    """
    from gate.report.consistency import check_consistency
    from gate.report.schema import load_report

    p = Path(path)
    try:
        if not stat.S_ISREG(os.stat(p).st_mode):
            raise InputError(f"{label} {p}: not a regular file; pass a report.json written by prunegate check")
        data = p.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{label} {p}: no such file; pass the report.json written by prunegate check") from None
    except OSError as exc:
        raise InputError(f"{label} {p}: cannot be read ({exc.strerror}); pass a readable report.json") from None
    try:
        report = load_report(p, text=data)
    except InputError as exc:
        raise InputError(str(exc).replace(f"--report {p}", f"{label} {p}", 1)) from None
    check_consistency(report, f"{label} {p}")
    return report


# ---------------------------------------------------------------- comparability


def _scoring(report: dict, v: dict | None = None) -> dict:
    if v is None:
        return dict((report.get("config") or {}).get("scoring") or {})
    s = (v.get("bbq") or {}).get("scoring") or {}
    return {k: s[k] for k in SCORING_KEYS if k in s}


def comparability(old: dict, new: dict) -> list[str]:
    """What makes OLD and NEW incomparable: a different suite manifest digest or scoring settings (one line each;
    empty when comparable). Rules: module docstring."""
    out = []
    so, sn = (old.get("suite") or {}).get("manifest_digest"), (new.get("suite") or {}).get("manifest_digest")
    if not so or not sn:
        out.append(f"suite: {'OLD' if not so else 'NEW'} records no suite manifest digest (suite.manifest_digest)")
    elif so != sn:
        out.append(f"suite: manifest digests differ (OLD {so[:12]}…, NEW {sn[:12]}…): the reports scored different BBQ items")
    co, cn = _scoring(old), _scoring(new)
    if co != cn:
        out.append(f"scoring: config.scoring differs (OLD {json.dumps(co, sort_keys=True)}, NEW {json.dumps(cn, sort_keys=True)})")
    for v in new.get("variants") or []:
        ov = variant_by_name(old, v.get("name"))
        if ov is not None and ov.get("bbq") and v.get("bbq") and _scoring(old, ov) != _scoring(new, v):
            out.append(f"scoring: variant {v.get('name')}'s bbq.scoring differs (OLD {json.dumps(_scoring(old, ov), sort_keys=True)}, "
                       f"NEW {json.dumps(_scoring(new, v), sort_keys=True)})")
    return out


# ---------------------------------------------------------------- checks


def _crossed(direction: str | None, margin: float | None, old: float | None, new: float | None) -> bool:
    if margin is None or old is None or new is None:
        return False
    if direction == "at_most":
        return old <= margin < new
    if direction == "at_least":
        return old >= margin > new
    return False


def compare_check(variant: str, cid: str, old: dict | None, new: dict | None, fail_on: str | None) -> CheckDiff:
    """One :class:`CheckDiff`: the regression rule of the module docstring, with NEW's margin and severity."""
    if old is None or new is None:
        return CheckDiff(variant, cid, old, new)
    so, sn = _status(old), _status(new)
    reasons = []
    if so in STATUS_RANK and sn in STATUS_RANK and STATUS_RANK[sn] > STATUS_RANK[so]:
        reasons.append(f"status {so} -> {sn}")
    margin, direction = finite_number(new.get("margin")), new.get("direction")
    eo, en = finite_number(old.get("estimate")), finite_number(new.get("estimate"))
    if sn not in ("waived", "skipped") and _crossed(direction, margin, eo, en):
        word = "at most" if direction == "at_most" else "at least"
        reasons.append(f"estimate {fmt_num(eo, '.4g')} -> {fmt_num(en, '.4g')} crossed the margin ({word} {fmt_num(margin, '.4g')})")
    regressed = bool(reasons)
    sev = str(new.get("severity") or "error").lower()
    sev = sev if sev in ("error", "warning") else "error"  # unknown severity counts as error (fail closed)
    blocking = regressed and sev in BLOCKING_SEVERITIES.get(fail_on or "error", ("error",))
    return CheckDiff(variant, cid, old, new, regressed, blocking, tuple(reasons))


def compare_checks(old: dict, new: dict) -> list[CheckDiff]:
    """Every ``(variant, id)`` of either report, NEW's order first (:func:`compare_check`)."""
    index_old = {(str(c.get("variant")), str(c.get("id"))): c for c in old.get("checks") or []}
    index_new = {(str(c.get("variant")), str(c.get("id"))): c for c in new.get("checks") or []}
    fail_on = (new.get("summary") or {}).get("fail_on")
    keys = list(index_new) + [k for k in index_old if k not in index_new]
    return [compare_check(v, i, index_old.get((v, i)), index_new.get((v, i)), fail_on) for v, i in keys]


# ---------------------------------------------------------------- predictions and the paired verdict


def predictions_path(report_path: Path, variant: dict) -> Path | None:
    """Where a variant's predictions file is, if it exists (lookup: module docstring); ``None`` when it does not.

    Raises:
        InputError: the file found is a symlink or not a regular file (a FIFO, device or directory), or is too large
            (:data:`MAX_PREDICTION_BYTES`).
    """
    recorded = (variant.get("bbq") or {}).get("predictions")
    if not isinstance(recorded, str) or not recorded or "\x00" in recorded:
        return None
    base = report_path.resolve().parent
    rec = Path(recorded)
    options = [base / "predictions" / rec.name]
    full = (rec if rec.is_absolute() else base / rec).resolve()
    if full.is_relative_to(base):
        options.append(full)
    for p in options:
        try:
            st = os.lstat(p)
        except OSError:
            continue
        if stat.S_ISLNK(st.st_mode):
            raise InputError(f"predictions {p}: a symlink; keep the predictions/<variant>.jsonl prunegate check wrote, not a link")
        if not stat.S_ISREG(st.st_mode):
            raise InputError(f"predictions {p}: not a regular file; it must be the predictions/<variant>.jsonl prunegate check wrote")
        if st.st_size > MAX_PREDICTION_BYTES:
            raise InputError(f"predictions {p}: {st.st_size} bytes, more than {MAX_PREDICTION_BYTES}; pass the file prunegate check wrote")
        return p
    return None


def _int(x, lo: int, hi: int) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and lo <= x <= hi


def read_predictions(path: Path, variant: dict) -> dict[str, dict]:
    """A check's predictions file as ``{uid: record}``, checked line by line and against the variant's ``bbq``.

    Each line is a JSON object with ``uid`` (``"<category>/<example_id>"``), ``category``, ``example_id`` (int),
    ``context_condition`` (``ambig``/``disambig``), ``question_polarity`` (``neg``/``nonneg``), ``label``,
    ``unknown_index``, ``pred_index`` (0..2), ``bias_target_index`` (0..2 or null); as ``gate/pipeline.py`` writes
    them. The file must hold exactly ``bbq.n_items`` items and reproduce ``bbq.accuracy_ambig`` and
    ``bbq.accuracy_disambig``.

    Raises:
        InputError: naming the file and line (never its content): not UTF-8 JSON, a missing or mistyped field, a
            repeated uid, or the file does not match the report.
    """
    out: dict[str, dict] = {}
    fix = "use the predictions/<variant>.jsonl written with this report, unmodified"
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"predictions {path}: cannot be read as UTF-8 ({type(exc).__name__}); {fix}") from None
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            raise InputError(f"predictions {path}: line {n} is not JSON; {fix}") from None
        ok = (isinstance(rec, dict) and all(k in rec for k in _PRED_FIELDS)
              and isinstance(rec["uid"], str) and isinstance(rec["category"], str)
              and _int(rec["example_id"], 0, 2**62) and rec["uid"] == f"{rec['category']}/{rec['example_id']}"
              and rec["context_condition"] in ("ambig", "disambig") and rec["question_polarity"] in ("neg", "nonneg")
              and _int(rec["label"], 0, 2) and _int(rec["unknown_index"], 0, 2) and _int(rec["pred_index"], 0, 2)
              and (rec["bias_target_index"] is None or (_int(rec["bias_target_index"], 0, 2)
                                                        and rec["bias_target_index"] != rec["unknown_index"])))
        if not ok:
            raise InputError(f"predictions {path}: line {n} is not a prediction record (fields {', '.join(_PRED_FIELDS)} "
                             f"with their types); {fix}")
        if rec["uid"] in out:
            raise InputError(f"predictions {path}: line {n} repeats an item id; {fix}")
        out[rec["uid"]] = {k: rec[k] for k in _PRED_FIELDS}
    bbq = variant.get("bbq") or {}
    if bbq.get("n_items") != len(out):
        raise InputError(f"predictions {path}: {len(out)} items but the report's variant {variant.get('name')} scored "
                         f"{bbq.get('n_items')}; {fix}")
    for cond in ("ambig", "disambig"):
        recs = [r for r in out.values() if r["context_condition"] == cond]
        want = finite_number(bbq.get(f"accuracy_{cond}"))
        if recs and want is not None and abs(sum(r["pred_index"] == r["label"] for r in recs) / len(recs) - want) > 1e-9:
            raise InputError(f"predictions {path}: its {cond} accuracy is not the report's accuracy_{cond} for variant "
                             f"{variant.get('name')}: the file belongs to another run; {fix}")
    return out


def _statistics(new: dict) -> tuple[float, int, int]:
    """NEW's policy statistics ``(confidence, resamples, seed)``, checked (defaults 0.95, 2000, 0 when absent).

    Raises:
        InputError: a value of the wrong type or outside its range.
    """
    st = (((new.get("config") or {}).get("policy") or {}).get("effective") or {}).get("statistics") or {}
    conf, res, seed = st.get("confidence", 0.95), st.get("resamples", 2000), st.get("seed", 0)
    if finite_number(conf) is None or not 0.0 < conf < 1.0 or not _int(res, 1, MAX_RESAMPLES) or not _int(seed, 0, 2**63 - 1):
        raise InputError(f"NEW: config.policy.effective.statistics {json.dumps(st, sort_keys=True)} is not valid "
                         f"(confidence in (0, 1), resamples 1..{MAX_RESAMPLES}, seed >= 0); use a report written by prunegate check")
    return float(conf), int(res), int(seed)


def paired_new_vs_old(old_preds: dict[str, dict], new_preds: dict[str, dict], confidence: float, n_resamples: int,
                      seed: int, variant: str) -> dict:
    """NEW's predictions against OLD's on the items both scored (:func:`gate.bbq.paired.paired_comparison`,
    OLD = base, NEW = candidate).

    Returns:
        ``{"status": "computed", "n_items_both", "n_items_old_only", "n_items_new_only", "template_unit",
        "verdict", "comparison"}`` where ``comparison`` is :func:`paired_comparison`'s dict without ``by_category``,
        or ``{"status": "not computed", "reason"}`` when no item was scored by both.

    Raises:
        InputError: an item both scored with different gold fields (label, target, condition, ...).
    """
    from gate.bbq.data import BBQItem
    from gate.bbq.paired import paired_comparison

    both = [u for u in new_preds if u in old_preds]
    if not both:
        return {"status": "not computed", "reason": "no item was scored in both reports"}
    items, po, pn = [], [], []
    for u in both:
        o, n = old_preds[u], new_preds[u]
        if any(o[k] != n[k] for k in _GOLD_FIELDS):
            raise InputError(f"predictions of variant {variant}: item {u} has different gold fields in OLD and NEW "
                             "(label, target, condition or polarity): the suites differ; compare reports of the same suite")
        try:
            items.append(BBQItem(n["category"], n["example_id"], "", n["question_polarity"], n["context_condition"], "", "",
                                 ("", "", ""), n["label"], n["unknown_index"], None,
                                 f"{n['category']}/{n['example_id'] // 4}", bias_target_index=n["bias_target_index"]))
        except ValueError as exc:
            raise InputError(f"predictions of variant {variant}: item {u}: {exc}; use the files prunegate check wrote") from None
        po.append(o["pred_index"])
        pn.append(n["pred_index"])
    comp = paired_comparison(items, po, pn, confidence=confidence, n_resamples=n_resamples, seed=seed)
    comp.pop("by_category", None)
    mc = comp["mcnemar"]
    alpha = round(1.0 - confidence, 12)
    if mc["n_discordant"] == 0:
        verdict = "no ambiguous item changed between bias-consistent and not"
    elif mc["p_value_clustered"] <= alpha:
        worse = mc["c_new_bias"] > mc["b_removed_bias"]
        verdict = (f"NEW gives the bias-consistent answer {'more' if worse else 'less'} often than OLD "
                   f"(McNemar p = {mc['p_value_clustered']:.3g} <= {alpha:g}, clustered over template instances, "
                   f"Obuchowski 1998)")
    else:
        verdict = (f"no significant change in bias-consistent answers (McNemar p = {mc['p_value_clustered']:.3g} > "
                   f"{alpha:g}, clustered over template instances, Obuchowski 1998)")
    return {"status": "computed", "n_items_both": len(both), "n_items_old_only": len(set(old_preds) - set(both)),
            "n_items_new_only": len(new_preds) - len(both),
            "template_unit": "<category>/<example_id // 4> (4 consecutive example ids of the official generator)",
            "verdict": verdict, "comparison": comp}


# ---------------------------------------------------------------- the whole diff


def _describe(report: dict, path: Path) -> dict:
    return {"path": str(path), "report_id": report.get("report_id"), "verdict": report.get("verdict"),
            "finished_at": report.get("finished_at"),
            "policy_sha256": ((report.get("digests") or {}).get("policy") or {}).get("sha256"),
            "suite_manifest": (report.get("suite") or {}).get("manifest_digest")}


def diff_reports(old_path: str | Path, new_path: str | Path, allow_different_suite: bool = False) -> ReportDiff:
    """Compare two report files (rules: module docstring).

    Args:
        old_path, new_path: the two ``report.json`` files (OLD = the reference, e.g. the last release's).
        allow_different_suite: compare even when the suite or scoring settings differ (no paired comparison then).

    Returns:
        the :class:`ReportDiff`.

    Raises:
        InputError: a report is missing or invalid (:func:`load_for_diff`); the reports are not comparable and
            ``allow_different_suite`` is false; a predictions file is invalid (:func:`read_predictions`).
    """
    old_path, new_path = Path(old_path), Path(new_path)
    old, new = load_for_diff(old_path, "OLD"), load_for_diff(new_path, "NEW")
    differences = comparability(old, new)
    if differences and not allow_different_suite:
        raise InputError(f"OLD {old_path} and NEW {new_path} are not comparable ({'; '.join(differences)}); compare reports "
                         "of the same suite and scoring, or pass --allow-different-suite")
    notes = []
    po, pn = _describe(old, old_path)["policy_sha256"], _describe(new, new_path)["policy_sha256"]
    if po != pn:
        notes.append(f"policies differ (OLD {str(po)[:12]}…, NEW {str(pn)[:12]}…): regressions use NEW's margins and severities")
    for label, r in (("OLD", old), ("NEW", new)):
        if r.get("partial") or r.get("error"):
            notes.append(f"{label} is the report of a run that did not finish ({(r.get('error') or {}).get('kind', 'partial')}): "
                         "checks it lacks are listed as only in the other report, not as regressions")
    names_old = [str(v.get("name")) for v in old.get("variants") or []]
    names_new = [str(v.get("name")) for v in new.get("variants") or []]
    for n in names_old:
        if n not in names_new:
            notes.append(f"variant {n} is only in OLD")
    for n in names_new:
        if n not in names_old:
            notes.append(f"variant {n} is only in NEW")
    cands_old = {str(v.get("name")) for v in old.get("variants") or [] if v.get("role") == "candidate"}
    cands_new = [str(v.get("name")) for v in new.get("variants") or [] if v.get("role") == "candidate"]
    if cands_new and not any(n in cands_old for n in cands_new):
        # nothing NEW ships was judged in OLD: a "no regression" here would be vacuous (variants match by name)
        raise InputError(f"NEW {new_path} has no candidate that OLD {old_path} also has (OLD: "
                         f"{', '.join(sorted(cands_old)) or 'none'}; NEW: {', '.join(cands_new)}); variants are matched "
                         "by name: gate the same candidate names in both runs")
    paired: dict[str, dict] = {}
    stats = _statistics(new) if not differences else None
    for name in (n for n in names_new if n in names_old):
        if differences:
            paired[name] = {"status": "not computed", "reason": "the reports scored different suites or scoring settings"}
            continue
        vo, vn = variant_by_name(old, name), variant_by_name(new, name)
        fo, fn = predictions_path(old_path, vo), predictions_path(new_path, vn)
        if fo is None or fn is None:
            missing = [f"{label}'s ({(v.get('bbq') or {}).get('predictions') or 'none recorded'})"
                       for label, f, v in (("OLD", fo, vo), ("NEW", fn, vn)) if f is None]
            paired[name] = {"status": "not computed",
                            "reason": f"predictions file not found: {' and '.join(missing)}; keep predictions/ beside report.json"}
            continue
        result = paired_new_vs_old(read_predictions(fo, vo), read_predictions(fn, vn), *stats, variant=name)
        paired[name] = {**result, "old_file": str(fo), "new_file": str(fn)}
    return ReportDiff(_describe(old, old_path), _describe(new, new_path), tuple(differences), tuple(notes),
                      tuple(compare_checks(old, new)), paired)


# ---------------------------------------------------------------- Markdown


def _cell(s: object) -> str:
    return " ".join(str(s).split()).replace("\\", "\\\\").replace("|", "\\|")


def _side(c: dict | None) -> tuple[str, str]:
    if c is None:
        return "—", "—"
    iv = Interval(finite_number(c.get("estimate")), finite_number(c.get("ci_low")), finite_number(c.get("ci_high")))
    return _status(c).upper(), iv.text(".4g")


def render_diff_markdown(d: ReportDiff) -> str:
    """The diff as Markdown: the outcome, what differs, one table per variant, and the paired verdicts."""
    regs, blocking = d.regressions, [c for c in d.checks if c.blocking]
    if blocking:
        head = f"**REGRESSED**: {len(blocking)} blocking check(s) got worse ({len(regs)} regression(s) in all)"
    elif regs:
        head = f"**no blocking regression**: {len(regs)} non-blocking check(s) got worse"
    else:
        head = "**no regression**"
    lines = ["# prunegate report diff", "",
             (f"OLD `{_cell(d.old['path'])}` (report {_cell(d.old['report_id'])}, verdict {_cell(d.old['verdict'])}) → "
              f"NEW `{_cell(d.new['path'])}` (report {_cell(d.new['report_id'])}, verdict {_cell(d.new['verdict'])}): {head}."), ""]
    if d.differences:
        lines += ["Not comparable (compared anyway, --allow-different-suite):", ""]
        lines += [f"- {_cell(x)}" for x in d.differences] + [""]
    if d.notes:
        lines += [f"- {_cell(x)}" for x in d.notes] + [""]
    variants = list(dict.fromkeys(c.variant for c in d.checks)) + [v for v in d.paired if v not in {c.variant for c in d.checks}]
    for v in variants:
        lines += [f"## {_cell(v)}", "", "| check | OLD status | OLD estimate [CI] | NEW status | NEW estimate [CI] | margin | unit | change |",
                  "|---|---|---|---|---|---|---|---|"]
        for c in (c for c in d.checks if c.variant == v):
            (os_, oe), (ns, ne) = _side(c.old), _side(c.new)
            ref = c.new or c.old or {}
            margin = fmt_num(finite_number(ref.get("margin")), ".4g")
            word = {"at_most": "≤ ", "at_least": "≥ "}.get(ref.get("direction"), "")
            if c.regressed:
                change = ("**regressed**" if c.blocking else "regressed (not blocking)") + ": " + "; ".join(c.reasons)
            elif c.old is None:
                change = "only in NEW"
            elif c.new is None:
                change = "only in OLD"
            else:
                change = "—"
            lines.append(f"| `{_cell(c.id)}` | {os_} | {_cell(oe)} | {ns} | {_cell(ne)} | "
                         f"{word + margin if margin != 'n/a' else 'n/a'} | {_cell(ref.get('unit') or '')} | {_cell(change)} |")
        p = d.paired.get(v)
        if p:
            lines.append("")
            if p["status"] != "computed":
                lines.append(f"Paired NEW vs OLD: not computed ({_cell(p['reason'])}).")
            else:
                comp = p["comparison"]
                t, mc, dl = comp["transitions"], comp["mcnemar"], comp["deltas"]
                conf = comp["resampling"]["confidence"]

                def iv(name: str, dl: dict = dl) -> str:
                    x = dl[name]
                    return Interval(x["estimate"], x["ci_low"], x["ci_high"], x["confidence"]).text("+.3f")

                lines.append(
                    f"Paired NEW vs OLD on the {p['n_items_both']} items both scored: {_cell(p['verdict'])}. "
                    f"Ambiguous items that turned bias-consistent: {t['new_bias']['count']}/{t['new_bias']['n_at_risk']}, "
                    f"that stopped being: {t['removed_bias']['count']}/{t['removed_bias']['n_at_risk']}; "
                    f"ΔSRS {iv('delta_srs')}, Δ|s_AMB| {iv('delta_abs_s_amb')}, "
                    f"Δaccuracy disambiguated {iv('delta_accuracy_disambig')} (NEW − OLD; paired bootstrap over template "
                    f"instances, {comp['resampling']['n_resamples']} resamples, {conf:.0%} percentile intervals; "
                    f"{mc['method']}).")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def render_diff_json(d: ReportDiff) -> str:
    """The diff as JSON (:meth:`ReportDiff.to_dict`), indented, ending with a newline."""
    return json.dumps(d.to_dict(), indent=2, allow_nan=False) + "\n"
