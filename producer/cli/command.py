"""The command class every CLI command uses: ``-h`` everywhere, kebab-case options with snake_case aliases.

Why: options are spelled ``--results-dir`` everywhere, but scripts and notes written for the older
``--results_dir`` spelling keep working. The alias is known to the option parser only, so help shows
one spelling, each option is declared once, and a value that happens to look like an option is never
touched.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import click

HELP_OPTIONS = ("-h", "--help")


def snake_alias(option: str) -> str | None:
    """``--results-dir`` -> ``--results_dir``; None for a short or one-word option."""
    if option.startswith("--") and "-" in option[2:]:
        return "--" + option[2:].replace("-", "_")
    return None


class Command(click.Command):
    """A click command that answers ``-h`` and accepts ``--snake_case`` for each ``--kebab-case`` option."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        settings = dict(kwargs.pop("context_settings", None) or {})
        settings.setdefault("help_option_names", list(HELP_OPTIONS))
        super().__init__(*args, context_settings=settings, **kwargs)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.NoSuchOption as exc:  # "did you mean": the visible spellings only
            if exc.possibilities:
                exc.possibilities = sorted({"--" + p[2:].replace("_", "-") if p.startswith("--") else p
                                            for p in exc.possibilities})
            raise

    def make_parser(self, ctx: click.Context) -> Any:
        parser = super().make_parser(ctx)
        params = self.get_params(ctx)
        declared = {o for p in params for o in (*p.opts, *p.secondary_opts)}
        for param in params:
            if not isinstance(param, click.Option):
                continue
            alias = copy.copy(param)  # same name, flags and type: its value lands where the option's does
            alias.opts = [a for a in map(snake_alias, param.opts) if a and a not in declared]
            alias.secondary_opts = [a for a in map(snake_alias, param.secondary_opts) if a and a not in declared]
            if alias.opts:
                alias.add_to_parser(parser, ctx)
        return parser


def command(name: str | None = None, **kwargs: Any) -> Callable[[Callable[..., Any]], Command]:
    """``@click.command`` with ``cls=Command``: use it for every command of the CLI."""
    return click.command(name, cls=Command, **kwargs)
