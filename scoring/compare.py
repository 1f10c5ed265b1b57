"""Compare any two sets of answers with the trial's own paired statistics and report (issue 26).

Why this shape: a comparison is a trial whose "control" is side A and whose "treatment" is side B. So
it is built as one: A's answers relabelled control, B's relabelled treatment, in a results folder of
its own (predictions.csv, transcripts.jsonl, contexts.jsonl, a trial manifest), and then the very
pipeline a trial uses (``scoring.pipeline.analyse_trial``: scores, significance.json, costs, report.html,
items.html) runs on it. No statistic or report is written twice, and ``compare RUN:control
RUN:treatment`` reproduces the run's own significance.json (same items, seeds and settings).

Pairing is on (dataset, item, temperature, sample): the custom_id without its condition. Items on one
side only are kept and listed (significance.json's ``unpaired``, and ``comparison.json``), never dropped.
Two sides that asked different questions of an item (the user message's sha256 differs) are refused
unless ``allow_different_inputs``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from config.atomic import write_json_atomic, write_text_atomic
from config.contract import (
    CONTEXTS_JSONL,
    PER_ITEM_SCORES_CSV,
    PREDICTIONS_COLUMNS,
    PREDICTIONS_CSV,
    TRANSCRIPTS_JSONL,
    TRIAL_MANIFEST_JSON,
    build_custom_id,
)
from config.schema import EvalConfig
from config.wording import plural
from producer.host.console import UserError
from producer.runs.layout import TrialFolder
from producer.runs.manifests import read_trial_manifest


@dataclass(frozen=True)
class Side:
    """One side of a comparison: a trial's results folder and the condition whose answers it gives."""

    label: str  # as the user wrote it, e.g. RUN/TRIAL:treatment
    results_dir: Path
    condition: str

    @property
    def trial(self) -> TrialFolder:
        return TrialFolder.of_results(self.results_dir)


def _rows(side: Side) -> list[dict[str, str]]:
    path = side.results_dir / PREDICTIONS_CSV
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            rows = list(csv.DictReader(fh))
    except OSError as exc:
        raise UserError(f"{side.label}: cannot read {path}: {exc.strerror or exc}") from None
    return [r for r in rows if r.get("condition") == side.condition]


def _pair_key(row: dict[str, Any]) -> tuple[str, str, str, str, str]:
    return (str(row["dataset"]), str(row["item_id"]), str(row["temp"]), str(row["sample_index"]), str(row["type"]))


def _transcripts(side: Side) -> dict[tuple[str, ...], dict[str, Any]]:
    path = side.results_dir / TRANSCRIPTS_JSONL
    if not path.is_file():
        return {}
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            out[_pair_key(row)] = row
    return out


