"""The model card projection (gate/report/model_card.py): Hub ``model-index`` front matter that parses as YAML and
carries the report's numbers, and a Markdown table whose rows give each number's unit and method from the report."""

from __future__ import annotations

import copy
import json

import pytest
import yaml
from test_cli_errors import assert_input_error, run_cli

from gate.report.model_card import VALUE_DIGITS, render_model_card
from gate.runtime.errors import InputError


def split_card(text: str) -> tuple[dict, str]:
    """``(front matter parsed by yaml.safe_load, Markdown body)`` of a card; asserts the ``---`` framing."""
    assert text.startswith("---\n")
    front, sep, body = text[4:].partition("\n---\n")
    assert sep, "no closing --- line"
    return yaml.safe_load(front), body


def _round(x: float) -> float:
    return float(f"{x:.{VALUE_DIGITS}g}")


def _metrics(front: dict) -> dict[str, dict]:
    (entry,) = front["model-index"]
    return {m["type"]: m for r in entry["results"] for m in r["metrics"]}


def test_front_matter_is_the_hub_model_index_with_the_reports_numbers(tiny_run):
    report = tiny_run.report
    front, _ = split_card(render_model_card(report))
    assert list(front) == ["model-index"]
    (entry,) = front["model-index"]
    v = next(x for x in report["variants"] if x["role"] == "candidate")  # default: the first candidate
    assert entry["name"] == f"{report['config']['model_name']} ({v['name']})"
    for r in entry["results"]:
        assert set(r) == {"task", "dataset", "metrics"} and r["task"]["type"] and r["task"]["name"]
        assert r["dataset"]["type"] and r["dataset"]["name"]
        for m in r["metrics"]:
            assert set(m) == {"type", "value", "name", "verified"} and m["verified"] is False
            assert isinstance(m["value"], float) and m["name"]
    tasks = [r["task"]["type"] for r in entry["results"]]
    assert tasks == ["multiple-choice", "text-generation", "text-generation"]
    bbq_result = entry["results"][0]
    assert bbq_result["dataset"]["config"] == f"prunegate-suite-{report['suite']['manifest_digest'][:12]}"
    m = _metrics(front)
    bbq = v["bbq"]
    assert m["bbq_s_amb"]["value"] == _round(bbq["s_amb"]) and m["bbq_s_dis"]["value"] == _round(bbq["s_dis"])
    assert m["accuracy_ambig"]["value"] == _round(bbq["accuracy_ambig"])
    assert m["accuracy_disambig"]["value"] == _round(bbq["accuracy_disambig"])
    assert m["perplexity"]["value"] == _round(v["perplexity"]["value"])
    assert m["perplexity_ratio"]["value"] == _round(v["perplexity"]["ratio_to_dense"])
    assert m["model_size_mb"]["value"] == _round(v["artifact"]["bytes_total"] / 1e6)
    assert m["decode_latency_p50_ms"]["value"] == _round(v["bench"]["decode_ms_per_token"]["p50"])
    prof = report["profile"]["name"]
    assert f"profile {prof}" in m["decode_latency_p50_ms"]["name"] and "ms per token" in m["decode_latency_p50_ms"]["name"]
    assert "MB (10^6 bytes)" in m["model_size_mb"]["name"]
    assert v["perplexity"]["unit"] in m["perplexity"]["name"]  # the unit text is the report's


def test_markdown_rows_give_unit_and_method_from_the_report(tiny_run):
    report = tiny_run.report
    _, body = split_card(render_model_card(report, "random:0.3"))
    v = next(x for x in report["variants"] if x["name"] == "random:0.3")
    rows = [ln for ln in body.splitlines() if ln.startswith("| ") and not ln.startswith("| metric")]
    assert len(rows) == 8
    assert all(len([c for c in r.split(" | ")]) == 4 and "n/a" not in r.split(" | ")[1] for r in rows)
    flat = " ".join(body.split())
    for text in (v["bbq"]["scoring"]["summary"].replace("\\", "\\\\"), report["suite"]["manifest"]["sampling"],
                 v["perplexity"]["unit"], v["perplexity"]["corpus"]["variant"], v["perplexity"]["runtime"],
                 v["bench"]["protocol"]["decode"], v["bench"]["protocol"]["timer"], f"profile {report['profile']['name']}"):
        assert " ".join(text.split()) in flat, text
    assert f"`{v['artifact']['digest']['sha256']}`" in body and report["report_id"] in body
    assert f"Gate verdict of the run: **{report['verdict'].upper()}**" in body


