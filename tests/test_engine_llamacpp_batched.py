"""The batched in-process llama.cpp engine (``n_parallel`` > 1) with the real SmolLM2 GGUF: one slot
answers like the sequential engine, P slots answer every request of a chunk, seeded sampling is
reproducible, shared prefixes are copied instead of prefilled, and a real run killed with -9 mid-batch
resumes with one result per request."""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from config.schema import load_config, validate_config_dict
from producer.inputs.prepare import ensure_prepared
from producer.planning.enqueue import chunked_requests
from tests.support.chunk_feeding import (
    both_chunks_in_one_call,
    ctrl_c_after_first_chunk,
    enqueued_chunks,
    results_per_request,
)
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
from workers.engines.base import GenerationParams, PermanentEngineError
from workers.engines.llama_cpp_batched import BATCHING, BatchedLlamaCppEngine
from workers.engines.llama_cpp_engine import LlamaCppEngine
from workers.engines.llama_cpp_slots import IDLE_S
from workers.engines.registry import create_engine

pytestmark = pytest.mark.realmodel


def _cfg(**extra):
    raw = {"local_engine": "llama_cpp", "local_model": "smollm2", "n_ctx": 4096, "n_gpu_layers": 0, "n_threads": 2}
    raw.update(extra)
    return validate_config_dict(raw, "test", check_files=False)


def _requests(tmp, short_prompts: bool, condition: str | None = None, prompts: dict | None = None, **sizes):
    """(messages, params) of real requests: the bundled samples, the project's builder and prompts."""
    extra = {"prompt_sets": {"default": prompts}} if prompts else {}
    cfg = load_config(write_config(tmp, short_prompts=short_prompts, sizes=sizes, **extra))
    out = []
    for req in chunked_requests(cfg, ensure_prepared(cfg).items):
        if condition in (None, req.condition):
            out.append((req.body["messages"], GenerationParams.from_body(req.body)))
    return out


def _run(engine, requests, threads: int = 1):
    if threads == 1:
        return [engine.generate(m, p) for m, p in requests]
    with ThreadPoolExecutor(threads) as pool:  # as workers.inference.process_chunk runs a chunk
        return list(pool.map(lambda r: engine.generate(*r), requests))


def _run_together(engine, requests):
    """All requests start in the same decode step, in the same order: the same batch shape every time."""
    scheduler = engine.runtime.scheduler
    with ThreadPoolExecutor(len(requests)) as pool:
        with scheduler.held(len(requests)):
            futures = []
            for r in requests:
                before = scheduler.submitted
                futures.append(pool.submit(engine.generate, *r))
                wait_for(lambda n=before: scheduler.submitted > n, 60, "the request to reach the scheduler", 0.01)
        return [f.result() for f in futures]


@pytest.fixture(scope="module")
def short_requests(tmp_path_factory):
    return _requests(tmp_path_factory.mktemp("short"), True, squad_v2=1, triviaqa=1, nq_open=1)


@pytest.fixture(scope="module")
def sequential(short_requests):
    """Today's engine (n_parallel 1) on the short-prompt requests, at T = 0 and at T = 0.7 with seeds."""
    engine = LlamaCppEngine(_cfg())
    hot = [(m, GenerationParams(p.max_tokens, 0.7, top_p=0.9, top_k=40, seed=7 + i)) for i, (m, p) in
           enumerate(short_requests)]
    return _run(engine, short_requests), _run(engine, hot), hot


def test_one_slot_answers_like_the_sequential_engine_with_the_demo_prompts(tmp_path):
    """P = 1 through the batched path, the real treatment prompt's first ~700 tokens (more than one
    512-token prefill chunk; the whole ~1,900 would only take three times as long to read twice), T = 0:
    the same answers, finish reasons and token counts as today's engine."""
    from tests.support.queue_runs import ROOT

    real = (ROOT / "config/prompts/treatment_system.txt").read_text(encoding="utf-8")
    (tmp_path / "treatment.txt").write_text(real[:3000], encoding="utf-8")
    prompts = {"control": str(ROOT / "config/prompts/control_system.txt"), "treatment": str(tmp_path / "treatment.txt")}
    requests = _requests(tmp_path, False, "treatment", prompts, squad_v2=1, triviaqa=1, nq_open=0)
    want = _run(LlamaCppEngine(_cfg()), requests)
    engine = BatchedLlamaCppEngine(_cfg(n_parallel=1))
    got = _run(engine, requests)
    assert [r.text for r in got] == [r.text for r in want] and all(r.text.strip() for r in got)
    assert [r.finish_reason for r in got] == [r.finish_reason for r in want]
    assert [r.usage for r in got] == [r.usage for r in want]
    assert got[0].usage.prompt_tokens > 600 and got[0].engine["n_parallel"] == 1
    assert got[1].engine["prompt_tokens_reused"] > 600  # the system prompt stayed cached in the slot