def _input_sha(line: dict[str, Any] | None) -> str | None:
    """What was asked: the user message (instruction, question, passage position) and the passage id."""
    if not line:
        return None
    text = json.dumps([line.get("user_message"), line.get("context_id")], ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def plan_pairs(a: Side, b: Side, allow_different_inputs: bool) -> dict[str, Any]:
    """The paired keys, the keys on one side only, and the refusal when the inputs differ."""
    rows_a, rows_b = _rows(a), _rows(b)
    if not rows_a:
        raise UserError(f"{a.label}: no {a.condition} answers in {a.results_dir / PREDICTIONS_CSV}")
    if not rows_b:
        raise UserError(f"{b.label}: no {b.condition} answers in {b.results_dir / PREDICTIONS_CSV}")
    keys_a, keys_b = {_pair_key(r) for r in rows_a}, {_pair_key(r) for r in rows_b}
    common = keys_a & keys_b
    if not common:
        raise UserError(f"{a.label} and {b.label} have no item in common (pairs are dataset, item, temperature, "
                        "sample)")
    lines_a, lines_b = _transcripts(a), _transcripts(b)
    different = sorted(k for k in common if _input_sha(lines_a.get(k)) != _input_sha(lines_b.get(k))
                       and lines_a.get(k) and lines_b.get(k))
    if different and not allow_different_inputs:
        first = "|".join(different[0][:2])
        raise UserError(f"{a.label} and {b.label} asked different questions of {plural(len(different), 'paired item')} "
                        f"(first: {first}, temp {different[0][2]}): compare with --allow-different-inputs if "
                        "that is the point")
    return {"rows_a": rows_a, "rows_b": rows_b, "lines_a": lines_a, "lines_b": lines_b, "common": len(common),
            "only_a": sorted("|".join(k) for k in keys_a - keys_b),
            "only_b": sorted("|".join(k) for k in keys_b - keys_a), "different_inputs": len(different)}


def _relabel(row: dict[str, str], condition: str) -> dict[str, str]:
    out = {c: row.get(c, "") for c in PREDICTIONS_COLUMNS}
    out["condition"] = condition
    out["custom_id"] = build_custom_id(row["dataset"], row["item_id"], condition, row["temp"],
                                       int(row["sample_index"]), row["type"])
    return out


def _write_predictions(path: Path, rows: list[dict[str, str]]) -> None:
    buf = io.StringIO(newline="")
    writer = csv.DictWriter(buf, fieldnames=list(PREDICTIONS_COLUMNS), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(path, buf.getvalue())


def merge_prepared(first: Path, second: Path, out: Path) -> Path:
    """The items of both sides in one prepared folder (``first``'s, then the ones only ``second`` has), so
    every answer of either side can be scored against its own gold."""
    out.mkdir(parents=True, exist_ok=True)
    for name in sorted({p.name for p in (*first.glob("*.jsonl"), *second.glob("*.jsonl"))}):
        lines: list[str] = []
        for folder in (first, second):
            path = folder / name
            if path.is_file():
                lines += [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
        seen: set[str] = set()
        keep = []
        for line in lines:
            item = json.loads(line)
            key = f"{item.get('dataset')}|{item.get('id', item.get('item_id'))}"
            if key not in seen:
                seen.add(key)
                keep.append(line)
        write_text_atomic(out / name, "".join(ln + "\n" for ln in keep))
    manifest = first / "prepared_manifest.json"
    if manifest.is_file():
        write_text_atomic(out / manifest.name, manifest.read_text(encoding="utf-8"))
    return out


def _merged_transcripts(plan: dict[str, Any], a: Side, b: Side) -> list[dict[str, Any]]:
    """One transcript line per key of either side: A's answer as control, B's as treatment."""
    out = []
    keys = sorted(set(plan["lines_a"]) | set(plan["lines_b"]))
    for key in keys:
        la, lb = plan["lines_a"].get(key), plan["lines_b"].get(key)
        base = dict(la or lb or {})
        base["control"] = (la or {}).get(a.condition)
        base["treatment"] = (lb or {}).get(b.condition)
        out.append(base)
    return out


def imported_record(side: Side) -> dict[str, Any] | None:
    """The ``imported`` record of the side's trial manifest (``producer import``), None for a run of ours."""
    from pydantic import ValidationError

    try:
        record = read_trial_manifest(side.trial.manifest).extra("imported")
    except (OSError, ValueError, ValidationError):
        return None
    return record if isinstance(record, dict) else None


def _scorers(a: Side, b: Side) -> dict[str, str]:
    """Whose scorer gave each side's scores: ours, or an imported tool's own per-sample score."""
    out = {}
    for role, side in (("control", a), ("treatment", b)):
        record = imported_record(side)
        out[role] = (record.get("scorer_name") or "its tool's own score") if record and record.get(
            "scorer") == "foreign" else "this project's rules (scoring/rules.py)"
    return out


def _foreign_rescore(a: Side, b: Side) -> Any:
    """per_item_scores.csv with each foreign-scored side's rows replaced by its tool's own (None: no such side)."""
    foreign = [(role, side) for role, side in (("control", a), ("treatment", b))
               if (imported_record(side) or {}).get("scorer") == "foreign"]
    if not foreign:
        return None

    def rescore(path: Path) -> None:
        import pandas as pd

        from scoring.aggregate import (  # lazy: pandas, only with an import
            read_per_item_csv,
            write_per_item_csv,
        )

        frame = read_per_item_csv(path)
        for role, side in foreign:
            theirs = read_per_item_csv(side.results_dir / PER_ITEM_SCORES_CSV)
            theirs = theirs[theirs["condition"] == side.condition].assign(condition=role)
            frame = pd.concat([frame[frame["condition"] != role], theirs], ignore_index=True)
        write_per_item_csv(frame.sort_values(["item_key", "type", "condition", "temp"]), path)

    return rescore


def write_comparison(a: Side, b: Side, out: TrialFolder, cfg: EvalConfig, prepared_dir: Path,
                     allow_different_inputs: bool = False, report: bool = True) -> dict[str, Any]:
    """Write the comparison's results (and report) into ``out``; returns comparison.json's object."""
    from scoring.pipeline import analyse_trial  # lazy: pandas, only when a comparison is written

    plan = plan_pairs(a, b, allow_different_inputs)
    results = out.results_dir
    results.mkdir(parents=True, exist_ok=True)
    rows = [_relabel(r, "control") for r in plan["rows_a"]] + [_relabel(r, "treatment") for r in plan["rows_b"]]
    _write_predictions(results / PREDICTIONS_CSV, rows)
    transcripts = _merged_transcripts(plan, a, b)
    if transcripts:
        write_text_atomic(results / TRANSCRIPTS_JSONL,
                          "".join(json.dumps(t, ensure_ascii=False) + "\n" for t in transcripts))
    contexts = a.results_dir / CONTEXTS_JSONL
    if contexts.is_file():
        extra = b.results_dir / CONTEXTS_JSONL
        seen = contexts.read_text(encoding="utf-8")
        more = [ln for ln in (extra.read_text(encoding="utf-8").splitlines() if extra.is_file() else [])
                if ln and ln not in seen]
        write_text_atomic(results / CONTEXTS_JSONL, seen + "".join(ln + "\n" for ln in more))
    summary = {"a": {"selector": a.label, "results_dir": str(a.results_dir), "condition": a.condition},
               "b": {"selector": b.label, "results_dir": str(b.results_dir), "condition": b.condition},
               "roles": "A is reported as control, B as treatment", "paired": plan["common"],
               "only_a": plan["only_a"], "only_b": plan["only_b"], "different_inputs": plan["different_inputs"],
               "scorers": _scorers(a, b)}
    manifest = {"schema_version": 2, "comparison": summary}
    write_json_atomic(results / TRIAL_MANIFEST_JSON, manifest)
    analyse_trial(results, prepared_dir, cfg, out.reports_dir if report else None, rescore=_foreign_rescore(a, b))
    write_json_atomic(results / "comparison.json", summary)
    summary["per_item_scores"] = str(results / PER_ITEM_SCORES_CSV)
    return summary
