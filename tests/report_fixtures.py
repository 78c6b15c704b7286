"""Reports produced by the real pipeline on the tiny model, shared by the tests of report.json and its projections.

``tests/conftest.py`` registers this module as a plugin, so its fixtures are available to every test.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path

import pytest

TINY_BENCH = {"prompt_lengths": (8,), "decode_context": 8, "warmup_min_runs": 1, "warmup_min_seconds": 0.0,
              "min_runs": 3, "min_seconds": 0.0, "processes": 1}  # gate.measure.harness.BenchSettings: a 3-run protocol


@dataclass(frozen=True)
class TinyRun:
    """A finished ``prunegate check`` on the tiny model: its output directory and work directory."""

    out_dir: Path
    work_dir: Path

    @property
    def report(self) -> dict:
        """A fresh copy of report.json (tests may modify it)."""
        return json.loads((self.out_dir / "report.json").read_text())


def tiny_options(out_dir: Path, work_dir: Path, model_dir: Path, bbq_dir: Path, candidates=("magnitude:0.5", "random:0.3")):
    """``CheckOptions`` of a fast check on the tiny model: 8 BBQ items, a 3-run latency protocol in one process."""
    from conftest import PPL_FILE

    from gate.measure.harness import BenchSettings
    from gate.pipeline import CheckOptions

    return CheckOptions(model=str(model_dir), candidates=tuple(candidates), bbq_dir=str(bbq_dir), suite_size=8, seed=0,
                        profile="host", out_dir=out_dir, work_dir=work_dir, bench=BenchSettings(**TINY_BENCH),
                        ppl_file=str(PPL_FILE))  # the core reads no environment variable


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, tiny_model_dir, bbq_dir) -> TinyRun:
    """``run_check`` on the tiny model with two candidates (magnitude:0.5, random:0.3), every projection written."""
    from gate.pipeline import run_check

    root = tmp_path_factory.mktemp("tiny_run")
    run_check(tiny_options(root / "out", root / "work", tiny_model_dir, bbq_dir), log=lambda s: None)
    return TinyRun(root / "out", root / "work")


def with_statuses(report: dict, statuses: dict[str, str]) -> dict:
    """A copy of ``report`` whose checks with the given ids get the given statuses (all variants)."""
    out = copy.deepcopy(report)
    for c in out["checks"]:
        if c["id"] in statuses:
            c["status"] = statuses[c["id"]]
    return out
