"""The Fireworks backend's planning: a run's requests cut into parts (one batch job each), their ids,
row checks, the ledger rows and the job table; the enqueue flow (``producer.planning.enqueue``) calls it.

Why planning, not workers: nothing here talks to the API; the Huey tasks that submit and poll the parts
live in ``workers.fireworks``. A part is one trial x temperature x condition x type (CONTRACT section 2
files, split further by type so the job-level ``maxTokens`` is exact), cut below the upload limit. Ids
derive from run, trial and part, so a retry or a resume finds the job it already created instead of
paying twice. Requests identical across trials (``producer.inputs.sweep_share``) are sent once, by the first
trial that needs them; the others share its result.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from config.atomic import write_jsonl_atomic
from config.contract import CustomIdError, parse_custom_id, temp_label
from config.engines import BATCH_BACKENDS, batch_backend_of, batch_dry_run_engine
from config.schema import EvalConfig
from producer.host.console import UserError
from producer.inputs.messages import load_prompt_texts
from producer.inputs.requests_build import Request, iter_trial_requests
from producer.inputs.sweep_share import plan_shared
from producer.ledger import connect
from producer.ledger import fireworks as fw_ledger
from producer.ledger.queries import get_run
from producer.ledger.writes import NewRequest
from producer.runs import manifests
from producer.runs.layout import RunLayout
from producer.runs.trials import Trial, expand_trials

DRY_RUN_ENGINE = batch_dry_run_engine("fireworks")  # the offline fake server stands in for the API
UPLOAD_LIMIT_BYTES = BATCH_BACKENDS["fireworks"].max_part_bytes  # :upload's limit (docs: upload-dataset-files)
TERMINAL_OK = {"JOB_STATE_COMPLETED"}
TERMINAL_PARTIAL = {"JOB_STATE_EXPIRED", "JOB_STATE_EARLY_STOPPED"}  # keep partial output (docs)
# Fireworks resource ids: lowercase letters, digits and hyphens, at most 63 characters
# (the AIP-122 style ids the API uses for datasets and batchInferenceJobs).
MAX_ID_LEN = 63
_ID_UNSAFE = re.compile(r"[^a-z0-9-]+")
ROLES = {"system", "user", "assistant"}


class RowValidationError(ValueError):
    """A batch row the server would reject; one bad row fails a whole Fireworks job."""


def fireworks_ids(run_id: str, trial: str, part: int) -> dict[str, str]:
    """Deterministic job and dataset ids for (run, trial, part), valid Fireworks resource ids."""
    digest = hashlib.sha256(f"{run_id}|{trial}|{part}".encode()).hexdigest()[:8]
    readable = _ID_UNSAFE.sub("-", f"{run_id}-{trial}".lower()).strip("-")
    readable = re.sub("-{2,}", "-", readable)[:36].strip("-")
    base = f"ee-{readable}-p{part}-{digest}"
    assert len(base) + 4 <= MAX_ID_LEN
    return {"job_id": base, "input_dataset_id": f"{base}-in", "output_dataset_id": f"{base}-out"}


def validate_row(row: dict[str, Any]) -> None:
    """Local checks mirroring the server's dataset validation (raise RowValidationError)."""
    cid = row.get("custom_id")
    if not isinstance(cid, str) or not cid:
        raise RowValidationError("row without custom_id")
    try:
        parse_custom_id(cid)
    except CustomIdError as exc:
        raise RowValidationError(f"{cid}: {exc}") from None
    body = row.get("body")
    if not isinstance(body, dict):
        raise RowValidationError(f"{cid}: body is not an object")
    if "model" in body:
        raise RowValidationError(f"{cid}: body must not name a model (the model is set on the job)")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RowValidationError(f"{cid}: messages must be a non-empty list")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ROLES:
            raise RowValidationError(f"{cid}: message {i} has an invalid role")
        if not isinstance(m.get("content"), str):
            raise RowValidationError(f"{cid}: message {i} content is not text")
    if messages[-1]["role"] != "user" or not messages[-1]["content"].strip():
        raise RowValidationError(f"{cid}: the last message must be a non-empty user message")
    mt = body.get("max_tokens")
    if not isinstance(mt, int) or isinstance(mt, bool) or mt < 1:
        raise RowValidationError(f"{cid}: max_tokens must be a positive integer")
    t = body.get("temperature")
    if t is not None and (isinstance(t, bool) or not isinstance(t, (int, float)) or not 0 <= t <= 2
                          or not math.isfinite(t)):
        raise RowValidationError(f"{cid}: temperature must be a number in 0..2")
    tp = body.get("top_p")
    if tp is not None and (isinstance(tp, bool) or not isinstance(tp, (int, float)) or not 0 < tp <= 1):
        raise RowValidationError(f"{cid}: top_p must be in (0, 1]")
    tk = body.get("top_k")
    if tk is not None and (isinstance(tk, bool) or not isinstance(tk, int) or tk < 0):
        raise RowValidationError(f"{cid}: top_k must be a non-negative integer")
    stop = body.get("stop")
    if stop is not None and (not isinstance(stop, list) or not all(isinstance(s, str) for s in stop)):
        raise RowValidationError(f"{cid}: stop must be a list of strings")


