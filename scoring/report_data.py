"""Load one trial's artifacts (CONTRACT sections 4-9) for the report, tolerating any that are missing.

Why: a report is most needed when a run went wrong, so a missing or unreadable artifact becomes a
note ("not available") instead of a crash. Nothing here formats text; report_text does that.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from config.contract import (
    COSTS_JSON,
    ERRORS_JSONL,
    LOCAL_COSTS_JSON,
    PER_ITEM_SCORES_CSV,
    PREDICTIONS_CSV,
    SIGNIFICANCE_JSON,
    TELEMETRY_CSV,
    TRIAL_MANIFEST_JSON,
)
from config.engines import is_dry_run_engine
from producer.runs.results_io import ResultsFormatError, check_unique_custom_ids

METRICS_OPEN = ("em", "f1", "abstain_rate", "false_answer_rate", "unsupported_rate", "contains_answer")
TELEMETRY_NAMES = (TELEMETRY_CSV,)
ERROR_LOG_NAMES = (ERRORS_JSONL,)


@dataclass
class ReportData:
    """Everything the report shows; ``None`` means the artifact was not available."""

    results_dir: Path
    significance: dict[str, Any] | None = None
    means: pd.DataFrame | None = None  # temp, type, condition, metric means on paired items
    pairing: list[dict[str, Any]] = field(default_factory=list)
    predictions: dict[str, Any] | None = None
    costs: dict[str, Any] | None = None
    local_costs: dict[str, Any] | None = None
    manifest: dict[str, Any] | None = None
    errors: dict[str, Any] | None = None
    telemetry: pd.DataFrame | None = None
    problems: list[str] = field(default_factory=list)  # artifacts that exist but could not be read
    paired_items: list[Any] | None = None  # scoring.changed_items.PairedItem rows (set by write_report)
    paired_problem: str | None = None  # why paired_items is None


def read_result_json(path: Path, problems: list[str]) -> dict[str, Any] | None:
    """A JSON object, or None when absent; an unreadable file is recorded in ``problems``."""
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        problems.append(f"{path.name}: cannot read ({exc.__class__.__name__})")
        return None
    if not isinstance(data, dict):
        problems.append(f"{path.name}: expected a JSON object")
        return None
    return data


def load_per_item(path: Path, problems: list[str]) -> pd.DataFrame | None:
    """per_item_scores.csv with ``temp`` kept as its custom_id label (string), metrics as floats."""
    if not path.is_file():
        return None
    try:
        df = pd.read_csv(path, dtype={"temp": str, "item_key": str, "condition": str, "type": str},
                         keep_default_na=False, na_values=[""], encoding="utf-8")
    except (OSError, ValueError) as exc:
        problems.append(f"{path.name}: cannot read ({exc.__class__.__name__})")
        return None
    needed = {"item_key", "temp", "type", "condition", "em"}
    if not needed <= set(df.columns):
        problems.append(f"{path.name}: missing columns {sorted(needed - set(df.columns))}")
        return None
    for col in METRICS_OPEN:
        if col in df.columns:
            df[col] = pd.to_numeric(df[col], errors="coerce")
    return df


def paired_means(df: pd.DataFrame) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """Per (temp, type, condition) metric means over paired items, and the pairing rate per (temp, type).

    Means use only items present in both conditions, so treatment - control equals the paired delta.
    """
    rows: list[dict[str, Any]] = []
    pairing: list[dict[str, Any]] = []
    for (temp, type_), group in df.groupby(["temp", "type"], sort=False):
        by_cond = {c: set(g["item_key"]) for c, g in group.groupby("condition")}
        control, treatment = by_cond.get("control", set()), by_cond.get("treatment", set())
        paired = control & treatment
        union = control | treatment
        pairing.append({"temp": temp, "type": type_, "control_items": len(control),
                        "treatment_items": len(treatment), "paired": len(paired),
                        "rate": (len(paired) / len(union)) if union else None})
        sub = group[group["item_key"].isin(paired)]
        for cond, g in sub.groupby("condition"):
            row: dict[str, Any] = {"temp": temp, "type": type_, "condition": cond, "n": len(g)}
            for metric in METRICS_OPEN:
                if metric in g.columns:
                    values = g[metric].dropna()
                    row[metric] = float(values.mean()) if len(values) else None
            rows.append(row)
    pairing.sort(key=lambda p: (_temp_key(p["temp"]), 0 if p["type"] == "open" else 1))
    return pd.DataFrame(rows), pairing


def _temp_key(label: str) -> float:
    try:
        return float(label)
    except ValueError:
        return float("inf")


def summarise_predictions(path: Path, problems: list[str], examples: int = 3) -> dict[str, Any] | None:
    """Row counts, finish reasons (``length`` finishes counted) and a few truncated examples."""
    if not path.is_file():
        return None
    counts: dict[str, int] = {}
    by_group: dict[tuple[str, str], int] = {}
    length_examples: list[dict[str, str]] = []
    rows = 0
    ids: list[str] = []
    try:
        with path.open("r", encoding="utf-8", newline="") as fh:
            for row in csv.DictReader(fh):
                rows += 1
                ids.append(row.get("custom_id") or "")
                reason = row.get("finish_reason") or "unknown"
                counts[reason] = counts.get(reason, 0) + 1
                key = (row.get("temp", ""), row.get("condition", ""))
                by_group[key] = by_group.get(key, 0) + 1
                if reason == "length" and len(length_examples) < examples:
                    length_examples.append({"custom_id": row.get("custom_id", ""),
                                            "text": (row.get("response_text") or "")[:300]})
    except (OSError, csv.Error, UnicodeDecodeError) as exc:
        problems.append(f"{path.name}: cannot read ({exc.__class__.__name__})")
        return None
    try:  # counts over a repeated row would be wrong: say so instead of showing them
        check_unique_custom_ids(ids, path.name)
    except ResultsFormatError as exc:
        problems.append(str(exc))
        return None
    return {"rows": rows, "finish_reasons": counts, "length": counts.get("length", 0),
            "by_temp_condition": {f"{t} {c}": n for (t, c), n in sorted(by_group.items())},
            "length_examples": length_examples}


def summarise_errors(results_dir: Path, problems: list[str], examples: int = 3) -> dict[str, Any] | None:
    """Failed requests from the error log (one JSON object per line), or None when there is no log."""
    for name in ERROR_LOG_NAMES:
        for path in (results_dir / name, results_dir.parent / name):
            if path.is_file():
                break
        else:
            continue
        count, shown = 0, []
        try:
            with path.open("r", encoding="utf-8") as fh:
                for line in fh:
                    if not line.strip():
                        continue
                    count += 1
                    if len(shown) < examples:
                        try:
                            obj = json.loads(line)
                        except ValueError:
                            obj = {"error": line.strip()}
                        err = obj.get("error") or obj.get("last_error") or obj.get("message") or ""
                        shown.append({"custom_id": str(obj.get("custom_id", "")), "error": str(err)[:200]})
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(f"{name}: cannot read ({exc.__class__.__name__})")
            return None
        return {"failed": count, "examples": shown, "path": path.name}
    return None


def load_telemetry(results_dir: Path, problems: list[str]) -> pd.DataFrame | None:
    """The telemetry time series (telemetry.csv: t_s, tokens_per_s, gpu_mem_used_mib, ...) if present."""
    for name in TELEMETRY_NAMES:
        path = results_dir / name
        if not path.is_file():
            continue
        try:
            df = pd.read_csv(path, encoding="utf-8")
        except (OSError, ValueError) as exc:
            problems.append(f"{name}: cannot read ({exc.__class__.__name__})")
            return None
        if df.empty or "t_s" not in df.columns:
            return None
        return df
    return None


def is_dry_run(manifest: dict[str, Any] | None, local_costs: dict[str, Any] | None) -> bool:
    """The trial's answers came from a dry-run engine (no model): trial_manifest.json's ``dry_run``, or
    local_costs.json's ``engine.name`` / ``model.local_engine`` (written from the result rows), or an
    engine named so in the manifest. Any one source is enough: a report must never present synthetic
    answers as a model's."""
    engines: list[Any] = []
    if isinstance(manifest, dict):
        if manifest.get("dry_run") is True:
            return True
        engine = manifest.get("engine")
        engines += [manifest.get("local_engine"), engine.get("engine") if isinstance(engine, dict) else None]
    if isinstance(local_costs, dict):
        engine, model = local_costs.get("engine"), local_costs.get("model")
        engines += [engine.get("name") if isinstance(engine, dict) else None,
                    model.get("local_engine") if isinstance(model, dict) else None]
    return any(is_dry_run_engine(e) for e in engines)


def load_report_data(results_dir: Path) -> ReportData:
    """Read every artifact of one trial's ``results/`` folder that exists."""
    results_dir = Path(results_dir)
    data = ReportData(results_dir=results_dir)
    problems = data.problems
    data.significance = read_result_json(results_dir / SIGNIFICANCE_JSON, problems)
    per_item = load_per_item(results_dir / PER_ITEM_SCORES_CSV, problems)
    if per_item is not None and not per_item.empty:
        data.means, data.pairing = paired_means(per_item)
    data.predictions = summarise_predictions(results_dir / PREDICTIONS_CSV, problems)
    data.costs = read_result_json(results_dir / COSTS_JSON, problems)
    data.local_costs = read_result_json(results_dir / LOCAL_COSTS_JSON, problems)
    data.manifest = read_result_json(results_dir / TRIAL_MANIFEST_JSON, problems)
    data.errors = summarise_errors(results_dir, problems)
    data.telemetry = load_telemetry(results_dir, problems)
    return data
