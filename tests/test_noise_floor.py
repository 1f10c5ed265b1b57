"""The noise floor (A/A, issue 27 item 2): the A/A trial, plan's count, the cache bypass, the flip-rate
and interval arithmetic, ``noise_floor.json`` and the report's warning, in process on real files."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest

from config.contract import (
    NOISE_FLOOR_JSON,
    PER_ITEM_COLUMNS,
    PER_ITEM_SCORES_CSV,
    PREDICTIONS_COLUMNS,
    PREDICTIONS_CSV,
)
from config.schema import validate_config_dict
from producer.inputs.messages import load_prompt_texts
from producer.inputs.requests_build import iter_trial_requests
from producer.planning.plan import aa_requests, make_plan, plan_json, render_plan
from producer.runs.trials import aa_pairs, expand_trials
from scoring import noise_floor as nf
from scoring.report_data import ReportData
from scoring.report_noise import noise_floor_section
from scoring.report_text import Para, Table
from tests.support.offline_config import offline_config_dict

pytestmark = pytest.mark.unit

Z = 1.959963984540054  # the 97.5 % normal quantile


def _wilson(k: int, n: int) -> tuple[float, float]:
    """The textbook Wilson score interval, written out."""
    p = k / n
    centre = (p + Z * Z / (2 * n)) / (1 + Z * Z / n)
    half = Z / (1 + Z * Z / n) * math.sqrt(p * (1 - p) / n + Z * Z / (4 * n * n))
    return centre - half, centre + half


def _cfg(tmp: Path, **over):
    return validate_config_dict(offline_config_dict(tmp, **over), "test")


# --- the A/A trial and its requests -------------------------------------------------------------------


def test_aa_adds_one_twin_trial_per_trial_with_the_control_prompt_in_both_arms(tmp_path):
    assert [t.slug for t in expand_trials(_cfg(tmp_path))] == ["dry-run-default"]
    cfg = _cfg(tmp_path, aa=True)
    trials = expand_trials(cfg)
    assert [(t.slug, t.aa_of) for t in trials] == [("dry-run-default", None), ("dry-run-default-aa", "dry-run-default")]
    assert aa_pairs(cfg) == {"dry-run-default-aa": "dry-run-default"}
    items = [{"dataset": "triviaqa", "id": "q1", "question": "Who?", "answers": ["x"]}]
    texts = load_prompt_texts(cfg, "default")
    main = {(r.condition): r for r in iter_trial_requests(cfg, trials[0], items, texts)}
    twin = {(r.condition): r for r in iter_trial_requests(cfg, trials[1], items, texts)}
    assert twin["treatment"].body["messages"] == main["control"].body["messages"]  # control asked again
    assert twin["control"].body == main["control"].body  # shared with the trial it measures
    assert main["treatment"].body["messages"][0]["content"] != main["control"].body["messages"][0]["content"]
    assert twin["treatment"].custom_id == main["treatment"].custom_id  # contract format unchanged
    assert twin["treatment"].trial != main["treatment"].trial  # ... but its own trial: its own ledger rows


def test_the_aa_trial_manifest_names_the_prompt_it_sent(tmp_path):
    """The twin's "treatment" arm sent the control prompt: its manifest (and transcripts) say that file."""
    from producer.runs.manifests import build_trial_manifest

    cfg = _cfg(tmp_path, aa=True)
    main, twin = expand_trials(cfg)
    pset = cfg.prompt_sets["default"]
    assert main.prompt_file(cfg, "treatment") == pset.treatment and twin.prompt_file(cfg, "treatment") == pset.control
    data = build_trial_manifest(cfg, twin, "r1", [], dry_run=True).model_dump(mode="json")
    assert data["prompts"]["treatment"] == data["prompts"]["control"]
    assert data["trial"]["aa_of"] == main.slug
    assert "aa_of" not in build_trial_manifest(cfg, main, "r1", [], dry_run=True).model_dump(mode="json")["trial"]


