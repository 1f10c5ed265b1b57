"""A foreign log -> a read-only run folder in our layout (docs/contract.md section 9, "Imported runs").

Why this shape: ``show``, ``compare`` and the reports read a trial's predictions.csv, per_item_scores.csv,
transcripts.jsonl and trial_manifest.json and the run's prepared/ items; an import writes exactly those,
with the answers filed as the control condition. Gold answers in the log (SQuAD v2, TriviaQA, NQ-Open or a
custom dataset) are scored by our rules; otherwise the tool's own per-sample score is the metric (em), and
every record says whose scorer it was. Everything is written into a hidden folder next to the run's, which
is renamed at the end: a failed import leaves nothing.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from config.atomic import replace_with_retry, write_csv_atomic, write_json_atomic, write_text_atomic
from config.contract import (
    CONTEXTS_JSONL,
    DATASET_TYPE,
    PER_ITEM_SCORES_CSV,
    PREDICTIONS_COLUMNS,
    PREDICTIONS_CSV,
    TRANSCRIPTS_JSONL,
    CustomIdError,
    build_custom_id,
    item_key,
)
from config.schema import EvalConfig
from producer.host.console import UserError
from producer.host.queue_paths import LEDGER_DB
from producer.imports.foreign import ForeignLog, ForeignSample, ImportFormatError
from producer.imports.read import FORMATS, read_log, sha256_of
from producer.imports.record import IMPORTED_CONDITION, IMPORTED_KEY
from producer.inputs.datasets.items import closed_item, open_item, question_hash_id
from producer.ledger.db import holds_run
from producer.ledger.locate import find_run_queue
from producer.runs.layout import RunLayout, safe_slug, validate_run_id
from producer.runs.manifests import now_iso, write_imported_records
from scoring.aggregate import aggregate, items_by_key, write_per_item_csv
from scoring.rules import abstains
from scoring.score_predictions import score_predictions
from scoring.transcripts import build_transcripts, context_rows

GUESS = ((re.compile(r"squad", re.I), "squad_v2"), (re.compile(r"trivia", re.I), "triviaqa"),
         (re.compile(r"nq[_-]?open|natural[_ ]?questions", re.I), "nq_open"))
OURS = "ours"
FOREIGN = "foreign"
PLACEHOLDER_ENDPOINT = "http://127.0.0.1:9/v1"  # never contacted: an imported run sends nothing


@dataclass(frozen=True)
class Imported:
    """What an import wrote: the run, its folder, its one trial and the ``imported`` record."""

    run_id: str
    run_dir: Path
    trial: str
    record: dict[str, Any]


def _dataset(log: ForeignLog, given: str | None) -> str:
    if given:
        return given
    named = {s.dataset for s in log.samples}
    if len(named) == 1 and None not in named:
        return str(named.pop())
    for pattern, name in GUESS:
        if log.task and pattern.search(log.task):
            return name
    raise UserError(f"cannot tell which dataset the {log.tool} log's task ({log.task or 'unnamed'}) is: pass "
                    "--dataset squad_v2, triviaqa, nq_open or your custom dataset's name")


def _item_id(sample: ForeignSample, dataset: str) -> str:
    if dataset == "nq_open":  # NQ-Open has no ids: ours is a hash of the question (CONTRACT section 1)
        if not sample.question:
            raise UserError(f"{sample.ref}: no question, so no NQ-Open item id")
        return question_hash_id(sample.question)
    if not sample.item_id:
        raise UserError(f"{sample.ref}: no item id")
    return sample.item_id


def _scorer(log: ForeignLog, type_: str) -> str:
    """Ours when every sample has its gold (and question); else the tool's, when every sample has a score."""
    def has_gold(s: ForeignSample) -> bool:
        return s.question is not None and s.answers is not None and (type_ == "open" or bool(s.answers))

    if all(has_gold(s) for s in log.samples):
        return OURS
    if all(s.score is not None for s in log.samples):
        return FOREIGN
    missing = next(s for s in log.samples if s.score is None and not has_gold(s))
    raise UserError(f"{missing.ref}: neither gold answers nor a per-sample score: nothing to score it with")


