"""``python -m producer summary`` (alias ``python -m scoring.summary``): summary.md and summary.html that
compare the treatment effects of a run's trials."""

from __future__ import annotations

from pathlib import Path

import click

from producer.cli.command import command
from producer.host.console import UserError, make_console_safe, one_line_errors


@command()
@click.option("--run-dir", required=True, type=click.Path(path_type=Path), help="experiments/run_<ID> folder.")
@one_line_errors
def summary(run_dir: Path) -> None:
    """Compare treatment effects across the trials of one run."""
    from scoring.summary import write_run_summary  # lazy: matplotlib and pandas, --help stays fast

    make_console_safe()
    if not run_dir.is_dir():
        raise UserError(f"run folder not found: {run_dir}")
    out = write_run_summary(run_dir)
    click.echo(f"wrote {out}")
    click.echo(f"wrote {out.with_suffix('.md')}")
