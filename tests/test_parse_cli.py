"""``python -m producer parse``: raw results (ours or Fireworks') -> predictions.csv, strict on custom_ids."""

from __future__ import annotations

import json

from config.contract import PREDICTIONS_COLUMNS
from producer.runs.results_io import raw_result_row
from tests.support.queue_runs import producer, read_predictions

CID = "nq_open|q1|control|0.0|0|closed"
CID2 = "squad_v2|s1|treatment|0.7|1|open"


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def test_parse_writes_contract_columns_from_both_shapes(tmp_path):
    ours = raw_result_row(CID, "  Paris \n", "stop", {"prompt_tokens": 12, "completion_tokens": 3}, "r1", 0.5,
                          {"name": "llama_cpp"})
    fireworks = {"custom_id": CID2, "response": {"id": "fw-1", "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "I don\u2019t know."}, "finish_reason": "length"}],
        "usage": {"prompt_tokens": 40, "completion_tokens": 8, "total_tokens": 48}}}
    src, out = tmp_path / "raw.jsonl", tmp_path / "out" / "predictions.csv"
    _write(src, [fireworks, ours])
    res = producer(["parse", "--results_jsonl", str(src), "--out_csv", str(out)], tmp_path / "queue")
    assert res.returncode == 0, res.stderr
    columns, rows = read_predictions(out)
    assert columns == list(PREDICTIONS_COLUMNS)
    assert [r["custom_id"] for r in rows] == [CID, CID2]
    assert rows[0]["response_text"] == "Paris" and rows[0]["total_tokens"] == "15" and rows[0]["temp"] == "0.0"
    assert rows[1]["response_text"] == "I don\u2019t know." and rows[1]["finish_reason"] == "length"
    assert rows[1]["sample_index"] == "1" and rows[1]["request_id"] == "fw-1"
    assert not (tmp_path / "queue").exists()  # a stage CLI never creates the queue


def test_parse_rejects_duplicates_and_bad_ids_with_the_line(tmp_path):
    out = tmp_path / "p.csv"
    row = raw_result_row(CID, "a", "stop", {}, "r1")
    dup = tmp_path / "dup.jsonl"
    _write(dup, [row, raw_result_row(CID2, "b", "stop", {}, "r2"), row])
    res = producer(["parse", "--results_jsonl", str(dup), "--out_csv", str(out)], tmp_path / "q")
    assert res.returncode == 2 and "line 3" in res.stderr and "duplicate custom_id" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.stderr
    bad = tmp_path / "bad.jsonl"
    _write(bad, [row, raw_result_row("nq_open|q2|control|0.0|closed", "b", "stop", {}, "r2")])
    res = producer(["parse", "--results_jsonl", str(bad), "--out_csv", str(out)], tmp_path / "q")
    assert res.returncode == 2 and "line 2" in res.stderr
    broken = tmp_path / "broken.jsonl"
    broken.write_text(json.dumps(row) + "\n{not json\n", encoding="utf-8")
    res = producer(["parse", "--results_jsonl", str(broken), "--out_csv", str(out)], tmp_path / "q")
    assert res.returncode == 2 and "line 2" in res.stderr and "invalid JSON" in res.stderr
    assert not out.exists()  # nothing half-written
    res = producer(["parse", "--results_jsonl", str(tmp_path / "missing.jsonl"), "--out_csv", str(out)], tmp_path / "q")
    assert res.returncode == 2 and "not found" in res.stderr
