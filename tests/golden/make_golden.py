"""Record (or re-run) the golden runs that pin the gate's behaviour across refactors.

Two runs, both offline and deterministic up to timings:
  * ``prunegate check`` on the tiny random model of ``tests/conftest.py`` (seed 0) with two candidates and a
    24-item suite;
  * ``prunegate bbq score`` on UnifiedQA's published Age predictions.

``python tests/golden/make_golden.py OUT_DIR`` writes ``check_report.json`` and ``bbq_score_age.json`` into
OUT_DIR; ``tests/test_golden.py`` runs the same function and compares field by field with the recorded files.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SHARED = REPO.parent / "shared"
sys.path.insert(0, str(REPO / "tests"))

CHECK_ARGS = ["--suite-size", "24", "--candidate", "magnitude:0.5", "--candidate", "random:0.3",
              "--prompt-lengths", "16", "--decode-context", "16", "--bench-min-runs", "3", "--bench-min-seconds", "0",
              "--bench-processes", "1", "--cv-limit", "100", "--formats", "none", "--seed", "0"]


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "PRUNEGATE_PPL_FILE": str(SHARED / "wikitext-2" / "test.txt")}
    return subprocess.run([sys.executable, "-c", "from gate.cli import main; main()", *args], capture_output=True, text=True, env=env, cwd=REPO)


def run_golden(out: Path) -> dict[str, dict]:
    """Run both golden runs into ``out`` and return ``{"check_report": ..., "bbq_score_age": ...}``."""
    from conftest import build_tiny_model

    out.mkdir(parents=True, exist_ok=True)
    model = build_tiny_model(out / "tiny-model")
    proc = _cli("check", "--model", str(model), "--bbq-dir", str(SHARED / "bbq" / "data"), "--out", str(out / "check"),
                "--work-dir", str(out / "work"), *CHECK_ARGS)
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"golden check failed with exit {proc.returncode}: {proc.stderr[-2000:]}")
    check = json.loads((out / "check" / "report.json").read_text())
    proc = _cli("bbq", "score", "--bbq-dir", str(SHARED / "bbq" / "data"), "--predictions",
                str(SHARED / "reference" / "unifiedqa" / "Age.csv"), "--pred-column", "arc_pred_index",
                "--out", str(out / "bbq_score_age.json"))
    if proc.returncode != 0:
        raise RuntimeError(f"golden bbq score failed with exit {proc.returncode}: {proc.stderr[-2000:]}")
    score = json.loads((out / "bbq_score_age.json").read_text())
    return {"check_report": check, "bbq_score_age": score}


if __name__ == "__main__":
    target = Path(sys.argv[1])
    results = run_golden(target / "run")
    for name, data in results.items():
        (target / f"{name}.json").write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
