"""P sequences in one llama.cpp context: continuous batching over a unified KV cache.

Why one scheduler thread: a llama.cpp context is not thread-safe, and batching needs every live
sequence's next token in one ``llama_decode``. Worker threads hand a request to ``submit`` and wait;
the scheduler admits it into a free slot as soon as one frees up, starting from the longest prefix
already cached in any slot (``llama_memory_seq_cp``: in a unified cache it only tags cells, no
compute), prefills only the rest, and decodes every live sequence together, one token each per step.
Sampling (llama.cpp's sampler chain, seeded per request) and stop handling mirror llama-cpp-python's
non-streaming ``create_completion``, so one slot answers token for token like the sequential engine.

Memory: ``n_ctx`` is the whole cache, shared by all slots. The scheduler keeps its own model of the
cells (a reference count per cell, exactly what ``seq_cp``/``seq_rm`` do in a unified cache) and
admits a request only when its prompt suffix and ``max_tokens`` fit beside what live sequences may
still need; otherwise idle slots' caches are evicted, and if that is not enough the request waits
for a live one to finish.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from config.llama_cpp_import import import_llama_cpp
from workers.engines.base import PermanentEngineError, TransientEngineError

MIN_WAIT_GAIN = 16  # a request waits for a prefill in progress when that saves more prompt tokens than this
# A slot that frees mid-run is refilled in the next step only if its request arrives first: the thread
# whose answer just finished brings the next one within a millisecond or so, so the scheduler waits for
# it that long (at most this share of a step, and this long), instead of stepping with one slot empty.
REFILL_WAIT_MAX_S = 0.005
REFILL_WAIT_STEP_SHARE = 0.25
IDLE_S = 0.5  # nothing to run for this long: the scheduler checks for close, and what comes next is a new ramp
MULTIBYTE_SLACK = 3  # create_completion may run up to 3 tokens past max_tokens to finish a UTF-8 character


@dataclass
class Job:
    """One request on its way through the scheduler; ``done`` is set when it finished or failed."""

    prompt: list[int]
    max_tokens: int
    sampling: dict[str, Any]  # temperature, top_k, top_p, min_p, typical_p, penalties, seed
    stop: list[bytes]
    done: threading.Event = field(default_factory=threading.Event)
    completion: list[int] = field(default_factory=list)
    text: bytes = b""
    finish_reason: str = "length"
    error: BaseException | None = None
    reused: int = 0  # prompt tokens taken from the cache (not prefilled)
    copied: bool = False  # the reused prefix came from another slot (llama_memory_seq_cp)
    steps: int = 0  # decode steps this sequence took part in
    seqs: int = 0  # sum over those steps of the sequences decoded together
    multibyte_fix: int = 0
    admitted: float = 0.0


@dataclass
class _Slot:
    seq_id: int
    tokens: list[int] = field(default_factory=list)  # prompt + sampled tokens; tokens[:n_past] are cached
    cells: list[int] = field(default_factory=list)  # cache cell of each cached position
    n_past: int = 0
    job: Job | None = None
    sampler: Any = None
    last_used: float = 0.0


def common_prefix(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


class SlotScheduler:
    """Owns one llama.cpp context with ``n_parallel`` sequences; ``submit`` from any thread."""

    def __init__(self, llm: Any, ctx: Any, n_parallel: int, n_batch: int) -> None:
        self._lc = import_llama_cpp()
        self._llm, self._ctx = llm, ctx
        self._mem = self._lc.llama_get_memory(ctx.ctx)
        self.n_ctx = int(self._lc.llama_n_ctx(ctx.ctx))
        self.n_parallel, self._n_batch = n_parallel, n_batch
        self._batch = self._lc.llama_batch_init(n_batch, 0, 1)  # one sequence id per token
        self._slots = [_Slot(i) for i in range(n_parallel)]
        self._ref: dict[int, int] = {}  # cell -> number of sequences holding it
        self._next_cell = 0
        self._inbox: queue.Queue[Job | None] = queue.Queue()
        self._waiting: list[Job] = []
        self._closed = False
        self._freed, self._step_s = False, 0.0  # a slot freed in the last step; how long that step took
        self._gate = threading.Lock()  # held by ``held``: keeps the scheduler from stepping
        self._count_lock = threading.Lock()
        self.submitted = 0  # requests handed to ``submit`` so far
        self.stats = {"requests": 0, "prompt_tokens": 0, "prefix_tokens_reused": 0, "prefix_copies": 0,
                      "prefill_tokens": 0, "decode_steps": 0, "sequences_decoded": 0, "cache_evictions": 0,
                      "cache_waits": 0, "late_refills": 0}
        # one flag per slot freed and not yet refilled, oldest first: set when a step ran while it was
        # empty and no request waited; its refill is then late (the next request was still on its way)
        self._vacancies: list[bool] = []
        self._thread = threading.Thread(target=self._run, name="llama-slots", daemon=True)
        self._thread.start()

    # ---- caller side -------------------------------------------------------------------------------
    def submit(self, job: Job) -> Job:
        """Queue ``job`` and wait until it is finished; raises the error it failed with."""
        if self._closed:
            raise PermanentEngineError("the batched llama.cpp engine was closed")
        self._inbox.put(job)
        with self._count_lock:
            self.submitted += 1
        while not job.done.wait(1.0):
            if not self._thread.is_alive():
                raise TransientEngineError("the batched llama.cpp scheduler stopped")
        if job.error is not None:
            raise job.error
        return job

    @contextmanager
    def held(self, arrivals: int) -> Iterator[None]:
        """No decode step until ``arrivals`` requests are waiting (or 60 s passed) after the block: a
        batch of that shape starts together. For tests and benchmarks that need the same batch shape."""
        with self._gate:
            start = self.submitted
            yield
            deadline = time.monotonic() + 60
            while self.submitted - start < arrivals and time.monotonic() < deadline:
                time.sleep(0.01)

    def close(self) -> None:
        self._closed = True
        self._inbox.put(None)
        self._thread.join()
        closed = TransientEngineError("the batched llama.cpp engine was closed")
        for job in self._waiting + [s.job for s in self._slots if s.job is not None]:
            self._fail(job, closed)
        for slot in self._slots:
            slot.job = None
            self._free_sampler(slot)
        if self._batch is not None:
            self._lc.llama_batch_free(self._batch)
            self._batch = None

    # ---- scheduler thread --------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._closed:
            idle = not self._live() and not self._waiting
            self._pull(block=idle)
            if idle and not self._waiting:  # idle for IDLE_S: what comes next is a new ramp, not a refill
                self._vacancies.clear()
            if self._freed and self._live() and not self._waiting:
                self._pull(block=True, timeout=min(REFILL_WAIT_MAX_S, REFILL_WAIT_STEP_SHARE * self._step_s))
            self._freed = False
            if self._closed:
                break
            try:
                with self._gate:
                    self._pull(block=False)
                    self._admit_waiting()
                    if self._live():
                        self._step()
            except Exception as exc:  # noqa: BLE001 - an engine bug fails the live requests, not the thread
                self._reset(exc)

    def _pull(self, block: bool, timeout: float = IDLE_S) -> None:
        try:
            item = self._inbox.get(timeout=timeout) if block else self._inbox.get_nowait()
            while True:
                if item is None:
                    self._closed = True
                    return
                self._waiting.append(item)
                item = self._inbox.get_nowait()
        except queue.Empty:
            return

    def _live(self) -> list[_Slot]:
        return [s for s in self._slots if s.job is not None]

    # ---- admission ---------------------------------------------------------------------------------
    def _admit_waiting(self) -> None:
        while self._waiting and self._admit(self._waiting[0]):
            self._waiting.pop(0)

    def _admit(self, job: Job) -> bool:
        """Place ``job`` in a free slot (True), or leave it waiting (False)."""
        free = [s for s in self._slots if s.job is None]
        if not free:
            return False
        best, k = None, 0
        for s in sorted(self._slots, key=lambda s: s.job is not None):  # idle first: reuse in place on ties
            n = common_prefix(s.tokens[: s.n_past], job.prompt)
            if n > k:
                best, k = s, n
        for s in self._live():  # a prefill in progress will cache more of this prompt: wait for it
            if s.n_past < len(s.job.prompt) and common_prefix(s.job.prompt, job.prompt) - k > MIN_WAIT_GAIN:
                return False
        k = min(k, len(job.prompt) - 1)  # at least one token is decoded, for its logits
        if best is not None and best.job is None:
            dst = best
        else:
            dst = min(free, key=lambda s: (s.n_past > 0, s.last_used))
        if not self._make_room(job, dst, best, k):
            self.stats["cache_waits"] += 1
            return False
        if dst is best:
            k = self._drop(dst, k)
        else:
            self._drop(dst, 0)
            if best is not None and k > 0:
                self._lc.llama_memory_seq_cp(self._mem, best.seq_id, dst.seq_id, 0, k)
                dst.cells = best.cells[:k]
                for c in dst.cells:
                    self._ref[c] += 1
                job.copied = True
                self.stats["prefix_copies"] += 1
        dst.tokens, dst.n_past = list(job.prompt), k
        dst.job, dst.sampler = job, self._sampler(job.sampling)
        job.reused, job.admitted = k, time.monotonic()
        if self._vacancies and self._vacancies.pop(0):
            self.stats["late_refills"] += 1
        self.stats["requests"] += 1
        self.stats["prompt_tokens"] += len(job.prompt)
        self.stats["prefix_tokens_reused"] += k
        return True

    def _need(self, slot: _Slot) -> int:
        """Cells a live sequence may still add: the rest of its prompt and of its completion."""
        job = slot.job
        assert job is not None
        return max(0, len(job.prompt) - slot.n_past) + max(0, job.max_tokens + MULTIBYTE_SLACK - len(job.completion))

    def _make_room(self, job: Job, dst: _Slot, best: _Slot | None, k: int) -> bool:
        def fits() -> bool:
            keep = k if dst is best else 0
            freed = sum(1 for c in dst.cells[keep:] if self._ref[c] == 1)
            live = sum(self._need(s) for s in self._live())
            return len(self._ref) - freed + live + len(job.prompt) - k + job.max_tokens <= self.n_ctx

        while not fits():
            idle = [s for s in self._slots if s.job is None and s.cells and s is not dst and s is not best]
            if not idle:
                return not self._live()  # alone it always fits (max_tokens was cut to n_ctx)
            self._drop(min(idle, key=lambda s: s.last_used), 0)
            self.stats["cache_evictions"] += 1
        return True

    def _drop(self, slot: _Slot, keep: int) -> int:
        """Forget the slot's cache from position ``keep`` on (in llama.cpp and in the cell model); returns
        the positions kept (0 when llama.cpp cannot cut this memory partway)."""
        if keep < slot.n_past:
            if not self._lc.llama_memory_seq_rm(self._mem, slot.seq_id, keep, -1):
                self._lc.llama_memory_seq_rm(self._mem, slot.seq_id, -1, -1)
                keep = 0
        for c in slot.cells[keep:]:
            self._ref[c] -= 1
            if not self._ref[c]:
                del self._ref[c]
        slot.cells = slot.cells[:keep]
        slot.tokens = slot.tokens[:keep]
        slot.n_past = min(slot.n_past, keep)
        return keep

    def _sampler(self, s: dict[str, Any]) -> Any:
        """The chain llama-cpp-python's ``Llama._init_sampler`` builds (same order, same seed)."""
        from llama_cpp._internals import LlamaSampler

        smp = LlamaSampler()
        smp.add_penalties(n_vocab=self._llm.n_vocab(), penalty_last_n=self._llm.last_n_tokens_size,
                          penalty_repeat=s["repeat_penalty"], penalty_freq=s["frequency_penalty"],
                          penalty_present=s["presence_penalty"])
        temp = s["temperature"]
        if temp < 0.0:
            smp.add_dist(s["seed"])
        elif temp == 0.0:
            smp.add_greedy()
        else:
            smp.add_top_k(s["top_k"])
            smp.add_typical(s["typical_p"], 1)
            smp.add_top_p(s["top_p"], 1)
            smp.add_min_p(s["min_p"], 1)
            smp.add_temp(temp)
            smp.add_dist(s["seed"])
        return smp

    # ---- one decode step ---------------------------------------------------------------------------
    def _step(self) -> None:
        live = self._live()
        decoding = [s for s in live if s.n_past >= len(s.job.prompt)]
        prefilling = sorted((s for s in live if s.n_past < len(s.job.prompt)), key=lambda s: s.job.admitted)
        room, plan = self._n_batch, []
        for s in decoding + prefilling:
            n = min(room, len(s.tokens) - s.n_past)
            if n <= 0:
                break
            plan.append((s, n))
            room -= n
        b, i, outputs = self._batch, 0, []
        for s, n in plan:
            last = len(s.tokens) - 1
            for pos in range(s.n_past, s.n_past + n):
                b.token[i], b.pos[i], b.n_seq_id[i] = s.tokens[pos], pos, 1
                b.seq_id[i][0] = s.seq_id
                b.logits[i] = pos == last
                if pos == last:
                    outputs.append((s, i))
                i += 1
        b.n_tokens = i
        if not self._waiting:  # these empty slots had no request to take: starved, not deferred
            self._vacancies = [True] * len(self._vacancies)
        started = time.perf_counter()
        rc = self._lc.llama_decode(self._ctx.ctx, b)
        self._step_s = time.perf_counter() - started
        if rc == 1:  # no room in the cache after all: evict idle slots, else give up the newest request
            self._cache_full()
            return
        if rc != 0:
            raise RuntimeError(f"llama_decode returned {rc}")
        for s, n in plan:
            s.cells.extend(range(self._next_cell, self._next_cell + n))
            for c in range(self._next_cell, self._next_cell + n):
                self._ref[c] = 1
            self._next_cell += n
            s.n_past += n
            if s.n_past <= len(s.job.prompt):
                self.stats["prefill_tokens"] += n
        self.stats["decode_steps"] += 1
        self.stats["sequences_decoded"] += len(plan)
        for s, idx in outputs:
            s.job.steps += 1
            s.job.seqs += len(plan)
            token = self._lc.llama_sampler_sample(s.sampler.sampler, self._ctx.ctx, idx)
            self._on_token(s, int(token))

    def _on_token(self, slot: _Slot, token: int) -> None:
        """What ``Llama._create_completion`` does with each sampled token (non-streaming)."""
        job = slot.job
        assert job is not None
        llm = self._llm
        if self._lc.llama_vocab_is_eog(llm._model.vocab, token):
            job.text = llm.detokenize(job.completion, prev_tokens=job.prompt)
            job.finish_reason = "stop"
            self._finish(slot)
            return
        job.completion.append(token)
        all_text = llm.detokenize(job.completion, prev_tokens=job.prompt)
        for k, char in enumerate(all_text[-3:]):
            k = 3 - k
            for num, pattern in [(2, 192), (3, 224), (4, 240)]:
                if num > k and pattern & char == pattern:
                    job.multibyte_fix = num - k
        if job.multibyte_fix > 0:
            job.multibyte_fix -= 1
            slot.tokens.append(token)
            return
        stops = [s for s in job.stop if s in all_text]
        if stops:
            job.text = all_text[: all_text.index(stops[0])]
            job.finish_reason = "stop"
            self._finish(slot)
        elif len(job.completion) >= job.max_tokens:
            job.text, job.finish_reason = all_text, "length"
            self._finish(slot)
        else:
            slot.tokens.append(token)

    def _finish(self, slot: _Slot) -> None:
        job = slot.job
        slot.job, slot.tokens, slot.last_used = None, slot.tokens[: slot.n_past], time.monotonic()
        self._freed = True
        self._vacancies.append(False)
        self._free_sampler(slot)
        if job is not None:
            job.done.set()

    def _cache_full(self) -> None:
        idle = [s for s in self._slots if s.job is None and s.cells]
        for s in idle:
            self._drop(s, 0)
            self.stats["cache_evictions"] += 1
        if idle:
            return
        newest = max(self._live(), key=lambda s: s.job.admitted)
        job = newest.job
        self._drop(newest, 0)
        self._finish(newest)
        assert job is not None
        self._fail(job, PermanentEngineError(
            f"the KV cache is full: n_ctx {self.n_ctx} cannot hold {self.n_parallel} sequences of this length; "
            "raise n_ctx or lower n_parallel"))

    def _fail(self, job: Job, exc: BaseException) -> None:
        job.error = exc
        job.done.set()

    def _free_sampler(self, slot: _Slot) -> None:
        if slot.sampler is not None:
            slot.sampler.close()
            slot.sampler = None

    def _reset(self, exc: Exception) -> None:
        """After an unexpected error: fail the live requests, empty the cache, keep serving."""
        err = TransientEngineError(f"batched llama.cpp step failed: {' '.join(str(exc).split())}")
        for s in self._slots:
            job = s.job
            s.job, s.tokens, s.cells, s.n_past = None, [], [], 0
            self._free_sampler(s)
            if job is not None:
                self._fail(job, err)
        self._ref.clear()
        self._vacancies.clear()
        self._lc.llama_memory_clear(self._mem, True)
