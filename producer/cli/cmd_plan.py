"""``python -m producer plan``: what a run would do, printed, with nothing written."""

from __future__ import annotations

from pathlib import Path

import click

from config.schema import EvalConfig
from producer.cli.command import command
from producer.cli.common import (
    aa_option,
    config_option,
    data_option,
    limit_items_option,
    pick_options,
    yes_option,
)
from producer.host.console import one_line_errors


@command()
@config_option
@pick_options
@aa_option
@data_option
@limit_items_option
@yes_option
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON (for scripts) instead of text.")
@click.option("--discordance", type=click.FloatRange(min=0.001, max=1.0), default=0.10, show_default=True,
              help="Assumed share of items the two prompts disagree on (a pilot's (b + c) / n), for the power lines.")
@click.option("--effect", "effect_points", type=click.FloatRange(min=0.01, max=100.0), default=None,
              help="A change in points to detect: prints the items it needs.")
@click.option("--pilot", "pilot_run", default=None, metavar="RUN_ID",
              help="Take the discordance and design effect (clustering by paragraph) from this finished run's "
                   "significance.json (in the config's experiments folder) instead of --discordance.")
@one_line_errors
def plan(cfg: EvalConfig, config_path: Path, data_overrides: dict[str, str], limit_items: int | None,
         yes: bool, as_json: bool, discordance: float, effect_points: float | None, pilot_run: str | None) -> None:
    """Print trials, datasets, requests, estimated prompt tokens per condition and, for Fireworks, the
    estimated cost; writes nothing."""
    import json

    from producer.host.console import UserError
    from producer.planning.plan import make_plan, plan_json, render_plan, run_size, size_refusal
    from telemetry.batching import batching_lines  # in-process n_parallel: context need, recommended P
    from telemetry.budget import vram_lines  # VRAM budget: reads GGUF/NVML, writes nothing

    pilot = None
    if pilot_run is not None:  # a bad run id: one line before any planning
        from producer.planning.power_plan import read_pilot

        pilot = read_pilot(cfg.paths.experiments_dir, pilot_run)
    the_plan = make_plan(cfg, config_path, data_overrides, limit_items)
    why = None if yes else size_refusal(cfg, *run_size(the_plan))
    if why:  # before the per-item rendering, which an absurd run would make slow too
        raise UserError(why)
    from producer.planning.power_plan import power_lines  # scipy: the items each metric needs

    extra = list(vram_lines(cfg)) + batching_lines(cfg, the_plan.items) + power_lines(the_plan, discordance,
                                                                                      effect_points, pilot)
    problems = plan_problems(cfg, the_plan)
    extra += [f"check failed: {p}" for p in problems]
    if as_json:
        click.echo(json.dumps(plan_json(the_plan, extra), indent=2, ensure_ascii=False))
    else:
        click.echo(render_plan(the_plan, extra_lines=extra))
    if problems:  # the plan is shown, and a script sees that the run would not start
        raise SystemExit(1)


def plan_problems(cfg: EvalConfig, the_plan) -> list[str]:
    """What would stop ``run`` before it starts and ``plan`` can see without loading anything: each
    trial's model file for an engine that reads one."""
    from config.engines import ENGINES
    from config.model_files import ModelFileError, resolve_model_path

    spec = ENGINES.get(cfg.local_engine)
    if cfg.backend != "local" or spec is None or not (spec.has_model and spec.in_process):
        return []
    problems = []
    for model in dict.fromkeys(t.model for t in the_plan.trials):
        try:
            resolve_model_path(model)
        except ModelFileError as exc:
            problems.append(str(exc))
    return problems
