"""transcripts.jsonl + contexts.jsonl (CONTRACT section 10): one line per item x temperature x sample,
consistent with predictions.csv, per_item_scores.csv, the ledger's exact messages and the prompt files;
complete after failed requests, and after kill -9 of the worker pool (mid-run and mid-export) and resume.
Real processes and SQLite; the real SmolLM2 model for the consistency test, the dry_run engine for the
crash test (where the model is not the point)."""

from __future__ import annotations

import csv
import json
import os
import signal
from collections import defaultdict
from pathlib import Path

import psutil
import pytest

from tests.support.queue_runs import (
    count_state,
    expected_ids,
    ledger,
    popen,
    producer,
    read_jsonl,
    read_predictions,
    results_dir,
    run_id_of,
    wait_for,
    write_config,
)

TEMPS = {"temps": [0.0, 0.7], "samples_per_item": {"0.0": 1, "0.7": 2}}  # 3 samples per item and condition
PER_ITEM_SCORE = {"em": "em", "f1": "f1", "abstained": "abstain_rate", "false_answer": "false_answer_rate",
                  "unsupported": "unsupported_rate", "contains_answer": "contains_answer"}


def _prepared(tmp: Path, run_id: str) -> dict[str, dict]:
    folder = tmp / "experiments" / f"run_{run_id}" / "prepared"
    items = read_jsonl(folder / "open_book.jsonl") + read_jsonl(folder / "closed_book.jsonl")
    return {f"{it['dataset']}|{it['id']}": it for it in items}


def _check_complete(tmp: Path, queue: Path, run_id: str) -> list[dict]:
    """One line per (item, temp, sample) of the ledger's requests, each request's custom_id in its side."""
    rdir = results_dir(tmp, run_id)
    lines = read_jsonl(rdir / "transcripts.jsonl")
    cells = {(ln["item_key"], ln["temp"], ln["sample_index"]) for ln in lines}
    ids = expected_ids(queue, run_id)
    assert len(lines) == len(cells) == len(ids) // 2  # both conditions of a cell on one line
    sides = sorted(ln[c]["custom_id"] for ln in lines for c in ("control", "treatment") if ln[c] is not None)
    with ledger(queue) as conn:
        done = sorted(r[0] for r in conn.execute("select custom_id from results where run_id = ?", (run_id,)))
    assert sides == done
    for ln in lines:
        for cond in ("control", "treatment"):
            if ln[cond] is not None:
                dataset, item_id, c, temp, sample, type_ = ln[cond]["custom_id"].split("|")
                assert (f"{dataset}|{item_id}", c, temp, int(sample), type_) == (
                    ln["item_key"], cond, ln["temp"], ln["sample_index"], ln["type"])
    manifest = json.loads((rdir / "trial_manifest.json").read_text(encoding="utf-8"))
    parsed = manifest["stage_status"]["parsed"]
    assert parsed["transcripts"] == len(lines)
    assert {Path(a).name for a in parsed["artifacts"]} >= {"transcripts.jsonl", "contexts.jsonl"}
    return lines


