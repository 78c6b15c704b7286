"""``prunegate verify`` on a real run: a report belongs to exactly these artifact bytes, else integrity error (exit 5).

The tiny run's verdict is ``fail``, so these tests check integrity with ``--any-verdict`` (``any_verdict=True``); that
only a candidate that passed verifies without it is in tests/test_integrity_verify.py (and checked once here).
"""

from __future__ import annotations

import json
import shutil

import pytest
from test_cli_errors import run_cli

from gate.report.consistency import consistency_problems
from gate.report.verify import verify_artifact


def _artifact(report: dict, name: str):
    return next(v for v in report["variants"] if v["name"] == name)["artifact"]


def _copy(tiny_run, name: str, tmp_path):
    dst = tmp_path / "artifact"
    shutil.copytree(_artifact(tiny_run.report, name)["dir"], dst)
    return dst


def test_each_exported_artifact_verifies_against_its_variant(tiny_run):
    report = tiny_run.report
    assert consistency_problems(report) == []  # a report as check wrote it is consistent
    for v in report["variants"]:
        result = verify_artifact(report, v["artifact"]["dir"], any_verdict=True)
        assert result.ok and result.integrity_ok and result.variant == v["name"], result.message
        strict = verify_artifact(report, v["artifact"]["dir"])
        assert not strict.ok and strict.integrity_ok and strict.kind == "verdict", strict.message
        assert ("not a candidate" if v["role"] == "baseline" else f"the gate's verdict is {report['verdict']}") in strict.message


def test_a_failed_run_does_not_verify_without_any_verdict(tiny_run, tmp_path):
    art = _copy(tiny_run, "random:0.3", tmp_path)
    proc = run_cli("verify", str(art), "--report", str(tiny_run.out_dir / "report.json"))
    assert tiny_run.report["verdict"] != "pass"
    assert proc.returncode == 5 and "not the artifact that passed" in proc.stderr, proc.stderr


def test_cli_ok_on_a_copied_artifact_with_an_attached_report(tiny_run, tmp_path):
    art = _copy(tiny_run, "random:0.3", tmp_path)
    shutil.copy(tiny_run.out_dir / "report.json", art / "report.json")  # attached to the artifact, not part of it
    proc = run_cli("verify", "--report", str(tiny_run.out_dir / "report.json"), "--artifact", str(art), "--any-verdict")
    assert proc.returncode == 0, proc.stderr
    assert "matches variant random:0.3" in proc.stdout


@pytest.mark.parametrize("damage, fragment", [
    (lambda d: (d / "model.onnx").write_bytes((d / "model.onnx").read_bytes()[:-1] + b"\x00"), "content differs: model.onnx"),
    (lambda d: (d / "config.json").unlink(), "missing: config.json"),
    (lambda d: (d / "extra.bin").write_bytes(b"x"), "not in the report: extra.bin"),
])
def test_cli_names_the_file_on_integrity_errors(tiny_run, tmp_path, damage, fragment):
    art = _copy(tiny_run, "magnitude:0.5", tmp_path)
    damage(art)
    for extra in ((), ("--variant", "magnitude:0.5")):
        proc = run_cli("verify", "--report", str(tiny_run.out_dir / "report.json"), "--artifact", str(art), *extra)  # no --any-verdict: bytes first
        assert proc.returncode == 5, (proc.stdout, proc.stderr)
        assert "integrity error" in proc.stderr and fragment in proc.stderr, proc.stderr
        expected = ("does not match variant magnitude:0.5" if extra else
                    "matches no variant of the report; compared with the closest, magnitude:0.5")
        assert expected in proc.stderr, proc.stderr


def test_explicit_variant_must_match(tiny_run, tmp_path):
    art = _copy(tiny_run, "magnitude:0.5", tmp_path)
    report = tiny_run.out_dir / "report.json"
    assert run_cli("verify", "--report", str(report), "--artifact", str(art), "--variant", "magnitude:0.5",
                   "--any-verdict").returncode == 0
    proc = run_cli("verify", "--report", str(report), "--artifact", str(art), "--variant", "dense", "--any-verdict")
    assert proc.returncode == 5 and "does not match variant dense" in proc.stderr
    proc = run_cli("verify", "--report", str(report), "--artifact", str(art), "--variant", "nope")
    assert proc.returncode == 2 and "--variant nope" in proc.stderr


def test_an_edited_report_is_an_integrity_error(tiny_run, tmp_path):
    report = tiny_run.report
    art = _artifact(report, "magnitude:0.5")
    art["files"][0]["sha256"] = "0" * 64  # someone "fixed" a digest by hand
    path = tmp_path / "report.json"
    path.write_text(json.dumps(report))
    for extra in ((), ("--any-verdict",)):
        proc = run_cli("verify", "--report", str(path), "--artifact", art["dir"], "--variant", "magnitude:0.5", *extra)
        assert proc.returncode == 5 and "report was altered" in proc.stderr, proc.stderr
    proc = run_cli("report", "validate", "--report", str(path))
    assert proc.returncode == 2 and "report was altered" in proc.stderr


def test_bad_inputs_exit_2(tiny_run, tmp_path):
    proc = run_cli("verify", "--report", str(tiny_run.out_dir / "report.json"), "--artifact", str(tmp_path / "none"))
    assert proc.returncode == 2 and "not a directory" in proc.stderr
    proc = run_cli("verify", "--report", str(tmp_path / "missing.json"), "--artifact", str(tmp_path))
    assert proc.returncode == 2 and "no such file" in proc.stderr
