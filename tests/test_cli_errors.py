"""Bad input: one clear line on stderr naming the input and the fix, exit code 2, no traceback.

Each case runs the real console script in a subprocess, so exit codes and output are what users see.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


from conftest import BBQ_DIR


def run_cli(*args: str, env: dict | None = None, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    full_env.pop("PRUNEGATE_BBQ_DIR", None) if env is None or "PRUNEGATE_BBQ_DIR" not in env else None
    return subprocess.run([sys.executable, "-m", "gate.cli", *args], capture_output=True, text=True, env=full_env, cwd=cwd, timeout=timeout)


def assert_input_error(proc: subprocess.CompletedProcess, *fragments: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:") or ln.startswith("Error:")]
    assert len(lines) == 1, proc.stderr
    for frag in fragments:
        assert frag in lines[0], (frag, lines[0])


def test_missing_bbq_dir_option_and_env(tmp_path):
    proc = run_cli("check", "--model", str(tmp_path), "--out", str(tmp_path / "o"))
    assert_input_error(proc, "no BBQ data", "--bbq-dir", "PRUNEGATE_BBQ_DIR")


def test_nonexistent_bbq_dir(tmp_path):
    proc = run_cli("check", "--bbq-dir", str(tmp_path / "nope"), "--out", str(tmp_path / "o"))
    assert_input_error(proc, "does not exist", "nyu-mll/BBQ")


def test_empty_bbq_dir(tmp_path):
    (tmp_path / "bbq").mkdir()
    proc = run_cli("check", "--bbq-dir", str(tmp_path / "bbq"), "--out", str(tmp_path / "o"))
    assert_input_error(proc, str(tmp_path / "bbq"))


def test_bbq_dir_from_environment_variable(tmp_path):
    (tmp_path / "bbq").mkdir()
    proc = run_cli("check", "--out", str(tmp_path / "o"), env={"PRUNEGATE_BBQ_DIR": str(tmp_path / "bbq")})
    assert_input_error(proc, str(tmp_path / "bbq"))


def test_unknown_profile_lists_known_ones(tmp_path):
    proc = run_cli("check", "--bbq-dir", str(BBQ_DIR), "--profile", "toaster", "--out", str(tmp_path / "o"))
    assert_input_error(proc, "toaster", "host")


def test_unknown_candidate_method(tmp_path):
    proc = run_cli("check", "--bbq-dir", str(BBQ_DIR), "--candidate", "wandda:0.5", "--out", str(tmp_path / "o"))
    assert_input_error(proc, "wandda", "magnitude:0.5")


def test_sparsity_out_of_range(tmp_path):
    proc = run_cli("check", "--bbq-dir", str(BBQ_DIR), "--candidate", "magnitude:1.5", "--out", str(tmp_path / "o"))
    assert_input_error(proc, "[0, 1)")


def test_missing_model_path(tmp_path):
    proc = run_cli("check", "--bbq-dir", str(BBQ_DIR), "--model", str(tmp_path / "missing"), "--out", str(tmp_path / "o"))
    assert_input_error(proc, "does not exist", "Hugging Face")


def test_model_dir_without_config(tmp_path):
    (tmp_path / "m").mkdir()
    proc = run_cli("check", "--bbq-dir", str(BBQ_DIR), "--model", str(tmp_path / "m"), "--out", str(tmp_path / "o"))
    assert_input_error(proc, "config.json")


def test_model_wrong_file_format(tmp_path):
    f = tmp_path / "weights.bin"
    f.write_bytes(b"\0" * 16)
    proc = run_cli("check", "--bbq-dir", str(BBQ_DIR), "--model", str(f), "--out", str(tmp_path / "o"))
    assert_input_error(proc, ".gguf")


def test_corrupt_gguf(tmp_path):
    f = tmp_path / "broken.gguf"
    f.write_bytes(b"not a gguf file")
    bbq = tmp_path / "bbq"
    bbq.mkdir()
    (bbq / "Age.jsonl").write_text((BBQ_DIR / "Age.jsonl").read_text().splitlines()[0] * 0 + "\n".join((BBQ_DIR / "Age.jsonl").read_text().splitlines()[:8]) + "\n")
    proc = run_cli("check", "--bbq-dir", str(bbq), "--model", str(f), "--suite-size", "4",
                   "--out", str(tmp_path / "o"), "--work-dir", str(tmp_path / "w"))
    assert_input_error(proc, "broken.gguf")


def test_model_that_fails_to_export(tmp_path, tiny_model_dir):
    """A config whose architecture optimum cannot export gives exit 2 naming the model."""
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(tiny_model_dir, bad)
    cfg = json.loads((bad / "config.json").read_text())
    cfg["model_type"] = "no-such-architecture"
    cfg["architectures"] = ["NoSuchForCausalLM"]
    (bad / "config.json").write_text(json.dumps(cfg))
    proc = run_cli("check", "--bbq-dir", str(BBQ_DIR), "--model", str(bad), "--suite-size", "4",
                   "--out", str(tmp_path / "o"), "--work-dir", str(tmp_path / "w"))
    assert_input_error(proc, str(bad))


def test_malformed_bbq_line_names_file_and_line(tmp_path):
    bbq = tmp_path / "bbq"
    bbq.mkdir()
    good = (BBQ_DIR / "Age.jsonl").read_text().splitlines()[:3]
    (bbq / "Age.jsonl").write_text("\n".join(good + ["{not json"]) + "\n")
    proc = run_cli("check", "--bbq-dir", str(bbq), "--out", str(tmp_path / "o"))
    assert_input_error(proc, "Age.jsonl", "4")


def test_usage_error_exit_2(tmp_path):
    proc = run_cli("check", "--suite-size", "many")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr


def test_help_explains_every_option():
    proc = run_cli("check", "--help")
    assert proc.returncode == 0
    for opt in ("--model", "--candidate", "--bbq-dir", "--suite-size", "--seed", "--profile", "--out", "--work-dir",
                "PRUNEGATE_BBQ_DIR", "magnitude:S", "Exit codes"):
        assert opt in proc.stdout, opt


@pytest.mark.parametrize("command, option, env", [
    (("check",), "--bbq-dir", "PRUNEGATE_BBQ_DIR"),
    (("suite", "build"), "--bbq-dir", "PRUNEGATE_BBQ_DIR"),
    (("bbq", "score"), "--bbq-dir", "PRUNEGATE_BBQ_DIR"),
    (("check",), "--ppl-file", "PRUNEGATE_PPL_FILE"),
    (("check",), "--calibration-file", "PRUNEGATE_CALIBRATION_FILE"),
    (("prune",), "--calibration-file", "PRUNEGATE_CALIBRATION_FILE"),
])
def test_environment_variables_are_read_by_the_cli_options(monkeypatch, tmp_path, command, option, env):
    """Only click reads these variables (the core takes the value as an argument); --help shows them."""
    import click

    from gate.cli.main import cli

    cmd = cli
    for name in command:
        cmd = cmd.commands[name]
    param = next(p for p in cmd.params if option in p.opts)
    assert param.envvar == env and param.show_envvar
    monkeypatch.setenv(env, str(tmp_path / "from-env"))
    with click.Context(cmd) as ctx:
        value, _ = param.handle_parse_result(ctx, {}, [])
    assert str(value) == str(tmp_path / "from-env")
    assert env in cmd.get_help(cmd.context_class(cmd, info_name=command[-1]))  # rich-click's context formats help


def test_exit_code_epilogs_come_from_the_exit_code_enum():
    from gate.cli._help import exit_codes_help
    from gate.cli.main import cli
    from gate.runtime.errors import ExitCode

    assert exit_codes_help(ExitCode.INPUT, ExitCode.PASS, PASS="valid") == "Exit codes: 0 valid, 2 bad input or usage."
    with pytest.raises(ValueError):
        exit_codes_help(ExitCode.PASS, FAIL="not listed")
    check = cli.commands["check"].epilog
    assert [int(c) for c in ExitCode if f" {int(c)} " in f" {check.split(':', 1)[1]}"] == [0, 1, 2, 3, 4, 130]

    def commands(group, path=()):
        for name, cmd in group.commands.items():
            if hasattr(cmd, "commands"):
                yield from commands(cmd, (*path, name))
            else:
                yield (*path, name), cmd

    for path, cmd in commands(cli):
        if path[0] == "report" or path == ("verify",):
            continue  # gate/cli/report.py has its own epilogs for now
        assert cmd.epilog and cmd.epilog.startswith("Exit codes: 0 "), path
