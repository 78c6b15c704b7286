"""Hardware profiles: one TOML data file per target device, a JSON Schema, and a validating loader.

A profile describes a target device: CPU architecture and core type, cores and the intra-op threads
to use, RAM and storage budgets (integers in bytes, each with the SKU it was derived from), ONNX
Runtime execution providers in priority order with their options, optional latency budgets, and the
sources of these facts. Files live beside this module as ``<name>.toml``; their structure is
published as ``profile.schema.json`` (JSON Schema 2020-12) and validated with ``jsonschema``. Rules
a schema cannot express (threads <= cores, budget <= total, known provider names, name = file
stem) are checked here. Every error names the file and the key.
"""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

PROFILE_DIR = Path(__file__).parent
SCHEMA_PATH = PROFILE_DIR / "profile.schema.json"


class ProfileError(ValueError):
    """A profile is unknown or its file is malformed; the message names the file and key and says how to fix it."""


@dataclass(frozen=True)
class HardwareProfile:
    """A target device (see ``profile.schema.json`` for the meaning and unit of each field).

    Attributes:
        name: profile id, e.g. ``"raspberry-pi-5"``.
        description: one line for people.
        arch: CPU architecture of the target as ``platform.machine()`` names it (``"native"`` = the measuring host).
        threads: ONNX Runtime intra-op threads (0 = ORT's default, one per physical core).
        execution_providers: ORT execution providers in priority order.
        ram_budget_bytes: peak-memory budget in bytes (0 = none).
        storage_budget_bytes: artifact-size budget in bytes (0 = none).
        sources: where the facts come from.
        path: the file it was loaded from.
        core_type: CPU core, e.g. ``"Cortex-A76"`` (``"native"`` for the host, ``"any"`` when none is implied).
        cores: CPU cores of the target (0 = the host's).
        allow_fallback: run on the available providers when a listed one is missing from the ORT build.
        provider_options: ``{provider: {option: value}}`` passed to ORT.
        latency_budgets: e.g. ``{"decode_p50_ms_per_token_max": 200.0}`` (milliseconds).
        latency_budget_basis: why the latency budgets are what they are.
        ram_total_bytes / storage_total_bytes: RAM / storage of the named SKU in bytes (0 = not stated).
        ram_budget_basis / storage_budget_basis: how each budget was chosen.
        notes: caveats for people.
        device: optional ssh destination of a physical device of this kind.
    """

    name: str
    description: str
    arch: str
    threads: int
    execution_providers: tuple[str, ...]
    ram_budget_bytes: int = 0
    storage_budget_bytes: int = 0
    sources: tuple[str, ...] = field(default_factory=tuple)
    path: str = ""
    core_type: str = "native"
    cores: int = 0
    allow_fallback: bool = False
    provider_options: dict[str, dict[str, str]] = field(default_factory=dict)
    latency_budgets: dict[str, float] = field(default_factory=dict)
    latency_budget_basis: str = ""
    ram_total_bytes: int = 0
    ram_budget_basis: str = ""
    storage_total_bytes: int = 0
    storage_budget_basis: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)
    device: str | None = None

    def resolved_threads(self) -> int:
        """Threads to request: ``threads``, or the number of CPUs available to this process when 0."""
        return self.threads or len(os.sched_getaffinity(0))

    def is_native(self) -> bool:
        """True when the profile describes the measuring host itself (``arch = "native"``)."""
        return self.arch == "native"

    def to_dict(self) -> dict:
        """JSON-ready dict of every field (units are in the key names: ``*_bytes``, ``*_ms*``)."""
        return {
            "name": self.name,
            "description": self.description,
            "path": self.path,
            "device": self.device,
            "arch": self.arch,
            "core_type": self.core_type,
            "cores": self.cores,
            "threads": self.threads,
            "ram_total_bytes": self.ram_total_bytes or None,
            "ram_budget_bytes": self.ram_budget_bytes or None,
            "ram_budget_basis": self.ram_budget_basis or None,
            "storage_total_bytes": self.storage_total_bytes or None,
            "storage_budget_bytes": self.storage_budget_bytes or None,
            "storage_budget_basis": self.storage_budget_basis or None,
            "execution_providers": list(self.execution_providers),
            "allow_fallback": self.allow_fallback,
            "provider_options": {k: dict(v) for k, v in self.provider_options.items()},
            "latency_budgets": dict(self.latency_budgets),
            "latency_budget_basis": self.latency_budget_basis or None,
            "notes": list(self.notes),
            "sources": list(self.sources),
        }


def known_profiles(directory: Path = PROFILE_DIR) -> list[str]:
    """Names of the profiles in ``directory`` (sorted)."""
    return sorted(p.stem for p in directory.glob("*.toml"))


def known_execution_providers() -> list[str]:
    """Every execution provider name this ONNX Runtime version knows (``onnxruntime.get_all_providers()``).

    This is the list of names ORT can be *built* with; ``get_available_providers()`` (what this build
    has) is usually much shorter and is checked when a session is planned (``gate.runtime.providers``).
    """
    import onnxruntime as ort

    return list(ort.get_all_providers())


def load_schema() -> dict:
    """The published JSON Schema of a profile file (``profile.schema.json``)."""
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


