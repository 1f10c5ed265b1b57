"""``python -m producer costs`` (alias ``python -m scoring.costs``): token totals and USD of a trial ->
costs.json (CONTRACT section 8)."""

from __future__ import annotations

from pathlib import Path

import click

from config.schema import load_config
from producer.cli.command import command
from producer.cli.common import config_path_option
from producer.host.console import UserError, make_console_safe, one_line_errors


@command()
@click.option("--pred-csv", required=True, type=click.Path(path_type=Path), help="predictions.csv")
@click.option("--out-path", required=True, type=click.Path(path_type=Path), help="costs.json to write")
@config_path_option("none (default pricing, backend local)")
@click.option("--manifest", type=click.Path(path_type=Path), default=None, help="trial_manifest.json (optional)")
@one_line_errors
def costs(pred_csv: Path, out_path: Path, config_path: Path | None, manifest: Path | None) -> None:
    """Token totals and USD cost of a trial."""
    from scoring.costs import write_costs  # lazy: --help stays fast

    make_console_safe()
    if not pred_csv.is_file():
        raise UserError(f"predictions not found: {pred_csv}")
    cfg = load_config(config_path, check_files=False) if config_path else None
    path = write_costs(pred_csv, out_path, cfg, manifest)
    click.echo(f"wrote {path}")
