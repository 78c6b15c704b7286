"""One-line messages for JSON Schema violations, shared by every validated input.

Policy files (:mod:`gate.policy.file`), hardware profiles (:mod:`hardware_profiles`) and reports
(:mod:`gate.report.schema`) are validated with :mod:`jsonschema` (draft 2020-12). This module turns each
``jsonschema.ValidationError`` into ``"<key>: <what is wrong>; expected: <the fix>"``, where ``<key>`` is the
dotted path of the offending key (``checks.bias.s_amb.margin``, ``waivers[0].reason``; ``$.variants[0].status``
for a JSON document) and the fix is the key's ``description`` in the schema when it has one. The caller prefixes
the file (``policy gate.toml: ...``). Standard library only; ``jsonschema`` is imported when validating.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

_TYPE_NAMES = {"integer": "an integer", "number": "a number", "string": "a string", "boolean": "true or false",
               "array": "a list", "object": "a table", "null": "null"}
_VALUE_NAMES = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array", dict: "table",
                type(None): "null"}
_BOUNDS = {"minimum": "below the minimum", "exclusiveMinimum": "not above", "maximum": "above the maximum",
           "exclusiveMaximum": "not below"}


def key_path(path: Iterable[Any], root: str = "") -> str:
    """The dotted name of a key: ``("waivers", 0, "reason")`` -> ``waivers[0].reason`` (``$.waivers[0].reason``
    with ``root="$"``); the document itself is ``root`` or ``"top level"``."""
    out = root
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "top level"


def describe_value(value: Any) -> str:
    """``string "0.05"``, ``number -1``, ``boolean true``: the JSON type and (up to 40 characters of) the value."""
    return f"{_VALUE_NAMES.get(type(value), type(value).__name__)} {json.dumps(value, default=str)[:40]}"


def _child(err, root: str, name: str) -> str:
    return key_path([*err.absolute_path, name], root)


def schema_error_lines(err, root: str = "") -> list[str]:
    """Friendly lines for one :class:`jsonschema.ValidationError`: the key, what is wrong, the fix.

    An unknown or missing key gives one line per key (named with its full path); any other error one line.

    Args:
        err: the validation error.
        root: prefix of key paths (``"$"`` for JSON documents, ``""`` for TOML files).

    Returns:
        lines ``"<key>: <what is wrong>"`` with ``"; expected: <description or allowed values>"`` when known.
    """
    key = key_path(err.absolute_path, root)
    schema = err.schema if isinstance(err.schema, dict) else {}
    hint = schema.get("description", "")
    v, inst = err.validator, err.instance
    if v == "additionalProperties" and isinstance(inst, dict):
        props = schema.get("properties", {})
        known = ", ".join(sorted(props))
        return [f"{_child(err, root, k)}: unknown key" + (f"; known keys here: {known}" if known else "")
                for k in sorted(k for k in inst if k not in props)]
    if v == "required" and isinstance(inst, dict):
        out = []
        for k in (k for k in err.validator_value if k not in inst):
            fix = schema.get("properties", {}).get(k, {}).get("description")
            out.append(f"{_child(err, root, k)}: missing required key" + (f"; expected: {fix}" if fix else ""))
        return out
    if v == "type":
        wanted = err.validator_value if isinstance(err.validator_value, list) else [err.validator_value]
        names = " or ".join(_TYPE_NAMES.get(t, t) for t in wanted)
        what = f"got {describe_value(inst)}, not {names}"
    elif v in ("enum", "const"):
        allowed = err.validator_value if v == "enum" else [err.validator_value]
        what = f"{json.dumps(inst, default=str)} is not allowed"
        hint = f"one of {', '.join(json.dumps(a) for a in allowed)}" if v == "enum" else hint or json.dumps(allowed[0])
    elif v in _BOUNDS:
        what = f"{inst} is {_BOUNDS[v]} {err.validator_value}"
    elif v == "minItems" and err.validator_value == 1:
        what = "must not be empty"
    elif v == "minLength" and err.validator_value == 1:
        what = "must not be an empty string"
    elif v == "uniqueItems":
        what = f"lists a value twice: {json.dumps(inst, default=str)[:80]}"
    elif v == "pattern":
        what = f"{json.dumps(inst, default=str)} does not match {err.validator_value!r}"
    else:
        what = err.message
    return [f"{key}: {what}" + (f"; expected: {hint}" if hint else "")]


def schema_problems(instance: Any, schema: dict, root: str = "") -> list[str]:
    """Every schema violation of ``instance``, one line each (see :func:`schema_error_lines`), ordered by key.

    One problem per key: when a key has several violations, the type error is listed and the others dropped
    (unknown and missing keys are always listed).

    Args:
        instance: the parsed document (JSON values: TOML dates must be converted to strings first).
        schema: a JSON Schema (draft 2020-12).
        root: prefix of key paths (``"$"`` for JSON documents).

    Returns:
        the lines, ``[]`` when ``instance`` is valid.

    Raises:
        jsonschema.SchemaError: ``schema`` itself is invalid.
    """
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(instance),
                    key=lambda e: (list(map(str, e.absolute_path)), e.validator != "type", str(e.validator)))
    problems, seen = [], set()
    for e in errors:
        path = tuple(e.absolute_path)
        if path in seen and e.validator not in ("additionalProperties", "required"):
            continue
        seen.add(path)
        problems += schema_error_lines(e, root)
    return problems