def encode_rows(rows: Iterable[dict[str, Any]]) -> bytes:
    """Validate every row and return the JSONL bytes (UTF-8, one row per line, unique custom_ids)."""
    seen: set[str] = set()
    lines = []
    for row in rows:
        validate_row(row)
        if row["custom_id"] in seen:
            raise RowValidationError(f"{row['custom_id']}: duplicate custom_id in one part")
        seen.add(row["custom_id"])
        lines.append(json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n")
    return "".join(lines).encode("utf-8")


def inference_parameters(trial: Trial, temp: float, type_: str) -> dict[str, Any]:
    """Job-level ``inferenceParameters`` for one part: the trial's own limits and sampling."""
    params: dict[str, Any] = {"maxTokens": trial.max_tokens_for(type_), "temperature": float(temp), "n": 1}
    if trial.top_p is not None:
        params["topP"] = trial.top_p
    if trial.top_k is not None:
        params["topK"] = trial.top_k
    return params


@dataclass
class Part:
    index: int
    trial: str
    model: str
    temp: str
    condition: str
    type: str
    inference_parameters: dict[str, Any]
    custom_ids: list[str] = field(default_factory=list)
    nbytes: int = 0


@dataclass
class FireworksPlan:
    parts: list[Part]
    chunk_of: dict[tuple[str, str], int]  # (trial, custom_id) -> part index that generates it
    shared_from: dict[tuple[str, str], str]  # (trial, custom_id) -> owner trial (shared generation)


def _row_bytes(req: Request) -> int:
    return len(json.dumps(req.to_batch_row(), ensure_ascii=False, separators=(",", ":")).encode("utf-8")) + 1


def plan_parts(cfg: EvalConfig, trial_requests: Iterable[tuple[Trial, list[Request]]]) -> FireworksPlan:
    """Group owned requests into parts under ``max_part_bytes``; map shared requests to their owner."""
    spec = BATCH_BACKENDS.get(cfg.backend, BATCH_BACKENDS["fireworks"])
    settings = cfg.batch_settings()
    limit = min(settings.max_part_bytes, spec.max_part_bytes)
    max_rows = min(getattr(settings, "max_part_rows", None) or 10**12, spec.max_part_rows or 10**12)
    owned, shared = plan_shared(trial_requests)
    groups: dict[tuple[str, str, str, str], list[Request]] = {}
    trials: dict[str, Trial] = {}
    temps_float: dict[tuple[str, str], float] = {}
    for trial, reqs in owned:
        trials[trial.slug] = trial
        for t in trial.temps:
            temps_float[(trial.slug, temp_label(t))] = float(t)
        for req in reqs:
            groups.setdefault((trial.slug, req.temp, req.condition, req.type), []).append(req)
    parts: list[Part] = []
    chunk_of: dict[tuple[str, str], int] = {}
    for (slug, temp, condition, type_), reqs in groups.items():
        trial = trials[slug]
        current: Part | None = None
        for req in reqs:
            size = _row_bytes(req)
            if size > limit:
                raise RowValidationError(f"{req.custom_id}: one row is {size} bytes, over max_part_bytes {limit}")
            if current is None or current.nbytes + size > limit or len(current.custom_ids) >= max_rows:
                current = Part(len(parts), slug, trial.model, temp, condition, type_,
                               inference_parameters(trial, temps_float.get((slug, temp), float(temp)), type_))
                parts.append(current)
            current.custom_ids.append(req.custom_id)
            current.nbytes += size
            chunk_of[(slug, req.custom_id)] = current.index
    for (slug, cid), owner_slug in shared.items():
        chunk_of[(slug, cid)] = chunk_of[(owner_slug, cid)]
    return FireworksPlan(parts, chunk_of, shared)


def plan_run(cfg: EvalConfig, items: list[dict[str, Any]]
             ) -> tuple[FireworksPlan, list[NewRequest], dict[str, dict[str, Any]]]:
    """Every trial's requests (its own model and parameters), cut into parts; ledger rows numbered.

    A request shared with another trial carries the owner's part as its chunk, so it completes with it."""
    per_trial = []
    for trial in expand_trials(cfg):
        texts = load_prompt_texts(cfg, trial.prompt_set)
        per_trial.append((trial, list(iter_trial_requests(cfg, trial, items, texts))))
    try:
        for _, reqs in per_trial:  # one invalid row fails a whole job: refuse before anything is paid
            for r in reqs:
                validate_row(r.to_batch_row())
        plan = plan_parts(cfg, per_trial)
    except RowValidationError as exc:
        raise UserError(f"invalid batch request: {exc}") from None
    rows, totals, seq = [], {}, 0
    for trial, reqs in per_trial:
        totals[trial.slug] = {"trial": trial.slug, "model": trial.model, "total": len(reqs)}
        for r in reqs:
            seq += 1
            rows.append(NewRequest(r.trial, plan.chunk_of[(r.trial, r.custom_id)], seq, r.custom_id, r.model,
                                   r.condition, r.temp, r.type, r.body))
    return plan, rows, totals


def register_plan(conn: Any, run_id: str, plan: FireworksPlan) -> None:
    """The parts' ledger rows (insert-or-ignore) and ``fireworks/jobs.jsonl``."""
    parts = [{"part": p.index, "trial": p.trial, "model": p.model, "temp": p.temp, "condition": p.condition,
              "type": p.type, "params": p.inference_parameters, "n_rows": len(p.custom_ids),
              **fireworks_ids(run_id, p.trial, p.index)} for p in plan.parts]
    fw_ledger.register_parts(conn, run_id, parts)
    save_job_table(run_id)


def save_job_table(run_id: str) -> None:
    """``<provider>/jobs.jsonl`` in the run folder (job ids and states, for the record and the archive);
    run_state phases ``submit`` / ``poll`` and each finished trial's ``downloaded`` stage."""
    conn = connect()
    run = get_run(conn, run_id)
    layout = RunLayout(Path(run["experiments_dir"]), run["run_id"])
    provider = batch_backend_of(str(run["engine"])) or "fireworks"  # the provider's folder in the run
    jobs = fw_ledger.job_summary(conn, run_id)
    write_jsonl_atomic(layout.folder.batch_jobs(provider), jobs)
    states = [j["state"] for j in jobs]
    if not states:
        return
    planned = states.count("planned")
    open_ = planned + states.count("submitted")
    manifests.update_phase(layout, "submit", "running" if planned else "done", parts=len(states))
    if planned < len(states):
        manifests.update_phase(layout, "poll", "running" if open_ else "done",
                               failed_parts=states.count("failed"))
    by_trial: dict[str, list[dict[str, Any]]] = {}
    for j in jobs:
        by_trial.setdefault(j["trial"], []).append(j)
    for trial, tj in by_trial.items():
        if all(j["state"] in ("downloaded", "failed") for j in tj):
            path = layout.trial_manifest(trial)
            status = "failed" if all(j["state"] == "failed" for j in tj) else "done"
            manifests.update_stage(path, "downloaded", status,
                                   [layout.folder.batch_download(provider, j["part"]) for j in tj],
                                   jobs=[j["job_id"] for j in tj])


def retry_failed_parts(run_id: str) -> int:
    """Parts with failed requests (a failed or expired job, rows in the error file) get a fresh job id
    (``-r<n>``: the old job keeps its own) and go back to planned; only rows without a result are sent.

    A part marked failed although its job finished with output (a download that failed, in a ledger
    written before downloads were retried) never gets a new job: it goes back to ``submitted`` and its
    output is downloaded again, so rows Fireworks already returned are never paid twice."""
    with_output = TERMINAL_OK | TERMINAL_PARTIAL | {s for b in BATCH_BACKENDS.values() for s in b.output_states}
    return fw_ledger.reopen_failed_parts(connect(), run_id, with_output)
