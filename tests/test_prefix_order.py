"""Prefix-aware order (issue 17 item 1): within each block of one system prompt, requests run by type
(task instruction), then SQuAD paragraph, then item, so neighbours share the longest prefix; each
condition is its own block and both conditions get the same item order. tools/bench_order.py
measures what this is worth."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from config.contract import parse_custom_id
from config.schema import load_config, validate_config_dict
from producer.inputs.messages import load_prompt_texts
from producer.inputs.prepare import ensure_prepared
from producer.inputs.requests_build import iter_trial_requests
from producer.planning import enqueue
from producer.runs.trials import expand_trials
from tests.support.paths import ROOT
from tests.support.workdirs import make_workdir


def _open(item_id: str, context: str) -> dict:
    return {"dataset": "squad_v2", "id": item_id, "context": context, "question": f"{item_id}?", "answers": ["a"]}


def _closed(item_id: str) -> dict:
    return {"dataset": "nq_open", "id": item_id, "question": f"{item_id}?", "answers": ["a"]}


def _cfg(temps=(0.0,), samples=None):
    samples = samples or {"0.0": 1}
    return validate_config_dict({"local_engine": "dry_run", "temps": list(temps), "samples_per_item": samples})


def _ids(cfg, items, conditions=("control", "treatment")) -> list[str]:
    trial = expand_trials(cfg)[0]
    return [r.custom_id for r in iter_trial_requests(cfg, trial, items, load_prompt_texts(cfg, trial.prompt_set),
                                                     conditions=conditions)]


@pytest.mark.unit
def test_interleaved_paragraphs_and_types_are_grouped():
    """Closed first, paragraphs interleaved: type by first appearance, then paragraph, then given order."""
    items = [_closed("c1"), _open("a1", "Para A"), _open("b1", "Para B"), _closed("c2"), _open("a2", "Para A"),
             _open("b2", "Para B"), _open("a3", "Para A")]
    got = [parse_custom_id(c).item_id for c in _ids(_cfg(), items, conditions=("control",))]
    assert got == ["c1", "c2", "a1", "a2", "a3", "b1", "b2"]


@pytest.fixture
def demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The demo config on every bundled sample item, two temperatures, K = 2 at the second."""
    monkeypatch.chdir(make_workdir(tmp_path))
    cfg = load_config("config/eval_config.demo.yaml")
    cfg = cfg.model_copy(update={"temps": [0.0, 0.7], "samples_per_item": {"0.0": 1, "0.7": 2},
                                 "sizes": cfg.sizes.model_copy(update={"squad_v2": None, "triviaqa": 5,
                                                                       "nq_open": 5})})
    return cfg, ensure_prepared(cfg).items


@pytest.mark.unit
def test_each_block_runs_types_then_paragraphs_then_items(demo):
    cfg, items = demo
    trial = expand_trials(cfg)[0]
    reqs = list(iter_trial_requests(cfg, trial, items, load_prompt_texts(cfg, trial.prompt_set)))
    blocks = [(key, list(group)) for key, group in itertools.groupby(reqs, key=lambda r: (r.temp, r.condition))]
    assert [k for k, _ in blocks] == [("0.0", "control"), ("0.0", "treatment"), ("0.7", "control"),
                                      ("0.7", "treatment")]  # each condition its own block, per temperature
    position = {(it["dataset"], it["id"]): i for i, it in enumerate(items)}
    context = {(it["dataset"], it["id"]): it.get("context") for it in items}
    orders = {}
    for (temp, condition), block in blocks:
        assert len({r.body["messages"][0]["content"] for r in block}) == 1  # one system prompt per block
        keys = [(parse_custom_id(r.custom_id).dataset, parse_custom_id(r.custom_id).item_id) for r in block]
        types = [k for k, _ in itertools.groupby(r.type for r in block)]
        assert sorted(types) == sorted(set(types)) == ["closed", "open"]  # each type one run
        paragraphs = [k for k, _ in itertools.groupby(context[k] for k in keys if context[k] is not None)]
        assert len(paragraphs) == len(set(paragraphs)) == 6  # the sample's 6 paragraphs, each one run
        for _, group in itertools.groupby(keys, key=lambda k: context[k] or k):  # prepared order inside
            firsts = [position[k] for k, _ in itertools.groupby(group)]
            assert firsts == sorted(firsts)
        opens = [r for r in block if r.type == "open"]
        for a, b in zip(opens, opens[1:], strict=False):  # same paragraph -> same user-message start
            ka, kb = (parse_custom_id(r.custom_id) for r in (a, b))
            if context[(ka.dataset, ka.item_id)] == context[(kb.dataset, kb.item_id)]:
                ua, ub = a.body["messages"][1]["content"], b.body["messages"][1]["content"]
                assert ua.split("QUESTION:")[0] == ub.split("QUESTION:")[0]
        orders[(temp, condition)] = [(k, parse_custom_id(r.custom_id).sample_index) for k, r in zip(keys, block,
                                                                                                      strict=True)]
    assert orders[("0.0", "control")] == orders[("0.0", "treatment")]
    assert orders[("0.7", "control")] == orders[("0.7", "treatment")]
    same_paragraph_pairs = sum(1 for a, b in zip(orders[("0.0", "control")], orders[("0.0", "control")][1:],
                                                 strict=False)
                               if context[a[0]] is not None and context[a[0]] == context[b[0]])
    assert same_paragraph_pairs == 34 - 6  # 34 SQuAD questions on 6 paragraphs: all but each first share


@pytest.mark.unit
def test_chunks_cut_one_trial_temp_condition_and_follow_the_order(demo):
    cfg, items = demo
    reqs = list(enqueue.chunked_requests(cfg, items, chunk_size=4))
    trial = expand_trials(cfg)[0]
    built = [r.custom_id for r in iter_trial_requests(cfg, trial, items, load_prompt_texts(cfg, trial.prompt_set))]
    assert [r.custom_id for r in reqs] == built  # the queue runs the builder's order
    for _, group in itertools.groupby(reqs, key=lambda r: r.chunk):
        group = list(group)
        assert len({(r.trial, r.temp, r.condition) for r in group}) == 1 and len(group) <= 4


def test_order_does_not_depend_on_hash_seed():
    """Same order in two interpreters with different string hashing."""
    script = ("import json, sys; sys.path.insert(0, sys.argv[1]);"
              "from tests.test_prefix_order import _cfg, _ids, _open, _closed;"
              "items = [_open(f'o{i}', f'P{i % 4}') for i in range(12)] + [_closed(f'c{i}') for i in range(3)];"
              "print(json.dumps(_ids(_cfg(), items)))")
    outs = []
    for seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        proc = subprocess.run([sys.executable, "-c", script, str(ROOT)], capture_output=True, text=True,
                              encoding="utf-8", env=env, cwd=ROOT, timeout=120)
        assert proc.returncode == 0, proc.stderr
        outs.append(json.loads(proc.stdout))
    assert outs[0] == outs[1] and len(outs[0]) == 30