def test_variant_choice_and_errors(tiny_run, tmp_path):
    report = tiny_run.report
    front, _ = split_card(render_model_card(report, "dense"))
    assert front["model-index"][0]["name"] == report["config"]["model_name"]  # the baseline keeps the model's name
    with pytest.raises(InputError, match="--variant nope: not a variant of the report; use one of dense, magnitude:0.5"):
        render_model_card(report, "nope")
    path = tiny_run.out_dir / "report.json"
    proc = run_cli("report", "render", "--report", str(path), "--format", "model-card", "--variant", "random:0.3")
    assert proc.returncode == 0, proc.stderr
    assert split_card(proc.stdout)[0]["model-index"][0]["name"].endswith("(random:0.3)")
    assert_input_error(run_cli("report", "render", "--report", str(path), "--format", "model-card", "--variant", "nope"),
                       "--variant nope")
    out = tmp_path / "card" / "README.md"
    assert run_cli("report", "render", "--report", str(path), "--format", "model-card", "--out", str(out)).returncode == 0
    assert split_card(out.read_text())[0] == split_card(render_model_card(report))[0]


def test_check_writes_one_card_per_candidate(tiny_run):
    for name, slug in (("magnitude:0.5", "magnitude_0.5"), ("random:0.3", "random_0.3")):
        text = (tiny_run.out_dir / f"model-card-{slug}.md").read_text()
        assert split_card(text)[0]["model-index"][0]["name"].endswith(f"({name})")
    assert not (tiny_run.out_dir / "model-card.md").exists()


def test_one_candidate_writes_model_card_md_and_a_partial_report_none(tiny_run):
    from gate.report.outputs import render_files

    report = tiny_run.report
    one = {**report, "variants": [v for v in report["variants"] if v["name"] != "random:0.3"]}
    files = render_files(one, ("model-card",))
    assert list(files) == ["model-card.md"] and "(magnitude:0.5)" in files["model-card.md"]
    assert render_files({**report, "variants": []}, ("model-card",)) == {}


def test_missing_numbers_are_left_out_and_shown_as_na(tiny_run):
    report = tiny_run.report
    v = next(x for x in report["variants"] if x["name"] == "magnitude:0.5")
    v["bbq"]["s_amb"] = None
    del v["perplexity"]
    front, body = split_card(render_model_card(report))
    m = _metrics(front)
    assert "bbq_s_amb" not in m and "perplexity" not in m and "bbq_s_dis" in m
    assert [r["task"]["name"] for r in front["model-index"][0]["results"]] == \
        ["Bias in question answering (BBQ)", "Edge deployment (host)"]
    assert "| BBQ s_AMB (ambiguous contexts) | n/a |" in body and "| perplexity | n/a |" in body
    assert "s_AMB is undefined when every ambiguous answer is UNKNOWN" in body


def test_hostile_strings_cannot_break_the_front_matter_or_the_table(tiny_run):
    report = copy.deepcopy(tiny_run.report)
    report["config"]["model_name"] = "evil\n---\nlicense: mit\n| x | y |"
    text = render_model_card(report)
    front, body = split_card(text)
    assert list(front) == ["model-index"]  # no key injected
    assert front["model-index"][0]["name"] == "evil --- license: mit | x | y | (magnitude:0.5)"  # one line, as given
    rows = [ln for ln in body.splitlines() if ln.startswith("|")]
    assert len(rows) == 10  # header, rule, 8 rows: the name's pipes did not add cells or rows
    assert text.count("\n---\n") == 1
    json.dumps(front)  # plain data only (safe_load)


def test_off_target_measurements_say_so(tiny_run):
    report = tiny_run.report
    report["profile"]["name"] = "raspberry-pi-5"
    report["execution"].update(on_target=False, measured_arch="x86_64", target_arch="aarch64", target_core_type="Cortex-A76")
    front, body = split_card(render_model_card(report))
    name = _metrics(front)["decode_latency_p50_ms"]["name"]
    assert name.endswith("profile raspberry-pi-5 (measured off the target device)")
    assert "not on the raspberry-pi-5 target (aarch64 Cortex-A76): latency and memory are not the device's" in body
