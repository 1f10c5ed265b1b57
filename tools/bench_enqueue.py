"""Benchmark: register and enqueue 100,000 requests; print requests/s and the number of transactions.

Why: a long run must start in seconds, and the issue requires one or a few transactions, not one per
request. Also times ``status`` on that run (target: under a second, read-only).

    python tools/bench_enqueue.py [--requests 100000]

Uses a temporary queue folder and synthetic closed-book items (the bundled samples are too small);
the requests are built by the real builder (``iter_trial_requests``), registered by the real ledger
code and enqueued as real Huey messages.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=100_000)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_enqueue_"))
    os.environ["EXCELLENCE_QUEUE_DIR"] = str(tmp / "queue")
    sys.path.insert(0, str(ROOT))

    import json

    from config.schema import validate_config_dict
    from producer.huey_app import huey
    from producer.ledger import connect
    from producer.ledger.status import run_status
    from producer.ledger.writes import register_run
    from producer.planning.enqueue import absolute_snapshot, chunked_requests
    from workers.reconcile import reconcile

    cfg = validate_config_dict({
        "local_engine": "dry_run", "temps": [0.0, 0.7], "samples_per_item": {"0.0": 1, "0.7": 1},
        "prompt_sets": {"default": {"control": str(ROOT / "config/prompts/control_system.txt"),
                                    "treatment": str(ROOT / "config/prompts/treatment_system.txt")}},
        "task_instructions": {"open_book": str(ROOT / "config/task_instructions/open_book.txt"),
                              "closed_book": str(ROOT / "config/task_instructions/closed_book.txt")},
        "paths": {"experiments_dir": str(tmp / "experiments"), "prepared_dir": str(tmp / "prepared")},
    }, "bench")
    n_items = max(1, args.requests // 4)  # x 2 conditions x 2 temperatures
    items = [{"dataset": "nq_open", "id": f"q{i:06d}", "question": f"who wrote book number {i}?",
              "answers": [f"author {i}"]} for i in range(n_items)]

    conn = connect()
    begins = {"n": 0}

    def trace(sql: str) -> None:
        if sql.lstrip().lower().startswith("begin"):
            begins["n"] += 1

    conn.set_trace_callback(trace)
    huey.storage.conn.set_trace_callback(trace)
    t0 = time.perf_counter()
    requests = list(chunked_requests(cfg, items))
    t1 = time.perf_counter()
    run = {"run_id": "bench", "config_path": None, "config_json": json.dumps(absolute_snapshot(cfg)),
           "fingerprint": "bench", "engine": "dry_run", "limit_items": None,
           "experiments_dir": str(tmp / "experiments"), "prepared_dir": str(tmp / "prepared")}
    totals: dict[str, int] = {}
    for r in requests:
        totals[r.trial] = totals.get(r.trial, 0) + 1
    added = register_run(conn, run, [{"trial": t, "model": "dry-run", "total": n} for t, n in totals.items()],
                         requests)
    t2 = time.perf_counter()
    report = reconcile("bench")
    t3 = time.perf_counter()
    ro = connect(readonly=True)
    s0 = time.perf_counter()
    st = run_status(ro, "bench")
    s1 = time.perf_counter()
    n = len(requests)
    print(f"requests built: {n} in {t1 - t0:.2f}s ({n / (t1 - t0):,.0f}/s)")
    print(f"registered in the ledger: {added} rows in {t2 - t1:.2f}s ({added / (t2 - t1):,.0f} requests/s)")
    print(f"enqueued: {report.enqueued} chunk messages in {t3 - t2:.2f}s")
    print(f"register + enqueue: {n / (t3 - t1):,.0f} requests/s; transactions (BEGIN statements): {begins['n']}")
    print(f"status on {st.totals.total} requests: {s1 - s0:.3f}s (read-only)")
    print(f"ledger size: {(tmp / 'queue' / 'ledger.sqlite3').stat().st_size / 1e6:.1f} MB")
    from producer.ledger.db import close_all

    close_all()
    huey.storage.close()
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
