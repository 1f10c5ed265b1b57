"""Shared generations across the trials of a sweep (both backends).

Why: in a sweep over treatment prompts (or top-level settings that do not touch the control), the
control requests of every trial are identical: same model, control prompt, item, temperature, sample
index, sampling and token limits. Generating them once halves the cost of a two-prompt sweep; the
first trial that needs a request owns it and the others reuse its result, and their trial manifests
say so (``shared_control_from``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any

from producer.inputs.messages import load_prompt_texts
from producer.inputs.requests_build import Request, iter_trial_requests
from producer.ledger.sweep import shared_counts
from producer.runs.manifests import update_trial_manifest
from producer.runs.run_records import TrialManifest
from producer.runs.trials import Trial


def share_key(model: str, custom_id: str, body: dict[str, Any]) -> str:
    """Identity of one generation: model + custom_id (item, condition, temp, sample) + exact body."""
    text = json.dumps([model, custom_id, body], sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def plan_shared(trial_requests: Iterable[tuple[Trial, Iterable[Request]]]
                ) -> tuple[list[tuple[Trial, list[Request]]], dict[tuple[str, str], str]]:
    """Split every trial's requests into the ones it generates and the ones it reuses.

    Returns ``(owned, shared_from)``: ``owned`` keeps each trial with only the requests it must
    generate (order preserved); ``shared_from[(trial, custom_id)]`` names the owner trial.
    """
    owner: dict[str, str] = {}
    owned: list[tuple[Trial, list[Request]]] = []
    shared: dict[tuple[str, str], str] = {}
    for trial, reqs in trial_requests:
        mine = []
        for req in reqs:
            key = share_key(req.model, req.custom_id, req.body)
            if key in owner:
                shared[(trial.slug, req.custom_id)] = owner[key]
            else:
                owner[key] = trial.slug
                mine.append(req)
        owned.append((trial, mine))
    return owned, shared


def generated_count(cfg: Any, trials: list[Trial], items: list[dict[str, Any]]) -> int:
    """How many of the trials' requests are really generated: identical ones (``share_key``) count once.

    Why: ``plan`` must say what will run; the enqueue path (``producer.planning.enqueue``) shares by the
    same key. A request's body differs between items only by the item's messages, so one item of each
    type stands for all of its type: the count costs a few requests per trial, not millions."""
    per_type: dict[str, int] = {}
    firsts: dict[str, dict[str, Any]] = {}
    for item in items:
        kind = cfg.item_type(item)
        per_type[kind] = per_type.get(kind, 0) + 1
        firsts.setdefault(kind, item)
    seen: set[str] = set()
    total = 0
    for trial in trials:
        for req in iter_trial_requests(cfg, trial, list(firsts.values()), load_prompt_texts(cfg, trial.prompt_set)):
            key = share_key(req.model, req.custom_id, req.body)
            if key not in seen:
                seen.add(key)
                total += per_type[req.type]
    return total


def write_manifest_notes(conn: Any, layout: Any, run_id: str) -> None:
    """``shared_control_from`` (owner trials) and ``shared_requests`` counts in each reusing trial's manifest."""
    for trial, owners in shared_counts(conn, run_id).items():
        def change(data: TrialManifest, owners: dict[str, int] = owners) -> None:
            data.set(shared_control_from=sorted(owners), shared_requests=dict(sorted(owners.items())))

        update_trial_manifest(layout.trial_manifest(trial), change)
