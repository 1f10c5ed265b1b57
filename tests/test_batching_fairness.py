"""Fairness of the comparison under batching (issue 17): control and treatment run with the same P and
the same batch rules, and the trial manifest and the report say how the engine batched.

The rule is structural: P (``n_parallel``) is one setting of the run's config, the workers read the
config from the run's ledger record, and a resume with another config is refused (``--force`` keeps
the run's own). These tests hold that through the real CLI, ledger and report.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from config.contract import parse_custom_id
from config.schema import validate_config_dict
from producer.runs.manifests import build_trial_manifest, engine_batching
from producer.runs.trials import expand_trials
from scoring.report import write_report
from tests.support.cli import run_cli
from tests.support.offline_config import write_offline_config
from tests.support.paths import ROOT
from tests.support.servers.faulty_openai import FaultState, FaultyOpenAIServer

FIXTURE = ROOT / "tests" / "fixtures" / "report" / "run_demo" / "demo-default" / "results"


def _llama_cpp(tmp_path: Path, p: int) -> Path:
    return write_offline_config(tmp_path, local_engine="llama_cpp", local_model="smollm2", n_gpu_layers=0,
                                n_parallel=p)


def _ledger(queue: Path, sql: str, *args: object) -> list[tuple]:
    conn = sqlite3.connect(queue / "ledger.sqlite3")
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def test_both_conditions_run_with_the_runs_one_p(tmp_path: Path) -> None:
    queue = tmp_path / "queue"
    proc = run_cli(["enqueue", "--config", str(_llama_cpp(tmp_path, 4)), "--no-preflight"], cwd=tmp_path, queue=queue)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (run_id, config_json), = _ledger(queue, "select run_id, config_json from runs")
    assert json.loads(config_json)["n_parallel"] == 4  # what every worker reads, for either condition
    per_condition = dict(_ledger(queue, "select condition, count(*) from requests where run_id = ? group by condition",
                                 run_id))
    assert per_condition["control"] == per_condition["treatment"] > 0  # one run holds both arms
    # the same batch composition rules: a worker runs one chunk at a time with P threads, so batches
    # are drawn from one chunk; every chunk holds one condition, and both arms get chunks of equal sizes
    # with their items in the same order
    chunks = _ledger(queue, "select chunk, count(distinct condition), min(condition), count(*) from requests "
                            "where run_id = ? group by chunk", run_id)
    assert all(n_conditions == 1 for _, n_conditions, _, _ in chunks)
    sizes = {c: sorted(n for _, _, cond, n in chunks if cond == c) for c in ("control", "treatment")}
    assert sizes["control"] == sizes["treatment"]
    order = {c: [parse_custom_id(cid).item_id for (cid,) in _ledger(
        queue, "select custom_id from requests where run_id = ? and condition = ? order by chunk, seq", run_id, c)]
        for c in ("control", "treatment")}
    assert order["control"] == order["treatment"]

    manifest = json.loads(next((tmp_path / "experiments").rglob("trial_manifest.json")).read_text(encoding="utf-8"))
    batching = manifest["batching"]
    assert batching["engine"] == "llama_cpp" and batching["n_parallel"] == 4 and batching["mode"] == "batched"
    assert batching["same_for_both_conditions"] is True
    assert "4 sequences decoded together" in batching["description"]

    # another P for the same run is refused: one arm can never run with a different P than the other
    changed = _llama_cpp(tmp_path / "other", 1)
    refused = run_cli(["enqueue", "--config", str(changed), "--run-id", run_id, "--no-preflight"], cwd=tmp_path,
                      queue=queue)
    assert refused.returncode != 0
    assert "created with another config" in refused.stderr + refused.stdout
    assert "Traceback" not in refused.stderr
    forced = run_cli(["enqueue", "--config", str(changed), "--run-id", run_id, "--no-preflight", "--force"],
                     cwd=tmp_path, queue=queue)
    assert forced.returncode == 0, forced.stdout + forced.stderr
    (config_json,), = _ledger(queue, "select config_json from runs where run_id = ?", run_id)
    assert json.loads(config_json)["n_parallel"] == 4  # --force continues with the run's own P


@pytest.mark.unit
def test_sequential_llama_cpp_says_so(tmp_path: Path) -> None:
    cfg = validate_config_dict({"backend": "local", "local_engine": "llama_cpp", "local_model": "smollm2"})
    assert cfg.n_parallel == 1
    b = engine_batching(cfg)
    assert (b["mode"], b["n_parallel"], b["description"]) == ("sequential", 1, "in-process llama.cpp, one sequence at a time")


@pytest.mark.unit
def test_ollama_records_num_parallel(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = validate_config_dict({"backend": "local", "local_engine": "ollama", "local_model": "m",
                                "local_endpoint": "http://127.0.0.1:1", "max_concurrent_requests": 2})
    monkeypatch.setenv("OLLAMA_NUM_PARALLEL", "3")
    b = engine_batching(cfg)
    assert (b["mode"], b["n_parallel"], b["max_concurrent_requests"]) == ("server", None, 2)
    assert (b["server_parallel"], b["server_parallel_source"]) == (3, "OLLAMA_NUM_PARALLEL (environment)")
    assert "OLLAMA_NUM_PARALLEL 3" in b["description"]
    monkeypatch.delenv("OLLAMA_NUM_PARALLEL")
    unset = engine_batching(cfg)
    assert unset["server_parallel"] is None and "not set" in unset["description"]


def test_llama_server_slots_from_props() -> None:
    """llama-server documents ``GET /props`` with ``total_slots``; a server without it leaves null."""
    state = FaultState(props={"total_slots": 4, "default_generation_settings": {"n_ctx": 2048}})
    with FaultyOpenAIServer(state) as server, FaultyOpenAIServer() as plain:
        with_slots = validate_config_dict({"backend": "local", "local_engine": "openai_compat", "local_model": "smollm2",
                                           "local_endpoint": f"{server.url}/v1", "max_concurrent_requests": 4})
        b = engine_batching(with_slots)
        assert (b["server_parallel"], b["server_parallel_source"]) == (4, "GET /props total_slots")
        assert b["max_concurrent_requests"] == 4 and "server slots 4" in b["description"]
        without = with_slots.model_copy(update={"local_endpoint": f"{plain.url}/v1"})
        assert engine_batching(without)["server_parallel"] is None
    down = with_slots.model_copy(update={"local_endpoint": "http://127.0.0.1:1/v1"})
    assert engine_batching(down)["server_parallel"] is None  # a stopped server: null, no error


@pytest.mark.unit
def test_fireworks_batching_is_server_side() -> None:
    cfg = validate_config_dict({"backend": "fireworks"})
    b = engine_batching(cfg)
    assert b["engine"] == "fireworks" and b["mode"] == "server-side" and b["n_parallel"] is None


def test_report_states_the_batching(tmp_path: Path) -> None:
    results = tmp_path / "run_demo" / "demo-default" / "results"
    import shutil

    shutil.copytree(FIXTURE, results)
    cfg = validate_config_dict({"backend": "local", "local_engine": "llama_cpp", "local_model": "smollm2",
                                "n_parallel": 4})
    manifest_path = results / "trial_manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    manifest["batching"] = build_trial_manifest(cfg, expand_trials(cfg)[0], "r1", []).to_json()["batching"]
    manifest_path.write_text(json.dumps(manifest), encoding="utf-8")
    out = write_report(results, None, figures=False)
    expected = ("Batching: in-process llama.cpp, 4 sequences decoded together (one context, unified KV cache, "
                "continuous batching). Control and treatment ran with the same batching (n_parallel 4)")
    md = out["report_md"].read_text(encoding="utf-8")
    assert expected in md
    assert md.index("## Run settings") < md.index(expected)
    assert "Control and treatment ran with the same batching (n_parallel 4)" in out["report_html"].read_text(encoding="utf-8")

    del manifest["batching"]  # a manifest from before issue 17: no claim is made
    manifest_path.write_text(json.dumps(manifest), encoding="utf-8")
    assert "Batching:" not in write_report(results, None, figures=False)["report_md"].read_text(encoding="utf-8")
