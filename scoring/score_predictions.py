"""Stage CLI: predictions.csv + prepared items -> per_item_scores.csv (CONTRACT sections 4-6).

    python -m scoring.score_predictions --pred_csv P --prepared_dir D --out_dir O [--config C]
"""

from __future__ import annotations

from pathlib import Path

import click

from config.contract import PER_ITEM_SCORES_CSV
from config.schema import EvalConfig, Unsupported, load_config
from producer.console import UserError, make_console_safe, one_line_errors
from scoring.aggregate import (
    ScoringInputError,
    aggregate,
    items_by_key,
    read_predictions,
    score_rows,
    write_per_item_csv,
)


def score_predictions(pred_csv: Path, prepared_dir: Path, out_dir: Path, cfg: EvalConfig | None = None) -> Path:
    """Score every prediction and write ``out_dir/per_item_scores.csv``; returns its path."""
    from producer.prepare import load_prepared_items

    unsupported = cfg.unsupported if cfg is not None else Unsupported()
    items = items_by_key(load_prepared_items(Path(prepared_dir)))
    preds = read_predictions(Path(pred_csv))
    per_item = aggregate(score_rows(preds, items, unsupported))
    return write_per_item_csv(per_item, Path(out_dir) / PER_ITEM_SCORES_CSV)


@click.command()
@click.option("--pred_csv", required=True, type=click.Path(path_type=Path), help="predictions.csv")
@click.option("--prepared_dir", required=True, type=click.Path(path_type=Path), help="prepared items folder")
@click.option("--out_dir", required=True, type=click.Path(path_type=Path), help="where per_item_scores.csv goes")
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=None,
              help="config YAML (for the unsupported-answer settings)")
@one_line_errors
def main(pred_csv: Path, prepared_dir: Path, out_dir: Path, config_path: Path | None) -> None:
    """Score predictions into per-item means over samples."""
    make_console_safe()
    if not pred_csv.is_file():
        raise UserError(f"predictions not found: {pred_csv}")
    cfg = load_config(config_path, check_files=False) if config_path else None
    try:
        path = score_predictions(pred_csv, prepared_dir, out_dir, cfg)
    except ScoringInputError as exc:
        raise UserError(str(exc)) from None
    click.echo(f"wrote {path}")


if __name__ == "__main__":
    main()
