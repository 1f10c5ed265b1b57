"""Issue 28: the machine chooses P. ``plan --measure`` measures this machine's step costs, keeps them per
model file and machine (telemetry.step_costs), and plan recommends the P they predict fastest for the
run's token shape, naming the measurement; without one it says it used the fixed rule."""

from __future__ import annotations

import json
import os
import time

import pytest

from config.schema import validate_config_dict
from telemetry.batching import (
    FILL,
    MIN_GAIN,
    Workload,
    predicted_ratio,
    recommend_from_costs,
    recommendation_lines,
)
from telemetry.step_costs import StepCosts, key_for, new_costs, read_costs, store_costs

# Measured here (2-core EPYC, SmolLM2-135M, 2 threads, behind a 1,816-token prompt): a token costs about
# the same wherever it sits in a batch. The GPU row has the shape of llama.cpp's batched-bench on a GPU.
CPU = {1: 15.0, 2: 25.0, 4: 40.0, 8: 68.0, 16: 130.0}
GPU = {1: 10.0, 2: 10.4, 4: 11.0, 8: 12.5, 16: 16.0}
FLAT = {p: 15.0 * p for p in (1, 2, 4, 8, 16)}  # no gain at all from batching


def _costs(steps: dict[int, float], prefill: float) -> StepCosts:
    return StepCosts(key="k", model_file="/m/model.gguf", machine="test machine", settings={}, position=1024,
                     decode_step_ms=steps, prefill_ms_per_token=prefill, measured_at="2026-12-05T11:50:00+00:00",
                     seconds=9.0)


def _cfg(model, **extra):
    raw = {"backend": "local", "local_engine": "llama_cpp", "local_model": str(model), "n_ctx": 4096,
           "n_gpu_layers": 0, "n_threads": 2}
    return validate_config_dict({**raw, **extra}, "test", check_files=False)


@pytest.mark.unit
def test_the_prediction_is_the_sequential_time_over_the_batched_time():
    costs = _costs(CPU, 7.4)
    one = 14 * 7.4 + 12 * 15.0
    batched = 14 * 7.4 + 12 * 68.0 / (8 * FILL)
    assert predicted_ratio(costs, 8, 14, 12) == pytest.approx(one / batched)
    assert predicted_ratio(_costs(FLAT, 7.4), 8, 14, 12) < 1  # no step gain: the fill losses remain


@pytest.mark.unit
@pytest.mark.parametrize("steps, prefill, fresh, new, max_p, want", [
    (CPU, 7.4, 14, 64, 16, 8),  # decode-heavy on the CPU: 16 predicts within 3% of 8, so the smaller
    (CPU, 7.4, 34, 16, 16, 8),  # prefill-heavy on the CPU: still ~1.2x at 8 (measured 1.10x)
    (CPU, 7.4, 14, 64, 4, 4),  # n_ctx holds only 4 sequences
    (GPU, 0.3, 14, 64, 16, 16),  # on a GPU a step of 16 costs little more than one of 1
    (FLAT, 7.4, 14, 64, 16, 1),  # batching cannot gain: sequential
    (CPU, 7.4, 400, 16, 16, 1),  # long fresh paragraphs, short answers: under MIN_GAIN
])
def test_the_recommended_p_is_the_fastest_predicted(steps, prefill, fresh, new, max_p, want):
    p, ratio = recommend_from_costs(_costs(steps, prefill), fresh, new, max_p)
    assert p == want
    assert (ratio >= MIN_GAIN) if p > 1 else ratio == 1.0


@pytest.mark.unit
def test_a_measurement_is_kept_per_model_file_and_settings(tmp_path, monkeypatch):
    monkeypatch.setenv("EXCELLENCE_QUEUE_DIR", str(tmp_path / "queue"))
    model = tmp_path / "model.gguf"
    model.write_bytes(b"GGUF" + bytes(60))
    cfg = _cfg(model)
    assert read_costs(cfg) is None
    stored = new_costs(cfg, None, 1024, {1: 15.0, 8: 68.0}, 7.4, 9.04)
    path = store_costs(stored)
    assert path == tmp_path / "queue" / "step_costs.json" and stored.seconds == 9.0
    back = read_costs(cfg)
    assert back == stored and back.decode_step_ms == {1: 15.0, 8: 68.0}  # int keys survive JSON
    assert "CPU only" in back.machine and back.settings["n_threads"] == 2
    assert read_costs(_cfg(model, n_threads=1)) is None  # another setting: another measurement
    other = tmp_path / "other.gguf"
    other.write_bytes(b"GGUF" + bytes(60))
    store_costs(new_costs(_cfg(other), None, 1024, {1: 20.0, 8: 90.0}, 9.0, 9.0))
    assert read_costs(cfg) == stored  # the first model's is kept beside it
    later = time.time() + 5
    os.utime(model, (later, later))  # the file was replaced: measure again
    assert read_costs(cfg) is None and key_for(cfg)[0] != stored.key


