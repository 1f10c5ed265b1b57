"""``cache stats`` agrees with the manifests (issue 29: it said "reused 156 times" where the manifests counted
208 hits). Why they disagreed: in a sweep whose trials share the control prompt, the control is generated
(or looked up in the cache) once and its answer copied to every trial; each trial's manifest counted the
copies as its own cache hits. A real cached sweep (two prompt sets sharing a control) on the fake Ollama
server, run twice: the manifests' cache_hits sum to the cache's reuses, the copies are counted apart.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.queue_runs import producer, short_prompt_set, write_config
from tests.support.servers.fake_ollama import FakeModel, FakeOllama, FakeOllamaServer

SIZES = {"squad_v2": 1, "triviaqa": 1, "nq_open": 0}  # 2 items: 2 shared control + 2 x 2 treatment requests


def _generated(run_dir: Path) -> dict[str, dict]:
    return {m.parent.parent.name: json.loads(m.read_text(encoding="utf-8"))["stage_status"]["generated"]
            for m in run_dir.glob("*/results/trial_manifest.json")}


def test_cache_stats_counts_the_reuses_the_manifests_count(tmp_path):
    prompts = short_prompt_set(tmp_path)
    other = tmp_path / "treatment_b.txt"
    other.write_text("Answer in as few words as you can.\n", encoding="utf-8")
    queue = tmp_path / "queue"
    with FakeOllamaServer(FakeOllama(models=[FakeModel("smollm2:135m", digest="c" * 64)])) as server:
        cfg = write_config(tmp_path, cache=True, sizes=SIZES, local_engine="ollama", local_endpoint=server.url,
                           local_model="smollm2:135m", default_prompt_set="a", sweep={"prompt_sets": ["a", "b"]},
                           prompt_sets={"a": prompts, "b": {"control": prompts["control"], "treatment": str(other)}})
        outs = [producer(["run", "--config", str(cfg), "--workers", "1", "--run-id", rid], queue, timeout=300)
                for rid in ("first", "second")]
    assert [o.returncode for o in outs] == [0, 0], outs[1].stdout[-2000:] + outs[1].stderr[-2000:]
    generated = _generated(tmp_path / "experiments" / "run_second")
    assert len(generated) == 2
    own = sum(g["cache_hits"] for g in generated.values())
    shared = sum(g.get("shared_cache_hits", 0) for g in generated.values())
    assert (own, shared) == (6, 2)  # 6 requests generated (control once), 2 control answers copied to trial b
    stats = json.loads(producer(["cache", "stats", "--json"], queue, timeout=60).stdout)
    assert stats["entries"] == 6 and stats["hits"] == own  # every reuse was one request of the second run
    assert "(6 answered from the response cache)" in outs[1].stdout
    text = producer(["cache", "stats"], queue, timeout=60).stdout
    assert "6 answers, reused 6 times" in text
