"""Requests and batch inputs: user message identical across conditions, custom_ids round-trip,
parts cover every request exactly once."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

import pytest

from config.contract import build_custom_id, parse_custom_id
from config.schema import load_config
from producer.inputs.messages import load_prompt_texts
from producer.inputs.prepare import ensure_prepared
from producer.inputs.requests_build import iter_trial_requests
from producer.planning.build import build_batch_inputs, plan_parts
from producer.runs.trials import expand_trials
from tests.support.cli import run_cli
from tests.support.workdirs import make_workdir


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@pytest.fixture
def prepared(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    work = make_workdir(tmp_path)
    monkeypatch.chdir(work)
    cfg = load_config("config/eval_config.demo.yaml")
    cfg = cfg.model_copy(update={"temps": [0.0, 0.7, 0.25], "samples_per_item": {"0.0": 1, "0.7": 2, "0.25": 1},
                                 "sizes": cfg.sizes.model_copy(update={"squad_v2": None, "triviaqa": None,
                                                                       "nq_open": None})})
    return cfg, ensure_prepared(cfg).items


@pytest.mark.unit
def test_user_message_identical_across_conditions_system_differs(prepared) -> None:
    cfg, items = prepared
    for prompt_set in ("default", "operational_only"):
        cfg2 = cfg.model_copy(update={"default_prompt_set": prompt_set})
        trial = expand_trials(cfg2)[0]
        texts = load_prompt_texts(cfg2, trial.prompt_set)
        user: dict[tuple[str, str, str], dict[str, str]] = {}
        system: dict[tuple[str, str, str], dict[str, str]] = {}
        for req in iter_trial_requests(cfg2, trial, items, texts):
            cid = parse_custom_id(req.custom_id)
            key = (cid.item_key, cid.temp, str(cid.sample_index))
            msgs = req.body["messages"]
            assert [m["role"] for m in msgs] == ["system", "user"]
            user.setdefault(key, {})[cid.condition] = _sha(msgs[1]["content"])
            system.setdefault(key, {})[cid.condition] = _sha(msgs[0]["content"])
        assert len(user) == len(items) * 4  # K = 1 + 2 + 1 over the three temperatures
        for key in user:
            assert user[key]["control"] == user[key]["treatment"], key
            assert system[key]["control"] != system[key]["treatment"], key


@pytest.mark.unit
@pytest.mark.parametrize("temp", [0.0, 0.7, 0.25])
def test_custom_id_round_trip(temp: float) -> None:
    cid = build_custom_id("squad_v2", "56ddde6b9a695914005b9628", "treatment", temp, 3, "open")
    parsed = parse_custom_id(cid)
    assert parsed.temp == repr(temp) and float(parsed.temp) == temp
    assert (parsed.dataset, parsed.item_id, parsed.condition, parsed.sample_index, parsed.type) == (
        "squad_v2", "56ddde6b9a695914005b9628", "treatment", 3, "open")
    assert str(parsed) == cid


@pytest.mark.unit
def test_plan_parts_arithmetic() -> None:
    assert plan_parts(10, 3, None) == [4, 3, 3]
    assert plan_parts(10, None, 4) == [4, 4, 2]
    assert plan_parts(2, 5, None) == [1, 1]
    assert plan_parts(0, 3, None) == []
    assert plan_parts(7, None, None) == [7]


def _read_parts(result) -> list[str]:
    ids = []
    for f in result.files:
        lines = Path(f["path"]).read_text(encoding="utf-8").splitlines()
        assert len(lines) == f["lines"]
        for line in lines:
            row = json.loads(line)
            assert set(row) == {"custom_id", "body"}
            ids.append(row["custom_id"])
    return ids


@pytest.mark.unit
@pytest.mark.parametrize(
    ("parts", "lines", "max_bytes"),
    [(None, None, 150_000_000), (3, None, 150_000_000), (None, 7, 150_000_000), (None, None, 40_000)],
)
def test_parts_cover_every_request_exactly_once(prepared, parts, lines, max_bytes) -> None:
    cfg, items = prepared
    cfg = cfg.model_copy(update={"fireworks": cfg.fireworks.model_copy(update={"max_part_bytes": max_bytes})})
    trial = expand_trials(cfg)[0]
    expected = [r.custom_id for r in iter_trial_requests(cfg, trial, items, load_prompt_texts(cfg, trial.prompt_set))]
    result = build_batch_inputs(cfg, items, parts_per_dataset=parts, lines_per_part=lines)
    got = _read_parts(result)
    assert Counter(got) == Counter(expected) and len(got) == len(set(got)) == result.total_requests
    on_disk = {p.as_posix() for p in Path(cfg.paths.batch_inputs_dir).rglob("*.jsonl")}
    assert on_disk == {f["path"] for f in result.files}  # every part listed, nothing unlisted
    manifest = json.loads(result.manifest.read_text(encoding="utf-8"))
    assert manifest["total_requests"] == len(expected) == sum(f["lines"] for f in manifest["files"])
    assert all(f["bytes"] <= max_bytes for f in result.files)
    for f in result.files:  # each file holds one temperature and one condition
        temps = {parse_custom_id(c).temp for c in _read_parts(type(result)(None, None, [f], 0))}
        assert temps == {f["temp"]}
    if lines:
        assert all(f["lines"] <= lines for f in result.files)
    if max_bytes < 1_000_000:
        assert len(result.files) > 6


@pytest.mark.unit
def test_rebuild_with_fewer_parts_removes_stale_parts(prepared) -> None:
    cfg, items = prepared
    build_batch_inputs(cfg, items, parts_per_dataset=4)
    result = build_batch_inputs(cfg, items)
    on_disk = {p.as_posix() for p in Path(cfg.paths.batch_inputs_dir).rglob("*.jsonl")}
    assert on_disk == {f["path"] for f in result.files} and len(on_disk) == 6


@pytest.mark.unit
def test_trial_parameters_reach_the_body(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    work = make_workdir(tmp_path)
    monkeypatch.chdir(work)
    cfg = load_config("config/eval_config.demo.yaml")
    cfg = cfg.model_copy(update={"stop": ["\n\n"]})
    from config.schema import MaxNewTokens, TrialSpec

    cfg = cfg.model_copy(update={"trials": [TrialSpec(top_p=0.9, top_k=40,
                                                      max_new_tokens=MaxNewTokens(closed_book=8, open_book=16))]})
    items = ensure_prepared(cfg, limit_items=1).items
    result = build_batch_inputs(cfg, items)
    bodies = [json.loads(line)["body"] for f in result.files
              for line in Path(f["path"]).read_text(encoding="utf-8").splitlines()]
    assert {b["top_p"] for b in bodies} == {0.9} and {b["top_k"] for b in bodies} == {40}
    assert {b["max_tokens"] for b in bodies} == {8, 16} and all(b["stop"] == ["\n\n"] for b in bodies)
    assert all(b["seed"] == 42 and b["temperature"] == 0.0 for b in bodies)


def test_build_cli(tmp_path: Path) -> None:
    work = make_workdir(tmp_path)
    proc = run_cli(["build", "--config", "demo", "--limit-items", "2", "--lines-per-part", "4"], cwd=work)
    assert proc.returncode == 0, proc.stderr
    assert "12 requests in 4 files" in proc.stdout
    both = run_cli(["build", "--config", "demo", "--parts-per-dataset", "2", "--lines-per-part", "4"], cwd=work)
    assert both.returncode == 2 and "not both" in both.stderr