@pytest.mark.unit
def test_a_damaged_file_is_no_measurement(tmp_path, monkeypatch):
    monkeypatch.setenv("EXCELLENCE_QUEUE_DIR", str(tmp_path))
    model = tmp_path / "model.gguf"
    model.write_bytes(b"GGUF")
    (tmp_path / "step_costs.json").write_text("{not json", encoding="utf-8")
    assert read_costs(_cfg(model)) is None
    store_costs(new_costs(_cfg(model), None, 64, {1: 1.0}, 1.0, 1.0))  # and measuring again replaces it
    assert read_costs(_cfg(model)) is not None


@pytest.mark.unit
def test_plan_names_the_measurement_or_the_fixed_rule(tmp_path):
    model = tmp_path / "model.gguf"
    model.write_bytes(b"GGUF")
    work = Workload(requests=96, prefix_tokens=1900, longest_tail=120, fresh_tokens=14, new_tokens=64, where="x")
    measured = recommendation_lines(_cfg(model), work, _costs(CPU, 7.4))
    assert measured[0].startswith("batching: n_parallel 1; recommended 8 for this workload")
    assert "predicted 1.3" in measured[0] and "answers of ~12 assumed" in measured[0]
    assert "step costs measured 2026-12-05 11:50 UTC on test machine for model.gguf" in measured[1]
    assert "decode step of 1 sequence 15 ms, of 2 25 ms, 4 40 ms, 8 68 ms, 16 130 ms" in measured[1]
    fixed = recommendation_lines(_cfg(model), work, None)
    assert len(fixed) == 1 and "recommended 4" in fixed[0] and "plan --measure" in fixed[0]
    none = recommendation_lines(_cfg(model), work, _costs(FLAT, 7.4))
    assert "recommended 1" in none[0] and f"no P predicted {MIN_GAIN:.1f}x faster" in none[0]


@pytest.mark.realmodel
def test_plan_measure_on_the_real_model_keeps_the_measurement_and_plan_uses_it(tmp_path, monkeypatch):
    """``plan --measure`` with SmolLM2 on this CPU (fewer P and a shorter prefix than the default, to
    stay quick): the step costs are real and stored, plan names them, and a later plan reads them back."""
    from click.testing import CliRunner

    from producer.cli import main as producer_main
    from telemetry import step_costs
    from tests.support.queue_runs import write_config

    monkeypatch.setenv("EXCELLENCE_QUEUE_DIR", str(tmp_path / "queue"))
    monkeypatch.setattr(step_costs, "MEASURE_PARALLEL", (1, 2, 4))
    monkeypatch.setattr(step_costs, "MEASURE_POSITION", 128)
    config = write_config(tmp_path, short_prompts=True, sizes={"squad_v2": 0, "triviaqa": 2, "nq_open": 2},
                          max_new_tokens={"closed_book": 64, "open_book": 64})
    measured = CliRunner().invoke(producer_main, ["plan", "--config", str(config), "--measure"])
    assert measured.exit_code == 0, measured.output
    stored = json.loads((tmp_path / "queue" / "step_costs.json").read_text(encoding="utf-8"))
    (record,) = stored.values()
    assert record["position"] == 128 and set(record["decode_step_ms"]) == {"1", "2", "4"}
    assert all(ms > 0 for ms in record["decode_step_ms"].values()) and record["prefill_ms_per_token"] > 0
    assert "SmolLM2" in record["model_file"] and record["settings"]["n_threads"] == 2
    assert "measuring step costs of smollm2" in measured.output and "decode steps of 4 sequences" in measured.output
    line = next(x for x in measured.output.splitlines() if x.startswith("batching:"))
    assert "recommended" in line and "from step costs measured" in measured.output
    again = CliRunner().invoke(producer_main, ["plan", "--config", str(config)])
    assert again.exit_code == 0 and "from step costs measured" in again.output and "measuring" not in again.output
    assert f"decode step of 1 sequence {record['decode_step_ms']['1']:.3g} ms" in again.output
    assert "nothing was written but this machine's step costs" in measured.output


@pytest.mark.unit
def test_plan_measure_with_a_server_engine_is_one_line(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from producer.cli import main as producer_main
    from tests.support.queue_runs import write_config

    monkeypatch.setenv("EXCELLENCE_QUEUE_DIR", str(tmp_path / "queue"))
    config = write_config(tmp_path, local_engine="ollama", local_endpoint="http://127.0.0.1:9")
    out = CliRunner().invoke(producer_main, ["plan", "--config", str(config), "--measure"])
    assert out.exit_code == 2 and "Traceback" not in out.output
    assert "plan --measure: step costs are measured for the in-process engine; with ollama the server" in out.output
    assert not (tmp_path / "queue" / "step_costs.json").exists()
