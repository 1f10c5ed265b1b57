"""Throughput guarantee: the queue's inference order keeps requests sharing a system prompt back to back
(docs/architecture.md fact 5). tools/bench_prefix_order.py measures what this is worth."""

from __future__ import annotations

import itertools

import pytest

from config.schema import validate_config_dict
from producer.planning import enqueue

pytestmark = pytest.mark.unit


def test_chunked_requests_switch_system_prompt_once_per_condition_block():
    cfg = validate_config_dict(
        {"local_engine": "dry_run", "temps": [0.0, 0.7], "samples_per_item": {"0.0": 1, "0.7": 2}}
    )
    items = [{"dataset": "nq_open", "id": f"q{i}", "question": f"question {i}?", "answers": ["a"]} for i in range(7)]
    reqs = list(enqueue.chunked_requests(cfg, items, chunk_size=4))
    assert len(reqs) == 7 * 2 * (1 + 2)
    systems = [r.body["messages"][0]["content"] for r in reqs]
    blocks = [key for key, _ in itertools.groupby(zip(systems, (r.temp for r in reqs), strict=True))]
    assert len(blocks) == 4  # (control, treatment) x 2 temperatures: one prompt switch per block
    for _, group in itertools.groupby(reqs, key=lambda r: r.chunk):  # a chunk never mixes prompts
        assert len({r.body["messages"][0]["content"] for r in group}) == 1
    assert [r.seq for r in reqs] == sorted(r.seq for r in reqs)
    assert [r.chunk for r in reqs] == sorted(r.chunk for r in reqs)
