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
from gate.policy.file import (
    DEFAULT_POLICY_PATH,
    PolicyError,
    active_waivers,
    load_policy,
    policy_schema,
    validate_policy_data,
)


def _write(tmp_path, text, name="gate.toml"):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def _problems(text):
    return validate_policy_data(tomllib.loads(text))


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "gate.cli", *args], capture_output=True, text=True, timeout=120, check=False)


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
    from gate.policy.file import PolicyError, load_policy

    p = tmp_path / "gate.toml"
    p.write_text('schema_version = "1.0"\n[[waivers]]\ncheck = "bias.srs"\nreason = "r"\nexpires = "2027-01-01"\n')
    with pytest.raises(PolicyError, match=r"waivers\[0\]\.expires: '2027-01-01' is a string; write a TOML date without quotes"):
        load_policy(p)


# ---- numbers JSON Schema cannot judge (issue 16 item 5): nan/inf, out-of-range values, floats for integers ----

def _numeric_keys(node=None, path=()):
    """Every (table path, key, schema) of the policy schema that takes a number or an integer."""
    node = policy_schema() if node is None else node
    for name, sub in node.get("properties", {}).items():
        if sub.get("type") in ("number", "integer"):
            yield path, name, sub
        elif sub.get("type") == "object":
            yield from _numeric_keys(sub, (*path, name))


NUMERIC_KEYS = [(".".join(t), k) for t, k, _ in _numeric_keys()]


def test_the_numeric_keys_are_the_ones_the_default_policy_sets():
    default = tomllib.loads(DEFAULT_POLICY_PATH.read_text())
    set_keys = {(".".join(t), k) for t, k, _ in _numeric_keys() if k in _dig(default, t)}
    assert set_keys == set(NUMERIC_KEYS) and len(NUMERIC_KEYS) == 14, NUMERIC_KEYS  # 13 + efficiency.structural.margin


def _dig(data, path):
    for part in path:
        data = data[part]
    return data


@pytest.mark.parametrize("value", ["nan", "+nan", "-nan", "inf", "+inf", "-inf"])
@pytest.mark.parametrize("table,key", NUMERIC_KEYS)
def test_every_numeric_key_refuses_non_finite_values(table, key, value):
    problems = _problems(f'schema_version = "1.0"\n[{table}]\n{key} = {value}\n')
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"{table}.{key}: ") and "is not a finite number; expected: " in problems[0], problems


@pytest.mark.parametrize("table,key", [(t, k) for t, k in NUMERIC_KEYS if t == "statistics" and k in ("resamples", "seed")])
def test_integer_keys_refuse_a_decimal_point(table, key):
    (problem,) = _problems(f'schema_version = "1.0"\n[{table}]\n{key} = 2000.0\n')
    assert problem.startswith(f"{table}.{key}: got number 2000.0, not an integer"), problem


