"""Every request of a trial, in prefix-aware order (CONTRACT section 2).

Why: one place turns (trial, items) into request bodies, so the local queue, the batch input files
and the Fireworks jobs send exactly the same thing. Requests come out grouped by temperature, then
condition (all control, then all treatment), so consecutive requests share the system prompt; within
each such block items run by type (the task instruction), then by paragraph (open-book context), then
item, so consecutive requests share the longest prefix an engine's prefix cache can reuse
(docs/architecture.md fact 5). Both conditions get the same item order.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from config.contract import CONDITIONS, build_custom_id, temp_label
from config.schema import EvalConfig
from producer.inputs.messages import PromptTexts, render_messages
from producer.runs.trials import Trial


@dataclass(frozen=True)
class Request:
    custom_id: str
    trial: str
    model: str
    condition: str
    temp: str
    type: str
    body: dict[str, Any]

    def to_batch_row(self) -> dict[str, Any]:
        """The batch input JSONL row: ``{"custom_id", "body"}``."""
        return {"custom_id": self.custom_id, "body": self.body}


def request_body(
    cfg: EvalConfig, trial: Trial, messages: list[dict[str, str]], temp: float, type_: str
) -> dict[str, Any]:
    """Body with absent optional values omitted."""
    body: dict[str, Any] = {
        "messages": messages,
        "max_tokens": trial.max_tokens_for(type_),
        "temperature": float(temp),
    }
    if trial.top_p is not None:
        body["top_p"] = trial.top_p
    if trial.top_k is not None:
        body["top_k"] = trial.top_k
    if cfg.stop:
        body["stop"] = list(cfg.stop)
    if cfg.seed is not None:
        body["seed"] = cfg.seed
    return body


def prefix_order(cfg: EvalConfig, items: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Items by type, then open-book paragraph, then their given order: neighbours share the longest prefix.

    Why: an engine reuses the longest token prefix a request shares with the one before it (the system
    prompt, then the task instruction, then the paragraph). Types and paragraphs keep the order of their
    first appearance, so the result is deterministic and the prepared (seeded) order still decides
    everything else. A closed-book item shows no context, so it is a group of its own.
    """
    items = list(items)
    type_rank: dict[str, int] = {}
    group_rank: dict[tuple[str, Any], int] = {}
    keys: list[tuple[int, int]] = []
    for index, item in enumerate(items):
        type_ = cfg.item_type(item)
        type_rank.setdefault(type_, len(type_rank))
        paragraph = item.get("context") if type_ == "open" else None
        group = (type_, paragraph if paragraph is not None else ("item", index))
        group_rank.setdefault(group, len(group_rank))
        keys.append((type_rank[type_], group_rank[group]))
    order = sorted(range(len(items)), key=keys.__getitem__)  # stable: items keep their order in a group
    return [items[i] for i in order]


def iter_trial_requests(
    cfg: EvalConfig,
    trial: Trial,
    items: Iterable[dict[str, Any]],
    texts: PromptTexts,
    conditions: Iterable[str] = CONDITIONS,
) -> Iterator[Request]:
    """Requests of one trial: temperature → condition → type → paragraph → item → sample (prefix-aware
    order, ``prefix_order``). An A/A trial (``trial.aa_of``) sends the control prompt in both arms."""
    items = prefix_order(cfg, items)
    if trial.aa_of:
        texts = texts.control_twice()
    for temp in trial.temps:
        label = temp_label(temp)
        k = cfg.samples_for(temp)
        for condition in conditions:
            for item in items:
                type_ = cfg.item_type(item)
                messages = render_messages(texts, item, condition, type_)
                body = request_body(cfg, trial, messages, temp, type_)
                for s in range(k):
                    cid = build_custom_id(item["dataset"], item["id"], condition, label, s, type_)
                    yield Request(cid, trial.slug, trial.model, condition, label, type_, body)
