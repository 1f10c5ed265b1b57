"""``python -m producer doctor``: one screen that says what will work and what will not.

``--json`` prints the bug-report file instead of the screen, ``--report FILE`` writes it beside the
screen (producer/checks/doctor_report.py; shape in docs/doctor-report.schema.json). Exit 1 if a run cannot start.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from config.lookup import apply_data_overrides
from config.schema import EvalConfig
from producer.cli.command import command
from producer.cli.common import config_option, data_option
from producer.host.console import UserError, make_console_safe, one_line_errors


@command()
@config_option
@data_option
@click.option("--json", "as_json", is_flag=True,
              help="Print a JSON bug report (versions, GPU, driver, engine, queue folder, every check) instead.")
@click.option("--report", "report_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write that JSON bug report to FILE (attach it to an issue: it holds no secrets).")
@one_line_errors
def doctor(cfg: EvalConfig, config_path: Path, data_overrides: dict[str, str], as_json: bool,
           report_path: Path | None) -> None:
    """Check Python, packages, data, engine, model, context length, GPU, disk and queue; exit 1 if a run cannot start."""
    from producer.checks.preflight import can_start, format_checks, run_preflight

    make_console_safe()
    cfg = apply_data_overrides(cfg, data_overrides)
    if not as_json:
        click.echo(f"doctor: {config_path} (backend {cfg.backend}, engine {cfg.local_engine}, model {cfg.model_name()})")
    checks = run_preflight(cfg)
    ready = can_start(checks)
    if as_json or report_path is not None:
        from config.atomic import write_text_atomic
        from producer.checks.doctor_report import build_report, report_json

        text = report_json(build_report(cfg, config_path, checks, ready))
        if report_path is not None:
            try:
                write_text_atomic(report_path, text)
            except OSError as exc:
                raise UserError(f"cannot write the report to {report_path}: {exc.strerror or exc}", 2) from None
        if as_json:
            click.echo(text, nl=False)
    if not as_json:
        click.echo(format_checks(checks))
        if report_path is not None:
            click.echo(f"report written to {report_path} (no secrets in it: attach it to a bug report)")
    sys.exit(0 if ready else 1)
