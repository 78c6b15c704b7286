"""The gate's policy as a file: ``gate.toml`` read with :mod:`tomllib`, checked against a JSON Schema.

The shipped default (``gate/policy/default_policy.toml``, documented line by line) is always loaded first; a user's
file is laid over it key by key (a table replaces nothing it does not name). Validation uses the published
schema ``gate/policy/policy.schema.json`` (JSON Schema draft 2020-12, :mod:`jsonschema`), then a few rules a
schema cannot state (a real calendar date). Every problem is reported as ``<key>: <what is wrong>; <the fix>``
(the research notes, ``shared/notes/gate_ux.md`` §4.1, recommend TOML + a published schema with stable check
ids; §3.4 lists the tools that fail to serialise their thresholds).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import tomllib
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

from gate.runtime.errors import InputError

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
        confidence: two-sided level of the decision intervals, in [0.5, 1).
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


def _key(path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "top level"


def _describe(value) -> str:
    names = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array", dict: "table"}
    return f"{names.get(type(value), type(value).__name__)} {json.dumps(value)[:40]}"


def _problems(err) -> list[str]:
    """Friendly lines for a :class:`jsonschema.ValidationError`: the key, what is wrong, the fix."""
    key = _key(err.absolute_path)
    prefix = "" if key == "top level" else f"{key}."
    hint = err.schema.get("description", "") if isinstance(err.schema, dict) else ""
    v, inst = err.validator, err.instance
    if v == "additionalProperties":
        props = err.schema.get("properties", {})
        known = ", ".join(sorted(props))
        return [f"{prefix}{k}: unknown key; known keys here: {known}" for k in sorted(k for k in inst if k not in props)]
    if v == "required":
        out = []
        for k in (k for k in err.validator_value if k not in inst):
            fix = err.schema.get("properties", {}).get(k, {}).get("description")
            out.append(f"{prefix}{k}: missing required key" + (f"; expected: {fix}" if fix else ""))
        return out
    if v == "type":
        what = f"got {_describe(inst)}" if hint else f"expected {err.validator_value}, got {_describe(inst)}"
    elif v in ("enum", "const"):
        allowed = err.validator_value if v == "enum" else [err.validator_value]
        what = f"{json.dumps(inst)} is not allowed"
        listed = ", ".join(json.dumps(a) for a in allowed)
        hint = hint if v == "const" else f"one of {listed}"
    elif v in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        rel = {"minimum": "below the minimum", "exclusiveMinimum": "not above", "maximum": "above the maximum",
               "exclusiveMaximum": "not below"}[v]
        what = f"{inst} is {rel} {err.validator_value}"
    elif v in ("minLength", "pattern"):
        what = f"{json.dumps(inst)} is not allowed"
    else:
        what = err.message
    return [f"{key}: {what}" + (f"; expected: {hint}" if hint else "")]


def validate_policy_data(data: dict) -> list[str]:
    """Every problem of a parsed policy file (empty = valid).

    Args:
        data: the dict :func:`tomllib.loads` returned.

    Returns:
        problems as ``"<key>: <what is wrong>; <the fix>"``, ordered by key.
    """
    import jsonschema

    waivers = data.get("waivers") if isinstance(data.get("waivers"), list) else []
    raw_string_expiry = {i for i, w in enumerate(waivers) if isinstance(w, dict) and isinstance(w.get("expires"), str)}
    instance = _jsonable(data)
    validator = jsonschema.Draft202012Validator(policy_schema())
    errors = sorted(validator.iter_errors(instance),
                    key=lambda e: (list(map(str, e.absolute_path)), e.validator != "type", e.validator))
    problems, seen = [], set()
    for e in errors:
        path = tuple(e.absolute_path)
        if path in seen and e.validator not in ("additionalProperties", "required"):
            continue  # one problem per key: the type error first, then the value
        seen.add(path)
        problems += _problems(e)
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
    return problems


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
    today = today or dt.datetime.now(dt.timezone.utc).date()
    active, warnings = [], []
    for w in policy.waivers:
        if w.expires < today:
            warnings.append(f"{w.label()} expired; ignored (renew it or fix the failure)")
        else:
            active.append(w)
    return active, warnings