def test_one_slot_equals_sequential_at_t0_and_with_seeded_sampling(sequential, short_requests):
    cold, hot, hot_requests = sequential
    engine = BatchedLlamaCppEngine(_cfg(n_parallel=1))
    assert [r.text for r in _run(engine, short_requests)] == [r.text for r in cold]
    assert [r.text for r in _run(engine, hot_requests)] == [r.text for r in hot]  # same sampler chain, seeds


def test_four_slots_answer_a_chunk_with_right_usage_and_copied_prefixes(sequential, short_requests):
    cold, _, _ = sequential
    engine = create_engine(_cfg(n_parallel=4))
    assert isinstance(engine, BatchedLlamaCppEngine) and engine.thread_safe and engine.concurrency == 8
    before = engine.stats()
    got = _run(engine, short_requests, threads=4)
    stats = {k: v - before[k] for k, v in engine.stats().items()}
    for r, seq in zip(got, cold, strict=True):
        assert r.text.strip() and r.finish_reason in ("stop", "length") and r.request_id and r.latency_s > 0
        assert r.usage.prompt_tokens == seq.usage.prompt_tokens  # same chat template and tokenizer
        assert 1 <= r.usage.completion_tokens <= 8 and not r.usage.estimated
        assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
        assert r.engine["n_parallel"] == 4 and r.engine["batching"] == BATCHING
    assert stats["requests"] == len(short_requests)
    assert max(r.engine["sequences_per_step"] for r in got) > 1  # sequences really decoded together
    # the shared system prompt is prefilled once and copied: every later request skips it
    assert stats["prefix_copies"] >= 1 and stats["prefix_tokens_reused"] > 0
    assert stats["prefill_tokens"] == stats["prompt_tokens"] - stats["prefix_tokens_reused"]
    assert sum(r.engine["prompt_tokens_reused"] for r in got) == stats["prefix_tokens_reused"]
    assert sum(1 for r in got if r.engine["prompt_tokens_reused"] >= 20) >= len(got) - 2  # 1st of each condition
    # T = 0 batching may change answers at near-ties only (sequences mixed up would change them all)
    same = sum(r.text == s.text for r, s in zip(got, cold, strict=True))
    assert same >= len(got) // 3, (same, len(got))


def test_seeded_sampling_is_reproducible_for_the_same_batch_shape(sequential):
    _, _, hot_requests = sequential
    engine = BatchedLlamaCppEngine(_cfg(n_parallel=4))
    engine.runtime.scheduler._reset(RuntimeError("drop the cache"))  # both passes start from an empty cache
    first = [r.text for r in _run_together(engine, hot_requests[:4])]
    engine.runtime.scheduler._reset(RuntimeError("drop the cache"))
    again = [r.text for r in _run_together(engine, hot_requests[:4])]
    assert first == again and len(set(first)) > 1


def test_a_prompt_longer_than_the_shared_context_is_one_clear_line():
    engine = BatchedLlamaCppEngine(_cfg(n_ctx=512, n_parallel=2))
    with pytest.raises(PermanentEngineError) as err:
        engine.generate([{"role": "user", "content": "word " * 700}], GenerationParams(max_tokens=4, temperature=0.0))
    text = str(err.value)
    assert "\n" not in text and "n_ctx 512" in text and "n_parallel 2" in text


def test_kill_9_mid_batch_then_resume_gives_one_result_per_request(tmp_path):
    """A real worker pool with n_parallel 4, the inference worker killed while four requests are in
    flight, then the run finishes: every custom_id has exactly one result, none lost or doubled."""
    cfg = write_config(tmp_path, short_prompts=True, n_parallel=4, max_new_tokens={"closed_book": 24, "open_book": 24},
                       sizes={"squad_v2": 3, "triviaqa": 2, "nq_open": 2})
    queue = tmp_path / "queue"
    assert producer(["enqueue", "--config", str(cfg)], queue).returncode == 0
    run_id = run_id_of(queue)
    pool = popen(["-m", "workers", "-w", "1"], queue)
    try:
        wait_for(lambda: count_state(queue, run_id, "done") >= 1, 240, "the first results")
        with ledger(queue) as conn:
            holder = conn.execute("select pid from model_loads order by id desc limit 1").fetchone()[0]
        os.kill(holder, signal.SIGKILL if hasattr(signal, "SIGKILL") else signal.SIGTERM)
        wait_for(lambda: run_state(queue, run_id) == "done", 300, "the run to finish after the kill")
    finally:
        out = stop_process(pool)
    with ledger(queue) as conn:
        # requests charged a worker death: those in flight together when the kill landed (mid-batch)
        in_flight = conn.execute("select count(*) from requests where run_id = ? and crashes > 0", (run_id,)).fetchone()[0]
        n_results = conn.execute("select count(*) from results where run_id = ?", (run_id,)).fetchone()[0]
        engine = conn.execute("select engine from results where run_id = ? limit 1", (run_id,)).fetchone()[0]
    assert in_flight >= 2, out
    assert n_results == len(expected_ids(queue, run_id)) == 14
    assert '"n_parallel": 4' in engine
    _, rows = read_predictions(results_dir(tmp_path, run_id) / "predictions.csv")
    ids = [r["custom_id"] for r in rows]
    assert sorted(ids) == expected_ids(queue, run_id) and len(ids) == len(set(ids))
    assert all(r["response_text"].strip() for r in rows)


