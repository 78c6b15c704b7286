"""``report.html``: a self-contained HTML page of the report, with plots, for air-gapped labs.

No network: plots are rendered by matplotlib (Agg, no pyplot state) to SVG and inlined; styles are inline; a
Content-Security-Policy ``<meta>`` forbids loading anything (``default-src 'none'``), so a browser opening the
file fetches nothing even if a value in the report looked like a URL. Every text value is HTML-escaped.

Plots (dense and every candidate side by side):

1. BBQ bias per category: s_AMB and s_DIS of every variant (points; Parrish et al. 2022, "BBQ: A hand-built
   bias benchmark for question answering"), and each candidate's change of |s_AMB| against dense with its 95%
   paired bootstrap interval (``paired_vs_baseline.by_category[...].deltas.delta_abs_s_amb``, from
   :mod:`gate.bbq.paired`).
2. BBQ accuracy per category, ambiguous and disambiguated, with 95% Wilson score intervals from the item
   counts (Wilson 1927, JASA 22:209; :func:`gate.policy.checks.wilson_interval`).
3. Latency: decode ms/token and prefill ms, bar = p50, whisker = p95 of the pooled timed runs.
4. Size and memory: model files on disk (MB) and peak RSS (MB, VmHWM).
"""

from __future__ import annotations

import html
import io
import re

from gate.policy.status import ERROR, FAIL, INCONCLUSIVE, PASS, SKIPPED, WAIVED, WARN
from gate.report.view import (
    VARIANT_HEADERS,
    CheckRow,
    artifact_digest,
    check_rows,
    context_line,
    fmt_interval,
    fmt_num,
    phase_stats,
    policy_digest,
    status_counts,
    top_findings,
    variant_cells,
    variant_summaries,
)

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
_STATUS_COLOUR = {PASS: "#1a7f37", FAIL: "#cf222e", ERROR: "#8250df", INCONCLUSIVE: "#bf8700",
                  WARN: "#bf8700", SKIPPED: "#6e7781", WAIVED: "#6e7781"}
