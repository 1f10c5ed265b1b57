"""Run manifests: config fingerprint, effective config, run_state phases and stop flag, trial_manifest."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest

from config.schema import load_config
from producer.runs import manifests as m
from producer.runs.layout import RunLayout
from producer.runs.trials import expand_trials
from tests.support.workdirs import make_workdir


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    work = make_workdir(tmp_path)
    monkeypatch.chdir(work)
    cfg = load_config("config/eval_config.demo.yaml")
    return cfg, RunLayout(Path("experiments"), "20260101T000000Z"), work


@pytest.mark.unit
def test_fingerprint_follows_config_and_prompt_contents(env) -> None:
    cfg, _, work = env
    fp = m.config_fingerprint(cfg)
    assert fp == m.config_fingerprint(load_config("config/eval_config.demo.yaml"))
    assert fp != m.config_fingerprint(cfg.model_copy(update={"seed": 7}))
    prompt = work / "config/prompts/control_system.txt"
    prompt.write_text(prompt.read_text(encoding="utf-8") + " Be brief.", encoding="utf-8")
    assert fp != m.config_fingerprint(cfg)


@pytest.mark.unit
def test_effective_config_round_trips(env) -> None:
    cfg, layout, _ = env
    path = m.write_effective_config(layout, cfg)
    assert path == layout.effective_config
    assert load_config(path) == cfg
    assert f"config_fingerprint: {m.config_fingerprint(cfg)}" in path.read_text(encoding="utf-8")


@pytest.mark.unit
def test_run_state_phases_and_stop_flag(env) -> None:
    cfg, layout, _ = env
    state = m.init_run_state(layout, cfg, "config/eval_config.demo.yaml")
    assert state.phase_order == list(m.PHASES) and state.stop_requested is False
    assert all(p.status == "pending" for p in state.phases.values())
    m.update_phase(layout, "prepare", "running")
    state = m.update_phase(layout, "prepare", "done", items=24)
    entry = state.phases["prepare"]
    assert entry.status == "done" and entry.extra("items") == 24
    assert entry.extra("started_at") <= entry.extra("finished_at")
    assert not m.stop_requested(layout)
    m.set_stop_flag(layout)
    assert m.stop_requested(layout)
    again = m.init_run_state(layout, cfg)  # re-init keeps history
    assert again.phases["prepare"].status == "done" and again.stop_requested is True
    with pytest.raises(ValueError):
        m.update_phase(layout, "prepare", "finished")
    assert not list(layout.run_dir.glob("*.lock")) and not list(layout.run_dir.glob("*.tmp"))


def test_trial_manifest_contents_and_stage_updates(env) -> None:
    cfg, layout, _ = env
    from producer.inputs.prepare import ensure_prepared

    items = ensure_prepared(cfg).items
    trial = expand_trials(cfg)[0]
    path = m.write_trial_manifest(layout, cfg, trial, items)
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["schema_version"] == 2 and data["run_id"] == layout.run_id
    assert data["trial"]["slug"] == trial.slug and data["temps"] == ["0.0"]
    assert data["counts"]["0.0"]["control"]["requests"] == 84
    assert data["counts"]["0.0"]["treatment"] == {"items": 84, "open": 34, "closed": 50, "requests": 84}
    prompts = data["prompts"]  # the demo runs SmolLM2 on llama.cpp: its own tokenizer counts exactly
    assert prompts["token_counts"] == "tokenizer SmolLM2-135M-Instruct.Q4_1.gguf"
    assert prompts["control"]["tokens_estimated"] is False
    assert prompts["control"]["sha256"] != prompts["treatment"]["sha256"]
    assert prompts["treatment"]["tokens"] == 184  # what llama.cpp reads for the treatment prompt
    assert data["engine"]["engine"] == "llama_cpp" and data["engine"]["n_ctx"] == 4096
    assert set(data["stage_status"]) == {"generated", "parsed", "scored", "stats", "costs", "report"}

    m.update_stage(path, "parsed", "done", [Path("experiments/x/predictions.csv")])
    m.write_trial_manifest(layout, cfg, trial, items)  # rewriting keeps the stages already recorded
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["stage_status"]["parsed"]["status"] == "done"
    assert data["stage_status"]["parsed"]["artifacts"] == ["experiments/x/predictions.csv"]


def test_prompt_token_counts_use_the_tokenizer_field_or_say_estimated(env) -> None:
    cfg, _, _ = env
    dry = cfg.model_copy(update={"local_engine": "dry_run"})
    trial = expand_trials(dry)[0]
    estimated = m.build_trial_manifest(dry, trial, "r", []).prompts
    assert estimated.token_counts == "estimated" and estimated.treatment.tokens_estimated is True
    assert estimated.treatment.tokens == round(estimated.treatment.chars / 4)
    counted = m.build_trial_manifest(dry.model_copy(update={"tokenizer": "smollm2"}), trial, "r", []).prompts
    assert counted.treatment.tokens == 184 and counted.treatment.tokens_estimated is False
    bad = m.build_trial_manifest(dry.model_copy(update={"tokenizer": "missing/tok.gguf"}), trial, "r", []).prompts
    assert bad.token_counts.startswith("estimated (tokenizer missing/tok.gguf unusable: model file not found")
    assert bad.treatment.tokens_estimated is True


def test_concurrent_stage_updates_lose_nothing(env) -> None:
    """Two spawned processes update different stages of one manifest many times: both survive."""
    cfg, layout, _ = env
    trial = expand_trials(cfg)[0]
    path = m.write_trial_manifest(layout, cfg, trial, [])
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_stage_writer, args=(str(path), stage, 25)) for stage in ("scored", "stats")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["stage_status"]["scored"]["artifacts"] == ["scored-24"]
    assert data["stage_status"]["stats"]["artifacts"] == ["stats-24"]
    assert data["stage_status"]["generated"]["status"] == "pending"


def _stage_writer(path: str, stage: str, n: int) -> None:
    for i in range(n):
        m.update_stage(path, stage, "running", [f"{stage}-{i}"])
