"""``prunegate profiles list|show|validate``: the hardware profiles, as a table or in full."""

from __future__ import annotations

import click
import rich_click

from gate.cli._help import TOOL_CODES, exit_codes_help
from gate.runtime.errors import InputError
from hardware_profiles import ProfileError, known_profiles, load_profile

TOOL_EXIT_CODES_HELP = exit_codes_help(*TOOL_CODES)


def _size(n: int) -> str:
    """Bytes in the unit they were chosen in: GiB when a whole number of MiB (RAM), else decimal GB (cards); "-" for none."""
    if not n:
        return "-"
    return f"{n / 2**30:.1f} GiB" if n % 2**20 == 0 else f"{n / 1e9:.1f} GB"


def _load(name: str):
    try:
        return load_profile(name)
    except ProfileError as exc:
        raise InputError(str(exc)) from None


def profile_table(profiles) -> list[str]:
    """Rows of the ``profiles list`` table (header first): name, arch, core type, threads, budgets, providers."""
    rows = [("NAME", "ARCH", "CORE", "CORES/THREADS", "RAM BUDGET", "STORAGE BUDGET", "EXECUTION PROVIDERS")]
    for p in profiles:
        eps = " > ".join(p.execution_providers) + (" (fallback allowed)" if p.allow_fallback else "")
        rows.append((p.name, p.arch, p.core_type, f"{p.cores or 'host'}/{p.threads or 'auto'}",
                     _size(p.ram_budget_bytes), _size(p.storage_budget_bytes), eps))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1] for r in rows]


def profile_details(p) -> list[str]:
    """Every field of one profile, one per line, with units and sources."""

    def size(total: int, budget: int, basis: str) -> str:
        if not budget:
            return "no budget"
        of = f" of {total:,} bytes ({_size(total)})" if total else ""
        return f"{budget:,} bytes ({_size(budget)}){of} — {basis}" if basis else f"{budget:,} bytes ({_size(budget)}){of}"

    lines = [
        f"name:                {p.name}",
        f"file:                {p.path}",
        f"description:         {p.description}",
        f"architecture:        {'the measuring host' if p.is_native() else p.arch}",
        f"core type:           {p.core_type}",
        f"cores:               {p.cores or 'the host’s'}",
        f"intra-op threads:    {p.threads or 'ONNX Runtime default (one per core)'}",
        f"RAM budget:          {size(p.ram_total_bytes, p.ram_budget_bytes, p.ram_budget_basis)}",
        f"storage budget:      {size(p.storage_total_bytes, p.storage_budget_bytes, p.storage_budget_basis)}",
        f"execution providers: {' > '.join(p.execution_providers)} (priority order)",
        f"fallback:            {'allowed: runs on the available providers when one is missing' if p.allow_fallback else 'not allowed: a missing provider is an error (unless --allow-fallback)'}",
    ]
    for ep, opts in p.provider_options.items():
        lines.append(f"  {ep} options: " + ", ".join(f"{k}={v}" for k, v in opts.items()))
    if p.latency_budgets:
        lines.append("latency budgets:     " + ", ".join(f"{k} = {v:g}" for k, v in p.latency_budgets.items()))
        lines.append(f"                     {p.latency_budget_basis}")
    if p.device:
        lines.append(f"device (ssh):        {p.device}")
    if p.notes:
        lines.append("notes:")
        lines += [f"  - {n}" for n in p.notes]
    lines.append("sources:")
    lines += [f"  - {s}" for s in p.sources]
    return lines


@click.group("profiles", cls=rich_click.RichGroup)
def profiles_group() -> None:
    """Hardware profiles (hardware_profiles/*.toml): target devices, budgets, execution providers."""


@profiles_group.command("list", epilog=TOOL_EXIT_CODES_HELP)
def profiles_list_cmd() -> None:
    """Table of the known profiles: architecture, core, cores/threads, RAM and storage budgets, providers."""
    for line in profile_table([_load(n) for n in known_profiles()]):
        click.echo(line)


@profiles_group.command("show", epilog=TOOL_EXIT_CODES_HELP)
@click.argument("name")
def profiles_show_cmd(name: str) -> None:
    """Every field of profile NAME (or of a .toml profile file), with the sources of its facts."""
    for line in profile_details(_load(name)):
        click.echo(line)


@profiles_group.command("validate", epilog=exit_codes_help(*TOOL_CODES, PASS="every file is a valid profile",
                                                            INPUT="a file is invalid (the first problem is named) or bad usage"))
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
def profiles_validate_cmd(files: tuple[str, ...]) -> None:
    """Check profile FILES against hardware_profiles/profile.schema.json and the cross-field rules."""
    for f in files:
        p = _load(f if f.endswith(".toml") or "/" in f else f"./{f}")
        click.echo(f"{f}: valid profile '{p.name}'")
