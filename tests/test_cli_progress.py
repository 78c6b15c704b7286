"""The CLI's front end of the stages' log lines and progress events (gate/cli/_progress.py), and -q/-v/--debug.

Progress events are fed by hand (a fake sequence), in both modes: a terminal (rich Console forced to be one, into a
StringIO) and CI (plain timestamped lines, throttled). No assertion depends on the time of day.
"""

from __future__ import annotations

import io
import re

import pytest
from conftest import run_main
from rich.console import Console

from gate.cli._progress import (
    NORMAL,
    QUIET,
    VERBOSE,
    ProgressLog,
    ci_mode,
    is_chatty,
    is_warning,
)

STAMP = re.compile(r"^\d\d:\d\d:\d\d ")
STEP = re.compile(r"^\d\d:\d\d:\d\d (?P<stage>.+?) (?P<done>\d+)/(?P<total>\d+) (?P<unit>\w+) \((?P<pct>\d+)%\)$")


def _ci(verbosity: int = NORMAL) -> tuple[ProgressLog, io.StringIO]:
    buf = io.StringIO()
    return ProgressLog(verbosity=verbosity, console=Console(file=buf, width=200), ci=True), buf


def _steps(text: str, stage: str) -> list[re.Match]:
    return [m for m in map(STEP.match, text.splitlines()) if m and m["stage"] == stage]


def _fake_run(log: ProgressLog) -> None:
    """A run's events: export, a benchmark with per-process chatter, two BBQ stages interleaved, a warning."""
    log("exporting dense to ONNX")
    for i in range(4):
        log.progress("artifacts", i, 3, "artifacts")
    for k in range(1, 5):
        log(f"bench: round 1/1 launch {k}/4: dense")
        log.progress("benchmark", k - 1, 4, "processes")
        log("bench:   dense: load 12 ms, peak RSS 80 MB, p50 decode 1.0")
    log.progress("benchmark", 4, 4, "processes")
    log("bench:   warning: dense: requested providers not used by the session: XnnpackExecutionProvider")
    for i in range(1, 238):
        log.progress("BBQ dense", i, 237, "items")
        log.progress("BBQ magnitude:0.5", i, 237, "items")
    log("warning: magnitude:0.5: latency too noisy")


def test_ci_mode_throttles_to_one_line_per_ten_percent_per_stage():
    log, buf = _ci()
    with log:
        _fake_run(log)
    text = buf.getvalue()
    lines = text.splitlines()
    assert all(STAMP.match(ln) for ln in lines), lines  # every line timestamped HH:MM:SS
    for stage, total in (("BBQ dense", 237), ("BBQ magnitude:0.5", 237), ("benchmark", 4), ("artifacts", 3)):
        steps = _steps(text, stage)
        assert steps, stage
        assert int(steps[0]["done"]) == (1 if stage.startswith("BBQ") else 0)  # the first event
        assert int(steps[-1]["done"]) == total and steps[-1]["pct"] == "100"  # the last
        pcts = [int(m["pct"]) for m in steps]
        assert len(steps) <= 100 // 10 + 2
        # each printed line (but the last, which is always printed) moved the percentage by at least 10 points
        assert all(b - a >= 10 for a, b in zip(pcts[:-2], pcts[1:-1])), pcts
        assert pcts == sorted(set(pcts)), pcts
        assert len({m["done"] for m in steps}) == len(steps)  # never the same count twice
    # 237 events per BBQ stage, at most 12 lines each; the whole log stays short
    assert len(lines) < 45
    assert "exporting dense to ONNX" in text
    assert "requested providers not used" in text and "latency too noisy" in text  # warnings always
    assert "launch 1/4" not in text and "peak RSS" not in text  # per-process bench lines hidden by default


def test_ci_mode_prints_the_last_state_on_close_and_unknown_totals():
    log, buf = _ci()
    log.progress("paired m", 0, 8, "processes")
    log.progress("paired m", 1, 8, "processes")  # 12 %: printed
    log.progress("paired m", 2, 30, "processes")  # total grew, 6 %: not printed yet
    log.progress("scan", 1, None, "files")
    log.progress("scan", 2, None, "files")
    log.progress("scan", 3, None, "files")
    log.close()
    text = buf.getvalue()
    assert [m["done"] for m in _steps(text, "paired m")] == ["0", "1", "2"]  # the last one on close
    scan = [ln for ln in text.splitlines() if " scan " in ln]
    assert scan and scan[0].endswith("scan 1 files") and scan[-1].endswith("scan 3 files")


def test_verbose_shows_the_per_process_lines_and_quiet_only_warnings():
    log, buf = _ci(VERBOSE)
    with log:
        _fake_run(log)
    assert "launch 1/4" in buf.getvalue() and "peak RSS" in buf.getvalue()
    log, buf = _ci(QUIET)
    with log:
        _fake_run(log)
    lines = buf.getvalue().splitlines()
    assert len(lines) == 2 and all("warning" in ln for ln in lines), lines  # no info, no progress


