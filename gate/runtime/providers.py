"""Execution providers, honestly: plan them from a hardware profile, say where a run really happened.

ONNX Runtime silently falls back to ``CPUExecutionProvider`` when a requested provider is missing
from its build, or when a provider cannot take a node. This module makes both visible:

- ``resolve_providers``: which of a profile's providers this ORT build has; a missing one is an input
  error unless the profile (``allow_fallback = true``) or ``--allow-fallback`` permits running on the
  available ones, and the plan records what was requested, available and used, and why.
- ``target_check``: the architecture and CPU core measured on versus the profile's target (Linux
  ``/proc/cpuinfo`` ``CPU implementer``/``CPU part``, MIDR values from the Linux kernel's
  ``arch/arm64/include/asm/cputype.h``).
- ``op_placement``: which provider each graph node ran on, from one profiled pass
  (``SessionOptions.enable_profiling``; the ORT equivalent of Qualcomm AI Hub's compute-unit breakdown). The profiled pass is never timed.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from gate.runtime.environment import cpu_model
from gate.runtime.errors import InputError
from gate.runtime.ort_decoder import SessionConfig

CPU_EP = "CPUExecutionProvider"

# Arm Ltd. (MIDR implementer 0x41) core part numbers, from Linux arch/arm64/include/asm/cputype.h
# (ARM_CPU_PART_CORTEX_*). /proc/cpuinfo shows them as "CPU implementer : 0x41" and "CPU part : 0xd0b".
ARM_IMPLEMENTER = 0x41
ARM_CORE_PARTS = {
    "Cortex-A53": 0xD03, "Cortex-A55": 0xD05, "Cortex-A57": 0xD07, "Cortex-A72": 0xD08, "Cortex-A73": 0xD09,
    "Cortex-A75": 0xD0A, "Cortex-A76": 0xD0B, "Neoverse-N1": 0xD0C, "Cortex-A77": 0xD0D, "Cortex-A76AE": 0xD0E,
    "Neoverse-V1": 0xD40, "Cortex-A78": 0xD41, "Cortex-A78AE": 0xD42, "Cortex-X1": 0xD44, "Cortex-A510": 0xD46,
    "Cortex-A710": 0xD47, "Cortex-X2": 0xD48, "Neoverse-N2": 0xD49, "Cortex-A78C": 0xD4B, "Neoverse-V2": 0xD4F,
    "Cortex-A520": 0xD80, "Cortex-A720": 0xD81,
}


@dataclass(frozen=True)
class ProviderPlan:
    """The execution providers a session will be built with, and why.

    Attributes:
        requested: the profile's providers, priority order.
        available: ``onnxruntime.get_available_providers()`` of this build.
        used: what the session is built with (requested ∩ available, priority order; CPU when that is empty).
        fallback: True when some requested provider is missing and the run falls back.
        reason: one line explaining the fallback (``None`` without one).
        allowed_by: ``"profile"`` or ``"--allow-fallback"`` when falling back, else ``None``.
        provider_options: options of the providers in ``used`` (from the profile).
    """

    requested: tuple[str, ...]
    available: tuple[str, ...]
    used: tuple[str, ...]
    fallback: bool
    reason: str | None = None
    allowed_by: str | None = None
    provider_options: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def missing(self) -> tuple[str, ...]:
        """Requested providers this ORT build lacks."""
        return tuple(p for p in self.requested if p not in self.available)

    def session_config(self, intra_op_threads: int, base: SessionConfig = SessionConfig()) -> SessionConfig:
        """``base`` with this plan's providers, their options, and ``intra_op_threads``."""
        return replace(base, providers=self.used, provider_options=dict(self.provider_options), intra_op_threads=intra_op_threads)

    def to_dict(self) -> dict:
        """JSON-ready form (report keys ``providers_requested``/``_available``/``_planned``, ``fallback``...)."""
        return {
            "providers_requested": list(self.requested),
            "providers_available": list(self.available),
            "providers_planned": list(self.used),
            "providers_missing": list(self.missing),
            "fallback": self.fallback,
            "fallback_reason": self.reason,
            "fallback_allowed_by": self.allowed_by,
            "provider_options": {k: dict(v) for k, v in self.provider_options.items()},
        }


