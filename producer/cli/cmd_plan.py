"""``python -m producer plan``: what a run would do, printed, with nothing written (``--measure`` keeps
this machine's step costs in the queue folder, for later plans and ``doctor``)."""

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
@click.option("--measure", is_flag=True,
              help="Measure what a decode step of 1 to 16 sequences costs on this machine with this model "
                   "(seconds; kept per model file and machine) and recommend n_parallel from it.")
@one_line_errors
def plan(cfg: EvalConfig, config_path: Path, data_overrides: dict[str, str], limit_items: int | None,
         yes: bool, as_json: bool, discordance: float, effect_points: float | None, pilot_run: str | None,
         measure: bool) -> None:
    """Print trials, datasets, requests, estimated prompt tokens per condition and, for Fireworks, the
    estimated cost; writes nothing (``--measure``: this machine's step costs, in the queue folder)."""
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

    costs = measure_step_costs(cfg) if measure else None
    extra = list(vram_lines(cfg)) + batching_lines(cfg, the_plan.items, costs=costs) + power_lines(
        the_plan, discordance, effect_points, pilot)
    problems = plan_problems(cfg, the_plan)
    extra += [f"check failed: {p}" for p in problems]
    if as_json:
        click.echo(json.dumps(plan_json(the_plan, extra), indent=2, ensure_ascii=False))
    else:
        click.echo(render_plan(the_plan, extra_lines=extra, wrote="this machine's step costs" if measure else None))
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


def measure_step_costs(cfg: EvalConfig):
    """``--measure``: the engine's own measurement (a registry hook), stored for later plans and doctor."""
    from config.engines import in_process
    from producer.host.console import UserError
    from telemetry.step_costs import store_costs
    from workers.engines.base import EngineError
    from workers.engines.registry import engine_hooks

    hook = getattr(engine_hooks(cfg.local_engine), "measure_step_costs", None) if in_process(cfg) else None
    if hook is None:
        raise UserError(f"plan --measure: step costs are measured for the in-process engine; with "
                        f"{cfg.local_engine if cfg.backend == 'local' else cfg.backend} the server or service "
                        "batches (docs/engines.md, 'Requests in flight')")
    click.echo(f"measuring step costs of {cfg.local_model} on this machine ...", err=True)
    try:
        costs = hook(cfg, cfg.local_model, lambda what: click.echo(f"  {what}", err=True))
    except (EngineError, RuntimeError, ValueError) as exc:  # no model file, a context llama.cpp refuses
        raise UserError(f"plan --measure: {' '.join(str(exc).split())}") from None
    path = store_costs(costs)
    click.echo(f"  done in {costs.seconds:g} s; kept in {path}", err=True)
    return costs
