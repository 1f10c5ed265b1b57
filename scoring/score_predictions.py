"""Scoring stage: predictions.csv + prepared items -> per_item_scores.csv (CONTRACT sections 4-6).

    python -m producer score --pred-csv P --prepared-dir D --out-dir O [--config C]
    (alias: python -m scoring.score_predictions)
"""

from __future__ import annotations

from pathlib import Path

from config.contract import PER_ITEM_SCORES_CSV
from config.schema import EvalConfig, Unsupported
from producer.inputs.prepare import load_prepared_items
from scoring.aggregate import (
    aggregate,
    items_by_key,
    read_predictions,
    score_rows,
    write_per_item_csv,
)


def score_predictions(pred_csv: Path, prepared_dir: Path, out_dir: Path, cfg: EvalConfig | None = None) -> Path:
    """Score every prediction and write ``out_dir/per_item_scores.csv``; returns its path."""
    unsupported = cfg.unsupported if cfg is not None else Unsupported()
    items = items_by_key(load_prepared_items(Path(prepared_dir)))
    preds = read_predictions(Path(pred_csv))
    per_item = aggregate(score_rows(preds, items, unsupported))
    return write_per_item_csv(per_item, Path(out_dir) / PER_ITEM_SCORES_CSV)


if __name__ == "__main__":  # alias: the command lives in producer/cli/cmd_score.py
    from producer.cli import run_alias

    run_alias("score", "python -m scoring.score_predictions")
