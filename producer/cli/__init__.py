"""``python -m producer``: the click group and every command, one module per command (``cmd_<name>.py``).

Commands are registered in ``COMMANDS`` and imported only when called (lazy: ``--help`` stays fast).
The scoring stages (``score``, ``stats``, ``costs``, ``report``, ``summary``) are subcommands here too;
``python -m scoring.<stage>`` runs the same click command (an alias kept for scripts and the docs).
Every command is a ``producer.cli.command.Command``: ``-h`` works, options are kebab-case and each also
answers to its snake_case spelling (hidden). ``excellence`` (the console script that ``pip install``
creates, setup.cfg) is the same group: ``excellence run`` is ``python -m producer run``.
"""

from __future__ import annotations

from importlib import import_module

import click

from producer.cli.command import HELP_OPTIONS
from producer.host.console import make_console_safe

# command name -> "module:attribute" of a click.Command
COMMANDS: dict[str, str] = {
    "prepare": "producer.cli.cmd_prepare:prepare",
    "build": "producer.cli.cmd_build:build",
    "plan": "producer.cli.cmd_plan:plan",
    "enqueue": "producer.cli.cmd_enqueue:enqueue",
    "status": "producer.cli.cmd_status:status",
    "run": "producer.cli.cmd_run:run",
    "stop": "producer.cli.cmd_stop:stop",
    "parse": "producer.cli.cmd_parse:parse",
    "doctor": "producer.cli.cmd_doctor:doctor",
    "archive": "producer.cli.cmd_archive:archive",
    "analyse": "producer.cli.cmd_analyse:analyse",
    "score": "producer.cli.cmd_score:score",
    "stats": "producer.cli.cmd_stats:stats",
    "costs": "producer.cli.cmd_costs:costs",
    "report": "producer.cli.cmd_report:report",
    "summary": "producer.cli.cmd_summary:summary",
    "show": "producer.cli.cmd_show:show",
    "cache": "producer.cli.cmd_cache:cache",
    "compare": "producer.cli.cmd_compare:compare",
    "export": "producer.cli.cmd_export:export",
    "import": "producer.cli.cmd_import:import_log",
}


def load_command(name: str) -> click.Command:
    """The click command registered as ``name`` (imports its module)."""
    module, _, attr = COMMANDS[name].partition(":")
    return getattr(import_module(module), attr)


def run_alias(name: str, prog_name: str) -> None:
    """Run command ``name`` as its own program: ``python -m scoring.stats`` is ``python -m producer stats``."""
    make_console_safe()
    load_command(name)(prog_name=prog_name)


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        return load_command(name) if name in COMMANDS else None


DIST_NAME = "excellence-experiment"  # setup.cfg [metadata] name: the version comes from there


def project_version() -> str:
    """The installed distribution's version (setup.cfg is its one source); a source tree that was never
    ``pip install``ed says so instead of failing."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(DIST_NAME)
    except PackageNotFoundError:
        return "unknown (not installed: pip install -e .)"


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(f"excellence {project_version()}")
        ctx.exit(0)


@click.group(cls=LazyGroup, context_settings={"help_option_names": list(HELP_OPTIONS)})
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=_print_version,
              help="Print the version and exit.")
def main() -> None:
    """Excellence Experiment: paired control-vs-treatment evaluation of LLM system prompts."""


def entry() -> None:
    """The ``excellence`` console script: the same commands as ``python -m producer``."""
    import multiprocessing

    multiprocessing.freeze_support()
    make_console_safe()
    main(prog_name="excellence")
