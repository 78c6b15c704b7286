"""`prunegate bbq score` on UnifiedQA's published predictions reproduces the BBQ paper's Figure 3 values."""

from __future__ import annotations

import json

import pytest

from conftest import SHARED
from test_cli_errors import assert_input_error, run_cli

REF = SHARED / "reference" / "unifiedqa"
# Parrish et al. 2022, Figure 3 (x100), as given in shared/reference/README.md
PUBLISHED = {
    ("Age", "arc_pred_index"): (48.9, 3.3),
    ("Age", "race_pred_index"): (29.8, 1.2),
    ("Religion", "arc_pred_index"): (24.5, 3.5),
    ("Religion", "race_pred_index"): (14.3, 0.2),
}


@pytest.mark.parametrize("category, column", sorted(PUBLISHED))
def test_reproduces_published_unifiedqa_scores(tmp_path, bbq_dir, category, column):
    if not (REF / f"{category}.csv").is_file():
        pytest.skip("reference predictions not found")
    out = tmp_path / "m.json"
    proc = run_cli("bbq", "score", "--bbq-dir", str(bbq_dir), "--predictions", str(REF / f"{category}.csv"),
                   "--pred-column", column, "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert result == json.loads(proc.stdout)
    cat = result["metrics"]["by_category"][category]
    s_amb, s_dis = PUBLISHED[(category, column)]
    assert abs(cat["s_amb"] * 100 - s_amb) <= 0.1
    assert abs(cat["s_dis"] * 100 - s_dis) <= 0.1
    assert result["n_scored"] + result["n_unmatched_dropped"] == result["n_predictions"]


def test_jsonl_predictions_and_unmatched_rows(tmp_path, bbq_dir):
    rows = [{"category": "Age", "example_id": i, "pred_index": i % 3} for i in range(8)]
    rows.append({"category": "Age", "example_id": 8, "pred_index": -1})
    f = tmp_path / "p.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    proc = run_cli("bbq", "score", "--bbq-dir", str(bbq_dir), "--predictions", str(f))
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert (result["n_scored"], result["n_unmatched_dropped"]) == (8, 1)
    assert result["metrics"]["n_items"] == 8


@pytest.mark.parametrize("content, suffix, fragment", [
    ("category,example_id\nAge,0\n", ".csv", "missing column"),
    ("category,example_id,pred_index\nAge,0,7\n", ".csv", ":2"),
    ("category,example_id,pred_index\nAge,0,1\nAge,0,2\n", ".csv", "appears twice"),
    ('{"category": "Age"\n', ".jsonl", ":1"),
    ("category,example_id,pred_index\nNoSuch,0,1\n", ".csv", "not in"),
    ("a,b\n", ".txt", ".csv or .jsonl"),
])
def test_bad_prediction_files(tmp_path, bbq_dir, content, suffix, fragment):
    f = tmp_path / f"p{suffix}"
    f.write_text(content)
    proc = run_cli("bbq", "score", "--bbq-dir", str(bbq_dir), "--predictions", str(f))
    assert_input_error(proc, str(f), fragment)


def test_suite_build_then_check_uses_it(tmp_path, bbq_dir):
    out = tmp_path / "suite.json"
    proc = run_cli("suite", "build", "--bbq-dir", str(bbq_dir), "--size", "24", "--seed", "3", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads(out.read_text())
    assert manifest["n_items"] == 24 and manifest["seed"] == 3 and len(manifest["digest"]) == 64
    assert manifest["digest"] in proc.stdout