def _items(log: ForeignLog, dataset: str, type_: str, ids: list[str]) -> list[dict[str, Any]]:
    items: dict[str, dict[str, Any]] = {}
    for sample, item_id in zip(log.samples, ids, strict=True):
        answers = list(sample.answers or [])
        item = (open_item(dataset, item_id, sample.context or "", sample.question or "", answers) if type_ == "open"
                else closed_item(dataset, item_id, sample.question or "", answers))
        items.setdefault(item_id, item)
    return list(items.values())


def _prediction_rows(log: ForeignLog, dataset: str, type_: str, ids: list[str], temp: float) -> list[dict[str, Any]]:
    rows, seen = [], set()
    for sample, item_id in zip(log.samples, ids, strict=True):
        cid = build_custom_id(dataset, item_id, IMPORTED_CONDITION, temp, sample.sample_index, type_)
        if cid in seen:
            raise UserError(f"{sample.ref}: item {item_id!r} sample {sample.sample_index} appears twice in the log")
        seen.add(cid)
        known = sample.prompt_tokens is not None and sample.completion_tokens is not None
        rows.append({"custom_id": cid, "dataset": dataset, "item_id": item_id, "condition": IMPORTED_CONDITION,
                     "temp": cid.split("|")[3], "sample_index": sample.sample_index, "type": type_,
                     "request_id": sample.ref, "finish_reason": sample.finish_reason, "response_text": sample.response,
                     "prompt_tokens": sample.prompt_tokens, "completion_tokens": sample.completion_tokens,
                     "total_tokens": sample.prompt_tokens + sample.completion_tokens if known else None})
    return sorted(rows, key=lambda r: r["custom_id"])


def _foreign_per_item(rows: list[dict[str, Any]], scores: dict[str, float], out: Path) -> Path:
    """per_item_scores.csv from the tool's scores: em (and f1 on open-book) is its score; abstention is
    ours (it reads the response only); the rates that need our gold (false answers, unsupported, contains
    answer) stay empty."""
    frame = pd.DataFrame([{"item_key": item_key(r["dataset"], r["item_id"]), "type": r["type"],
                           "condition": r["condition"], "temp": r["temp"], "em": scores[r["custom_id"]],
                           "f1": scores[r["custom_id"]] if r["type"] == "open" else None,
                           "abstained": float(abstains(r["response_text"])), "false_answer": None,
                           "unsupported": None, "contains_answer": None} for r in rows])
    for column in ("em", "f1", "abstained", "false_answer", "unsupported", "contains_answer"):
        frame[column] = frame[column].astype(float)
    return write_per_item_csv(aggregate(frame), out / PER_ITEM_SCORES_CSV)


def _config(log: ForeignLog, temp: float, samples: int, dataset: str) -> EvalConfig:
    """A loadable config for the record and for ``compare``'s statistics settings (the defaults). A custom
    dataset has no entry here (its file is the tool's), so the built-in sizes stay the defaults."""
    sizes = {d: (None if d == dataset else 0) for d in DATASET_TYPE} if dataset in DATASET_TYPE else {}
    return EvalConfig(local_engine="openai_compat", local_model=log.model or log.tool,
                      local_endpoint=PLACEHOLDER_ENDPOINT, temps=[temp], samples_per_item={str(temp): samples},
                      enable_local_telemetry=False, prevent_sleep=False, **({"sizes": sizes} if sizes else {}))