def test_terminal_mode_draws_bars_and_prints_log_lines_above(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=140, color_system=None)
    with ProgressLog(console=console) as log:
        assert not log.ci  # a terminal and no CI variable: bars
        log("exporting dense to ONNX")
        for i in range(11):
            log.progress("BBQ dense", i, 10, "items")
        log.progress("scan", 1, None, "files")  # unknown total: an indeterminate bar
        log("warning: something to know")
    text = buf.getvalue()
    assert "exporting dense to ONNX" in text and "warning: something to know" in text
    assert "BBQ dense" in text and "10/10" in text and "items" in text and "100%" in text
    assert "1/?" in text  # the indeterminate bar's count
    assert "━" in text  # a bar
    assert not any(STEP.match(ln) for ln in text.splitlines())  # no CI lines on a terminal


def test_ci_detection():
    assert ci_mode(True, {"CI": "true"}) and ci_mode(False, {}) and not ci_mode(True, {}) and not ci_mode(True, {"CI": ""})


@pytest.mark.parametrize("line, warning, chatty", [
    ("warning: x", True, False),
    ("bench:   warning: dense: providers", True, False),
    ("bench: round 1/2 launch 3/4: dense", False, True),
    ("bench:   dense: load 12 ms, peak RSS 80 MB, p50 x", False, True),
    ("bench: paired process 2/12: dense vs m", False, True),
    ("bench:   m: decode speedup 1.2x [1.1, 1.3] after 3 processes", False, True),
    ("bench:   m: CV above 10% in decode (12%); re-running once", False, False),
    ("exporting dense", False, False),
])
def test_line_classes(line, warning, chatty):
    assert is_warning(line) is warning and is_chatty(line) is chatty


# -- the commands: -q / -v / --debug before or after the subcommand ------------------------------------------------


@pytest.fixture
def fake_check(monkeypatch):
    """``run_check`` replaced by a fake run that logs, reports progress and returns a small report."""
    from gate import pipeline
    from gate.report import build

    def run_check(opts, log):
        _fake_run(log)
        return {"exit_code": 0}

    monkeypatch.setattr(pipeline, "run_check", run_check)
    monkeypatch.setattr(build, "summary_lines", lambda report: ["  dense  1.0 ms", "verdict: PASS (exit 0)"])
    monkeypatch.setenv("CI", "true")


@pytest.mark.parametrize("args", [("-q", "check"), ("check", "-q"), ("check", "--quiet")])
def test_quiet_hides_info_keeps_warnings_and_the_verdict(capsys, fake_check, args):
    code, out, err = run_main(capsys, *args)
    assert code == 0
    assert out.splitlines() == ["verdict: PASS (exit 0)"]
    assert "exporting dense" not in err and "BBQ dense" not in err
    assert "latency too noisy" in err and "requested providers not used" in err


def test_default_and_verbose_check_output(capsys, fake_check):
    code, out, err = run_main(capsys, "check")
    assert code == 0 and "verdict: PASS" in out and "report: " in out  # stdout: the summary
    assert "exporting dense" in err and _steps(err, "BBQ dense") and "launch 1/4" not in err  # stderr: the log
    code, out, err = run_main(capsys, "-v", "check")
    assert "launch 1/4" in err and "peak RSS" in err


@pytest.mark.parametrize("args, env", [(("--debug", "check"), None), (("check", "--debug"), None),
                                       (("check",), "1"), (("check",), None)])
def test_debug_prints_the_traceback_of_a_crash(capsys, monkeypatch, tmp_path, tiny_model_dir, bbq_dir, args, env):
    from gate import pipeline

    def crash(*a, **k):
        raise RuntimeError("boom in the plan stage")

    monkeypatch.setattr(pipeline, "plan_execution", crash)
    if env is None:
        monkeypatch.delenv("PRUNEGATE_DEBUG", raising=False)
    else:
        monkeypatch.setenv("PRUNEGATE_DEBUG", env)
    code, _, err = run_main(capsys, *args, "--model", str(tiny_model_dir), "--bbq-dir", str(bbq_dir), "--suite-size", "8",
                         "--out", str(tmp_path / "o"), "--work-dir", str(tmp_path / "w"), "--formats", "none")
    assert code == 4  # the exit code of a crash, with or without --debug
    assert "error: execution failed: " in err and "boom in the plan stage" in err
    if "--debug" in args or env:
        assert "Traceback (most recent call last)" in err and "in crash" in err
    else:
        assert "Traceback" not in err and "--debug" in err


def test_common_options_on_every_command():
    from gate.cli.main import cli

    def commands(group, path=()):
        yield path, group
        for name, cmd in getattr(group, "commands", {}).items():
            yield from commands(cmd, (*path, name))

    for path, cmd in commands(cli):
        opts = {o for p in cmd.params for o in getattr(p, "opts", [])}
        assert {"-q", "--quiet", "-v", "--verbose", "--debug"} <= opts, path
