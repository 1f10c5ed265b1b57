"""``python -m producer doctor``: one screen that says what will work and what will not."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from config.schema import EvalConfig
from producer.config_option import config_option
from producer.console import make_console_safe, one_line_errors


@click.command()
@config_option
@one_line_errors
def doctor(cfg: EvalConfig, config_path: Path) -> None:
    """Check Python, packages, engine, model, context length, GPU, disk and queue; exit 1 if a run cannot start."""
    from producer.preflight import can_start, format_checks, run_preflight

    make_console_safe()
    click.echo(f"doctor: {config_path} (backend {cfg.backend}, engine {cfg.local_engine}, model {cfg.model_name()})")
    checks = run_preflight(cfg)
    click.echo(format_checks(checks))
    sys.exit(0 if can_start(checks) else 1)
