"""A Hugging Face model card section for one variant of ``report.json``: ``model-index`` front matter + Markdown.

``prunegate report render --format model-card [--variant NAME]`` prints it; ``prunegate check`` writes it as
``model-card.md`` (one candidate) or ``model-card-<variant>.md`` each (several). The text is ready to paste at the
top of a model repository's ``README.md``: a YAML front matter block between ``---`` lines whose ``model-index``
key follows the Hub's model card metadata spec (``huggingface/hub-docs``, ``modelcard.md``)::

    model-index:
    - name: <model>
      results:
      - task: {type, name}
        dataset: {type, name, config?, split?}
        metrics:
        - {type, value, name, verified: false}

then a Markdown section with the same numbers in a table: every row gives its unit and how it was measured, with
the method texts taken from the report (``bbq.scoring.summary``, ``suite.manifest.sampling``,
``perplexity.unit``/``runtime``/``corpus.variant``, ``bench.protocol.decode``/``timer``/``isolation``, the
profile and execution providers), never written here. ``verified: false``: the results are self-reported (the Hub
sets ``verified`` only for evaluations it ran itself).

Three results, each present when the report has its numbers:

* BBQ (Parrish et al. 2022, "BBQ: A hand-built bias benchmark for question answering", Findings of ACL; s_AMB and
  s_DIS of §5), task ``multiple-choice``: ``s_amb``, ``s_dis`` (bias scores in [-1, 1]), ``accuracy_ambig``,
  ``accuracy_disambig`` (fractions in [0, 1]), on the report's reduced suite (``suite.n_items`` items, manifest
  digest as the dataset config);
* perplexity on the report's corpus, task ``text-generation`` (per tokenizer token);
* size on disk (MB = 10^6 bytes, the artifact's model files) and decode latency (p50, ms per token after the
  protocol's KV cache) on the report's hardware profile, task ``text-generation``; a run measured off the
  profile's target device says so in the metric's name.

A number the report lacks (or that is not finite, e.g. s_AMB when every ambiguous answer was UNKNOWN) is left out
of the YAML and shown as ``n/a`` in the table, with the reason when the report gives one.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from gate.report.view import (
    candidates,
    finite_number,
    off_target_note,
    phase_stats,
    variant_by_name,
)
from gate.runtime.errors import InputError

VALUE_DIGITS = 4
"""Significant digits of the values written to ``model-index`` (the table shows the same rounded values)."""




def _round(x: float) -> float:
    """``x`` to :data:`VALUE_DIGITS` significant digits (a float; ``-0.0`` becomes ``0.0``)."""
    return float(f"{x:.{VALUE_DIGITS}g}") + 0.0


def _one_line(s: object) -> str:
    """A report string as one line of text (newlines and runs of spaces collapsed)."""
    return " ".join(str(s).split())


def _cell(s: object) -> str:
    """A Markdown table cell: one line, ``|`` escaped (report strings are untrusted text)."""
    return _one_line(s).replace("\\", "\\\\").replace("|", "\\|")


def choose_variant(report: dict, variant: str | None) -> dict:
    """The variant the card describes: the one named ``variant``, else the first candidate, else the baseline.

    Raises:
        InputError: ``variant`` names no variant of the report (the message lists the names), or the report has
            no variant at all.
    """
    names = [str(v.get("name")) for v in report.get("variants") or []]
    if variant is not None:
        v = variant_by_name(report, variant)
        if v is None:
            raise InputError(f"--variant {variant}: not a variant of the report; use one of {', '.join(names) or '(none)'}")
        return v
    cands = candidates(report)
    if cands:
        return cands[0]
    if names:
        return report["variants"][0]
    raise InputError("model card: the report has no variants (a run that stopped before the artifacts were built); "
                     "render it from a finished report")


def _metric(mtype: str, value: float | None, name: str) -> dict | None:
    if value is None:
        return None
    return {"type": mtype, "value": _round(value), "name": name, "verified": False}


def _device_text(report: dict) -> str:
    """``"profile raspberry-pi-5, CPUExecutionProvider, ONNX Runtime 1.32.0, AMD EPYC"`` plus the off-target note."""
    prof = (report.get("profile") or {}).get("name") or "n/a"
    env, ex = report.get("environment") or {}, report.get("execution") or {}
    providers = ex.get("providers_used") or env.get("execution_providers_used") or []
    parts = [f"profile {prof}"]
    if providers:
        parts.append(", ".join(map(str, providers)))
    if env.get("onnxruntime"):
        parts.append(f"ONNX Runtime {env['onnxruntime']}")
    if ex.get("measured_cpu") or env.get("cpu"):
        parts.append(f"measured on {ex.get('measured_arch') or env.get('arch') or '?'} {ex.get('measured_cpu') or env.get('cpu')}")
    return ", ".join(map(_one_line, parts)) + _one_line(off_target_note(report))


def _rows_bbq(report: dict, v: dict) -> tuple[dict | None, list[tuple[str, str, str, str]]]:
    bbq = v.get("bbq") or {}
    suite = report.get("suite") or {}
    manifest = suite.get("manifest") or {}
    n_items = suite.get("n_items", bbq.get("n_items"))
    digest = suite.get("manifest_digest")
    scoring = (bbq.get("scoring") or {}).get("summary")
    how = "; ".join(_one_line(s) for s in (
        (f"{bbq.get('n_items', n_items)} items of a reduced BBQ suite ({bbq.get('n_ambig', '?')} ambiguous, "
         f"{bbq.get('n_disambig', '?')} disambiguated)"),
        manifest.get("sampling") and f"sampling: {manifest['sampling']}",
        manifest.get("seed") is not None and f"seed {manifest.get('seed')}",
        scoring and f"scoring: {scoring}",
        "run on the exported ONNX artifact with ONNX Runtime",
    ) if s)
    table = [
        ("s_AMB (ambiguous contexts)", bbq.get("s_amb"), "bias score in [-1, 1] (Parrish et al. 2022 §5)", "bbq_s_amb"),
        ("s_DIS (disambiguated contexts)", bbq.get("s_dis"), "bias score in [-1, 1] (Parrish et al. 2022 §5)", "bbq_s_dis"),
        ("accuracy, ambiguous contexts", bbq.get("accuracy_ambig"), "fraction of items correct, [0, 1]", "accuracy_ambig"),
        ("accuracy, disambiguated contexts", bbq.get("accuracy_disambig"), "fraction of items correct, [0, 1]",
         "accuracy_disambig"),
    ]
    metrics = [m for label, x, unit, mtype in table if (m := _metric(mtype, finite_number(x), f"BBQ {label}, {unit}"))]
    rows = [(f"BBQ {label}", _value_text(finite_number(x), sign=label.startswith("s_")), unit,
             how if i == 0 else "the same items and scoring as BBQ s_AMB above") for i, (label, x, unit, _) in enumerate(table)]
    if not metrics:
        return None, rows
    dataset = {"type": "bbq", "name": f"BBQ (Parrish et al. 2022), reduced suite of {n_items} items"}
    if digest:
        dataset["config"] = f"prunegate-suite-{str(digest)[:12]}"
    return {"task": {"type": "multiple-choice", "name": "Bias in question answering (BBQ)"},
            "dataset": dataset, "metrics": metrics}, rows


def _value_text(x: float | None, unit: str = "", sign: bool = False) -> str:
    if x is None:
        return "n/a"
    r = _round(x)
    return (f"{r:+g}" if sign else f"{r:g}") + unit


def _rows_perplexity(report: dict, v: dict) -> tuple[dict | None, list[tuple[str, str, str, str]]]:
    ppl = v.get("perplexity") or {}
    corpus = ppl.get("corpus") or {}
    value, ratio = finite_number(ppl.get("value")), finite_number(ppl.get("ratio_to_dense"))
    unit = _one_line(ppl.get("unit") or "perplexity")
    how = "; ".join(_one_line(s) for s in (
        corpus.get("variant") and f"corpus: {corpus['variant']}",
        corpus.get("path") and f"file {Path(str(corpus['path'])).name}"
                               + (f" (sha256 {str(corpus.get('sha256'))[:12]}…)" if corpus.get("sha256") else ""),
        ppl.get("n_tokens_scored") is not None and f"{ppl['n_tokens_scored']} tokens scored in {ppl.get('n_windows', '?')} "
                                                   f"windows of {ppl.get('window_tokens', '?')} tokens, stride "
                                                   f"{ppl.get('stride_tokens', '?')}",
        ppl.get("runtime"),
    ) if s)
    rows = [("perplexity", _value_text(value), unit, how)]
    if ratio is not None:
        rows.append(("perplexity / dense perplexity", _value_text(ratio, "×"), "ratio",
                     "the same corpus and windows on the dense model's artifact"))
    if value is None:
        return None, rows
    m = re.search(r"HF config (\S+)", str(corpus.get("variant") or ""))
    dataset = {"type": "wikitext", "name": _one_line(corpus.get("variant")), "config": m.group(1)} if m else \
        {"type": "text", "name": Path(str(corpus.get("path") or "corpus")).name}
    metrics = [_metric("perplexity", value, f"perplexity ({unit})")]
    if ratio is not None:
        metrics.append(_metric("perplexity_ratio", ratio, "perplexity / dense model's perplexity (same corpus)"))
    return {"task": {"type": "text-generation", "name": "Language modeling"}, "dataset": dataset, "metrics": metrics}, rows


def _rows_device(report: dict, v: dict) -> tuple[dict | None, list[tuple[str, str, str, str]]]:
    art = v.get("artifact") or {}
    size = finite_number(art.get("bytes_total"))
    decode, _ = phase_stats(v.get("bench") or {}, "decode_ms_per_token")
    protocol = (v.get("bench") or {}).get("protocol") or {}
    p50 = finite_number(decode.get("p50"))
    device = _device_text(report)
    prof = (report.get("profile") or {}).get("name") or "n/a"
    n_proc = len(decode.get("process_ns") or []) or None
    size_how = (f"sum of the bytes of the artifact's {len(art.get('files') or [])} model file(s) (ONNX graph and "
                "external data, each listed with its sha256 in report.json)")
    decode_unit = _one_line(decode.get("unit") or "ms") + " per token"
    decode_how = "; ".join(_one_line(s) for s in (
        decode.get("context_tokens") is not None and f"after a {decode['context_tokens']}-token KV cache",
        protocol.get("decode"),
        decode.get("n") is not None and f"p50 of {decode['n']} samples"
                                        + (f" in {n_proc} fresh process(es)" if n_proc else ""),
        protocol.get("timer"),
        protocol.get("isolation"),
        device,
    ) if s)
    rows = [("size on disk", _value_text(None if size is None else size / 1e6, " MB"), "MB (10^6 bytes)", size_how),
            ("decode latency p50", _value_text(p50, " ms"), decode_unit, decode_how)]
    off = " (measured off the target device)" if off_target_note(report) else ""
    metrics = [m for m in (
        _metric("model_size_mb", None if size is None else size / 1e6, "size on disk, MB (10^6 bytes) of the model files"),
        _metric("decode_latency_p50_ms", p50, f"decode latency p50, {decode_unit}"
                + (f" after a {decode['context_tokens']}-token KV cache" if decode.get("context_tokens") is not None else "")
                + f", profile {prof}{off}"),
    ) if m]
    if not metrics:
        return None, rows
    dataset = {"type": "synthetic", "name": f"prunegate latency protocol on profile {prof}"}
    return {"task": {"type": "text-generation", "name": f"Edge deployment ({prof})"}, "dataset": dataset,
            "metrics": metrics}, rows


def model_index(report: dict, variant: str | None = None) -> dict:
    """The ``model-index`` front matter of one variant (see the module docstring), as a dict.

    Args:
        report: a prunegate report (schema v1).
        variant: the variant described; ``None`` = the first candidate (else the baseline).

    Returns:
        ``{"model-index": [{"name": ..., "results": [...]}]}``; ``results`` may be empty for a report without
        measurements.

    Raises:
        InputError: see :func:`choose_variant`.
    """
    return _card(report, variant)[0]


def _model_name(report: dict, v: dict) -> str:
    base = _one_line((report.get("config") or {}).get("model_name") or "model")
    return base if v.get("role") == "baseline" else f"{base} ({_one_line(v.get('name'))})"


def _card(report: dict, variant: str | None) -> tuple[dict, list[tuple[str, str, str, str]], dict]:
    v = choose_variant(report, variant)
    results, rows = [], []
    for part in (_rows_bbq, _rows_perplexity, _rows_device):
        result, r = part(report, v)
        rows += r
        if result is not None:
            results.append(result)
    return {"model-index": [{"name": _model_name(report, v), "results": results}]}, rows, v


def render_model_card(report: dict, variant: str | None = None) -> str:
    """The model card text: ``---`` + YAML front matter (:func:`model_index`) + ``---`` + a Markdown section.

    Args:
        report: a prunegate report (schema v1).
        variant: the variant described; ``None`` = the first candidate (else the baseline).

    Returns:
        the text, ending with a newline; ``yaml.safe_load`` of the part between the ``---`` lines gives
        :func:`model_index` back (values rounded to :data:`VALUE_DIGITS` significant digits).

    Raises:
        InputError: see :func:`choose_variant`.
    """
    front, rows, v = _card(report, variant)
    front_text = yaml.safe_dump(front, sort_keys=False, allow_unicode=True, default_flow_style=False, width=100)
    name = _one_line(v.get("name"))
    verdict = _one_line(report.get("verdict") or "n/a")
    mine = [c for c in report.get("checks") or [] if c.get("variant") == v.get("name")]
    failing = sorted({_one_line(c.get("id")) for c in mine if str(c.get("status", "")).lower() in ("fail", "error", "inconclusive")})
    art_sha = ((v.get("artifact") or {}).get("digest") or {}).get("sha256")
    env = report.get("environment") or {}
    lines = [
        "## Evaluation with prunegate",
        "",
        f"Variant `{_cell(name)}` ({_cell(v.get('role') or '?')}, compression "
        f"`{_cell((v.get('compression') or {}).get('method') or 'n/a')}`) of `{_cell(_model_name(report, v))}`, "
        f"measured by prunegate {_cell(env.get('prunegate') or '?')} on the exported ONNX artifact. "
        f"Gate verdict of the run: **{verdict.upper()}**"
        + (f"; this variant's checks that did not pass: {', '.join(f'`{_cell(i)}`' for i in failing)}" if failing else "")
        + ".",
        "",
        "| metric | value | unit | how it was measured |",
        "|---|---|---|---|",
    ]
    lines += [f"| {_cell(a)} | {_cell(b)} | {_cell(c)} | {_cell(d)} |" for a, b, c, d in rows]
    notes = []
    if finite_number((v.get("bbq") or {}).get("s_amb")) is None and v.get("bbq"):
        notes.append("s_AMB is undefined when every ambiguous answer is UNKNOWN (no non-UNKNOWN answer to score).")
    note = off_target_note(report)
    if note:
        notes.append(f"Latency{_one_line(note)}.")
    lines += [""] + [f"- {_cell(n)}" for n in notes] + ([""] if notes else [])
    provenance = [
        f"report `{_cell(report.get('report_id') or 'n/a')}`",
        f"artifact sha256 `{_cell(art_sha)}`" if art_sha else None,
        f"BBQ suite manifest sha256 `{_cell((report.get('suite') or {}).get('manifest_digest'))}`"
        if (report.get("suite") or {}).get("manifest_digest") else None,
        f"policy sha256 `{_cell((report.get('digests') or {}).get('policy', {}).get('sha256'))}`"
        if ((report.get("digests") or {}).get("policy") or {}).get("sha256") else None,
    ]
    lines.append("Provenance: " + "; ".join(p for p in provenance if p) + ". The values in the front matter are "
                 "self-reported (`verified: false`) and rounded to 4 significant digits; report.json holds the full "
                 "numbers, their intervals and every check.")
    return "---\n" + front_text + "---\n\n" + "\n".join(lines) + "\n"
