"""Score predictions.csv rows and average the K samples per item (CONTRACT section 5).

Why vectorised: a run has up to ~180,000 prediction rows, most of them repeats at low temperature.
Each distinct (item, type, response) is scored once (the rules are pure), then pandas averages.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from config.atomic import write_csv_atomic
from config.contract import CONDITIONS, PER_ITEM_COLUMNS, TYPES, item_key
from config.schema import Unsupported
from config.wording import plural
from producer.runs.results_io import ResultsFormatError, check_unique_custom_ids
from scoring.rules import item_parts, score_parts

METRIC_SOURCES = {  # per_item_scores column -> score_response key
    "em": "em",
    "f1": "f1",
    "abstain_rate": "abstained",
    "false_answer_rate": "false_answer",
    "unsupported_rate": "unsupported",
    "contains_answer": "contains_answer",  # added (issue 29): both types
}
OPEN_ONLY = ("f1", "false_answer_rate", "unsupported_rate")
# Columns added after files were first written (issue 29): a file scored before lacks them; read as empty.
ADDED_METRICS = ("contains_answer",)
GROUP_KEYS = ["item_key", "type", "condition", "temp"]


class ScoringInputError(ValueError):
    """Predictions that cannot be scored (unknown items, missing columns); one-line message."""


def items_by_key(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {item_key(str(it["dataset"]), str(it["id"])): it for it in items}


def read_predictions(path: Path) -> pd.DataFrame:
    """predictions.csv as strings (no NaN guessing: an empty response stays ""); a repeated custom_id
    is refused (it would be averaged in twice), as ``parse`` refuses it."""
    try:
        # object dtype: plain Python strings iterate far faster than Arrow-backed ones
        df = pd.read_csv(path, dtype=object, keep_default_na=False, encoding="utf-8")
    except pd.errors.EmptyDataError:  # a 0-byte file (a copy cut short, a disk that filled up)
        raise ScoringInputError(f"{path} is empty: export the trial again (python -m producer run --resume RUN_ID)"
                                " or give a complete predictions.csv") from None
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise ScoringInputError(f"cannot read predictions {path}: {exc.__class__.__name__}") from None
    missing = {"custom_id", "dataset", "item_id", "condition", "temp", "type", "response_text"} - set(df.columns)
    if missing:
        raise ScoringInputError(f"{path}: missing columns {sorted(missing)}")
    try:
        check_unique_custom_ids(df["custom_id"].tolist(), path)
    except ResultsFormatError as exc:
        raise ScoringInputError(str(exc)) from None
    return df


def score_rows(preds: pd.DataFrame, items: dict[str, dict[str, Any]], unsupported: Unsupported) -> pd.DataFrame:
    """One row per prediction with item_key, type, condition, temp and the raw scores (METRIC_SOURCES)."""
    for column, allowed in (("type", TYPES), ("condition", CONDITIONS)):
        bad = sorted(set(preds[column].tolist()) - set(allowed))
        if bad:
            raise ScoringInputError(f"predictions: {column} {bad[0]!r} is not one of {list(allowed)}")
    keys = [item_key(d, i) for d, i in zip(preds["dataset"].tolist(), preds["item_id"].tolist(), strict=True)]
    unknown = sorted({k for k in keys if k not in items})
    if unknown:
        raise ScoringInputError(
            f"{plural(len(unknown), 'predicted item')} not in the prepared items (first: {unknown[0]!r}); "
            "was the run prepared with other settings?")
    frame = pd.DataFrame({"item_key": keys, "type": preds["type"].to_numpy(object),
                          "condition": preds["condition"].to_numpy(object), "temp": preds["temp"].to_numpy(object),
                          "response_text": preds["response_text"].to_numpy(object)}, dtype=object)
    distinct = frame[["item_key", "type", "response_text"]].drop_duplicates()
    parts = {key: item_parts(items[key]) for key in set(distinct["item_key"].tolist())}
    scored = [score_parts(*parts[k], text, t, unsupported)
              for k, t, text in zip(distinct["item_key"].tolist(), distinct["type"].tolist(),
                                    distinct["response_text"].tolist(), strict=True)]
    table = pd.DataFrame.from_records(scored, index=distinct.index, columns=list(METRIC_SOURCES.values()))
    distinct = pd.concat([distinct, table.astype(float)], axis=1)
    return frame.merge(distinct, on=["item_key", "type", "response_text"], how="left", validate="many_to_one")


def aggregate(scored: pd.DataFrame) -> pd.DataFrame:
    """Mean and sample SD (n-1; 0 when K = 1) per (item_key, type, condition, temp), CONTRACT columns."""
    values = scored[GROUP_KEYS + list(METRIC_SOURCES.values())].rename(
        columns={v: k for k, v in METRIC_SOURCES.items()})
    grouped = values.groupby(GROUP_KEYS, sort=True, dropna=False)
    means = grouped.mean()
    stds = grouped.std(ddof=1)
    counts = grouped.size()
    out = means.copy()
    for metric in METRIC_SOURCES:
        std = stds[metric].where(counts > 1, 0.0)
        out[f"{metric}_std"] = std.where(means[metric].notna())
    out = out.reset_index()
    closed = out["type"] == "closed"
    for metric in OPEN_ONLY:
        out.loc[closed, [metric, f"{metric}_std"]] = np.nan
    return out[list(PER_ITEM_COLUMNS)]


def write_per_item_csv(per_item: pd.DataFrame, path: Path) -> Path:
    """Write with empty cells for not-applicable values (never the text "nan")."""
    cols = list(PER_ITEM_COLUMNS)
    obj = per_item[cols].astype(object)
    obj = obj.where(pd.notna(per_item[cols]), None)
    return write_csv_atomic(path, cols, obj.itertuples(index=False, name=None))


def read_per_item_csv(path: Path) -> pd.DataFrame:
    """per_item_scores.csv with temp kept as its label string and metrics as floats (NaN = empty)."""
    try:
        df = pd.read_csv(path, dtype={"temp": str, "item_key": str, "type": str, "condition": str},
                         keep_default_na=False, na_values=[""], encoding="utf-8")
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise ScoringInputError(f"cannot read per-item scores {path}: {exc.__class__.__name__}") from None
    for metric in ADDED_METRICS:
        for col in (metric, f"{metric}_std"):
            if col not in df.columns:
                df[col] = np.nan
    missing = set(PER_ITEM_COLUMNS) - set(df.columns)
    if missing:
        raise ScoringInputError(f"{path}: missing columns {sorted(missing)}")
    return df
