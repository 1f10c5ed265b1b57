"""``python -m producer``: the click group. Each command lives in its own ``producer/cmd_*.py``
module and is registered in ``COMMANDS`` below (lazy: ``--help`` stays fast)."""

from __future__ import annotations

from importlib import import_module

import click

# command name -> "module:attribute" of a click.Command
COMMANDS: dict[str, str] = {
    "prepare": "producer.cmd_prepare:prepare",
    "build": "producer.cmd_build:build",
    "plan": "producer.cmd_plan:plan",
    "enqueue": "producer.cmd_enqueue:enqueue",
    "status": "producer.cmd_status:status",
    "run": "producer.cmd_run:run",
    "stop": "producer.cmd_stop:stop",
    "parse": "producer.cmd_parse:parse",
    "doctor": "producer.cmd_doctor:doctor",
    "archive": "producer.cmd_archive:archive",
    "analyse": "scoring.cmd_analyse:analyse",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            return None
        module, _, attr = target.partition(":")
        return getattr(import_module(module), attr)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Excellence Experiment: paired control-vs-treatment evaluation of LLM system prompts."""
