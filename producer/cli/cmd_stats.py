"""``python -m producer stats`` (alias ``python -m scoring.stats``): per_item_scores.csv ->
significance.json (CONTRACT section 7)."""

from __future__ import annotations

from pathlib import Path

import click

from config.schema import StatsConfig, load_config
from producer.cli.command import command
from producer.cli.common import config_path_option
from producer.host.console import UserError, make_console_safe, one_line_errors


@command()
@click.option("--per-item-csv", required=True, type=click.Path(path_type=Path), help="per_item_scores.csv")
@config_path_option("none (default `stats` settings)")
@click.option("--out-path", required=True, type=click.Path(path_type=Path), help="significance.json to write")
@click.option("--prepared-dir", type=click.Path(path_type=Path), default=None,
              help="The run's prepared items (experiments/run_<ID>/prepared): open-book items are then also "
                   "analysed clustered by paragraph (significance.json `clustered`).")
@one_line_errors
def stats(per_item_csv: Path, config_path: Path | None, out_path: Path, prepared_dir: Path | None) -> None:
    """Paired statistics of treatment vs control into significance.json."""
    from scoring.aggregate import ScoringInputError  # lazy: --help stays fast
    from scoring.stats import run_stats

    make_console_safe()
    if not per_item_csv.is_file():
        raise UserError(f"per-item scores not found: {per_item_csv}")
    cfg = load_config(config_path, check_files=False).stats if config_path else StatsConfig()
    try:
        path = run_stats(per_item_csv, cfg, out_path, prepared_dir)
    except ScoringInputError as exc:
        raise UserError(str(exc)) from None
    click.echo(f"wrote {path}")
