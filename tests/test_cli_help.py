"""Help that teaches: `check --help` in named groups (rich-click option panels), consistent option names across
commands (old names still work, with a deprecation warning on stderr), lists given repeated or comma-separated."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from gate.cli.main import CHECK_OPTION_PANELS, cli

GROUPS = ("Inputs", "Candidates", "BBQ", "Perplexity", "Measurement", "Device", "Outputs", "Policy")


def _help(*args: str) -> str:
    result = CliRunner().invoke(cli, [*args, "--help"], terminal_width=100)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_check_help_shows_the_named_groups_in_order():
    out = _help("check")
    lines = [ln.strip() for ln in out.splitlines()]
    positions = [lines.index(g) for g in GROUPS]  # each group is a titled section of its own
    assert positions == sorted(positions)
    inputs = "\n".join(lines[positions[0]:positions[1]])
    assert "--model" in inputs and "--bbq-dir" in inputs and "--candidate" not in inputs
    measurement = "\n".join(lines[positions[4]:positions[5]])
    assert "--bench-protocol" in measurement and "--prompt-lengths" in measurement
    assert "Exit codes" in out


def test_every_check_option_is_in_exactly_one_group():
    command = cli.commands["check"]
    listed = [o for opts in CHECK_OPTION_PANELS.values() for o in opts]
    assert len(listed) == len(set(listed))
    visible = {next((o for o in p.opts if o.startswith("--")), p.opts[0]) for p in command.params
               if not getattr(p, "hidden", False)} | {"--help"}
    assert visible == set(listed), visible ^ set(listed)


def test_quiet_verbose_debug_are_in_every_help():
    for args in (("check",), ("suite", "build"), ("bbq", "score"), ("report", "render"), ("prune",), ("verify",), ()):
        out = _help(*args)
        assert "--quiet" in out and "--verbose" in out and "--debug" in out, args


def _parse(args: list[str]) -> dict:
    """Parse ``prunegate ARGS`` without running the command; return the command's parameters."""
    ctx = cli.make_context("prunegate", list(args), resilient_parsing=False)
    sub = cli.get_command(ctx, args[0])
    rest = args[1:]
    while hasattr(sub, "commands"):
        sub, rest = sub.get_command(ctx, rest[0]), rest[1:]
    return sub.make_context(sub.name, rest, parent=ctx).params


def test_suite_build_takes_suite_size_and_the_old_size_warns(capsys, tmp_path):
    assert _parse(["suite", "build", "--suite-size", "24", "--out", "s.json"])["size"] == 24
    assert "deprecated" not in capsys.readouterr().err
    assert _parse(["suite", "build", "--size", "16", "--out", "s.json"])["size"] == 16
    err = capsys.readouterr().err
    assert "warning: --size is deprecated; use --suite-size" in err
    assert _parse(["suite", "build", "--out", "s.json"])["size"] == 240  # the default, as check's


def test_suite_build_old_name_end_to_end(tmp_path, bbq_dir):
    from test_cli_errors import run_cli

    proc = run_cli("suite", "build", "--bbq-dir", str(bbq_dir), "--size", "8", "--out", str(tmp_path / "s.json"))
    assert proc.returncode == 0, proc.stderr
    assert "--size is deprecated; use --suite-size" in proc.stderr and "8 items" in proc.stdout


def test_prune_takes_candidate_and_the_old_method_warns(capsys):
    assert _parse(["prune", "--candidate", "wanda:2:4", "--out", "o"])["method"] == "wanda:2:4"
    assert "deprecated" not in capsys.readouterr().err
    assert _parse(["prune", "--method", "magnitude:0.5", "--out", "o"])["method"] == "magnitude:0.5"
    assert "warning: --method is deprecated; use --candidate" in capsys.readouterr().err
    import click

    with pytest.raises(click.MissingParameter):
        _parse(["prune", "--out", "o"])
    with pytest.raises(click.UsageError, match="pass --candidate only"):
        _parse(["prune", "--candidate", "wanda:2:4", "--method", "magnitude:0.5", "--out", "o"])


def test_report_sign_takes_report_and_the_old_positional_warns(tmp_path):
    from test_cli_errors import run_cli

    proc = run_cli("report", "sign", str(tmp_path / "r.json"), "--key", str(tmp_path / "missing.pem"))
    assert proc.returncode == 2 and "report sign REPORT is deprecated; use --report" in proc.stderr
    proc = run_cli("report", "sign", "--report", str(tmp_path / "r.json"), "--key", str(tmp_path / "missing.pem"))
    assert proc.returncode == 2 and "deprecated" not in proc.stderr


@pytest.mark.parametrize("args, formats", [
    (["--formats", "md,junit"], ("md", "junit")),
    (["--formats", "md", "--formats", "junit"], ("md", "junit")),
    (["--formats", "md,junit", "--formats", "html"], ("md", "junit", "html")),
])
def test_lists_repeated_or_comma_separated(args, formats):
    from gate.cli.check import options_from_cli

    opts = options_from_cli(_parse(["check", *args, "--candidate", "magnitude:0.5,random:0.3", "--candidate",
                                    "int8", "--prompt-lengths", "16", "--prompt-lengths", "64,128"]))
    assert tuple(opts.report_formats) == formats
    assert opts.candidates == ("magnitude:0.5", "random:0.3", "int8")
    assert opts.bench.prompt_lengths == (16, 64, 128)


def test_list_defaults_unchanged():
    from gate.cli.check import options_from_cli
    from gate.measure.harness import BenchSettings

    opts = options_from_cli(_parse(["check"]))
    assert opts.bench.prompt_lengths == BenchSettings().prompt_lengths and opts.candidates == ()
