"""The gate's policy as a file: ``gate.toml`` read with :mod:`tomllib`, checked against a JSON Schema.

The shipped default (``gate/policy/default_policy.toml``, documented line by line) is always loaded first; a user's
file is laid over it key by key (a table replaces nothing it does not name). Validation uses the published
schema ``gate/policy/policy.schema.json`` (JSON Schema draft 2020-12, :mod:`jsonschema`), then a few rules a
schema cannot state: every number finite (TOML has ``nan`` and ``inf``, and a NaN passes every JSON Schema bound
because it compares false), an integer key written without a decimal point (JSON Schema counts ``2000.0`` as an
integer), a real calendar date. ``prunegate policy validate`` and ``prunegate check --policy`` both go through
:func:`load_policy`, so a file one accepts the other accepts. Every problem is reported as ``<key>: <what is wrong>; <the fix>``
(:mod:`gate.schema_errors`, the same wording as hardware profiles and reports).

Why TOML and a schema: the standard library reads TOML (:mod:`tomllib`, PEP 680) without arbitrary tags or code
execution, with typed numbers and dates and with comments; a published JSON Schema lets editors validate the file,
and named tables (``[checks.<id>]``) give every check a stable id that waivers, JUnit and annotations reuse
(thresholds kept in code, as in deepchecks conditions or MLflow's ``MetricThreshold``, cannot be reviewed as data).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import tomllib
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

from gate.runtime.errors import InputError
from gate.schema_errors import describe_value, key_path, schema_problems

DEFAULT_POLICY_PATH = Path(__file__).with_name("default_policy.toml")
SCHEMA_PATH = Path(__file__).with_name("policy.schema.json")
FAIL_ON = ("error", "warning", "never")
ON_INCONCLUSIVE = ("fail", "warn", "exit-3")


class PolicyError(InputError):
    """A policy file is unreadable or invalid (exit 2).

    Attributes:
        path: the file.
        problems: every problem found, each ``"<key>: <what is wrong>; <the fix>"``.
    """

    def __init__(self, path: str | Path, problems: list[str]):
        self.path = str(path)
        self.problems = list(problems)
        more = f" (and {len(problems) - 1} more; run `prunegate policy validate {path}`)" if len(problems) > 1 else ""
        super().__init__(f"policy {path}: {problems[0]}{more}")


@dataclass(frozen=True)
class CheckPolicy:
    """Settings of one check.

    Attributes:
        id: stable id ``<family>.<name>``, e.g. ``"bias.s_amb"``.
        enabled: whether the check runs.
        severity: ``"error"`` or ``"warning"``.
        margin: the check's threshold in the units of its metric (see :data:`gate.policy.checks.CHECKS`), or ``None``
            for checks without one (budgets come from the hardware profile).
        per: ``"pooled"`` or ``"category"`` for BBQ checks, ``None`` otherwise.
    """

    id: str
    enabled: bool
    severity: str
    margin: float | None = None
    per: str | None = None


@dataclass(frozen=True)
class Statistics:
    """Statistics settings shared by every check.

    Attributes:
        confidence: two-sided level of the decision intervals, in (0.5, 1).
        resamples: bootstrap resamples.
        seed: bootstrap seed.
        multiple_comparisons: ``"holm"``, ``"bonferroni"`` or ``"none"`` (per-category FAIL decisions).
        power: power of the reported minimum detectable effect.
    """

    confidence: float = 0.95
    resamples: int = 2000
    seed: int = 0
    multiple_comparisons: str = "holm"
    power: float = 0.8


@dataclass(frozen=True)
class Waiver:
    """A time-boxed acceptance of a FAIL or INCONCLUSIVE outcome.

    Attributes:
        check: the check id.
        reason: why (never empty).
        expires: last day (UTC) on which the waiver holds.
        variant: only this candidate (``None`` = every variant).
        category: only this BBQ category of a per-category check (``None`` = the whole check).
        approved_by: who approved it.
        index: position in the file's ``[[waivers]]`` list (for messages).
    """

    check: str
    reason: str
    expires: dt.date
    variant: str | None = None
    category: str | None = None
    approved_by: str | None = None
    index: int = 0

    def label(self) -> str:
        """``waivers[i] (check[/variant][/category], until YYYY-MM-DD)`` for messages."""
        scope = "/".join(x for x in (self.check, self.variant, self.category) if x)
        return f"waivers[{self.index}] ({scope}, until {self.expires.isoformat()})"

    def to_dict(self) -> dict:
        """JSON-ready form (``expires`` as ``YYYY-MM-DD``)."""
        d = asdict(self)
        d["expires"] = self.expires.isoformat()
        return d


@dataclass(frozen=True)
class Policy:
    """The policy in force (default overlaid with the user's file).

    Attributes:
        fail_on: ``"error"``, ``"warning"`` or ``"never"``.
        on_inconclusive: ``"fail"``, ``"warn"`` or ``"exit-3"``.
        statistics: shared statistics settings.
        checks: ``{id: CheckPolicy}`` in file order.
        waivers: every waiver, expired or not (expiry is judged when the checks are decided).
        path: the user's file, or the default policy's path.
        sha256: SHA-256 of the user's file bytes (of the default file when none was given).
        content: the user's file text (the default's when none was given).
        is_default: no user file was given.
    """

    fail_on: str
    on_inconclusive: str
    statistics: Statistics
    checks: dict[str, CheckPolicy]
    waivers: tuple[Waiver, ...] = ()
    path: str = ""
    sha256: str = ""
    content: str = ""
    is_default: bool = True
    effective: dict = field(default_factory=dict)

    def describe(self) -> dict:
        """Provenance for ``report["config"]["policy"]``: path, sha256, content and the effective settings."""
        return {"path": self.path, "sha256": self.sha256, "is_default": self.is_default,
                "default_path": str(DEFAULT_POLICY_PATH), "content": self.content, "effective": self.effective}


@lru_cache(maxsize=1)
def policy_schema() -> dict:
    """The published JSON Schema of policy files (``gate/policy/policy.schema.json``)."""
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


def _jsonable(value):
    """TOML values -> JSON values for schema validation (dates and times become ISO strings)."""
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    return value


def _key_schema(path: tuple) -> dict | None:
    """The schema of the key at ``path`` (``None`` for a key the schema does not know)."""
    node = policy_schema()
    for part in path:
        node = node.get("items") if isinstance(part, int) else node.get("properties", {}).get(part)
        if not isinstance(node, dict):
            return None
    return node


def _number_problems(data, path: tuple = ()) -> dict[str, str]:
    """``{key: problem}`` for the numbers JSON Schema lets through: a non-finite float (``nan``, ``inf``, ``-inf``)
    where a number or integer belongs, and a float where an integer belongs (``resamples = 2000.0``).

    Keys the schema does not know, and keys that take a string or boolean, are left to the schema's own errors.
    """
    if isinstance(data, dict):
        return {k: v for name, child in data.items() for k, v in _number_problems(child, (*path, name)).items()}
    if isinstance(data, list):
        return {k: v for i, child in enumerate(data) for k, v in _number_problems(child, (*path, i)).items()}
    schema = _key_schema(path) if isinstance(data, float) else None
    if schema is None or schema.get("type") not in ("number", "integer"):
        return {}
    key, hint = key_path(path), schema.get("description", "")
    fix = f"; expected: {hint}" if hint else ""
    if not math.isfinite(data):
        return {key: f"{key}: {data} is not a finite number{fix}"}
    if schema["type"] == "integer":
        return {key: f"{key}: got {describe_value(data)}, not an integer{fix}"}
    return {}


def validate_policy_data(data: dict) -> list[str]:
    """Every problem of a parsed policy file (empty = valid): the one validator of policy files.

    The schema's errors, with the numbers it cannot judge (:func:`_number_problems`: ``nan``/``inf``, a float
    where an integer belongs) replacing the schema's line for the same key, and the waiver dates.

    Args:
        data: the dict :func:`tomllib.loads` returned.

    Returns:
        problems as ``"<key>: <what is wrong>; <the fix>"``, one per key, ordered by key.
    """
    waivers = data.get("waivers") if isinstance(data.get("waivers"), list) else []
    raw_string_expiry = {i for i, w in enumerate(waivers) if isinstance(w, dict) and isinstance(w.get("expires"), str)}
    instance = _jsonable(data)
    numbers = _number_problems(data)
    problems = [p for p in schema_problems(instance, policy_schema()) if p.split(": ", 1)[0] not in numbers]
    problems += numbers.values()
    for i, w in enumerate(instance.get("waivers", []) if isinstance(instance.get("waivers"), list) else []):
        exp = w.get("expires") if isinstance(w, dict) else None
        if i in raw_string_expiry:
            problems.append(f"waivers[{i}].expires: {exp!r} is a string; write a TOML date without quotes, e.g. "
                            f"expires = {exp if len(str(exp)) == 10 else '2026-12-31'}")
        elif isinstance(exp, str) and len(exp) == 10:
            try:
                dt.date.fromisoformat(exp)
            except ValueError:
                problems.append(f"waivers[{i}].expires: {exp!r} is not a calendar date; write a real date such as 2026-12-31")
    return sorted(problems, key=lambda p: p.split(": ", 1)[0])


def _read(path: Path) -> tuple[dict, str, str]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise PolicyError(path, ["file not found; pass an existing gate.toml (see `prunegate policy show`)"]) from None
    except OSError as exc:
        raise PolicyError(path, [f"cannot read ({exc.strerror or exc}); check the path and its permissions"]) from None
    try:
        text = raw.decode("utf-8")
        data = tomllib.loads(text)
    except UnicodeDecodeError:
        raise PolicyError(path, ["not UTF-8 text; save the file as UTF-8"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(path, [f"not valid TOML ({exc}); fix the syntax"]) from None
    return data, text, hashlib.sha256(raw).hexdigest()


def _overlay(base: dict, top: dict) -> dict:
    out = dict(base)
    for k, v in top.items():
        out[k] = _overlay(base[k], v) if isinstance(v, dict) and isinstance(base.get(k), dict) else v
    return out


def _build(data: dict) -> tuple[str, str, Statistics, dict[str, CheckPolicy], tuple[Waiver, ...]]:
    gate = data.get("gate", {})
    stats = Statistics(**data.get("statistics", {}))
    checks = {}
    for family, table in data.get("checks", {}).items():
        for name, c in table.items():
            cid = f"{family}.{name}"
            checks[cid] = CheckPolicy(id=cid, enabled=c.get("enabled", True), severity=c.get("severity", "error"),
                                      margin=None if c.get("margin") is None else float(c["margin"]), per=c.get("per"))
    waivers = []
    for i, w in enumerate(data.get("waivers", [])):
        exp = w["expires"] if isinstance(w["expires"], dt.date) else dt.date.fromisoformat(w["expires"])
        waivers.append(Waiver(check=w["check"], reason=w["reason"], expires=exp, variant=w.get("variant"),
                              category=w.get("category"), approved_by=w.get("approved_by"), index=i))
    return gate.get("fail_on", "error"), gate.get("on_inconclusive", "fail"), stats, checks, tuple(waivers)


def load_policy(path: str | Path | None = None) -> Policy:
    """Load the default policy, overlaid with ``path`` when given, and validate both.

    Args:
        path: a ``gate.toml``; ``None`` = the shipped default only.

    Returns:
        the :class:`Policy` in force, with the user's file (path, SHA-256 of its bytes, text) for the report.

    Raises:
        PolicyError: the file is missing, unreadable, not TOML, or invalid (unknown key, wrong type, impossible
            value); ``problems`` lists every problem, each naming its key.
    """
    base, base_text, base_sha = _read(DEFAULT_POLICY_PATH)
    problems = validate_policy_data(base)
    if problems:  # a broken installation, not a user error; still reported the same way
        raise PolicyError(DEFAULT_POLICY_PATH, problems)
    data, text, sha, user_path = base, base_text, base_sha, DEFAULT_POLICY_PATH
    if path is not None:
        user_path = Path(path)
        user, text, sha = _read(user_path)
        problems = validate_policy_data(user)
        if problems:
            raise PolicyError(user_path, problems)
        data = _overlay(base, {k: v for k, v in user.items() if k != "waivers"})
        data["waivers"] = user.get("waivers", [])
    fail_on, on_inconclusive, stats, checks, waivers = _build(data)
    effective = {"fail_on": fail_on, "on_inconclusive": on_inconclusive, "statistics": asdict(stats),
                 "checks": {cid: asdict(c) for cid, c in checks.items()}, "waivers": [w.to_dict() for w in waivers]}
    return Policy(fail_on=fail_on, on_inconclusive=on_inconclusive, statistics=stats, checks=checks, waivers=waivers,
                  path=str(user_path), sha256=sha, content=text, is_default=path is None, effective=effective)


def active_waivers(policy: Policy, today: dt.date | None = None) -> tuple[list[Waiver], list[str]]:
    """Split the waivers into those in force and warnings about expired ones.

    Args:
        policy: the policy.
        today: the date to judge expiry against (default: today in UTC). A waiver holds through its
            ``expires`` day.

    Returns:
        ``(active, warnings)``; each warning names the expired waiver.
    """
    today = today or dt.datetime.now(dt.UTC).date()
    active, warnings = [], []
    for w in policy.waivers:
        if w.expires < today:
            warnings.append(f"{w.label()} expired; ignored (renew it or fix the failure)")
        else:
            active.append(w)
    return active, warnings
