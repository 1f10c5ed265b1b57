"""The Anthropic provider's two records (issue 25): its custom_id map and each part's batch.

Why in the ledger: Anthropic takes custom_ids of ``^[a-zA-Z0-9_-]{1,64}$`` only, and ours
(``dataset|item_id|condition|temp|sample_index|type``) do not fit, so each gets a provider id that must
be read back after any crash; and Anthropic assigns batch ids and keeps no metadata of ours, so the
intent to create a part's batch is written here *before* the create is sent, and the batch id as soon
as it is heard. How a batch is found from an intent: ``workers/anthropic_batch/provider.py`` and
docs/batch-providers.md.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterable

from producer.ledger.transactions import transaction

_CHUNK = 500  # host parameters per ``in (...)`` (SQLite allows 999 on old builds)


def _chunks(values: list[str]) -> Iterable[list[str]]:
    for i in range(0, len(values), _CHUNK):
        yield values[i:i + _CHUNK]


def _lookup(conn: sqlite3.Connection, column: str, values: list[str]) -> dict[str, str]:
    """{custom_id: provider_id} for the given ``column`` values (``custom_id`` or ``provider_id``)."""
    found: dict[str, str] = {}
    for chunk in _chunks(values):
        marks = ", ".join("?" * len(chunk))
        for row in conn.execute(f"select custom_id, provider_id from anthropic_ids where {column} in ({marks})", chunk):
            found[row[0]] = row[1]
    return found


def provider_ids(conn: sqlite3.Connection, custom_ids: Iterable[str],
                 propose: Callable[[str, int], str]) -> dict[str, str]:
    """{custom_id: provider id}, assigning the missing ones in one transaction. ``propose(custom_id, n)``
    gives the n-th candidate (n = 0, 1, ...): the first one not taken by another custom_id is kept, so the
    same custom_id always maps to the same id in this ledger, and two never share one."""
    wanted = list(dict.fromkeys(custom_ids))
    known = _lookup(conn, "custom_id", wanted)
    missing = [c for c in wanted if c not in known]
    if not missing:
        return known
    with transaction(conn):
        known.update(_lookup(conn, "custom_id", missing))  # another process may have assigned them meanwhile
        for cid in (c for c in missing if c not in known):
            n = 0
            while conn.execute("select 1 from anthropic_ids where provider_id = ?", (propose(cid, n),)).fetchone():
                n += 1
            conn.execute("insert into anthropic_ids (custom_id, provider_id) values (?, ?)", (cid, propose(cid, n)))
            known[cid] = propose(cid, n)
    return known


def custom_ids_of(conn: sqlite3.Connection, provider_ids: Iterable[str]) -> dict[str, str]:
    """{provider id: custom_id} for the ids this ledger assigned (unknown ids are left out)."""
    return {pid: cid for cid, pid in _lookup(conn, "provider_id", list(dict.fromkeys(provider_ids))).items()}


def batch_of(conn: sqlite3.Connection, api_base: str, job_id: str) -> sqlite3.Row | None:
    """The part's record: ``n_requests``, ``intent_at``, ``batch_id`` (None until it was heard)."""
    return conn.execute("select * from anthropic_batches where api_base = ? and job_id = ?",
                        (api_base, job_id)).fetchone()


def open_intents(conn: sqlite3.Connection, api_base: str) -> list[sqlite3.Row]:
    """Creates sent (or about to be) whose batch id was never heard, oldest first."""
    return conn.execute("select * from anthropic_batches where api_base = ? and batch_id is null order by intent_at",
                        (api_base,)).fetchall()


def claimed_batch_ids(conn: sqlite3.Connection, api_base: str) -> set[str]:
    """Every batch id already recorded for a part on this API base (never matched to another part)."""
    return {r[0] for r in conn.execute("select batch_id from anthropic_batches where api_base = ? and batch_id"
                                       " is not null", (api_base,))}


def claim_create(conn: sqlite3.Connection, api_base: str, job_id: str, n_requests: int,
                 busy_after: float) -> sqlite3.Row | None:
    """Record the intent to create ``job_id``'s batch, unless another part's create on this base is still
    open and younger than ``busy_after`` (that row is returned and nothing is written): one create in
    flight per key at a time, so a batch found after a crash matches exactly one intent."""
    with transaction(conn):
        busy = conn.execute("select * from anthropic_batches where api_base = ? and batch_id is null and job_id != ?"
                            " and intent_at > ? order by intent_at limit 1", (api_base, job_id, busy_after)).fetchone()
        if busy is not None:
            return busy
        conn.execute("insert or replace into anthropic_batches (api_base, job_id, n_requests, intent_at, batch_id,"
                     " recorded_at) values (?, ?, ?, ?, null, null)", (api_base, job_id, n_requests, time.time()))
    return None


def record_batch(conn: sqlite3.Connection, api_base: str, job_id: str, batch_id: str) -> None:
    """The part's batch id, heard from the create or found in the list."""
    with transaction(conn):
        conn.execute("update anthropic_batches set batch_id = ?, recorded_at = ? where api_base = ? and job_id = ?",
                     (batch_id, time.time(), api_base, job_id))


def drop_intent(conn: sqlite3.Connection, api_base: str, job_id: str) -> None:
    """Forget an intent whose create never reached the service (nothing was found for it)."""
    with transaction(conn):
        conn.execute("delete from anthropic_batches where api_base = ? and job_id = ? and batch_id is null",
                     (api_base, job_id))
