"""The worker-side context manager: samples tagged with run and trial land in the ledger file."""

from __future__ import annotations

import time

import pytest

from config.schema import validate_config_dict
from telemetry.store import TelemetryStore
from telemetry.worker_hook import chunk_telemetry
from workers.engines.base import EngineResult, Usage

pytestmark = pytest.mark.unit


def _result(p: int, c: int) -> EngineResult:
    return EngineResult("x", "stop", Usage(p, c), "r1", 0.01)


def test_chunk_telemetry_writes_tagged_samples(tmp_path):
    ledger = tmp_path / "ledger.sqlite3"
    cfg = validate_config_dict({"local_engine": "dry_run"}, check_files=False)
    with chunk_telemetry(cfg, "run-a", "trial-1", ledger=ledger, interval_s=0.02) as note:
        for _ in range(3):
            note(_result(100, 7))
            time.sleep(0.03)
    with chunk_telemetry(cfg, "run-a", "trial-2", ledger=ledger, interval_s=0.02) as note:
        note(_result(50, 5))
        time.sleep(0.05)
    store = TelemetryStore(ledger)
    one, two = store.read("run-a", "trial-1"), store.read("run-a", "trial-2")
    assert len(one) >= 3 and len(two) >= 2
    assert one[-1].requests_done == 3 and one[-1].completion_tokens == 21 and one[-1].prompt_tokens == 300
    assert two[-1].completion_tokens == 5
    assert all(s.gpu_mem_used_mib is None and s.rss_mib > 0 for s in one + two)  # no GPU here


def test_chunk_telemetry_off_is_a_noop(tmp_path):
    ledger = tmp_path / "ledger.sqlite3"
    cfg = validate_config_dict({"local_engine": "dry_run", "enable_local_telemetry": False}, check_files=False)
    with chunk_telemetry(cfg, "run-a", "t", ledger=ledger) as note:
        note(_result(1, 1))
    assert not ledger.exists()


def test_export_local_costs_uses_ledger_times_and_samples(tmp_path):
    import json

    from producer.runs.results_io import raw_result_row
    from telemetry.local_costs import export_local_costs

    ledger = tmp_path / "ledger.sqlite3"
    cfg = validate_config_dict({"local_engine": "dry_run"}, check_files=False)
    with chunk_telemetry(cfg, "run-b", "t1", ledger=ledger, interval_s=0.02) as note:
        note(_result(10, 2))
        time.sleep(0.05)
    rows = [raw_result_row(f"nq_open|q{i}|control|0.0|0|closed", "a", "stop",
                           {"prompt_tokens": 10, "completion_tokens": 2}, f"r{i}", latency_s=1.0,
                           engine={"name": "dry_run", "model": "m"}) for i in range(3)]
    data = export_local_costs(tmp_path, rows, "run-b", "t1", cfg, finished_at=[101.0, 102.0, 104.0], ledger=ledger)
    assert data["wall_time_s"] == 4.0  # 100.0 (first start) .. 104.0
    assert data["requests_per_minute"] == 45.0 and data["telemetry_samples"] >= 2
    assert data["engine"] == {"name": "dry_run", "model": "m"} and data["model"]["n_ctx"] == cfg.n_ctx
    assert data["nvml_available"] is False and data["nvml_reason"].startswith("NVML unavailable")
    assert json.loads((tmp_path / "local_costs.json").read_text(encoding="utf-8")) == data
    fw = validate_config_dict({"backend": "fireworks"}, check_files=False)
    assert export_local_costs(tmp_path / "fw", rows, "run-b", "t1", fw, ledger=ledger) is None


def test_note_result_starts_retags_and_idles_out(tmp_path):
    from telemetry import worker_hook

    ledger = tmp_path / "ledger.sqlite3"
    cfg = validate_config_dict({"local_engine": "dry_run"}, check_files=False)
    try:
        worker_hook.note_result(cfg, "run-c", "t1", _result(10, 3), ledger=ledger, interval_s=0.02, idle_stop_s=0.3)
        first = worker_hook._active["sampler"]
        assert first.running
        time.sleep(0.05)
        worker_hook.note_result(cfg, "run-c", "t2", _result(10, 4), ledger=ledger, interval_s=0.02, idle_stop_s=0.3)
        assert not first.running and worker_hook._active["sampler"] is not first  # retagged: a new sampler
        second = worker_hook._active["sampler"]
        time.sleep(0.6)
        assert not second.running  # idle stop: no request for 0.3 s
        store = TelemetryStore(ledger)
        assert store.read("run-c", "t1")[-1].completion_tokens == 3
        assert store.read("run-c", "t2")[-1].completion_tokens == 4
        worker_hook.note_result(cfg, "run-c", "t2", _result(1, 1), ledger=ledger, interval_s=0.02, idle_stop_s=0.3)
        assert worker_hook._active["sampler"].running  # restarted after the idle stop
    finally:
        worker_hook.stop_active()
    assert worker_hook._active["sampler"] is None
