"""report.json: matches its shipped JSON Schema, binds the run to digests, and is written even when the run fails."""

from __future__ import annotations

import copy
import hashlib
import json

import pytest
from jsonschema import Draft202012Validator
from report_fixtures import tiny_options

import gate.target as target_mod
from exporters.digest import sha256_file
from gate.pipeline import run_check
from gate.runtime.errors import InputError
from gate.report.build import SCHEMA_URI, SCHEMA_VERSION
from gate.report.schema import (
    load_report,
    report_problems,
    report_schema,
    validate_report,
)


def test_schema_is_a_valid_draft_2020_12_schema_with_the_report_uri():
    schema = report_schema()
    Draft202012Validator.check_schema(schema)
    assert schema["$id"] == SCHEMA_URI
    assert schema["additionalProperties"] is False  # the top level is closed


def test_real_report_validates_and_carries_provenance(tiny_run):
    report = tiny_run.report
    assert report_problems(report) == []
    assert report["schema"] == SCHEMA_URI and report["schema_version"] == SCHEMA_VERSION
    assert report["partial"] is False and report["finished_at"] >= report["started_at"]
    env = report["environment"]
    for key in ("prunegate", "python", "onnxruntime", "torch", "cpu", "intra_op_threads", "execution_providers_requested"):
        assert env[key] not in (None, ""), key
    assert "CPUExecutionProvider" in env["execution_providers_used"]
    digests = report["digests"]
    assert digests["suite_manifest"]["sha256"] == report["suite"]["manifest_digest"]
    assert digests["policy"]["sha256"] == report["config"]["policy"]["sha256"]
    assert set(digests["artifacts"]) == {v["name"] for v in report["variants"]}


def test_artifact_digests_are_recomputable_from_the_files(tiny_run):
    """Per-file sha256 match the bytes on disk; the root is sha256 over the raw digests in sorted-name order."""
    for v in tiny_run.report["variants"]:
        art = v["artifact"]
        files = art["files"] + art["other_files"]
        assert art["n_files"] == len(files) and any(f["name"] == "model.onnx" for f in art["files"])
        assert {f["name"] for f in art["other_files"]} >= {"config.json"}  # the tokenizer/config ship with the model
        for f in files:
            path = f"{art['dir']}/{f['name']}"
            assert sha256_file(path) == f["sha256"]
        raw = b"".join(bytes.fromhex(f["sha256"]) for f in sorted(files, key=lambda f: f["name"]))
        assert art["digest"]["sha256"] == hashlib.sha256(raw).hexdigest()
        assert art["bytes_total"] == sum(f["bytes"] for f in art["files"])  # model files only (size checks)


@pytest.mark.parametrize("mutate, fragment", [
    (lambda r: r.pop("digests"), "$.digests: missing required key"),
    (lambda r: r.__setitem__("surprise", 1), "$.surprise: unknown key"),
    (lambda r: r.__setitem__("schema_version", "2.0.0"), "$.schema_version"),
    (lambda r: r["variants"][0]["artifact"]["digest"].__setitem__("sha256", "XYZ"), "$.variants[0].artifact.digest.sha256"),
    (lambda r: r["checks"][0].__setitem__("status", "maybe"), "$.checks[0].status"),
    (lambda r: r.__setitem__("exit_code", 7), "$.exit_code"),
    (lambda r: r.__setitem__("partial", True), "$.error: missing required key"),
])
def test_schema_rejects_broken_reports(tiny_run, mutate, fragment):
    report = tiny_run.report
    mutate(report)
    problems = report_problems(report)
    assert any(fragment in p for p in problems), problems
    with pytest.raises(InputError, match="not a valid prunegate v1 report"):
        validate_report(report)


def test_variant_entries_are_open_for_other_stages(tiny_run):
    report = tiny_run.report
    report["variants"][1]["new_stage"] = {"anything": [1, 2]}
    report["variants"][1]["artifact"]["extra"] = True
    assert report_problems(report) == []


def test_load_report_names_the_file_on_bad_json(tmp_path):
    bad = tmp_path / "report.json"
    bad.write_text("{not json")
    with pytest.raises(InputError, match="report.json: cannot be read as JSON"):
        load_report(bad)


def test_failed_run_still_writes_a_valid_partial_report_and_projections(tmp_path, tiny_run, tiny_model_dir, bbq_dir, monkeypatch):
    def crash(*a, **k):
        raise RuntimeError("device unplugged")

    monkeypatch.setattr(target_mod, "measure_variants", crash)
    out = tmp_path / "out"
    with pytest.raises(RuntimeError):
        run_check(tiny_options(out, tiny_run.work_dir, tiny_model_dir, bbq_dir), log=lambda s: None)
    report = json.loads((out / "report.json").read_text())
    assert report_problems(report) == []
    assert report["partial"] is True and report["exit_code"] == 4 and "device unplugged" in report["error"]["message"]
    assert report["digests"]["artifacts"]  # the exports finished before the crash are bound
    for name in ("report.md", "junit.xml", "report.html", "codequality.json", "intoto-magnitude_0.5.json"):
        assert (out / name).stat().st_size > 0, name
    assert "Partial report" in (out / "report.md").read_text()


def test_formats_option_limits_projections(tmp_path, tiny_run, tiny_model_dir, bbq_dir):
    import dataclasses

    opts = dataclasses.replace(tiny_options(tmp_path / "out", tiny_run.work_dir, tiny_model_dir, bbq_dir, ("magnitude:0.5",)),
                               report_formats=("junit",))
    run_check(opts, log=lambda s: None)
    assert sorted(p.name for p in (tmp_path / "out").iterdir() if p.is_file()) == ["junit.xml", "report.json"]


def test_a_crashing_projection_does_not_change_the_outcome(tmp_path, tiny_run, monkeypatch):
    from gate.report import outputs as report_outputs

    def boom(report):
        raise RuntimeError("renderer bug")

    monkeypatch.setattr("gate.report.markdown.render_markdown", boom)
    logged = []
    report = copy.deepcopy(tiny_run.report)
    report_outputs.write_report(report, tmp_path, ("md", "junit"), log=logged.append)
    assert (tmp_path / "report.json").is_file() and (tmp_path / "junit.xml").is_file()
    assert not (tmp_path / "report.md").exists()
    assert any("md projection" in line and "renderer bug" in line for line in logged)