def resolve_providers(profile, allow_fallback: bool = False, available=None) -> ProviderPlan:
    """Plan the session's execution providers from a hardware profile.

    Args:
        profile: a ``hardware_profiles.HardwareProfile``.
        allow_fallback: ``--allow-fallback``: run on the available providers even if the profile does not allow it.
        available: the providers of this ORT build (default ``onnxruntime.get_available_providers()``; tests pass one).

    Returns:
        the plan. Without missing providers ``used == requested``. With missing ones and fallback permitted,
        ``used`` keeps the available requested providers in order, or ``CPUExecutionProvider`` if none is left.

    Raises:
        InputError: a requested provider is missing and neither the profile nor ``allow_fallback`` permits falling back.
    """
    if available is None:
        import onnxruntime as ort

        available = ort.get_available_providers()
    available = tuple(available)
    requested = tuple(profile.execution_providers)
    missing = [p for p in requested if p not in available]
    options = {p: dict(o) for p, o in profile.provider_options.items()}
    if not missing:
        return ProviderPlan(requested, available, requested, False, provider_options={p: o for p, o in options.items() if p in requested})
    kept = tuple(p for p in requested if p in available) or (CPU_EP,)
    what = f"execution provider(s) {', '.join(missing)} not in this ONNX Runtime build (available: {', '.join(available)})"
    if not (profile.allow_fallback or allow_fallback):
        raise InputError(
            f"--profile {profile.name}: {what}; install an onnxruntime build that has them, pass --allow-fallback to run "
            f"on {', '.join(kept)} instead (the report will say so), or pick another --profile"
        )
    allowed_by = "profile" if profile.allow_fallback else "--allow-fallback"
    who = f"profile '{profile.name}' sets allow_fallback = true" if allowed_by == "profile" else "--allow-fallback was given"
    reason = f"{what}; running on {', '.join(kept)} because {who}"
    return ProviderPlan(requested, available, kept, True, reason, allowed_by, {p: o for p, o in options.items() if p in kept})


def _arm_cores(cpuinfo: str) -> list[str]:
    """Arm core names present in ``/proc/cpuinfo`` text (one per distinct ``CPU part``), e.g. ``["Cortex-A76"]``."""
    by_part = {v: k for k, v in ARM_CORE_PARTS.items()}
    found, implementer = [], None
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip().lower(), value.strip()
        try:
            if key == "cpu implementer":
                implementer = int(value, 16)
            elif key == "cpu part" and implementer == ARM_IMPLEMENTER:
                name = by_part.get(int(value, 16), f"Arm part {value}")
                if name not in found:
                    found.append(name)
        except ValueError:
            continue
    return found


def target_check(profile, machine: str | None = None, cpuinfo: str | None = None) -> dict:
    """Compare the measuring host with the profile's target.

    Args:
        profile: a ``HardwareProfile``.
        machine: ``platform.machine()`` of the host (default: this host).
        cpuinfo: ``/proc/cpuinfo`` text (default: read it; empty when unreadable).

    Returns:
        ``{"measured_arch", "target_arch", "measured_cpu", "measured_core_types", "target_core_type",
        "on_target": bool, "on_target_reason": str}``. On target means: the profile is the host (``arch =
        "native"``), or the architecture matches and, for a named Arm core, that core is among the host's cores
        (``CPU part`` in ``/proc/cpuinfo``); ``core_type = "any"`` needs the architecture only.
    """
    measured = machine or platform.machine()
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
        except OSError:
            cpuinfo = ""
    cores = _arm_cores(cpuinfo)
    target_arch = measured if profile.arch == "native" else profile.arch
    out = {"measured_arch": measured, "target_arch": target_arch, "measured_cpu": cpu_model(),
           "measured_core_types": cores, "target_core_type": profile.core_type}
    if profile.arch == "native":
        return {**out, "on_target": True, "on_target_reason": f"profile '{profile.name}' is the measuring host"}
    if measured != profile.arch:
        return {**out, "on_target": False,
                "on_target_reason": f"measured on {measured}, the target is {profile.arch} {profile.core_type}"}
    if profile.core_type in ARM_CORE_PARTS:
        if profile.core_type in cores:
            return {**out, "on_target": True, "on_target_reason": f"{measured} host has {profile.core_type} cores"}
        seen = ", ".join(cores) or "unidentified cores"
        return {**out, "on_target": False,
                "on_target_reason": f"{measured} host with {seen}, the target core is {profile.core_type}"}
    if profile.core_type == "any":
        return {**out, "on_target": True, "on_target_reason": f"{measured} host, profile accepts any {profile.arch} core"}
    return {**out, "on_target": False,
            "on_target_reason": f"cannot identify core type {profile.core_type!r} on this host; treated as not on target"}