@pytest.mark.realmodel
def test_real_model_transcripts_match_predictions_scores_and_the_messages_sent(tmp_path):
    from scoring.transcripts import SCORE_KEYS, full_user_message

    cfg = write_config(tmp_path, short_prompts=True, sizes={"squad_v2": 1, "triviaqa": 1, "nq_open": 0},
                       temps=[0.7], samples_per_item={"0.7": 2})  # 8 requests: a 2-core CPU is slow
    queue = tmp_path / "queue"
    out = producer(["run", "--config", str(cfg), "--workers", "1"], queue, timeout=400)
    assert out.returncode == 0, out.stdout + out.stderr
    run_id = run_id_of(queue)
    rdir = results_dir(tmp_path, run_id)
    lines = _check_complete(tmp_path, queue, run_id)
    assert len(lines) == 2 * 2  # 2 items (open, closed) x 2 samples

    # the answers, finish reasons and tokens of predictions.csv, side by side
    _, preds = read_predictions(rdir / "predictions.csv")
    by_id = {p["custom_id"]: p for p in preds}
    for ln in lines:
        for cond in ("control", "treatment"):
            side, pred = ln[cond], by_id[ln[cond]["custom_id"]]
            assert side["response"] == pred["response_text"] and side["response"].strip()
            assert (side["finish_reason"] or "") == pred["finish_reason"]
            assert side["prompt_tokens"] == int(pred["prompt_tokens"]) > 0
            assert side["completion_tokens"] == int(pred["completion_tokens"]) >= 1
            assert side["request_id"] == pred["request_id"] and side["latency_s"] > 0
            assert set(SCORE_KEYS) <= set(side)
            if ln["type"] == "closed":
                assert side["f1"] is None and side["false_answer"] is None and side["unsupported"] is None

    # per-sample scores average to per_item_scores.csv, row for row
    samples: dict[tuple, list[dict]] = defaultdict(list)
    for ln in lines:
        for cond in ("control", "treatment"):
            samples[(ln["item_key"], ln["type"], cond, ln["temp"])].append(ln[cond])
    with (rdir / "per_item_scores.csv").open("r", encoding="utf-8", newline="") as fh:
        per_item = list(csv.DictReader(fh))
    assert len(per_item) == len(samples) == 2 * 2  # items x conditions
    for row in per_item:
        group = samples[(row["item_key"], row["type"], row["condition"], row["temp"])]
        assert len(group) == 2
        for key, column in PER_ITEM_SCORE.items():
            values = [s[key] for s in group]
            if row[column] == "":
                assert values == [None] * len(group), (row, key)
            else:
                assert sum(values) / len(values) == pytest.approx(float(row[column])), (row, key)

    # the exact user message (passage put back from contexts.jsonl) and system prompt of every request
    contexts = {c["context_id"]: c["context"] for c in read_jsonl(rdir / "contexts.jsonl")}
    items = _prepared(tmp_path, run_id)
    assert sorted(contexts.values()) == sorted({it["context"] for it in items.values() if it.get("context")})
    manifest = json.loads((rdir / "trial_manifest.json").read_text(encoding="utf-8"))
    with ledger(queue) as conn:
        bodies = {r[0]: json.loads(r[1]) for r in conn.execute("select custom_id, body from requests")}
    for ln in lines:
        item = items[ln["item_key"]]
        assert ln["question"] == item["question"] and ln["answers"] == item["answers"]
        if ln["type"] == "open":
            assert contexts[ln["context_id"]] == item["context"] and item["context"] not in ln["user_message"]
            assert ln["is_unanswerable"] == (item["is_unanswerable"] or not item["answers"])
        else:
            assert ln["context_id"] is None and ln["is_unanswerable"] is None
        for cond in ("control", "treatment"):
            sent = bodies[ln[cond]["custom_id"]]["messages"]
            assert full_user_message(ln, contexts) == sent[1]["content"]
            prompt = manifest["prompts"][cond]
            assert ln["system_prompts"][cond] == {"file": Path(prompt["path"]).as_posix(), "sha256": prompt["sha256"]}


