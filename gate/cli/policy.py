"""``prunegate policy``: validate a ``gate.toml``, show the policy in force, print the published JSON Schema."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
import rich_click

from gate.cli._help import TOOL_CODES, exit_codes_help
from gate.policy.file import SCHEMA_PATH, PolicyError, active_waivers, load_policy
from gate.runtime.errors import ExitCode


@click.group("policy", cls=rich_click.RichGroup)
def policy_group() -> None:
    """The gate's policy file (gate.toml): checks, margins, severities, statistics, waivers."""


@policy_group.command("validate", epilog=exit_codes_help(
    *TOOL_CODES, PASS="valid", INPUT="invalid policy file or bad usage (every problem is listed, one per line)"))
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE")
def validate_cmd(path: Path) -> None:
    """Check FILE against the policy schema; list every problem with the key it concerns.

    An expired waiver is not an error (the gate ignores it with a warning), so it is reported as a warning.
    """
    try:
        policy = load_policy(path)
    except PolicyError as exc:
        for problem in exc.problems:
            click.echo(f"error: policy {exc.path}: {problem}", err=True)
        sys.exit(ExitCode.INPUT)
    _, warnings = active_waivers(policy)
    for w in warnings:
        click.echo(f"warning: {w}", err=True)
    enabled = sum(c.enabled for c in policy.checks.values())
    click.echo(f"{path}: valid ({enabled} of {len(policy.checks)} checks enabled, {len(policy.waivers)} waiver(s), "
               f"sha256 {policy.sha256})")


@policy_group.command("show", epilog=exit_codes_help(*TOOL_CODES, INPUT="invalid policy file or bad usage"))
@click.argument("path", required=False, type=click.Path(dir_okay=False, path_type=Path), metavar="[FILE]")
@click.option("--json", "as_json", is_flag=True, help="Print the effective policy as JSON.")
def show_cmd(path: Path | None, as_json: bool) -> None:
    """Print the policy in force: the default, or the default overlaid with FILE."""
    from gate.policy.checks import CHECKS

    policy = load_policy(path)
    if as_json:
        click.echo(json.dumps({"path": policy.path, "sha256": policy.sha256, **policy.effective}, indent=2))
        return
    st = policy.statistics
    click.echo(f"policy: {policy.path}{' (default)' if policy.is_default else ' over the default'}  sha256 {policy.sha256}")
    click.echo(f"gate: fail_on={policy.fail_on} on_inconclusive={policy.on_inconclusive}")
    click.echo(f"statistics: confidence={st.confidence} resamples={st.resamples} seed={st.seed} "
               f"multiple_comparisons={st.multiple_comparisons} power={st.power}")
    for cid, cp in policy.checks.items():
        spec = CHECKS[cid]
        rule = "<=" if spec.direction == "at_most" else ">="
        margin = "profile budget" if cid.startswith("budget.") else "-" if cp.margin is None else f"{rule} {cp.margin:g}"
        per = f" per {cp.per}" if cp.per else ""
        state = "" if cp.enabled else " [disabled]"
        click.echo(f"  {cid:<20} {cp.severity:<7} {margin:<16} {spec.metric} ({spec.unit}){per}{state}")
    active, expired = active_waivers(policy)
    for w in active:
        click.echo(f"  waiver {w.label()}: {w.reason}")
    for w in expired:
        click.echo(f"  warning: {w}")


@policy_group.command("schema", epilog=exit_codes_help(*TOOL_CODES))
def schema_cmd() -> None:
    """Print the JSON Schema of policy files (for editors and CI linters)."""
    click.echo(SCHEMA_PATH.read_text(encoding="utf-8"), nl=False)