def op_placement(onnx_path: str | Path, session_config: SessionConfig, prompt_tokens: int = 8) -> dict:
    """Which execution provider ran each node: one profiled prefill of ``prompt_tokens`` tokens (never timed).

    Builds a session with ``SessionOptions.enable_profiling = True`` (ORT writes a Chrome-trace JSON file), runs
    one prefill from an empty KV cache (token ids 1..prompt_tokens), and reads the ``"cat": "Node"`` events, whose
    ``args`` carry ``op_name`` and ``provider`` (ORT docs, performance/tune-performance/profiling-tools). The trace
    file is deleted. Durations in the trace are ignored: a profiled run is slower than a normal one.

    Args:
        onnx_path: ``model.onnx`` of an optimum decoder export (KV-cache inputs ``past_key_values.*``).
        session_config: the session to examine (providers, options, threads, graph optimization level).
        prompt_tokens: prefill length in tokens.

    Returns:
        ``{"session_providers": [...] (session.get_providers()), "n_nodes": int, "nodes_per_provider": {ep: int},
        "op_types_per_provider": {ep: {op_type: count}}, "prompt_tokens", "method"}``. Nodes are those ORT executed in
        the optimized graph; nodes removed at load (Constant nodes, same-type Casts) are not counted.

    Raises:
        ValueError: the graph is not a decoder export (no ``input_ids`` input).
    """
    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="prunegate-profile-") as tmp:
        so = session_config.session_options()
        so.enable_profiling = True
        so.profile_file_prefix = os.path.join(tmp, "ort_profile")
        sess = ort.InferenceSession(str(onnx_path), so, providers=session_config.ort_providers())
        try:
            feeds = _prefill_feeds(sess, prompt_tokens)
            sess.run(None, feeds)
        finally:
            trace = sess.end_profiling()
        with open(trace, encoding="utf-8") as f:
            events = json.load(f)
        os.remove(trace)
    nodes: dict[str, tuple[str, str]] = {}
    for e in events:
        args = e.get("args") or {}
        if e.get("cat") == "Node" and "provider" in args and e.get("name", "").endswith("_kernel_time"):
            nodes[e["name"][: -len("_kernel_time")]] = (args["provider"], args.get("op_name", "?"))
    per_ep = Counter(ep for ep, _ in nodes.values())
    ops: dict[str, Counter] = {}
    for ep, op in nodes.values():
        ops.setdefault(ep, Counter())[op] += 1
    return {
        "session_providers": sess.get_providers(),
        "n_nodes": len(nodes),
        "nodes_per_provider": dict(per_ep.most_common()),
        "op_types_per_provider": {ep: dict(sorted(c.items())) for ep, c in sorted(ops.items())},
        "prompt_tokens": prompt_tokens,
        "method": "one ONNX Runtime profiled prefill (SessionOptions.enable_profiling), Node events' args.provider "
                  "and args.op_name; nodes of the optimized graph that executed; not timed",
    }


def _prefill_feeds(sess, prompt_tokens: int) -> dict[str, np.ndarray]:
    """Inputs for one prefill of an optimum decoder export: token ids 1..n, full attention mask, empty KV cache."""
    inputs = {i.name: i for i in sess.get_inputs()}
    if "input_ids" not in inputs:
        raise ValueError("not a decoder export: the graph has no 'input_ids' input")
    n = prompt_tokens
    feeds: dict[str, np.ndarray] = {"input_ids": np.arange(1, n + 1, dtype=np.int64)[None, :]}
    if "attention_mask" in inputs:
        feeds["attention_mask"] = np.ones((1, n), dtype=np.int64)
    if "position_ids" in inputs:
        feeds["position_ids"] = np.arange(n, dtype=np.int64)[None, :]
    for name, meta in inputs.items():
        if name.startswith("past_key_values."):
            dtype = np.float16 if "float16" in meta.type else np.float32
            feeds[name] = np.zeros((1, int(meta.shape[1]), 0, int(meta.shape[3])), dtype=dtype)
    return feeds
