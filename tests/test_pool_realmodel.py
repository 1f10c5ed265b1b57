"""The spawn pool with the real SmolLM2 model: a whole run, one model load with -w 3, and crash safety
(kill -9 of the inference worker at several moments, then of the producer during enqueue)."""

from __future__ import annotations

import os
import signal

import pytest

from config.contract import PREDICTIONS_COLUMNS
from tests.support.paths import ROOT
from tests.support.queue_runs import (
    count_state,
    expected_ids,
    ledger,
    popen,
    producer,
    read_predictions,
    results_dir,
    run_id_of,
    run_state,
    stop_process,
    wait_for,
    write_config,
)

pytestmark = pytest.mark.realmodel


def _answers(tmp, run_id):
    _, rows = read_predictions(results_dir(tmp, run_id) / "predictions.csv")
    return {r["custom_id"]: r["response_text"] for r in rows}


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    """An uninterrupted real run (short system prompts, see tests/support/queue_runs.short_prompt_set)."""
    tmp = tmp_path_factory.mktemp("baseline")
    cfg = write_config(tmp, short_prompts=True)
    queue = tmp / "queue"
    out = producer(["run", "--config", str(cfg), "--workers", "1"], queue, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    return tmp, queue, run_id_of(queue), cfg


def test_demo_prompts_real_run_writes_contract_predictions_with_one_model_load(tmp_path):
    """The demo's settings and its real prompts (the ``cautious`` pair, the demo's default) through
    ``producer run -w 3``: one model load, real text."""
    demo = {"control": str(ROOT / "config/prompts/control_system.txt"),
            "treatment": str(ROOT / "config/prompts/demo_cautious_treatment.txt")}
    cfg = write_config(tmp_path, sizes={"squad_v2": 1, "triviaqa": 1, "nq_open": 0}, prompt_sets={"default": demo})
    queue = tmp_path / "queue"
    out = producer(["run", "--config", str(cfg), "--workers", "3"], queue, timeout=400)
    assert out.returncode == 0, out.stdout + out.stderr
    run_id = run_id_of(queue)
    assert "done 4/4" in producer(["status"], queue).stdout
    columns, rows = read_predictions(results_dir(tmp_path, run_id) / "predictions.csv")
    assert columns == list(PREDICTIONS_COLUMNS)
    assert sorted(r["custom_id"] for r in rows) == expected_ids(queue, run_id) and len(rows) == 4
    for r in rows:
        assert r["response_text"].strip(), r
        assert int(r["prompt_tokens"]) > 20 and int(r["completion_tokens"]) >= 1
        assert int(r["total_tokens"]) == int(r["prompt_tokens"]) + int(r["completion_tokens"])
        assert r["finish_reason"] in ("stop", "length")
    with ledger(queue) as conn:
        loads = conn.execute("select pid, model_path from model_loads").fetchall()
        pids = {r[0] for r in conn.execute("select pid from workers")}
    assert len(loads) == 1 and loads[0][1].endswith(".gguf")  # -w 3: exactly one process loaded the model
    assert len(pids) == 3 and loads[0][0] in pids
    with ledger(queue) as conn:
        engine = conn.execute("select engine from results limit 1").fetchone()[0]
    assert '"n_ctx": 2048' in engine and '"name": "llama_cpp"' in engine


def _holder_pid(queue, loads_before):
    with ledger(queue) as conn:
        rows = conn.execute("select pid from model_loads order by id").fetchall()
    return rows[-1][0] if len(rows) > loads_before else None


def test_kill_9_of_the_inference_worker_loses_and_duplicates_nothing(baseline, tmp_path):
    base_tmp, _, base_run, _ = baseline
    cfg = write_config(tmp_path, short_prompts=True)
    queue = tmp_path / "queue"
    assert producer(["enqueue", "--config", str(cfg)], queue).returncode == 0
    run_id = run_id_of(queue)
    pool = popen(["-m", "workers", "-w", "2"], queue)
    kills = 0
    try:
        # moments: right after the model load, mid first chunk, mid second chunk (control, treatment)
        for after_done in (0, 2, 5):
            wait_for(lambda n=after_done, k=kills: count_state(queue, run_id, "done") >= n and _holder_pid(queue, k),
                     180, f"{after_done} results and a model holder")
            if count_state(queue, run_id, "done") >= 8:
                break
            pid = _holder_pid(queue, kills)
            os.kill(pid, signal.SIGKILL if hasattr(signal, "SIGKILL") else signal.SIGTERM)
            kills += 1
        wait_for(lambda: run_state(queue, run_id) == "done", 240, "the run to finish after the kills")
    finally:
        out = stop_process(pool)
    assert kills >= 3, out
    assert "restarting" in out
    with ledger(queue) as conn:
        n_results = conn.execute("select count(*) from results where run_id = ?", (run_id,)).fetchone()[0]
        loads = conn.execute("select count(*) from model_loads").fetchone()[0]
    assert n_results == 8 and loads == kills + 1
    answers = _answers(tmp_path, run_id)
    assert sorted(answers) == expected_ids(queue, run_id)  # one row per custom_id, none lost or doubled
    assert answers == _answers(base_tmp, base_run)  # temperature 0: identical to the uninterrupted run