def test_one_call_keeps_the_slots_fed_across_chunks_with_one_result_per_request(tmp_path, isolated_queue):
    """Issue 28: the inference worker, with n_parallel 4, claims the run's next queued chunk while the
    first drains: one ``process_chunk`` call runs both chunks of a real run, reports each chunk as it
    finishes, records one result per request, and the second chunk's own message then finds nothing."""
    cfg = write_config(tmp_path, short_prompts=True, n_parallel=4, max_new_tokens={"closed_book": 4, "open_book": 4},
                       sizes={"squad_v2": 3, "triviaqa": 2, "nq_open": 2})
    run_id, chunks = enqueued_chunks(cfg, isolated_queue)
    assert len(chunks) == 2
    out, again, finished, requeued = both_chunks_in_one_call(run_id, chunks)
    assert out["chunks"] == chunks and out["claimed"] == out["done"] == 14 and sorted(finished) == chunks
    assert again == {"claimed": 0} and requeued == []
    assert results_per_request(isolated_queue, run_id) == [1] * 14
    with ledger(isolated_queue) as conn:
        assert {r[0] for r in conn.execute("select state from requests where run_id = ?", (run_id,))} == {"done"}


def test_ctrl_c_gives_back_what_the_prefetched_chunk_had_not_run(tmp_path, isolated_queue):
    """Ctrl+C (the process's STOP) once the first chunk has finished: the next chunk, claimed while the
    first drained, keeps the answers it already has and gives the rest back, queued, its message re-sent."""
    # chunks of 12 on 4 slots: the engine's 8 threads (4 decoding, 4 waiting) cannot have started all of
    # the second chunk when the first finishes
    cfg = write_config(tmp_path, short_prompts=True, n_parallel=4, max_new_tokens={"closed_book": 4, "open_book": 4},
                       sizes={"squad_v2": 6, "triviaqa": 3, "nq_open": 3})
    run_id, (first, second) = enqueued_chunks(cfg, isolated_queue)
    got = ctrl_c_after_first_chunk(isolated_queue, run_id, first, second)
    assert got["out"]["chunks"] == [first, second] and got["requeued"] == [(run_id, second)]
    assert got["states"].get("queued", 0) >= 1 and set(got["states"]) <= {"done", "queued"} and got["held"] == 0
    assert got["results"] == 12 + got["states"].get("done", 0) == got["out"]["done"]


def test_a_freed_slot_is_refilled_before_the_next_step_though_recording_takes_time(short_requests):
    """Between two requests a worker thread records the answer (a ledger write and commit: milliseconds,
    more on a busy disk). With only P threads feeding P slots, every slot that frees waits out that
    write with no sequence in it while the others decode; the engine's ``concurrency`` (P threads plus
    requests waiting ready in the scheduler) refills it before the next step. ``late_refills`` counts
    the freed slots a step left empty although another request was still to come."""
    from workers.inference import feed_slots

    engine = create_engine(_cfg(n_parallel=2))
    assert engine.concurrency > 2  # more threads than slots: the extra requests wait, already tokenized
    # 2-token answers beside longer ones (6-12 tokens here): one slot still decodes when the other frees
    closed = [m for m, _ in short_requests if len(m[-1]["content"]) < 400]  # no paragraph to prefill
    requests = [(m, GenerationParams(2 if i % 2 else 24, 0.0)) for i, m in enumerate(closed * 3)]

    def late(threads: int) -> int:
        time.sleep(IDLE_S + 0.1)  # the last run's tail is forgotten: its empty slots had nothing to take
        before = engine.stats()
        items = iter([requests[:6], requests[6:]])

        def run(request) -> str:
            engine.generate(*request)
            time.sleep(0.02)  # the ledger write between two requests, as workers.inference._run_one does
            return "done"

        feed_slots(threads, next(items), lambda: next(items, None), run, lambda *_: None)
        return engine.stats()["late_refills"] - before["late_refills"]

    assert late(2) > 0  # P feeders: the slot stays empty while its thread records
    assert late(engine.concurrency) == 0
