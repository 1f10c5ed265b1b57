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

from config.contract import TRIAL_MANIFEST_JSON
from producer.requests_build import Request
from producer.trials import Trial


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


# The ledger table that maps a reusing trial's request to its owner (created with the ledger schema).
SHARED_DDL = """create table if not exists shared_requests (
        run_id text not null, trial text not null, custom_id text not null, owner_trial text not null,
        primary key (run_id, trial, custom_id))"""


def register_shared(conn: Any, run_id: str, shared: dict[tuple[str, str], str]) -> None:
    """Record who reuses whom (insert-or-ignore; before the requests, so no request runs twice)."""
    from producer.ledger.db import transaction

    conn.execute(SHARED_DDL)
    with transaction(conn):
        conn.executemany(
            "insert or ignore into shared_requests (run_id, trial, custom_id, owner_trial) values (?, ?, ?, ?)",
            [(run_id, t, c, o) for (t, c), o in shared.items()],
        )


def shared_counts(conn: Any, run_id: str) -> dict[str, dict[str, int]]:
    """trial -> {owner_trial: number of requests it reuses}."""
    conn.execute(SHARED_DDL)
    out: dict[str, dict[str, int]] = {}
    for row in conn.execute("select trial, owner_trial, count(*) from shared_requests where run_id = ?"
                            " group by trial, owner_trial", (run_id,)):
        out.setdefault(row[0], {})[row[1]] = row[2]
    return out


def write_manifest_notes(conn: Any, layout: Any, run_id: str) -> None:
    """``shared_control_from`` (owner trials) and ``shared_requests`` counts in each reusing trial's manifest."""
    from producer.manifests import _update_json

    for trial, owners in shared_counts(conn, run_id).items():
        def change(data: dict[str, Any], owners: dict[str, int] = owners) -> None:
            data["shared_control_from"] = sorted(owners)
            data["shared_requests"] = dict(sorted(owners.items()))

        _update_json(layout.artifact(trial, TRIAL_MANIFEST_JSON), change)