def _kill_pool(pool) -> None:
    """kill -9 of the pool process and every worker it started."""
    procs = [psutil.Process(pool.pid), *psutil.Process(pool.pid).children(recursive=True)]
    for proc in procs:
        try:
            os.kill(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    pool.wait(30)


def _export_state(queue: Path, run_id: str) -> str:
    with ledger(queue) as conn:
        return conn.execute("select export_state from trials where run_id = ?", (run_id,)).fetchone()[0]


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="kill -9 is POSIX (Windows: TerminateProcess, same effect)")
def test_kill_9_of_the_pool_mid_run_and_mid_export_then_resume_leaves_complete_transcripts(tmp_path):
    cfg = write_config(tmp_path, local_engine="dry_run", **TEMPS)
    queue = tmp_path / "queue"
    assert producer(["enqueue", "--config", str(cfg)], queue).returncode == 0
    run_id = run_id_of(queue)
    total = len(expected_ids(queue, run_id))
    pool = popen(["-m", "workers", "-w", "1"], queue, EXCELLENCE_FAULTS="delay_s=0.2")  # a kill lands mid-run
    try:
        wait_for(lambda: count_state(queue, run_id, "done") >= 5, 120, "a few results")
    finally:
        _kill_pool(pool)
    assert count_state(queue, run_id, "done") < total
    assert not (results_dir(tmp_path, run_id) / "transcripts.jsonl").exists()

    pool = popen(["-m", "workers", "-w", "1"], queue)  # resume: killed again as soon as the export starts
    try:
        wait_for(lambda: _export_state(queue, run_id) != "pending", 120, "the export to start", poll=0.01)
    finally:
        _kill_pool(pool)

    out = producer(["run", "--resume", run_id, "--workers", "1"], queue)
    assert out.returncode == 0, out.stdout + out.stderr
    assert _export_state(queue, run_id) == "done"
    lines = _check_complete(tmp_path, queue, run_id)
    assert len(lines) == total // 2 and all(ln["control"] and ln["treatment"] for ln in lines)


def test_failed_requests_leave_their_side_null_and_every_line_in_place(tmp_path):
    cfg = write_config(tmp_path, local_engine="dry_run", **TEMPS)
    queue = tmp_path / "queue"
    out = producer(["run", "--config", str(cfg), "--workers", "1"], queue, EXCELLENCE_FAULTS="permanent=0.3")
    assert out.returncode == 3, out.stdout + out.stderr  # finished with failed requests
    run_id = run_id_of(queue)
    lines = _check_complete(tmp_path, queue, run_id)
    failed = count_state(queue, run_id, "failed")
    nulls = sum(ln[c] is None for ln in lines for c in ("control", "treatment"))
    assert failed > 0 and nulls == failed


@pytest.mark.unit
def test_builder_keeps_the_answers_of_an_item_no_longer_in_the_prepared_items():
    from config.contract import build_custom_id
    from producer.inputs.messages import render_user_message
    from scoring.transcripts import build_transcripts, full_user_message

    item = {"dataset": "squad_v2", "id": "a1", "context": "Paris is in France.", "question": "Where is Paris?",
            "answers": ["France"], "is_unanswerable": False}
    message = render_user_message("Answer from the passage.", item, "open")
    rows = []
    for dataset, item_id, type_ in (("squad_v2", "a1", "open"), ("triviaqa", "gone", "closed")):
        for cond, text in (("control", " France \n"), ("treatment", None)):
            body = {"messages": [{"role": "system", "content": None}, {"role": "user", "content": message}]}
            rows.append({"custom_id": build_custom_id(dataset, item_id, cond, 0.0, 0, type_), "body": json.dumps(body),
                         "system_sha": cond, "text": text, "finish_reason": "stop", "prompt_tokens": 9,
                         "completion_tokens": 1, "latency_s": 0.1, "request_id": "r"})
    rows.sort(key=lambda r: r["custom_id"])
    lines = list(build_transcripts(rows, {"squad_v2|a1": item}, {"control": "c.txt", "treatment": "t.txt"}))
    known, gone = lines
    assert known["item_key"] == "squad_v2|a1" and known["treatment"] is None  # no result: a null side
    assert known["control"]["response"] == "France" and known["control"]["em"] == 1.0
    assert full_user_message(known, {known["context_id"]: item["context"]}) == message
    assert known["system_prompts"] == {"control": {"file": "c.txt", "sha256": "control"},
                                       "treatment": {"file": "t.txt", "sha256": "treatment"}}
    assert gone["item_key"] == "triviaqa|gone" and gone["question"] is None and gone["answers"] is None
    assert gone["control"]["response"] == "France" and gone["control"]["em"] is None
    with pytest.raises(ValueError, match="not consecutive"):
        list(build_transcripts([rows[0], rows[2], rows[1]], {"squad_v2|a1": item}, {}))
