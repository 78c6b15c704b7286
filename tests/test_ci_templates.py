"""ci/ templates: valid YAML, publish the outputs, and run exactly the commands the README documents."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest
import yaml

from gate.cli.main import cli

ROOT = Path(__file__).resolve().parents[1]
ENV = {"MODEL": "models/dense", "CANDIDATE": "models/pruned-onnx", "BBQ_DIR": "data/bbq", "PPL_FILE": "data/wikitext-2/test.txt",
       "GITHUB_STEP_SUMMARY": "/tmp/summary"}


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## CI integration"):]
    block = re.search(r"```bash\n(.*?)```", section, re.DOTALL).group(1)
    return [ln.strip() for ln in block.splitlines() if ln.strip()]


def _interesting(line: str) -> bool:
    return line.startswith((".venv/bin/", "cat ", "cp "))


def _github() -> dict:
    return yaml.safe_load((ROOT / "ci" / "github-actions.yml").read_text())


def _gitlab() -> dict:
    return yaml.safe_load((ROOT / "ci" / "gitlab-ci.yml").read_text())


def github_commands() -> list[str]:
    out = []
    for step in _github()["jobs"]["gate"]["steps"]:
        script = step.get("run", "").replace("\\\n", " ")
        out += [" ".join(ln.split()) for ln in script.splitlines() if _interesting(ln.strip())]
    return out


def gitlab_commands() -> list[str]:
    out = []
    for line in _gitlab()["prunegate"]["script"]:
        line = line.split(" || ")[0].strip()  # `cmd || status=$?` keeps the gate's exit code for later
        if _interesting(line):
            out.append(" ".join(line.split()))
    return out


def test_templates_parse_as_the_ci_systems_expect():
    gh = _github()
    assert gh[True] == ["pull_request", "workflow_dispatch"]  # `on:` is YAML 1.1's boolean key
    steps = gh["jobs"]["gate"]["steps"]
    assert all("run" in s or "uses" in s for s in steps)
    uses = [s["uses"].split("@")[0] for s in steps if "uses" in s]
    assert "actions/upload-artifact" in uses and "mikepenz/action-junit-report" in uses
    uploads = [s["with"]["path"] for s in steps if s.get("uses", "").startswith("actions/upload-artifact")]
    assert "prunegate-out/" in uploads and "${{ env.CANDIDATE }}" in uploads
    job = _gitlab()["prunegate"]
    assert job["artifacts"]["when"] == "always"
    assert job["artifacts"]["reports"] == {"junit": "prunegate-out/junit.xml", "codequality": "prunegate-out/codequality.json"}
    assert "prunegate-out/" in job["artifacts"]["paths"] and "$CANDIDATE/" in job["artifacts"]["paths"]


def test_templates_run_exactly_the_documented_commands():
    readme = _readme_commands()
    gh, gl = github_commands(), gitlab_commands()
    assert gh == readme
    github_only = {ln for ln in readme if "GITHUB_STEP_SUMMARY" in ln or "--format annotations" in ln}
    assert gl == [ln for ln in readme if ln not in github_only]


def _parse(args: list[str]) -> None:
    """Parse ``prunegate ARGS`` with the real CLI without running it (unknown or missing options raise)."""
    cmd: click.Command = cli
    while isinstance(cmd, click.Group):
        name, args = args[0], args[1:]
        cmd = cmd.commands[name]
    cmd.make_context(name, list(args))


def test_the_parser_check_catches_bad_invocations():
    with pytest.raises(click.NoSuchOption):
        _parse(["verify", "--report", "r.json", "--artifact", "d", "--bogus"])
    with pytest.raises(click.MissingParameter):
        _parse(["report", "render", "--report", "r.json"])


@pytest.mark.parametrize("line", [ln for ln in _readme_commands() if ln.startswith(".venv/bin/prunegate ")])
def test_documented_prunegate_commands_are_valid_invocations(line):
    expanded = re.sub(r"\$(\w+)", lambda m: ENV[m.group(1)], line)
    _parse(shlex.split(expanded)[1:])


# ---------------------------------------------------------------- the composite action (action.yml at the root)


def _action() -> dict:
    return yaml.safe_load((ROOT / "action.yml").read_text())


def _check_options() -> set[str]:
    """Every long option of ``prunegate check``, read from the click command itself."""
    return {o for p in cli.commands["check"].params for o in p.opts if o.startswith("--")}


def _step(action: dict, step_id: str) -> dict:
    return next(s for s in action["runs"]["steps"] if s.get("id") == step_id)


def test_action_is_a_composite_action_that_publishes_the_outputs():
    action = _action()
    assert action["name"] and action["description"] and action["runs"]["using"] == "composite"
    steps = action["runs"]["steps"]
    assert all("uses" in s or ("run" in s and s.get("shell") == "bash") for s in steps)  # composite run steps need a shell
    uses = [s["uses"].split("@")[0] for s in steps if "uses" in s]
    assert uses[0] == "actions/setup-python" and "actions/upload-artifact" in uses
    install = next(s["run"] for s in steps if "pip" in s.get("run", ""))
    assert '-c "$GITHUB_ACTION_PATH/constraints.txt"' in install  # the repository's pins
    assert (ROOT / "constraints.txt").is_file()
    later = steps[steps.index(_step(action, "check")) + 1:]
    assert all(s.get("if") == "always()" for s in later)  # summary, annotations, upload run whatever the gate said
    script = "\n".join(s.get("run", "") for s in later)
    assert '"$PG_OUT/report.md" >> "$GITHUB_STEP_SUMMARY"' in script
    assert "report render --report \"$PG_OUT/report.json\" --format annotations" in script
    upload = next(s for s in later if s.get("uses", "").startswith("actions/upload-artifact"))
    assert upload["with"]["path"] == "${{ inputs.out }}"
    assert later[-1]["run"].startswith("exit ") and "steps.check.outputs.exit-code" in later[-1]["env"]["PG_CODE"]


def test_every_action_input_maps_to_a_check_option():
    action = _action()
    options = _check_options()
    check = _step(action, "check")
    script, env = check["run"], check["env"]
    assert {"model", "candidates", "profile", "policy", "bbq-dir", "formats", "out"} <= set(action["inputs"])
    for name, spec in action["inputs"].items():
        m = re.match(r"Maps to `(--[a-z0-9-]+)`", spec["description"])
        assert m, f"input {name}: its description must start with the check option it maps to"
        option = m.group(1)
        assert option in options, f"input {name} maps to {option}, which prunegate check does not have"
        var = [k for k, v in env.items() if v == f"${{{{ inputs.{name} }}}}"]
        assert len(var) == 1, f"input {name} must reach the script through exactly one environment variable"
        assert re.search(rf'{re.escape(option)} "\$({var[0]}|spec)"', script), f"{option} is not passed ${var[0]}"
    assert "${{" not in script  # inputs never spliced into the shell script (injection)


def test_action_check_invocation_parses_with_the_real_cli():
    action = _action()
    check = _step(action, "check")
    values = {"PG_MODEL": "models/dense", "PG_CANDIDATES": "x", "PG_PROFILE": "host", "PG_POLICY": "gate.toml",
              "PG_BBQ_DIR": "data/bbq", "PG_PPL_FILE": "t.txt", "PG_FORMATS": "all", "PG_OUT": "o", "PG_WORK_DIR": "w",
              "spec": "magnitude:0.5"}
    assert set(check["env"]) | {"spec"} == set(values)
    args = []
    for m in re.finditer(r'(--[a-z0-9-]+) "\$(\w+)"', check["run"]):
        args += [m.group(1), values[m.group(2)]]
    _parse(["check", *args])  # unknown or malformed options raise