def _write(layout: RunLayout, final: RunLayout, trial: str, log: ForeignLog, items: list[dict[str, Any]],
           rows: list[dict[str, Any]], record: dict[str, Any], cfg: EvalConfig) -> None:
    """Every file of the run into ``layout`` (the staging folder); paths recorded in files are ``final``'s."""
    run_id = layout.run_id
    type_ = rows[0]["type"]
    prepared = layout.prepared_dir
    book = "open_book.jsonl" if type_ == "open" else "closed_book.jsonl"
    item_lines = "".join(json.dumps(i, ensure_ascii=False) + "\n" for i in items)
    write_text_atomic(prepared / book, item_lines)
    for other in ("open_book.jsonl", "closed_book.jsonl"):  # the scorer reads both files
        if other != book:
            write_text_atomic(prepared / other, "")
    write_json_atomic(prepared / "prepared_manifest.json", {
        "schema_version": 1, "created_at": record["imported_at"], "updated_at": record["imported_at"],
        "datasets": {book.removesuffix(".jsonl"): {"path": str(final.prepared_dir / book), "items": len(items),
                                                    "sha256": sha256_of(prepared / book)}},
        "sources": {record["dataset"]: {"kind": "imported", "tool": log.tool, "path": record["source_file"]}}})
    header = (f"# effective configuration of run {run_id}\n# IMPORTED from {log.tool} ({record['source_name']}, "
              f"sha256 {record['sha256']}): no request was sent by this project; the engine settings below are "
              "placeholders\n")
    write_text_atomic(layout.effective_config,
                      header + yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False, allow_unicode=True))
    results = layout.results_dir(trial)
    write_csv_atomic(results / PREDICTIONS_CSV, PREDICTIONS_COLUMNS, rows)
    if record["scorer"] == OURS:
        score_predictions(results / PREDICTIONS_CSV, prepared, results, cfg)
    else:
        _foreign_per_item(rows, {r["custom_id"]: s.score for r, s in _paired(rows, log)}, results)
    by_key = items_by_key(items)
    requests = [{"custom_id": r["custom_id"], "body": {"messages": [{"role": "user", "content": s.input_text}]},
                 "system_sha": None, "text": r["response_text"], "finish_reason": r["finish_reason"],
                 "prompt_tokens": r["prompt_tokens"], "completion_tokens": r["completion_tokens"],
                 "latency_s": None, "request_id": r["request_id"]} for r, s in _paired(rows, log)]
    lines = list(build_transcripts(requests, by_key, {"control": None, "treatment": None}, cfg.unsupported))
    if record["scorer"] == FOREIGN:  # the tool's score, not ours against an empty gold
        scores = {r["custom_id"]: s.score for r, s in _paired(rows, log)}
        for line in lines:
            side = line[IMPORTED_CONDITION]
            side.update(em=scores[side["custom_id"]], f1=scores[side["custom_id"]] if line["type"] == "open" else None,
                        false_answer=None, unsupported=None)
    if type_ == "open":
        write_text_atomic(results / CONTEXTS_JSONL,
                          "".join(json.dumps(c, ensure_ascii=False) + "\n" for c in context_rows(items)))
    write_text_atomic(results / TRANSCRIPTS_JSONL, "".join(json.dumps(t, ensure_ascii=False) + "\n" for t in lines))
    now = record["imported_at"]
    done = final.results_dir(trial)
    artifacts = [(done / n).as_posix() for n in (PREDICTIONS_CSV, TRANSCRIPTS_JSONL)]
    temp_label = rows[0]["temp"]
    manifest = {
        "schema_version": 2, "run_id": run_id, "created_at": now, "updated_at": now, "dry_run": False,
        "temps": [temp_label], "samples_per_item": {temp_label: max(r["sample_index"] for r in rows) + 1},
        "engine": {"engine": "imported", "tool": log.tool, "model": log.model},
        "counts": {temp_label: {IMPORTED_CONDITION: {type_: len(rows)}}},
        "stage_status": {"parsed": {"status": "done", "updated_at": now, "artifacts": artifacts, "transcripts": len(lines)},
                         "scored": {"status": "done", "updated_at": now,
                                    "artifacts": [(done / PER_ITEM_SCORES_CSV).as_posix()]}},
        IMPORTED_KEY: record}
    state = {"schema_version": 1, "run_id": run_id, "dry_run": False, "created_at": now, "phase_order": ["import"],
             "phases": {"import": {"status": "done", "updated_at": now}}, "updated_at": now, IMPORTED_KEY: record}
    write_imported_records(layout, trial, state, manifest)


