"""CPU work: score finished results as they arrive, so ``status`` shows live EM per condition.

The report's numbers come from ``scoring.pipeline`` on the exported files; these per-request scores
in the ledger are for watching a long run. The rules are ``scoring.rules.score_response``.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path
from typing import Any

from config.contract import parse_custom_id
from producer.inputs.prepare import load_prepared_items
from producer.ledger import connect
from producer.ledger.queries import done_unscored, get_run
from producer.ledger.run_record import run_settings
from producer.ledger.writes import record_scores
from scoring.rules import score_response

log = logging.getLogger("workers")


@lru_cache(maxsize=4)
def _items(prepared_dir: str) -> dict[str, dict[str, Any]]:
    return {f"{it['dataset']}|{it['id']}": it for it in load_prepared_items(Path(prepared_dir))}


def score_chunk_rows(run_id: str, chunk: int) -> int:
    """Score the done, unscored requests of a chunk; returns how many were scored."""
    conn = connect()
    rows = done_unscored(conn, run_id, chunk)
    if not rows:
        return 0
    try:
        cfg, _ = run_settings(run_id)
        items = _items(get_run(conn, run_id)["prepared_dir"])
        scores = []
        for r in rows:
            item = items.get(parse_custom_id(r["custom_id"]).item_key)
            if item is None:
                continue
            scores.append((r["id"], score_response(item, r["text"], r["type"], cfg.unsupported)))
    except Exception as exc:  # noqa: BLE001 - live scores are advisory: one line, and no retry loop
        log.warning("live scores of run %s chunk %s skipped: %s: %s", run_id, chunk, type(exc).__name__, exc)
        scores = [(r["id"], {}) for r in rows]  # marked scored without numbers: reconcile does not resend
    record_scores(conn, scores)
    return len(scores)