# (TOML body, key named, what the line says): each must exit 2 from `prunegate policy validate` with one line.
BAD_VALUES = [
    ("[checks.bias.srs]\nmargin = nan", "checks.bias.srs.margin",
     "nan is not a finite number; expected: largest allowed rise of the stereotype reliance score, a fraction in [0, 1]"),
    ("[checks.bias.s_amb]\nmargin = inf", "checks.bias.s_amb.margin", "inf is not a finite number; expected: "),
    ("[checks.accuracy.disambig]\nmargin = -inf", "checks.accuracy.disambig.margin", "-inf is not a finite number"),
    ("[checks.perplexity.ratio]\nmargin = inf", "checks.perplexity.ratio.margin", "a finite number > 0"),
    ("[checks.efficiency.speedup]\nmargin = nan", "checks.efficiency.speedup.margin", "a finite number > 0"),
    ("[checks.efficiency.size]\nmargin = -inf", "checks.efficiency.size.margin", "a number in [-1, 1)"),
    ("[checks.bias.new_bias_rate]\nmargin = -0.1", "checks.bias.new_bias_rate.margin", "-0.1 is below the minimum 0; expected: "),
    ("[checks.sparsity.claim]\nmargin = -0.1", "checks.sparsity.claim.margin", "-0.1 is below the minimum 0"),
    ("[checks.perplexity.ratio]\nmargin = -0.1", "checks.perplexity.ratio.margin", "-0.1 is not above 0"),
    ("[checks.efficiency.speedup]\nmargin = 0", "checks.efficiency.speedup.margin", "0 is not above 0"),
    ("[checks.efficiency.memory]\nmargin = 1.0", "checks.efficiency.memory.margin", "1.0 is not below 1"),
    ("[statistics]\nconfidence = 1.0", "statistics.confidence", "1.0 is not below 1; expected: a confidence level in (0.5, 1)"),
    ("[statistics]\nconfidence = 0.5", "statistics.confidence", "0.5 is not above 0.5; expected: a confidence level in (0.5, 1)"),
    ("[statistics]\nconfidence = nan", "statistics.confidence", "nan is not a finite number; expected: a confidence level in (0.5, 1)"),
    ("[statistics]\npower = 0", "statistics.power", "0 is not above 0; expected: a power in (0, 1)"),
    ("[statistics]\npower = 1", "statistics.power", "1 is not below 1; expected: a power in (0, 1)"),
    ("[statistics]\npower = inf", "statistics.power", "inf is not a finite number"),
    ("[statistics]\nresamples = 99", "statistics.resamples", "99 is below the minimum 100"),
    ("[statistics]\nresamples = 2000.0", "statistics.resamples", "got number 2000.0, not an integer"),
    ("[statistics]\nseed = -1", "statistics.seed", "-1 is below the minimum 0"),
    ("[statistics]\nseed = inf", "statistics.seed", "inf is not a finite number"),
    ('[checks.bias.srs]\nmargin = "0.05"', "checks.bias.srs.margin", 'got string "0.05", not a number'),
    ('[statistics]\nconfidence = "95%"', "statistics.confidence", 'got string "95%", not a number'),
    ("[statistics]\nresamples = true", "statistics.resamples", "got boolean true, not an integer"),
    ("[checks.bias.srs]\nenabled = 1", "checks.bias.srs.enabled", "got integer 1, not true or false"),
    ('[checks.bias.srs]\nseverity = nan', "checks.bias.srs.severity", 'NaN is not allowed; expected: one of "error", "warning"'),
]


@pytest.mark.parametrize("body,key,says", BAD_VALUES, ids=[f"{k}={b.split('= ')[-1]}" for b, k, _ in BAD_VALUES])
def test_policy_validate_refuses_bad_values_in_one_line_naming_file_and_key(tmp_path, body, key, says):
    from click.testing import CliRunner

    from gate.cli.main import cli

    path = _write(tmp_path, f'schema_version = "1.0"\n{body}\n', "bad.toml")
    result = CliRunner().invoke(cli, ["policy", "validate", str(path)])
    assert result.exit_code == 2 and result.stdout == "", (result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: policy {path}: {key}: ") and says in lines[0], lines
    with pytest.raises(PolicyError) as exc:  # the same validator under the loader `check` uses
        load_policy(path)
    assert exc.value.problems == [lines[0].removeprefix(f"error: policy {path}: ")]


def test_boundary_values_inside_the_ranges_are_accepted(tmp_path):
    path = _write(tmp_path, 'schema_version = "1.0"\n[statistics]\nconfidence = 0.999\npower = 0.01\nresamples = 100\n'
                            'seed = 0\n[checks.bias.srs]\nmargin = 0\n[checks.bias.s_amb]\nmargin = 2\n'
                            '[checks.perplexity.ratio]\nmargin = 1\n[checks.efficiency.size]\nmargin = -1\n')
    p = load_policy(path)
    assert (p.statistics.confidence, p.checks["bias.srs"].margin, p.checks["efficiency.size"].margin) == (0.999, 0.0, -1.0)
    assert isinstance(p.statistics.resamples, int) and isinstance(p.checks["bias.srs"].margin, float)


@pytest.mark.parametrize("body", ["[checks.bias.srs]\nmargin = nan", "[statistics]\nconfidence = 1.0"])
def test_check_refuses_a_non_finite_policy_before_any_work(tmp_path, body):
    """`check --policy` exits 2 with the very line `policy validate` prints, before touching the (missing) model or
    BBQ data and without creating the work directory."""
    bad = _write(tmp_path, f'schema_version = "1.0"\n{body}\n', "bad.toml")
    validate = _cli("policy", "validate", str(bad))
    proc = _cli("check", "--model", str(tmp_path / "no-such-model"), "--bbq-dir", str(tmp_path / "no-such-bbq"),
                "--policy", str(bad), "--out", str(tmp_path / "o"), "--work-dir", str(tmp_path / "w"))
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert validate.returncode == 2 and proc.returncode == 2, (validate.stderr, proc.stderr)
    assert errors == validate.stderr.splitlines() and len(errors) == 1 and str(bad) in errors[0], proc.stderr
    assert "no-such-model" not in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "w").exists() and not (tmp_path / "o" / "report.json").exists()
