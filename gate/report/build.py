"""The JSON report: written atomically, and a short console summary of it."""

from __future__ import annotations

from gate.policy.status import ERROR, FAIL, INCONCLUSIVE, PASS, SKIPPED, WAIVED
from gate.runtime.atomic import write_json_atomic  # noqa: F401 -- re-exported: the one JSON writer
from gate.report.view import off_target_note, phase_stats

SCHEMA_VERSION = "1.0.0"  # semver of report.json: minor = additive (consumers ignore unknown keys), major = breaking
SCHEMA_URI = "https://prunegate.dev/schemas/report/v1.json"  # shipped as gate/report/report.schema.json


def _fmt(x, spec: str = ".3f") -> str:
    return "n/a" if x is None else format(x, spec)


def summary_lines(report: dict) -> list[str]:
    """A short human summary of a report: one line per variant and one per failed finding, then the verdict."""
    lines = []
    for v in report.get("variants", []):
        bbq, bench, art = v.get("bbq") or {}, v.get("bench") or {}, v.get("artifact") or {}
        dec = (bench.get("decode_ms_per_token") or {}).get("p50")
        pre_stats, pre_label = phase_stats(bench, "prefill_ms")
        pre = pre_stats.get("p50")
        rss = bench.get("peak_rss_bytes")
        lines.append(
            f"{v['name']:<24} {v['role']:<9} size {_fmt(art.get('bytes_total', 0) / 1e6, '.1f')} MB | "
            f"decode p50 {_fmt(dec, '.2f')} ms/token | {pre_label} p50 {_fmt(pre, '.1f')} ms | "
            f"peak RSS {_fmt(rss / 1e6 if rss else None, '.0f')} MB | "
            f"accuracy (fraction) ambig {_fmt(bbq.get('accuracy_ambig'))} disambig {_fmt(bbq.get('accuracy_disambig'))} | "
            f"s_AMB {_fmt(bbq.get('s_amb'), '+.3f')} s_DIS {_fmt(bbq.get('s_dis'), '+.3f')}"
        )
        sp, size, ppl = v.get("sparsity") or {}, v.get("size") or {}, v.get("perplexity") or {}
        if sp or size or ppl:
            claim = sp.get("claimed")
            lines.append(
                f"{'':<24} artifact: sparsity (fraction of weights = 0) pruned linears {_fmt(sp.get('measured_pruned_linears'))}"
                f" (claimed {_fmt(claim)}), all params {_fmt(sp.get('measured_all_params'))} | "
                f"zstd {_fmt(size['bytes_zstd'] / 1e6 if size.get('bytes_zstd') else None, '.1f')} MB | "
                f"perplexity {_fmt(ppl.get('value'), '.2f')}"
                + (f" (x{_fmt(ppl['ratio_to_dense'], '.3f')} dense)" if ppl.get("ratio_to_dense") is not None else "")
            )
        if art.get("dir"):
            digest = (art.get("digest") or {}).get("sha256") or ""
            lines.append(f"{'':<24} artifact dir {art['dir']} (sha256 {digest[:16]}…; `prunegate verify --artifact` it)")
        paired = v.get("paired_vs_baseline")
        if paired:
            nb = paired["transitions"]["new_bias"]
            d = paired["deltas"]["delta_srs"]
            lines.append(
                f"{'':<24} vs dense: new bias {nb['count']}/{nb['n_at_risk']} ambiguous items"
                f" ({_fmt(nb['rate'], '.1%')}), ΔSRS {_fmt(d['estimate'], '+.3f')}"
                f" [{_fmt(d['ci_low'], '+.3f')}, {_fmt(d['ci_high'], '+.3f')}] ({d['confidence']:.0%} CI),"
                f" McNemar p {_fmt(paired['mcnemar']['p_value'], '.3g')}, MDE {_fmt(paired['mde']['delta_srs'], '.3f')}"
            )
            mde = paired["mde"]["delta_srs"]
            if mde is None or mde > 0.05:
                lines.append(f"{'':<24} warning: with {paired['transitions']['n_pairs']} ambiguous items the suite cannot detect a"
                             f" change in SRS smaller than {_fmt(mde, '.3f')} (80% power); use a larger --suite-size")
    for f in report.get("findings", []):  # checks that failed, were inconclusive, errored or were waived
        mark = f["status"].upper()
        note = " (warning only)" if f.get("effect") == "warning" else ""
        lines.append(f"  {mark:<12} {f['id']:<20} {f['variant']}: {f['message']}{note}")
    lines += answer_lines(report)
    verdict = report.get("verdict", "?").upper()
    reason = (report.get("summary") or {}).get("reason")
    lines.append(f"verdict: {verdict} (exit {report.get('exit_code')})" + (f": {reason}" if reason else "")
                 + (" [partial]" if report.get("partial") else "")
                 + off_target_note(report))
    return lines



ANSWER_GROUPS = (
    ("storage", ("budget.storage",)),
    ("RAM", ("budget.memory",)),
    ("latency", ("budget.latency",)),
    ("bias", ("bias.s_amb", "bias.srs", "bias.new_bias_rate")),
    ("accuracy", ("accuracy.disambig",)),
    ("perplexity", ("perplexity.ratio", "perplexity.paradox")),
    ("savings", ("efficiency.speedup", "efficiency.size", "efficiency.memory")),
    ("artifact", ("sparsity.claim", "export.verify")),
)
"""Columns of the one-screen answer: label and the check ids it summarises (worst status wins)."""

_WORST = (ERROR, FAIL, INCONCLUSIVE, WAIVED, PASS, SKIPPED)


def _mb(x) -> str:
    return "n/a" if x is None else f"{x / 1e6:,.0f} MB"


def answer_lines(report: dict) -> list[str]:
    """One line per variant answering "can I ship this to the profile's device?" (the before-flashing view).

    Each column is the worst status of its checks (error > fail > inconclusive > waived > pass; "-" when every
    check of the group was skipped or disabled); storage and RAM show the measured bytes against the profile's
    budget. Reads ``report["checks"]`` (``gate.policy.decision``) and ``report["profile"]``; empty without checks.
    """
    checks = report.get("checks") or []
    if not checks:
        return []
    prof = report.get("profile") or {}
    def budget(key: str) -> str:
        return _mb(prof[key]) if prof.get(key) else "none"

    lines = [f"answer for profile '{prof.get('name', '?')}' (storage budget {budget('storage_budget_bytes')}, "
             f"RAM budget {budget('ram_budget_bytes')}):"]
    for v in report.get("variants", []):
        mine = {c["id"]: c for c in checks if c.get("variant") == v["name"]}
        cells = []
        for label, ids in ANSWER_GROUPS:
            statuses = [mine[i]["status"] for i in ids if i in mine and mine[i]["status"] != SKIPPED]
            status = min(statuses, key=_WORST.index) if statuses else "-"
            if label in ("storage", "RAM") and ids[0] in mine and mine[ids[0]].get("estimate") is not None:
                c = mine[ids[0]]
                status += f" ({_mb(c['estimate'])} <= {_mb(c.get('margin'))})"
            cells.append(f"{label} {status.upper() if status != '-' else '-'}")
        lines.append(f"  {v['name']:<22} " + " | ".join(cells))
    return lines
