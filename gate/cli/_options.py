"""Option helpers shared by the commands: deprecated old option names, and lists given repeated or comma-separated.

**Old names.** When two commands spelled the same thing differently, the consistent name is the option and the old
one is a hidden alias (:func:`deprecated_alias`): it still works, prints one ``warning: --old is deprecated; use
--new`` line on stderr, and refuses to be combined with the new name.

**Lists.** An option that takes a list accepts it repeated (``--formats md --formats junit``), comma-separated
(``--formats md,junit``) or both (:func:`split_list`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import click
from click.core import ParameterSource

_META = "prunegate.alias"


def split_list(values: str | Iterable[str] | None) -> list[str]:
    """``("md,junit", "html")`` -> ``["md", "junit", "html"]``: repeated values and comma lists, blanks dropped."""
    if values is None:
        return []
    if isinstance(values, str):
        values = [values]
    return [part.strip() for v in values for part in str(v).split(",") if part.strip()]


def _key(ctx: click.Context, dest: str) -> str:
    return f"{_META}.{ctx.command.name}.{dest}"


def alias_target(dest: str, new_flag: str, *, required: bool = False, then: Callable | None = None) -> Callable:
    """The callback of the new option ``dest``: takes the value of its deprecated alias when only the alias was
    given; with ``required``, raises click's missing-option error when neither was. ``then(ctx, param, value)``
    runs after (e.g. a list splitter)."""

    def callback(ctx: click.Context, param: click.Parameter, value):
        key = _key(ctx, dest)
        if key in ctx.meta:
            value = ctx.meta[key]
        elif required and (value is None or value == ()) and not ctx.resilient_parsing:
            raise click.MissingParameter(ctx=ctx, param=param)
        return then(ctx, param, value) if then is not None else value

    return callback


def deprecated_alias(old_flag: str, dest: str, new_flag: str, **option_kw) -> Callable:
    """A hidden option ``old_flag`` that fills option ``dest`` (spelled ``new_flag``) and warns that it is deprecated.

    The new option needs ``callback=alias_target(dest, new_flag)`` so it picks the value up when it is processed
    after the alias (click processes the options given on the command line first, in their order).
    """

    def callback(ctx: click.Context, param: click.Parameter, value):
        if ctx.get_parameter_source(param.name) != ParameterSource.COMMANDLINE or ctx.resilient_parsing:
            return
        if ctx.get_parameter_source(dest) == ParameterSource.COMMANDLINE:
            raise click.UsageError(f"{old_flag} is the deprecated name of {new_flag}; pass {new_flag} only", ctx=ctx)
        click.echo(f"warning: {old_flag} is deprecated; use {new_flag} (the old name still works for now)", err=True)
        ctx.meta[_key(ctx, dest)] = value
        if dest in ctx.params:  # the new option was processed first (only from its default or environment)
            new_param = next(p for p in ctx.command.params if p.name == dest)
            ctx.params[dest] = new_param.callback(ctx, new_param, value) if new_param.callback else value
        return

    return click.option(old_flag, f"_deprecated_{dest}_{old_flag.strip('-').replace('-', '_')}", hidden=True,
                        expose_value=False, callback=callback, **option_kw)


__all__ = ["alias_target", "deprecated_alias", "split_list"]