def _paired(rows: list[dict[str, Any]], log: ForeignLog) -> list[tuple[dict[str, Any], ForeignSample]]:
    """Each prediction row with its sample (rows are sorted by custom_id; samples keep the log's order)."""
    by_ref = {s.ref: s for s in log.samples}
    return [(r, by_ref[r["request_id"]]) for r in rows]


def _in_ledger(run_id: str) -> bool:
    """Whether a ledger (the queue folder ``run --resume`` would use) already knows ``run_id``."""
    folder = find_run_queue(run_id)
    return folder is not None and holds_run(folder / LEDGER_DB, run_id)


def import_log(path: Path, experiments_dir: Path, run_id: str | None = None, dataset: str | None = None,
               temp: float | None = None) -> Imported:
    """Read ``path`` and write it as run ``run_id`` under ``experiments_dir``; one-line UserError on bad input."""
    if not path.is_file():
        raise UserError(f"no file {path}")
    if run_id is not None:
        validate_run_id(run_id)
    try:
        log = read_log(path)
    except ImportFormatError as exc:
        raise UserError(str(exc)) from None
    except (KeyError, TypeError, AttributeError, IndexError) as exc:  # a field of an unexpected shape
        raise UserError(f"{path.name}: a field has a shape {FORMATS} never has "
                        f"({exc.__class__.__name__}: {exc})") from None
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}") from None
    sha = sha256_of(path)
    run_id = run_id or f"import-{safe_slug(log.tool)}-{sha[:8]}"
    layout = RunLayout(Path(experiments_dir).resolve(), run_id)
    if layout.run_dir.exists() or _in_ledger(run_id):
        raise UserError(f"run id {run_id!r} is taken (experiments/run_{run_id} or the ledger): pick another with "
                        "--run-id")
    dataset = _dataset(log, dataset)
    type_ = DATASET_TYPE.get(dataset) or ("open" if all(s.context for s in log.samples) else "closed")
    scorer = _scorer(log, type_)
    ids = [_item_id(s, dataset) for s in log.samples]
    chosen = temp if temp is not None else log.temperature
    try:
        rows = _prediction_rows(log, dataset, type_, ids, chosen if chosen is not None else 0.0)
    except CustomIdError as exc:  # a dataset name or item id our custom_ids cannot carry ('|', empty)
        raise UserError(f"{path.name}: {exc}") from None
    scorer_name = ("this project's rules (scoring/rules.py) on the log's gold answers" if scorer == OURS else
                   f"{log.tool}'s own per-sample score ({log.scorer or 'unnamed'}), taken as em")
    record = {"tool": log.tool, "format": log.log_format, "source_file": str(path.resolve()),
              "source_name": path.name, "sha256": sha, "task": log.task, "model": log.model, "dataset": dataset,
              "type": type_, "samples": len(rows), "condition": IMPORTED_CONDITION, "scorer": scorer,
              "scorer_name": scorer_name, "temperature": float(rows[0]["temp"]),
              "temperature_source": "--temp" if temp is not None else ("log" if log.temperature is not None
                                                                         else "not in the log: assumed 0.0"),
              "imported_at": now_iso()}
    trial = f"imported-{safe_slug(log.tool)}"
    cfg = _config(log, float(rows[0]["temp"]), max(r["sample_index"] for r in rows) + 1, dataset)
    staging = layout.experiments_dir / f".importing-{run_id}-{os.getpid()}"  # the same disk: a rename
    try:
        _write(RunLayout(staging, run_id), layout, trial, log, _items(log, dataset, type_, ids), rows, record, cfg)
        replace_with_retry(RunLayout(staging, run_id).run_dir, layout.run_dir)  # the whole folder at once
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return Imported(run_id, layout.run_dir, trial, record)
