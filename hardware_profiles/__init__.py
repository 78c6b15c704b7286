"""Hardware profiles: one TOML data file per target device, and a small loader.

A profile names the execution providers to use (priority order), the intra-op thread count, and
optional RAM/storage budgets. Files live beside this module as ``<name>.toml``.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

PROFILE_DIR = Path(__file__).parent

_REQUIRED = {"name": str, "description": str, "arch": str, "threads": int, "execution_providers": list}
_OPTIONAL = {"ram_budget_bytes": int, "storage_budget_bytes": int, "sources": list}


class ProfileError(ValueError):
    """A profile is unknown or its file is malformed; the message names the file and key."""


@dataclass(frozen=True)
class HardwareProfile:
    """A target device.

    Attributes:
        name: profile id, e.g. ``"host"``.
        description: one line for people.
        arch: CPU architecture of the target (``"native"`` = the measuring host).
        threads: ONNX Runtime intra-op threads (0 = ORT's default, one per physical core).
        execution_providers: ORT execution providers in priority order.
        ram_budget_bytes: peak-memory budget in bytes (0 = none).
        storage_budget_bytes: artifact-size budget in bytes (0 = none).
        sources: where the facts come from.
        path: the file it was loaded from.
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

    def resolved_threads(self) -> int:
        """Threads to request: ``threads``, or the number of CPUs available to this process when 0."""
        return self.threads or len(os.sched_getaffinity(0))


def known_profiles(directory: Path = PROFILE_DIR) -> list[str]:
    """Names of the profiles in ``directory`` (sorted)."""
    return sorted(p.stem for p in directory.glob("*.toml"))


def load_profile(name: str, directory: Path = PROFILE_DIR) -> HardwareProfile:
    """Load and validate the profile ``name``.

    Raises:
        ProfileError: unknown name (the message lists the known ones), unreadable TOML, a missing
            key, a key of the wrong type, or an unknown key.
    """
    path = directory / f"{name}.toml"
    if not path.is_file():
        raise ProfileError(f"unknown hardware profile '{name}'; known profiles: {', '.join(known_profiles(directory))}")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ProfileError(f"hardware profile {path}: not valid TOML ({exc})") from None
    for key, typ in _REQUIRED.items():
        if key not in data:
            raise ProfileError(f"hardware profile {path}: missing key '{key}'")
    for key, value in data.items():
        typ = _REQUIRED.get(key) or _OPTIONAL.get(key)
        if typ is None:
            raise ProfileError(f"hardware profile {path}: unknown key '{key}'")
        if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
            raise ProfileError(f"hardware profile {path}: key '{key}' must be {typ.__name__}")
    if data["threads"] < 0:
        raise ProfileError(f"hardware profile {path}: key 'threads' must be >= 0")
    if not data["execution_providers"] or not all(isinstance(p, str) for p in data["execution_providers"]):
        raise ProfileError(f"hardware profile {path}: key 'execution_providers' must be a non-empty list of names")
    return HardwareProfile(
        name=data["name"],
        description=data["description"],
        arch=data["arch"],
        threads=data["threads"],
        execution_providers=tuple(data["execution_providers"]),
        ram_budget_bytes=data.get("ram_budget_bytes", 0),
        storage_budget_bytes=data.get("storage_budget_bytes", 0),
        sources=tuple(data.get("sources", ())),
        path=str(path),
    )