def test_plan_counts_the_extra_requests(tmp_path):
    sizes = {"squad_v2": 4, "triviaqa": 3, "nq_open": 0}
    off = make_plan(_cfg(tmp_path, sizes=sizes), tmp_path / "c.yaml")
    on_cfg = _cfg(tmp_path, sizes=sizes, aa=True, temps=[0.0, 0.7], samples_per_item={"0.0": 1, "0.7": 3})
    on = make_plan(on_cfg, tmp_path / "c.yaml")
    assert aa_requests(off.cfg, off.trials, len(off.items)) == 0
    assert aa_requests(on_cfg, on.trials, 7) == 7 * (1 + 3)  # one arm, every temperature and sample
    assert plan_json(on)["aa_requests"] == 28 and plan_json(off)["aa_requests"] == 0
    assert plan_json(on)["total_requests"] == 2 * 2 * 28  # two trials, two conditions (rows in the ledger)
    text = render_plan(on)
    assert "A/A (noise floor): 28 of these ask the control again" in text
    assert "A/A" not in render_plan(off)


def test_the_response_cache_never_serves_or_stores_the_aa_arm(tmp_path, monkeypatch):
    """A real ledger and cache file: the control's cached answer is served to the control, never to the
    A/A arm, whose messages are the same (it goes to the engine); an A/A answer is not stored either."""
    monkeypatch.setenv("EXCELLENCE_QUEUE_DIR", str(tmp_path / "queue"))
    from producer.ledger.db import close_all, connect
    from producer.ledger.response_cache import cache_close_all
    from producer.ledger.writes import NewRequest, claim_chunk, register_run
    from workers.engines.base import EngineResult, Usage
    from workers.inference import _answer_from_cache, _messages, _remember
    from workers.response_cache import ResponseCache

    cfg = _cfg(tmp_path, aa=True, cache=True)
    items = [{"dataset": "triviaqa", "id": "q1", "question": "Who?", "answers": ["x"]}]
    main, twin = expand_trials(cfg)
    texts = load_prompt_texts(cfg, "default")
    control = next(r for r in iter_trial_requests(cfg, main, items, texts) if r.condition == "control")
    aa_arm = next(r for r in iter_trial_requests(cfg, twin, items, texts) if r.condition == "treatment")
    register_run(connect(), {"run_id": "r1", "config_path": None, "config_json": "{}", "fingerprint": "fp",
                             "engine": "llama_cpp", "limit_items": None, "experiments_dir": str(tmp_path),
                             "prepared_dir": str(tmp_path)},
                 [{"trial": main.slug, "model": "m", "total": 1}, {"trial": twin.slug, "model": "m", "total": 1}],
                 [NewRequest(r.trial, i, i, r.custom_id, r.model, r.condition, r.temp, r.type, r.body)
                  for i, r in enumerate((control, aa_arm))])
    rows = [row for chunk in (0, 1) for row in claim_chunk(connect(), "r1", chunk, 1)]  # as a worker takes them
    cache = ResponseCache("llama_cpp", "m", "sha256:test")
    monkeypatch.setattr("workers.inference.cache_for", lambda *a: cache)  # the identity needs a GGUF file
    engine = SimpleNamespace(name="llama_cpp")  # _remember reads only the engine's name
    answer = EngineResult(text="Paris", finish_reason="stop", usage=Usage(), request_id="x", latency_s=0.1)
    try:
        _remember(cfg, engine, rows[1], answer)  # an A/A answer: not stored
        assert cache.lookup(*_messages(rows[1])) is None
        _remember(cfg, engine, rows[0], answer)  # the control's answer: stored
        assert cache.lookup(*_messages(rows[1])) is not None  # same messages: the cache COULD answer the A/A arm
        outcome: dict[int, str] = {}
        todo = _answer_from_cache(rows, cfg, "llama_cpp", 1, outcome)
        assert outcome == {rows[0]["id"]: "done"}  # the control came from the cache
        assert [r["trial"] for r in todo] == [twin.slug]  # the A/A arm is left for the engine
    finally:
        cache_close_all()
        close_all()


# --- arithmetic ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("k", "n"), [(0, 6), (21, 100), (5, 5), (7, 24)])
def test_flip_rate_has_the_wilson_interval(k, n):
    out = nf.flip_rate(k, n)
    low, high = _wilson(k, n)
    assert out["rate"] == pytest.approx(k / n)
    assert (out["ci_low"], out["ci_high"]) == (pytest.approx(low, abs=1e-9), pytest.approx(high, abs=1e-9))
    assert nf.flip_rate(0, 0)["rate"] is None and nf.flip_rate(0, 0)["ci_high"] is None


