"""``python -m producer score`` (alias ``python -m scoring.score_predictions``): predictions.csv +
prepared items -> per_item_scores.csv (CONTRACT sections 4-6)."""

from __future__ import annotations

from pathlib import Path

import click

from config.schema import load_config
from producer.cli.command import command
from producer.cli.common import config_path_option
from producer.host.console import UserError, make_console_safe, one_line_errors


@command()
@click.option("--pred-csv", required=True, type=click.Path(path_type=Path), help="predictions.csv")
@click.option("--prepared-dir", required=True, type=click.Path(path_type=Path), help="prepared items folder")
@click.option("--out-dir", required=True, type=click.Path(path_type=Path), help="where per_item_scores.csv goes")
@config_path_option("none (default unsupported-answer settings)")
@one_line_errors
def score(pred_csv: Path, prepared_dir: Path, out_dir: Path, config_path: Path | None) -> None:
    """Score predictions into per-item means over samples."""
    from scoring.aggregate import ScoringInputError  # lazy: --help stays fast
    from scoring.score_predictions import score_predictions

    make_console_safe()
    if not pred_csv.is_file():
        raise UserError(f"predictions not found: {pred_csv}")
    cfg = load_config(config_path, check_files=False) if config_path else None
    try:
        path = score_predictions(pred_csv, prepared_dir, out_dir, cfg)
    except ScoringInputError as exc:
        raise UserError(str(exc)) from None
    click.echo(f"wrote {path}")