def load_profile(name: str, directory: Path = PROFILE_DIR) -> HardwareProfile:
    """Load and validate the profile ``name`` from ``directory``, or a profile file when ``name`` is a path.

    Args:
        name: a profile id (``"raspberry-pi-5"``) or the path of a ``.toml`` profile file.
        directory: where profile ids are looked up.

    Returns:
        the validated profile.

    Raises:
        ProfileError: unknown name (the message lists the known ones) or an invalid file (see ``load_profile_file``).
    """
    if name.endswith(".toml") or os.sep in name:
        return load_profile_file(Path(name))
    path = directory / f"{name}.toml"
    if not path.is_file():
        raise ProfileError(f"unknown hardware profile '{name}'; known profiles: {', '.join(known_profiles(directory))} "
                           f"(or pass the path of a .toml profile file)")
    return load_profile_file(path)


def load_profile_file(path: Path) -> HardwareProfile:
    """Parse ``path`` (TOML), validate it against ``profile.schema.json`` and the cross-field rules, build the profile.

    Raises:
        ProfileError: missing or unreadable file, invalid TOML, a missing/unknown key, a value of the wrong type or
            out of range, threads > cores, a budget larger than its total, an execution provider ONNX Runtime does not
            know, provider options for a provider that is not listed, or ``name`` different from the file name.
    """
    path = Path(path)
    where = f"hardware profile {path}"
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ProfileError(f"{where}: file not found; pass an existing .toml profile file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError(f"{where}: cannot read it ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{where}: not valid TOML ({exc}); fix the syntax") from None
    _validate_schema(data, where)
    _validate_semantics(data, path, where)
    return HardwareProfile(
        name=data["name"],
        description=data["description"],
        arch=data["arch"],
        threads=data["threads"],
        execution_providers=tuple(data["execution_providers"]),
        ram_budget_bytes=data.get("ram_budget_bytes", 0),
        storage_budget_bytes=data.get("storage_budget_bytes", 0),
        sources=tuple(data["sources"]),
        path=str(path),
        core_type=data["core_type"],
        cores=data["cores"],
        allow_fallback=data.get("allow_fallback", False),
        provider_options={p: {k: _option_str(v) for k, v in opts.items()} for p, opts in data.get("provider_options", {}).items()},
        latency_budgets={k: float(v) for k, v in data.get("latency_budgets", {}).items()},
        latency_budget_basis=data.get("latency_budget_basis", ""),
        ram_total_bytes=data.get("ram_total_bytes", 0),
        ram_budget_basis=data.get("ram_budget_basis", ""),
        storage_total_bytes=data.get("storage_total_bytes", 0),
        storage_budget_basis=data.get("storage_budget_basis", ""),
        notes=tuple(data.get("notes", ())),
        device=data.get("device"),
    )


def _option_str(value) -> str:
    """ORT provider options are strings; TOML booleans become ``"1"``/``"0"``, numbers their decimal text."""
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def _validate_schema(data: dict, where: str) -> None:
    """Validate ``data`` against the published schema; the first problem (by key) becomes the message, in the wording
    of :func:`gate.schema_errors.schema_problems` (``<key>: <what is wrong>; expected: <the fix>``)."""
    from gate.schema_errors import schema_problems

    problems = schema_problems(data, load_schema())
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ProfileError(f"{where}: {problems[0]}{more}")


def _validate_semantics(data: dict, path: Path, where: str) -> None:
    """Rules across keys and against ONNX Runtime's provider names (the schema has already passed)."""
    if data["name"] != path.stem:
        raise ProfileError(f"{where}: key 'name' is '{data['name']}' but the file is {path.name}; make them equal")
    native = data["arch"] == "native"
    if data["cores"] == 0 and not native:
        raise ProfileError(f"{where}: key 'cores' is 0 for a {data['arch']} device; give the device's core count "
                           f"(0 means 'the host's' and is allowed only with arch = \"native\")")
    if data["cores"] and data["threads"] > data["cores"]:
        raise ProfileError(f"{where}: key 'threads' = {data['threads']} exceeds 'cores' = {data['cores']}; "
                           f"use at most one intra-op thread per core")
    for kind in ("ram", "storage"):
        budget, total = data.get(f"{kind}_budget_bytes"), data.get(f"{kind}_total_bytes")
        if budget is not None and total is not None and budget > total:
            raise ProfileError(f"{where}: key '{kind}_budget_bytes' = {budget} exceeds '{kind}_total_bytes' = {total}; "
                               f"the budget must fit in the device")
        if budget is not None and f"{kind}_budget_basis" not in data and not native:
            raise ProfileError(f"{where}: key '{kind}_budget_bytes' has no '{kind}_budget_basis'; say which SKU and "
                               f"fraction it comes from")
    if data.get("latency_budgets") and "latency_budget_basis" not in data:
        raise ProfileError(f"{where}: key 'latency_budgets' has no 'latency_budget_basis'; say why these budgets")
    known = known_execution_providers()
    for ep in data["execution_providers"]:
        if ep not in known:
            raise ProfileError(f"{where}: key 'execution_providers': '{ep}' is not an execution provider ONNX Runtime "
                               f"knows; known: {', '.join(known)}")
    for ep in data.get("provider_options", {}):
        if ep not in data["execution_providers"]:
            raise ProfileError(f"{where}: key 'provider_options.{ep}': {ep} is not in 'execution_providers'; "
                               f"add it there or remove its options")