def test_mean_interval_is_the_paired_t_interval():
    diffs = [0.0, 1.0, 0.0, -1.0, 1.0, 1.0]
    out = nf.mean_interval(diffs)
    mean, sd = sum(diffs) / 6, math.sqrt(sum((d - 1 / 3) ** 2 for d in diffs) / 5)
    half = 2.570581835636314 * sd / math.sqrt(6)  # t(0.975, 5)
    assert out["delta"] == pytest.approx(mean)
    assert (out["ci_low"], out["ci_high"]) == (pytest.approx(mean - half), pytest.approx(mean + half))
    assert nf.mean_interval([0.0, 0.0])["ci_low"] == 0.0 and nf.mean_interval([0.5])["ci_low"] is None


def test_the_rule_both_ways():
    aa = {"ci_low": -0.04, "ci_high": 0.02}
    assert nf.noise_band(aa) == pytest.approx(0.04)
    assert nf.within_noise(-0.03, aa) is True and nf.within_noise(0.04, aa) is True
    assert nf.within_noise(0.05, aa) is False and nf.within_noise(-0.06, aa) is False
    assert nf.within_noise(None, aa) is None
    assert nf.flips_within_noise({"rate": 0.2}, {"ci_high": 0.25}) is True
    assert nf.flips_within_noise({"rate": 0.3}, {"ci_high": 0.25}) is False


# --- noise_floor.json and the report ------------------------------------------------------------------


