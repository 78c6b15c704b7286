"""Interrupted or crashed runs keep what they had: a partial report (written atomically) and exit codes != 0."""

from __future__ import annotations

import json

import pytest
from conftest import PPL_FILE

import gate.target as target_mod
from gate.measure.harness import BenchSettings
from gate.pipeline import CheckOptions, run_check
from gate.report.build import write_json_atomic

TINY_BENCH = BenchSettings(prompt_lengths=(8,), decode_context=8, warmup_min_runs=1, warmup_min_seconds=0, min_runs=2,
                           min_seconds=0, processes=1, cv_limit=100.0)


def _opts(tmp_path, model_dir, bbq_dir) -> CheckOptions:
    return CheckOptions(model=str(model_dir), candidates=("magnitude:0.5",), bbq_dir=str(bbq_dir), suite_size=8, seed=0,
                        profile="host", out_dir=tmp_path / "out", work_dir=tmp_path / "w", bench=TINY_BENCH,
                        ppl_file=str(PPL_FILE))  # the core reads no environment variable


@pytest.mark.parametrize("exc, kind, code", [(KeyboardInterrupt(), "interrupted", 130), (RuntimeError("boom"), "execution", 4)])
def test_failure_during_measurement_writes_partial_report(tmp_path, tiny_model_dir, bbq_dir, monkeypatch, exc, kind, code):
    def fail(*a, **k):
        raise exc

    monkeypatch.setattr(target_mod, "measure_variants", fail)
    with pytest.raises(type(exc)):
        run_check(_opts(tmp_path, tiny_model_dir, bbq_dir), log=lambda s: None)
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["partial"] is True
    assert report["verdict"] == "error" and report["exit_code"] == code
    assert report["error"]["kind"] == kind
    # the artifacts built before the failure are recorded with their digests
    assert [v["name"] for v in report["variants"]] == ["dense", "magnitude:0.5"]
    assert all(v["artifact"]["bytes_total"] > 0 for v in report["variants"])
    # the stage that finished before it (size accounting) is kept; the one that crashed left nothing
    assert all(v["size"]["bytes_on_disk"] > 0 and "bench" not in v for v in report["variants"])
    assert "artifact_stats" in report["timings_s"] and "bbq" not in report["timings_s"]


def test_cli_maps_crash_to_exit_4_without_traceback(tmp_path, tiny_model_dir, bbq_dir, monkeypatch, capsys):
    from gate import cli

    def crash(*a, **k):
        raise RuntimeError("child process died")

    monkeypatch.setattr(target_mod, "measure_variants", crash)
    with pytest.raises(SystemExit) as ex:
        cli.main(["check", "--model", str(tiny_model_dir), "--bbq-dir", str(bbq_dir), "--suite-size", "8",
                  "--out", str(tmp_path / "out"), "--work-dir", str(tmp_path / "w")])
    assert ex.value.code == 4
    err = capsys.readouterr().err
    assert "child process died" in err and "Traceback" not in err


def test_atomic_write_keeps_previous_file_on_failure(tmp_path):
    path = tmp_path / "report.json"
    write_json_atomic(path, {"a": 1})
    with pytest.raises(ValueError):
        write_json_atomic(path, {"a": float("nan")})  # JSON forbids NaN: the write fails midway
    assert json.loads(path.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_crash_while_deciding_still_writes_partial_report_and_junit(tmp_path, tiny_model_dir, bbq_dir, monkeypatch):
    """A failure after every stage finished (here: in the decision) keeps every stage result and the JUnit file."""
    import gate.pipeline as pipeline

    def broken_decide(*a, **k):
        raise ValueError("cannot compare nan")

    monkeypatch.setattr(pipeline, "decide", broken_decide)
    opts = _opts(tmp_path, tiny_model_dir, bbq_dir)
    with pytest.raises(ValueError):
        run_check(opts, log=lambda s: None)
    out = tmp_path / "out"
    report = json.loads((out / "report.json").read_text())
    assert report["partial"] is True and report["verdict"] == "error" and report["exit_code"] == 4
    assert report["error"] == {"kind": "execution", "message": "ValueError: cannot compare nan"}
    assert all("bbq" in v for v in report["variants"])  # the last stage's results are in it
    junit = (out / "junit.xml").read_text()
    assert "<testsuite" in junit and ("<error" in junit or "<failure" in junit)


def test_full_disk_is_named_and_exits_4_with_a_partial_report(tmp_path, tiny_model_dir, bbq_dir, monkeypatch, capsys):
    import errno

    from gate import cli

    def no_space(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "w" / "exports" / "x.onnx.data"))

    monkeypatch.setattr(target_mod, "measure_variants", no_space)
    with pytest.raises(SystemExit) as ex:
        cli.main(["check", "--model", str(tiny_model_dir), "--bbq-dir", str(bbq_dir), "--suite-size", "8",
                  "--out", str(tmp_path / "out"), "--work-dir", str(tmp_path / "w"), "--ppl-file", str(PPL_FILE)])
    assert ex.value.code == 4
    err = capsys.readouterr().err
    assert "no space left on the device holding" in err and "x.onnx.data" in err and "--work-dir" in err
    assert "Traceback" not in err and "Errno" not in err
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["error"]["kind"] == "disk-full" and report["exit_code"] == 4