_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem;max-width:1200px;color:#1f2328}
h1{font-size:1.6rem} h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #d0d7de}
table{border-collapse:collapse;font-size:.85rem;margin:.5rem 0} th,td{border:1px solid #d0d7de;padding:.25rem .5rem;text-align:left;vertical-align:top}
th{background:#f6f8fa} td.num{text-align:right;font-variant-numeric:tabular-nums} code{font-size:.8rem}
.status{font-weight:600} .banner{padding:.75rem;border-radius:6px;margin:1rem 0}
.partial{background:#fff8c5;border:1px solid #d4a72c} figure{margin:1rem 0} figcaption{font-size:.85rem;color:#59636e}
figure svg{max-width:100%;height:auto}
"""


def _e(x: object) -> str:
    return html.escape("" if x is None else str(x), quote=True)


def _svg(fig, salt: str) -> str:
    """``fig`` as an inline ``<svg>`` element (XML prolog and DOCTYPE removed, ids salted per figure)."""
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": salt}):
        fig.savefig(buf, format="svg", bbox_inches="tight")
    text = buf.getvalue()
    return text[text.index("<svg"):]


def _figure(width: float, height: float, ncols: int = 1):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, list(axes)


def _offsets(n: int, width: float = 0.8) -> list[float]:
    step = width / max(n, 1)
    return [-width / 2 + step * (i + 0.5) for i in range(n)]


def _categories(report: dict) -> list[str]:
    cats: list[str] = []
    for v in report.get("variants") or []:
        for c in ((v.get("bbq") or {}).get("by_category") or {}):
            if c not in cats:
                cats.append(c)
    return cats


def plot_bias(report: dict) -> str | None:
    """Figure 1 (module docstring) as inline SVG, or ``None`` without per-category BBQ results."""
    cats = _categories(report)
    variants = [v for v in report.get("variants") or [] if (v.get("bbq") or {}).get("by_category")]
    if not cats or not variants:
        return None
    cands = [v for v in variants if v.get("paired_vs_baseline")]
    fig, axes = _figure(12, 4.2, 3 if cands else 2)
    x = list(range(len(cats)))
    for ax, key, title in ((axes[0], "s_amb", "s_AMB (ambiguous contexts)"), (axes[1], "s_dis", "s_DIS (disambiguated contexts)")):
        for off, v in zip(_offsets(len(variants)), variants):
            ys = [((v["bbq"]["by_category"].get(c) or {}).get(key)) for c in cats]
            pts = [(xi + off, y) for xi, y in zip(x, ys) if y is not None]
            if pts:
                ax.plot(*zip(*pts), "o", label=v["name"])
        ax.axhline(0, color="#6e7781", lw=0.8)
        ax.set_title(title, fontsize=10)
        ax.set_ylim(-1.05, 1.05)
        ax.set_ylabel("bias score (range -1..1)")
    if cands:
        ax = axes[2]
        for off, v in zip(_offsets(len(cands)), cands):
            by = v["paired_vs_baseline"].get("by_category") or {}
            for xi, c in zip(x, cats):
                d = ((by.get(c) or {}).get("deltas") or {}).get("delta_abs_s_amb") or {}
                est, lo, hi = d.get("estimate"), d.get("ci_low"), d.get("ci_high")
                if est is None:
                    continue
                # a percentile bootstrap interval need not contain its point estimate: clip, never negative
                yerr = [[max(0.0, est - lo)], [max(0.0, hi - est)]] if lo is not None and hi is not None else None
                ax.errorbar([xi + off], [est], yerr=yerr, fmt="o", capsize=3,
                            color=f"C{variants.index(v) % 10}", label=v["name"] if xi == 0 else None)
        ax.axhline(0, color="#6e7781", lw=0.8)
        ax.set_title("change of |s_AMB| vs dense, 95% paired bootstrap CI", fontsize=10)
        ax.set_ylabel("Δ|s_AMB| (candidate - dense)")
    for ax in axes:
        ax.set_xticks(x, cats, rotation=35, ha="right", fontsize=8)
        ax.legend(fontsize=7)
    return _svg(fig, "prunegate-bias")


def plot_accuracy(report: dict) -> str | None:
    """Figure 2 (module docstring) as inline SVG, or ``None`` without per-category counts."""
    from gate.policy.checks import wilson_interval

    cats = _categories(report)
    variants = [v for v in report.get("variants") or [] if (v.get("bbq") or {}).get("by_category")]
    if not cats or not variants:
        return None
    fig, axes = _figure(12, 4.0, 2)
    x = list(range(len(cats)))
    for ax, cond, title in ((axes[0], "ambig", "accuracy, ambiguous contexts"), (axes[1], "disambig", "accuracy, disambiguated contexts")):
        for off, v in zip(_offsets(len(variants)), variants):
            xs, ys, lo, hi = [], [], [], []
            for xi, c in zip(x, cats):
                counts = (((v["bbq"]["by_category"].get(c) or {}).get("counts") or {}).get(cond)) or {}
                n, k = counts.get("n_items") or 0, counts.get("n_correct")
                if not n or k is None:
                    continue
                p = k / n
                a, b = wilson_interval(int(k), int(n), 0.95)
                xs.append(xi + off)
                ys.append(p)
                lo.append(max(0.0, p - a))
                hi.append(max(0.0, b - p))
            if xs:
                ax.errorbar(xs, ys, yerr=[lo, hi], fmt="o", capsize=3, label=v["name"])
        ax.set_title(f"{title}, 95% Wilson CI", fontsize=10)
        ax.set_ylim(-0.02, 1.02)
        ax.set_ylabel("accuracy (fraction)")
        ax.set_xticks(x, cats, rotation=35, ha="right", fontsize=8)
        ax.legend(fontsize=7)
    return _svg(fig, "prunegate-accuracy")


def plot_latency(report: dict) -> str | None:
    """Figure 3 (module docstring) as inline SVG, or ``None`` without latency results."""
    variants = [v for v in report.get("variants") or [] if v.get("bench")]
    if not variants:
        return None
    fig, axes = _figure(10, 3.6, 2)
    names = [v["name"] for v in variants]
    for ax, phase, unit in ((axes[0], "decode_ms_per_token", "ms per token"), (axes[1], "prefill_ms", "ms")):
        p50, p95, label = [], [], phase
        for v in variants:
            stats, label = phase_stats(v["bench"], phase)
            p50.append(stats.get("p50") or 0.0)
            p95.append(max(0.0, (stats.get("p95") or stats.get("p50") or 0.0) - (stats.get("p50") or 0.0)))
        ax.bar(range(len(names)), p50, yerr=[[0] * len(names), p95], capsize=4, color=[f"C{i % 10}" for i in range(len(names))])
        ax.set_xticks(range(len(names)), names, rotation=20, ha="right", fontsize=8)
        ax.set_title(f"{label}: bar p50, whisker p95", fontsize=10)
        ax.set_ylabel(unit)
    return _svg(fig, "prunegate-latency")


def plot_size(report: dict) -> str | None:
    """Figure 4 (module docstring) as inline SVG, or ``None`` without artifacts."""
    variants = [v for v in report.get("variants") or [] if (v.get("artifact") or {}).get("bytes_total") is not None]
    if not variants:
        return None
    fig, axes = _figure(10, 3.6, 2)
    names = [v["name"] for v in variants]
    colours = [f"C{i % 10}" for i in range(len(names))]
    axes[0].bar(range(len(names)), [v["artifact"]["bytes_total"] / 1e6 for v in variants], color=colours)
    axes[0].set_title("model files on disk", fontsize=10)
    axes[0].set_ylabel("MB (10^6 bytes)")
    rss = [((v.get("bench") or {}).get("peak_rss_bytes") or 0) / 1e6 for v in variants]
    axes[1].bar(range(len(names)), rss, color=colours)
    axes[1].set_title("peak RSS while measured (VmHWM)", fontsize=10)
    axes[1].set_ylabel("MB (10^6 bytes)")
    for ax in axes:
        ax.set_xticks(range(len(names)), names, rotation=20, ha="right", fontsize=8)
    return _svg(fig, "prunegate-size")


def _check_table(rows: list[CheckRow]) -> str:
    out = [("<table><thead><tr><th>status</th><th>check</th><th>variant</th><th>severity</th><th>estimate [95% CI]</th>"
           "<th>margin</th><th>MDE</th><th>message</th></tr></thead><tbody>")]
    for r in rows:
        out.append(f'<tr class="check" data-status="{_e(r.status)}"><td class="status" style="color:{_STATUS_COLOUR[r.status]}">'
                   f"{_e(r.status.upper())}</td><td><code>{_e(r.id)}</code></td><td>{_e(r.variant)}</td><td>{_e(r.severity)}</td>"
                   f'<td class="num">{_e(fmt_interval(r))}</td><td class="num">{_e(fmt_num(r.margin))}</td>'
                   f'<td class="num">{_e(fmt_num(r.mde))}</td><td>{_e(r.message)}</td></tr>')
    out.append("</tbody></table>")
    return "".join(out)


def _variant_table(report: dict) -> str:
    """The summary rows (:func:`gate.report.view.variant_summaries`) as a table, columns :data:`VARIANT_HEADERS`."""
    out = ["<table><thead><tr>" + "".join(f"<th>{_e(h)}</th>" for h in VARIANT_HEADERS) + "</tr></thead><tbody>"]
    for row in variant_summaries(report):
        cells = []
        for c in variant_cells(row):
            text = f"<code>{_e(c.text)}</code>" if c.code and c.known else _e(c.text)
            cells.append(f'<td class="num">{text}</td>' if c.numeric else f"<td>{text}</td>")
        out.append('<tr class="variant">' + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _provenance(report: dict) -> str:
    env = report.get("environment") or {}
    suite = report.get("suite") or {}
    items = [("report id", report.get("report_id")), ("schema", f"{report.get('schema')} ({report.get('schema_version')})"),
             ("started / finished (UTC)", f"{report.get('started_at')} / {report.get('finished_at')}"),
             ("policy sha256", policy_digest(report)), ("BBQ suite manifest sha256", suite.get("manifest_digest")),
             ("BBQ suite items", suite.get("n_items"))]
    items += [(k, env[k]) for k in ("prunegate", "python", "onnxruntime", "onnx", "torch", "transformers", "optimum",
                                     "numpy", "platform", "cpu", "cpus_available", "intra_op_threads") if k in env]
    items.append(("execution providers used", ", ".join(env.get("execution_providers_used") or []) or "n/a"))
    out = ["<table><tbody>"] + [f"<tr><th>{_e(k)}</th><td><code>{_e(v)}</code></td></tr>" for k, v in items]
    out.append("</tbody></table><h3>Artifacts</h3><table><thead><tr><th>variant</th><th>file</th><th>bytes</th><th>sha256</th>"
               "</tr></thead><tbody>")
    for v in report.get("variants") or []:
        art = v.get("artifact") or {}
        out.append(f'<tr><td>{_e(v.get("name"))}</td><td><b>artifact (digest of digests)</b></td><td class="num">'
                   f'{_e(art.get("bytes_total"))} (model files)</td><td><code>{_e(artifact_digest(v))}</code></td></tr>')
        for f in (art.get("files") or []) + (art.get("other_files") or []):
            out.append(f'<tr><td></td><td>{_e(f.get("name") or f.get("path"))}</td><td class="num">{_e(f.get("bytes"))}</td>'
                       f'<td><code>{_e(f.get("sha256"))}</code></td></tr>')
    out.append("</tbody></table>")
    return "".join(out)


_CAPTIONS = {
    "bias": "BBQ bias scores per category (points), and each candidate's change of |s_AMB| against dense with its 95% paired "
            "bootstrap interval over template instances.",
    "accuracy": "BBQ accuracy per category with 95% Wilson score intervals from the item counts.",
    "latency": "Latency on ONNX Runtime, pooled timed runs over fresh processes: bar = p50, whisker = p95.",
    "size": "Model files on disk (graph + external data) and peak resident memory while measured.",
}


def render_html(report: dict) -> str:
    """Render the report as one self-contained HTML document.

    Args:
        report: a prunegate report (schema v1; partial reports get a banner and the plots that can be drawn).

    Returns:
        the HTML text (UTF-8), with inline SVG plots and no external reference.

    Raises:
        ValueError: a check has an unknown status.
    """
    rows = check_rows(report)
    counts = status_counts(rows)
    verdict = str(report.get("verdict") or "unknown")
    colour = _STATUS_COLOUR[verdict if verdict in (PASS, FAIL) else ERROR]
    parts = ['<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
             f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             f"<title>prunegate report: {_e(verdict.upper())}</title><style>{_STYLE}</style></head><body>",
             (f'<h1 id="verdict">prunegate: <span style="color:{colour}">{_e(verdict.upper())}</span> '
             f'(exit {_e(report.get("exit_code"))})</h1>')]
    if report.get("partial"):
        err = report.get("error") or {}
        parts.append(f'<div class="banner partial" id="partial"><b>Partial report.</b> The run stopped early '
                     f'({_e(err.get("kind"))}: {_e(err.get("message"))}). Only results finished before are shown.</div>')
    if context_line(report):
        parts.append(f'<p id="context">{_e(context_line(report))}</p>')
    parts.append("<p>" + _e(", ".join(f"{n} {s}" for s, n in counts.items() if n) or "no check results") + "</p>")
    problems = top_findings(rows)
    if problems:
        parts.append("<h2>Findings</h2>" + _check_table(problems))
    parts.append("<h2>Variants</h2>" + _variant_table(report))
    plots = (("bias", plot_bias), ("accuracy", plot_accuracy), ("latency", plot_latency), ("size", plot_size))
    drawn = [(name, fn(report)) for name, fn in plots]
    if any(svg for _, svg in drawn):
        parts.append("<h2>Plots</h2>")
    for name, svg in drawn:
        if svg:
            parts.append(f'<figure id="plot-{name}">{svg}<figcaption>{_e(_CAPTIONS[name])}</figcaption></figure>')
    parts.append("<h2>All checks</h2>" + (_check_table(problems + [r for r in rows if not r.is_problem]) if rows else "<p>none</p>"))
    parts.append("<h2>Provenance</h2>" + _provenance(report))
    parts.append("<p><small>Projection of report.json (canonical). Generated by prunegate.</small></p></body></html>\n")
    return "".join(parts)


def external_references(html_text: str) -> list[str]:
    """Attribute values and CSS ``url()``s in ``html_text`` that would make a browser fetch something.

    XML namespace declarations (``xmlns``, ``xmlns:*``) are identifiers, not fetched, and are ignored;
    ``data:`` URIs and in-page ``#fragment`` references are self-contained.

    Returns:
        the offending values (empty for a self-contained page).
    """
    found = []
    for m in re.finditer(r'\s([A-Za-z_:][-A-Za-z0-9_:.]*)\s*=\s*"([^"]*)"', html_text):
        attr, value = m.group(1).lower(), m.group(2).strip()
        if attr == "xmlns" or attr.startswith("xmlns:"):
            continue
        if attr in ("src", "href", "xlink:href", "action", "poster", "srcset", "data", "formaction") and value and \
                not value.startswith(("#", "data:")):
            found.append(f"{attr}={value}")
    found += [f"url({u})" for u in re.findall(r"url\(\s*['\"]?([^)'\"]+)", html_text) if not u.startswith(("#", "data:"))]
    found += [f"@import {u}" for u in re.findall(r"@import\s+([^;]+)", html_text)]
    return found