def _trial(root: Path, slug: str, answers: dict[str, tuple[str, str]], em: dict[str, tuple[float, float]]) -> Path:
    """A results folder with a contract predictions.csv and per_item_scores.csv (closed book, T 0)."""
    results = root / slug / "results"
    results.mkdir(parents=True)
    with (results / PREDICTIONS_CSV).open("w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, PREDICTIONS_COLUMNS)
        w.writeheader()
        for item, pair in answers.items():
            for cond, text in zip(("control", "treatment"), pair, strict=True):
                w.writerow({"custom_id": f"triviaqa|{item}|{cond}|0.0|0|closed", "dataset": "triviaqa", "item_id": item,
                            "condition": cond, "temp": "0.0", "sample_index": 0, "type": "closed", "request_id": "r",
                            "finish_reason": "stop", "response_text": text, "prompt_tokens": 1,
                            "completion_tokens": 1, "total_tokens": 2})
    with (results / PER_ITEM_SCORES_CSV).open("w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, PER_ITEM_COLUMNS)
        w.writeheader()
        for item, pair in em.items():
            for cond, value in zip(("control", "treatment"), pair, strict=True):
                w.writerow({"item_key": f"triviaqa|{item}", "condition": cond, "temp": "0.0", "type": "closed",
                            "em": value, "f1": value, "abstain_rate": 0.0})
    return results


def _pair(tmp: Path, effect_em: dict[str, tuple[float, float]]) -> tuple[Path, Path]:
    items = [f"q{i}" for i in range(10)]
    measured = _trial(tmp, "m", {i: ("a", "b" if i in ("q0", "q1", "q2", "q3") else "a") for i in items}, effect_em)
    aa_answers = {i: ("a", "a2" if i == "q9" else "a") for i in items}
    aa_em = {i: ((1.0, 0.0) if i == "q9" else (1.0, 1.0)) for i in items}
    return measured, _trial(tmp, "m-aa", aa_answers, aa_em)


def test_noise_floor_file_in_both_folders(tmp_path):
    big = {f"q{i}": ((0.0, 1.0) if i < 8 else (1.0, 1.0)) for i in range(10)}  # +80 points
    measured, aa = _pair(tmp_path, big)
    data = nf.write_noise_floor(measured, aa)
    on_disk = json.loads((measured / NOISE_FLOOR_JSON).read_text(encoding="utf-8"))
    assert on_disk == json.loads((aa / NOISE_FLOOR_JSON).read_text(encoding="utf-8")) == json.loads(json.dumps(data))
    assert (on_disk["trial"], on_disk["aa_trial"], on_disk["schema_version"]) == ("m", "m-aa", 1)
    (row,) = on_disk["rows"]
    assert (row["temp"], row["type"]) == ("0.0", "closed")
    assert (row["aa_flips"]["pairs"], row["aa_flips"]["flips"]) == (10, 1)
    assert (row["effect_flips"]["pairs"], row["effect_flips"]["flips"]) == (10, 4)
    assert row["aa_flips"]["ci_high"] == pytest.approx(_wilson(1, 10)[1])
    assert row["flips_within_noise"] is True  # 40 % is below the A/A upper bound (~46 %)
    em = row["metrics"]["em"]
    assert em["aa"]["delta"] == pytest.approx(-0.1) and em["effect"]["delta"] == pytest.approx(0.8)
    assert em["within_noise"] is False and em["noise_band"] == pytest.approx(-em["aa"]["ci_low"])


def _section(results: Path) -> list:
    return noise_floor_section(ReportData(results_dir=results))


def test_report_warns_when_the_effect_is_within_the_noise(tmp_path):
    small = {f"q{i}": ((0.0, 1.0) if i == 0 else (1.0, 1.0)) for i in range(10)}  # +10 points: A/A reaches ~33
    measured, aa = _pair(tmp_path, small)
    nf.write_noise_floor(measured, aa)
    blocks = _section(measured)
    warnings = [b.text for b in blocks if isinstance(b, Para) and b.kind == "warning"]
    assert any("EM effect (+10.0 points) is within the A/A noise" in w for w in warnings), warnings
    assert any("changed 40.0% of answers, no more than the A/A upper bound" in w for w in warnings), warnings
    metric_table = [b for b in blocks if isinstance(b, Table)][1]
    assert ["T 0.0, closed-book", "EM", "+10.0", "-10.0"] == metric_table.rows[0][:4]
    assert metric_table.rows[0][-1] == "within the noise"


def test_report_says_above_the_noise_and_warns_nothing(tmp_path):
    items = [f"q{i}" for i in range(30)]
    measured = _trial(tmp_path, "m", {i: ("a", "b") for i in items}, {i: (0.0, 1.0) for i in items})
    aa = _trial(tmp_path, "m-aa", {i: ("a", "a") for i in items}, {i: (1.0, 1.0) for i in items})
    nf.write_noise_floor(measured, aa)
    blocks = _section(measured)
    assert [b for b in blocks if isinstance(b, Para) and b.kind == "warning"] == []
    flips, metrics = [b for b in blocks if isinstance(b, Table)]
    assert [r[-1] for r in flips.rows] == ["above the noise"]
    verdicts = {r[1]: r[-1] for r in metrics.rows}
    assert verdicts == {"EM": "above the noise", "F1": "above the noise", "abstain": "within the noise"}  # 0 = 0
    twin = [b.text for b in _section(aa) if isinstance(b, Para) and b.kind == "warning"]
    assert twin and "is the A/A run of m" in twin[0]  # the A/A trial's own report says what it is
    assert _section(tmp_path / "elsewhere") == []  # no file (aa off): no section


def test_refresh_waits_for_both_trials_then_writes(tmp_path):
    cfg = _cfg(tmp_path, aa=True)
    run = tmp_path / "run"
    measured = _trial(run, "dry-run-default", {"q0": ("a", "b")}, {"q0": (0.0, 1.0)})
    assert nf.refresh(measured, cfg) is None and not (measured / NOISE_FLOOR_JSON).exists()
    aa = _trial(run, "dry-run-default-aa", {"q0": ("a", "a")}, {"q0": (0.0, 0.0)})
    assert nf.refresh(aa, cfg) == measured  # the measured trial's report is the one to render again
    assert (measured / NOISE_FLOOR_JSON).is_file() and (aa / NOISE_FLOOR_JSON).is_file()
    assert nf.refresh(measured, _cfg(tmp_path)) is None  # aa off: nothing to do
    (aa / PREDICTIONS_CSV).write_text("custom_id,condition\n", encoding="utf-8")  # damaged: no pairs can be read
    (measured / NOISE_FLOOR_JSON).unlink()
    assert nf.refresh(aa, cfg) is None and not (measured / NOISE_FLOOR_JSON).exists()  # no crash, no half file
