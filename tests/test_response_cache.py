"""The opt-in response cache (``cache: true``), end to end with the real SmolLM2 model and real runs.

A second run of the same requests answers from ``queue/response_cache.sqlite3``: the inference worker
never loads the model (the ledger's ``model_loads`` table counts every load), predictions.csv is the
same file, and the hits are counted in the trial manifest, local_costs.json and raw_results.jsonl.
A changed seed or prompt file misses; temperature > 0 without a fixed seed is never stored. Ollama's
cache key is the model's digest from ``/api/tags`` (tests/support/servers/fake_ollama.py), never its name.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from config.schema import EvalConfig
from tests.support.offline_config import offline_config_dict
from tests.support.queue_runs import ledger, producer, read_jsonl, results_dir, short_prompt_set, write_config
from tests.support.servers.fake_ollama import FakeModel, FakeOllama, FakeOllamaServer
from workers.engines.base import GenerationParams
from workers.response_cache import cache_for, deterministic

SIZES = {"squad_v2": 1, "triviaqa": 1, "nq_open": 0}  # small and fast: both question types, one item each
N_REQUESTS = 4  # 2 items x 2 conditions


def _config(tmp: Path, prompts: dict[str, str], name: str = "cfg.yaml", **overrides) -> Path:
    return write_config(tmp, name=name, cache=True, sizes=SIZES, prompt_sets={"default": prompts}, **overrides)


def _run(cfg: Path, queue: Path, run_id: str, timeout: float = 300) -> str:
    out = producer(["run", "--config", str(cfg), "--workers", "1", "--run-id", run_id], queue, timeout=timeout)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert f"done: {N_REQUESTS} results, 0 failed" in out.stdout, out.stdout
    return out.stdout + out.stderr


def _loads(queue: Path) -> int:
    with ledger(queue) as conn:
        return conn.execute("select count(*) from model_loads").fetchone()[0]


def _raw(tmp: Path, run_id: str) -> dict[str, dict]:
    return {r["custom_id"]: r for r in read_jsonl(results_dir(tmp, run_id) / "raw_results.jsonl")}


def _hits(tmp: Path, run_id: str) -> set[str]:
    return {cid for cid, r in _raw(tmp, run_id).items() if r["engine"].get("cache_hit")}


def _json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _stats(queue: Path) -> dict:
    out = producer(["cache", "stats", "--json"], queue, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.fixture(scope="module")
def cached(tmp_path_factory):
    """Two runs of the same small real config with ``cache: true`` in one queue folder."""
    tmp = tmp_path_factory.mktemp("cache")
    prompts = short_prompt_set(tmp)
    cfg = _config(tmp, prompts)
    queue = tmp / "queue"
    first_out = _run(cfg, queue, "first")
    loads_first = _loads(queue)
    second_out = _run(cfg, queue, "second")
    return SimpleNamespace(tmp=tmp, queue=queue, prompts=prompts, loads_first=loads_first,
                           loads_second=_loads(queue), first_out=first_out, second_out=second_out)


@pytest.mark.realmodel
def test_second_run_answers_from_the_cache_without_loading_the_model(cached):
    tmp = cached.tmp
    assert cached.loads_first == 1  # the first run loaded SmolLM2 once
    assert cached.loads_second == 1  # the second never loaded it: no request reached the engine
    # the console says where the answers came from (issue 29)
    assert f"done: {N_REQUESTS} results, 0 failed ({N_REQUESTS} answered from the response cache)" in cached.second_out
    assert "answered from the response cache" not in cached.first_out
    report = (results_dir(tmp, "second").parent / "reports" / "report.html").read_text(encoding="utf-8")
    assert "answered from the response cache" in report and "left out of the speeds and latencies" in report
    first, second = results_dir(tmp, "first"), results_dir(tmp, "second")
    # identical predictions, request_id included (a cached answer keeps the engine's original id)
    assert (second / "predictions.csv").read_bytes() == (first / "predictions.csv").read_bytes()
    raw1, raw2 = _raw(tmp, "first"), _raw(tmp, "second")
    assert len(raw2) == N_REQUESTS and _hits(tmp, "first") == set()
    for cid, row in raw2.items():
        assert row["engine"]["cache_hit"] is True and row["engine"]["name"] == "llama_cpp"
        assert row["engine"]["cached_latency_s"] == pytest.approx(raw1[cid]["latency_s"])
        assert row["response"]["body"]["choices"] == raw1[cid]["response"]["body"]["choices"]
    for run_id, hits in (("first", 0), ("second", N_REQUESTS)):
        rd = results_dir(tmp, run_id)
        assert _json(rd / "trial_manifest.json")["stage_status"]["generated"]["cache_hits"] == hits
        costs = _json(rd / "local_costs.json")
        assert costs["cache_hits"] == hits and costs["requests"] == N_REQUESTS
        assert "cache_hit" not in costs["engine"]  # a per-request fact, not the trial's engine setting
    with ledger(cached.queue) as conn:  # recorded through the normal path: one result per request, all done
        done = conn.execute("select count(*) from requests where run_id = 'second' and state = 'done'").fetchone()[0]
        results = conn.execute("select count(*) from results where run_id = 'second'").fetchone()[0]
    assert done == results == N_REQUESTS


@pytest.mark.realmodel
def test_a_changed_seed_misses(cached):
    cfg = _config(cached.tmp, cached.prompts, name="seed43.yaml", seed=43)
    before = _loads(cached.queue)
    _run(cfg, cached.queue, "seed43")
    assert _hits(cached.tmp, "seed43") == set()
    assert _loads(cached.queue) == before + 1  # the engine answered


@pytest.mark.realmodel
def test_a_changed_prompt_file_misses_for_its_condition_only(cached):
    changed = cached.tmp / "treatment_changed.txt"
    changed.write_text("You are a careful assistant. Answer in as few words as you can.\n", encoding="utf-8")
    prompts = {"control": cached.prompts["control"], "treatment": str(changed)}
    cfg = _config(cached.tmp, prompts, name="changed.yaml")
    _run(cfg, cached.queue, "changed")
    raw = _raw(cached.tmp, "changed")
    assert _hits(cached.tmp, "changed") == {cid for cid in raw if "|control|" in cid}
    assert len(raw) == N_REQUESTS and len(_hits(cached.tmp, "changed")) == N_REQUESTS // 2


@pytest.mark.realmodel
def test_temperature_above_zero_without_a_seed_is_neither_stored_nor_reused(cached):
    cfg = _config(cached.tmp, cached.prompts, name="warm.yaml", seed=None, temps=[0.7], samples_per_item={"0.7": 1})
    entries = _stats(cached.queue)["entries"]
    before = _loads(cached.queue)
    _run(cfg, cached.queue, "warm")
    assert _hits(cached.tmp, "warm") == set() and _loads(cached.queue) == before + 1
    assert _stats(cached.queue)["entries"] == entries  # nothing stored, so nothing a later run could reuse


@pytest.mark.realmodel
def test_llama_cpp_honours_a_fixed_seed(tmp_path):
    """Why llama_cpp is in SEEDED_ENGINES: at temperature 1 the same seed gives the same text."""
    from workers.engines.llama_cpp_engine import LlamaCppEngine

    cfg = EvalConfig(**offline_config_dict(tmp_path, local_engine="llama_cpp", local_model="smollm2", n_ctx=512,
                                           n_gpu_layers=0, n_threads=2))
    engine = LlamaCppEngine(cfg)
    messages = [{"role": "user", "content": "Write a word."}]

    def text(seed: int) -> str:
        return engine.generate(messages, GenerationParams(max_tokens=12, temperature=1.0, seed=seed)).text

    assert text(7) == text(7)
    assert len({text(s) for s in range(4)}) > 1  # the seed really drives the sampling


@pytest.mark.realmodel
def test_cache_stats_and_clear(cached):
    stats = _stats(cached.queue)
    assert stats["exists"] and stats["size_bytes"] > 0
    assert stats["entries"] >= 2 * N_REQUESTS and stats["hits"] >= N_REQUESTS + N_REQUESTS // 2
    (group,) = stats["models"]
    assert (group["engine"], group["model"]) == ("llama_cpp", "smollm2")
    assert group["model_id"].startswith("sha256:") and len(group["model_id"]) == len("sha256:") + 64
    text = producer(["cache", "stats"], cached.queue, timeout=60).stdout
    assert f"{stats['entries']} answers" in text and "llama_cpp" in text
    refused = producer(["cache", "clear"], cached.queue, timeout=60)  # no terminal to ask on: refuse
    assert refused.returncode == 2 and refused.stderr.strip().count("\n") == 0 and "--yes" in refused.stderr
    assert _stats(cached.queue)["entries"] == stats["entries"]
    cleared = producer(["cache", "clear", "--yes"], cached.queue, timeout=60)
    assert cleared.returncode == 0 and f"cleared {stats['entries']} cached answers" in cleared.stdout
    assert _stats(cached.queue)["entries"] == 0


def _chats(server: FakeOllamaServer) -> int:
    return sum(1 for _, path, _ in server.state.requests if path == "/api/chat")


def test_ollama_answers_are_keyed_by_the_model_digest_not_its_name(tmp_path):
    """Two models with the same name but another digest (a re-pull) never share cached answers."""
    digest_a, digest_b = "a" * 64, "b" * 64
    with FakeOllamaServer(FakeOllama(models=[FakeModel("smollm2:135m", digest=digest_a)])) as server:
        cfg = _config(tmp_path, short_prompt_set(tmp_path), local_engine="ollama", local_endpoint=server.url,
                      local_model="smollm2:135m")
        queue = tmp_path / "queue"
        _run(cfg, queue, "a")
        assert _chats(server) == N_REQUESTS and _hits(tmp_path, "a") == set()
        _run(cfg, queue, "a-again")
        assert _chats(server) == N_REQUESTS  # every answer came from the cache: no chat request
        assert len(_hits(tmp_path, "a-again")) == N_REQUESTS
        server.state.models[:] = [FakeModel("smollm2:135m", digest=digest_b)]  # same name, new weights
        _run(cfg, queue, "b")
        assert _chats(server) == 2 * N_REQUESTS and _hits(tmp_path, "b") == set()
    groups = {g["model_id"]: g for g in _stats(queue)["models"]}
    assert set(groups) == {digest_a, digest_b}
    assert {g["engine"] for g in groups.values()} == {"ollama"}
    assert groups[digest_a]["entries"] == groups[digest_b]["entries"] == N_REQUESTS


def test_a_damaged_cache_file_does_not_stop_the_run(tmp_path):
    queue = tmp_path / "queue"
    queue.mkdir()
    (queue / "response_cache.sqlite3").write_bytes(b"not a database at all" * 10)
    with FakeOllamaServer(FakeOllama(models=[FakeModel("smollm2:135m")])) as server:
        cfg = _config(tmp_path, short_prompt_set(tmp_path), local_engine="ollama", local_endpoint=server.url,
                      local_model="smollm2:135m")
        out = _run(cfg, queue, "damaged")
        assert _chats(server) == N_REQUESTS
    assert "response cache unavailable, running without it" in out and "not a SQLite database" in out
    stats = producer(["cache", "stats"], queue, timeout=60)
    assert stats.returncode == 2 and "not a SQLite database" in stats.stderr and "Traceback" not in stats.stderr
    assert len(stats.stderr.strip().splitlines()) == 1
    cleared = producer(["cache", "clear", "--yes"], queue, timeout=60)  # the way out the message names
    assert cleared.returncode == 0 and "removed the damaged response cache" in cleared.stdout
    assert not (queue / "response_cache.sqlite3").exists()


def test_a_locked_cache_is_given_up_after_one_wait(tmp_path):
    """Another process holds ``BEGIN EXCLUSIVE`` on the cache (issue 30, item 5): each lookup waited the
    60 s busy timeout (48 requests took 628 s instead of 45). Now the worker waits once, a few seconds,
    says so once, and runs without the cache."""
    queue = tmp_path / "queue"
    queue.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sqlite3, sys, time\n"
        f"c = sqlite3.connect({str(queue / 'response_cache.sqlite3')!r}, isolation_level=None)\n"
        "c.execute('begin exclusive')\nprint('held', flush=True)\ntime.sleep(600)\n")],
        stdout=subprocess.PIPE, text=True, encoding="utf-8")
    try:
        assert holder.stdout.readline().strip() == "held"
        with FakeOllamaServer(FakeOllama(models=[FakeModel("smollm2:135m")])) as server:
            cfg = _config(tmp_path, short_prompt_set(tmp_path), local_engine="ollama", local_endpoint=server.url,
                          local_model="smollm2:135m")
            start = time.monotonic()
            out = _run(cfg, queue, "locked", timeout=120)
            took = time.monotonic() - start
            assert _chats(server) == N_REQUESTS
    finally:
        holder.kill()
        holder.wait(10)
    assert out.count("response cache unavailable, running without it") == 1, out
    assert took < 45, took  # one short wait, not 60 s per lookup


@pytest.mark.unit
@pytest.mark.parametrize(("engine", "temperature", "seed", "expected"), [
    ("llama_cpp", 0.0, None, True), ("ollama", 0.0, None, True), ("openai_compat", 0.0, None, True),
    ("llama_cpp", 0.7, 42, True), ("ollama", 0.7, 42, True), ("openai_compat", 0.7, 42, False),
    ("llama_cpp", 0.7, None, False), ("ollama", 1.0, None, False),
])
def test_only_deterministic_requests_are_cached(engine, temperature, seed, expected):
    assert deterministic(engine, GenerationParams(max_tokens=8, temperature=temperature, seed=seed)) is expected


@pytest.mark.unit
@pytest.mark.parametrize("engine", ["openai_compat", "dry_run"])
def test_engines_without_a_model_identity_are_not_cached(tmp_path, engine):
    cfg = EvalConfig(**offline_config_dict(tmp_path, local_engine=engine, local_endpoint="http://127.0.0.1:9",
                                           local_model="some-model", cache=True))
    assert cache_for(cfg, engine, "some-model") is None
