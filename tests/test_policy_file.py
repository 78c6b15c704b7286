"""Policy files: the shipped default, the schema, friendly errors naming the key (exit 2), overlay, waivers, CLI."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import subprocess
import sys
import tomllib

import pytest

from gate.policy.checks import CHECKS
from gate.policy.file import (DEFAULT_POLICY_PATH, PolicyError, active_waivers, load_policy, policy_schema,
                              validate_policy_data)


def _write(tmp_path, text, name="gate.toml"):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def _problems(text):
    return validate_policy_data(tomllib.loads(text))


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "gate.cli", *args], capture_output=True, text=True, timeout=120)


def test_default_policy_schema_and_registry_name_the_same_checks():
    policy = load_policy()
    assert list(policy.checks) == list(CHECKS)
    schema_ids = [f"{fam}.{name}" for fam, t in policy_schema()["properties"]["checks"]["properties"].items()
                  for name in t["properties"]]
    assert schema_ids == list(CHECKS)
    assert policy_schema()["properties"]["waivers"]["items"]["properties"]["check"]["enum"] == list(CHECKS)
    assert policy.is_default and policy.sha256 == hashlib.sha256(DEFAULT_POLICY_PATH.read_bytes()).hexdigest()
    assert (policy.fail_on, policy.on_inconclusive, policy.statistics.multiple_comparisons) == ("error", "fail", "holm")


def test_default_policy_is_documented_line_by_line():
    """Every key line of the shipped file carries a comment, or sits under a table whose first key line does."""
    lines = DEFAULT_POLICY_PATH.read_text().splitlines()
    undocumented = []
    for i, line in enumerate(lines):
        if "=" in line and not line.lstrip().startswith("#") and "#" not in line:
            table_start = max(j for j in range(i + 1) if lines[j].startswith("["))
            siblings = [ln for ln in lines[table_start:i] if "=" in ln and "#" in ln]
            if not siblings and not any("#" in ln for ln in lines[i + 1:i + 2]):
                undocumented.append(line)
    assert undocumented == []


@pytest.mark.parametrize("text,fragment", [
    ('schema_version = "1.0"\nthreshold = 1', "threshold: unknown key"),
    ('schema_version = "1.0"\n[checks.bias.s_amb]\nmargn = 0.1', "checks.bias.s_amb.margn: unknown key"),
    ('schema_version = "1.0"\n[checks.bias.sam]\nmargin = 0.1', "checks.bias.sam: unknown key"),
    ('schema_version = "1.0"\n[checks.bias.s_amb]\nmargin = "0.05"', "checks.bias.s_amb.margin: got string"),
    ('schema_version = "1.0"\n[checks.bias.s_amb]\nmargin = -0.05', "checks.bias.s_amb.margin: -0.05 is below the minimum 0"),
    ('schema_version = "1.0"\n[checks.efficiency.speedup]\nmargin = 0', "checks.efficiency.speedup.margin: 0 is not above 0"),
    ('schema_version = "1.0"\n[checks.budget.memory]\nmargin = 1', "checks.budget.memory.margin: unknown key"),
    ('schema_version = "1.0"\n[checks.perplexity.ratio]\nper = "category"', "checks.perplexity.ratio.per: unknown key"),
    ('schema_version = "1.0"\n[statistics]\nconfidence = 1.0', "statistics.confidence: 1.0 is not below 1"),
    ('schema_version = "1.0"\n[statistics]\nresamples = 10', "statistics.resamples: 10 is below the minimum 100"),
    ('schema_version = "1.0"\n[statistics]\nmultiple_comparisons = "fdr"', 'statistics.multiple_comparisons: "fdr" is not allowed'),
    ('schema_version = "1.0"\n[gate]\non_inconclusive = "exit3"', '"fail", "warn", "exit-3"'),
    ('schema_version = "1.0"\n[checks.bias.s_amb]\nenabled = "yes"', "checks.bias.s_amb.enabled: got string"),
    ('[gate]\nfail_on = "error"', "schema_version: missing required key"),
    ('schema_version = "2.0"', 'schema_version: "2.0" is not allowed'),
    ('schema_version = "1.0"\n[[waivers]]\ncheck = "bias.s_amb"\nexpires = 2026-12-31', "waivers[0].reason: missing required key"),
    ('schema_version = "1.0"\n[[waivers]]\ncheck = "bias.s_amb"\nreason = " "\nexpires = 2026-12-31', "waivers[0].reason"),
    ('schema_version = "1.0"\n[[waivers]]\ncheck = "bias.nope"\nreason = "r"\nexpires = 2026-12-31', "waivers[0].check"),
    ('schema_version = "1.0"\n[[waivers]]\ncheck = "bias.srs"\nreason = "r"\nexpires = "2026-02-30"', "write a TOML date without quotes"),
    ('schema_version = "1.0"\n[[waivers]]\ncheck = "bias.srs"\nreason = "r"\nexpires = 2026-02-03T10:00:00', "waivers[0].expires"),
])
def test_invalid_policies_name_the_key(text, fragment):
    problems = _problems(text)
    assert problems and any(fragment in p for p in problems), problems


def test_every_problem_is_listed_once_per_key():
    problems = _problems('schema_version = "1.0"\n[statistics]\nresamples = 10.5\nseed = -1\nfoo = 1')
    assert len(problems) == 3, problems
    assert any(p.startswith("statistics.resamples: got number 10.5") for p in problems)


def test_load_errors_are_input_errors_naming_the_file(tmp_path):
    with pytest.raises(PolicyError, match="file not found"):
        load_policy(tmp_path / "missing.toml")
    with pytest.raises(PolicyError, match="not valid TOML"):
        load_policy(_write(tmp_path, "schema_version = \n"))
    bad = _write(tmp_path, 'schema_version = "1.0"\n[gate]\nfail_on = "often"\nfoo = 1\n')
    with pytest.raises(PolicyError) as exc:
        load_policy(bad)
    assert str(bad) in str(exc.value) and "and 1 more" in str(exc.value) and len(exc.value.problems) == 2
    assert "\n" not in str(exc.value)


def test_user_file_is_laid_over_the_default(tmp_path):
    text = ('schema_version = "1.0"\n[gate]\non_inconclusive = "exit-3"\n[statistics]\nconfidence = 0.9\n'
            '[checks.bias.s_amb]\nmargin = 0.02\nper = "category"\n[checks.efficiency.memory]\nenabled = false\n'
            '[[waivers]]\ncheck = "bias.srs"\nreason = "RISK-7"\nexpires = 2026-12-31\ncategory = "SES"\n')
    path = _write(tmp_path, text)
    p = load_policy(path)
    assert p.on_inconclusive == "exit-3" and p.fail_on == "error"
    assert p.statistics.confidence == 0.9 and p.statistics.resamples == 2000
    s_amb = p.checks["bias.s_amb"]
    assert (s_amb.margin, s_amb.per, s_amb.severity, s_amb.enabled) == (0.02, "category", "error", True)
    assert p.checks["efficiency.memory"].enabled is False and p.checks["bias.srs"].margin == 0.05
    (w,) = p.waivers
    assert (w.check, w.category, w.expires) == ("bias.srs", "SES", dt.date(2026, 12, 31))
    d = p.describe()
    assert d["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest() and d["content"] == text
    assert d["effective"]["checks"]["bias.s_amb"]["margin"] == 0.02
    json.dumps(d, allow_nan=False)


def test_expired_waivers_are_ignored_with_a_warning(tmp_path):
    path = _write(tmp_path, 'schema_version = "1.0"\n[[waivers]]\ncheck = "bias.srs"\nreason = "r"\nexpires = 2026-01-31\n'
                            '[[waivers]]\ncheck = "bias.s_amb"\nreason = "r"\nexpires = 2026-02-28\n')
    active, warnings = active_waivers(load_policy(path), dt.date(2026, 2, 1))
    assert [w.check for w in active] == ["bias.s_amb"]
    assert len(warnings) == 1 and "waivers[0]" in warnings[0] and "expired" in warnings[0]
    active, _ = active_waivers(load_policy(path), dt.date(2026, 1, 31))  # holds through its last day
    assert len(active) == 2


def test_cli_validate_show_and_schema(tmp_path):
    good = _write(tmp_path, 'schema_version = "1.0"\n[checks.bias.srs]\nmargin = 0.03\n')
    proc = _cli("policy", "validate", str(good))
    assert proc.returncode == 0 and "valid" in proc.stdout, proc.stderr
    bad = _write(tmp_path, 'schema_version = "1.0"\n[checks.bias.srs]\nmargin = 3\nsevrity = "error"\n', "bad.toml")
    proc = _cli("policy", "validate", str(bad))
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert proc.returncode == 2 and len(errors) == 2 and "Traceback" not in proc.stderr
    assert any("checks.bias.srs.margin" in e for e in errors) and any("checks.bias.srs.sevrity" in e for e in errors)
    proc = _cli("policy", "show", str(good), "--json")
    assert proc.returncode == 0 and json.loads(proc.stdout)["checks"]["bias.srs"]["margin"] == 0.03
    proc = _cli("policy", "schema")
    assert proc.returncode == 0 and json.loads(proc.stdout)["$id"] == policy_schema()["$id"]


def test_check_rejects_a_bad_policy_before_any_work(tmp_path):
    from conftest import BBQ_DIR

    bad = _write(tmp_path, 'schema_version = "1.0"\n[checks.bias.s_amb]\nmargin = "small"\n')
    proc = _cli("check", "--bbq-dir", str(BBQ_DIR), "--policy", str(bad), "--out", str(tmp_path / "o"))
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert proc.returncode == 2 and len(errors) == 1 and "checks.bias.s_amb.margin" in errors[0], proc.stderr
    assert not (tmp_path / "o" / "report.json").exists()


def test_a_quoted_expiry_date_is_an_error_naming_the_fix(tmp_path):
    from gate.policy.file import load_policy, PolicyError

    p = tmp_path / "gate.toml"
    p.write_text('schema_version = "1.0"\n[[waivers]]\ncheck = "bias.srs"\nreason = "r"\nexpires = "2027-01-01"\n')
    with pytest.raises(PolicyError, match=r"waivers\[0\]\.expires: '2027-01-01' is a string; write a TOML date without quotes"):
        load_policy(p)
