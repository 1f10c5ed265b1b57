"""``run --aa`` end to end (issue 27 item 2): a real run on the fake Ollama server with ``cache: true``.

The A/A arm asks the control prompt again with the same messages, so a response cache that served it
would make the noise floor read 0: the server must see every A/A request, whichever arm ran first,
and ``noise_floor.json`` and the report's section must appear for both trials.
"""

from __future__ import annotations

import json

from config.contract import NOISE_FLOOR_JSON, RAW_RESULTS_JSONL
from tests.support.queue_runs import producer, read_jsonl, short_prompt_set, write_config
from tests.support.servers.fake_ollama import FakeOllama, FakeOllamaServer

SIZES = {"squad_v2": 1, "triviaqa": 1, "nq_open": 0}  # both question types, one item each


def test_run_aa_regenerates_the_control_past_the_cache_and_reports_the_noise_floor(tmp_path):
    with FakeOllamaServer(FakeOllama()) as server:
        cfg = write_config(tmp_path, cache=True, sizes=SIZES, prompt_sets={"default": short_prompt_set(tmp_path)},
                           local_engine="ollama", local_endpoint=server.url, local_model="smollm2:135m")
        out = producer(["run", "--config", str(cfg), "--workers", "1", "--run-id", "aa", "--aa", "--no-preflight"],
                       tmp_path / "queue", timeout=120)
        chats = sum(1 for _, path, _ in server.state.requests if path == "/api/chat")
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "done: 8 results, 0 failed" in out.stdout, out.stdout  # 2 items x 2 conditions x 2 trials
    # control 2 + treatment 2 + the A/A arm 2 (its control is the trial's own, shared): no cache hit at all
    assert chats == 6, out.stdout
    run = tmp_path / "experiments" / "run_aa"
    trials = sorted(p.name for p in run.iterdir() if (p / "results").is_dir())
    assert trials == ["smollm2-135m-default", "smollm2-135m-default-aa"]
    for slug in trials:
        raw = read_jsonl(run / slug / "results" / RAW_RESULTS_JSONL)
        assert not [r["custom_id"] for r in raw if r["engine"].get("cache_hit")]
        floor = json.loads((run / slug / "results" / NOISE_FLOOR_JSON).read_text(encoding="utf-8"))
        assert floor["aa_trial"] == "smollm2-135m-default-aa"
        assert sum(row["aa_flips"]["pairs"] for row in floor["rows"]) == 2
        assert "Noise floor (A/A)" in (run / slug / "reports" / "report.html").read_text(encoding="utf-8")
