"""Benchmark: score 180,000 prediction rows into per_item_scores.csv (target < 6 s on 2 cores).

Synthetic but realistic: 3,000 SQuAD-v2-like open items (1/3 unanswerable) and 3,000 closed items,
2 conditions x (K = 1 at T = 0.0 + K = 14 at T = 0.7) = 30 rows per item, 6,000 items = 180,000 rows.
Baseline in the same run: a straightforward per-row loop (csv.DictReader, score_response on every row
with caches cleared, no dedupe, a Python dict-of-lists average) on a subset, extrapolated.

    python tools/bench_scoring.py [--rows 180000]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pandas as pd  # noqa: E402

from config.atomic import write_csv_atomic, write_jsonl_atomic  # noqa: E402
from config.contract import PREDICTIONS_COLUMNS, build_custom_id  # noqa: E402
from config.schema import Unsupported  # noqa: E402

WORDS = ("paris london river mountain king queen battle treaty empire science music painting "
         "france england ocean desert planet star galaxy novel poem war peace city village").split()


def make_items(n_open: int, n_closed: int, rng: random.Random) -> tuple[list[dict], list[dict]]:
    open_items, closed_items = [], []
    for i in range(n_open):
        ctx = " ".join(rng.choice(WORDS) for _ in range(120))
        unans = i % 3 == 0
        ans = [] if unans else [" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 3)))]
        open_items.append({"dataset": "squad_v2", "id": f"s{i}", "context": ctx, "question": "q?",
                           "answers": ans, "is_unanswerable": unans})
    for i in range(n_closed):
        ds = "triviaqa" if i % 2 else "nq_open"
        closed_items.append({"dataset": ds, "id": f"c{i}", "question": "q?",
                             "answers": [rng.choice(WORDS).title() for _ in range(rng.randint(1, 6))]})
    return open_items, closed_items


def make_predictions(open_items, closed_items, rows: int, rng: random.Random) -> list[list]:
    plan = [("0.0", 1), ("0.7", 14)]  # K per temperature
    per_item = 2 * sum(k for _, k in plan)  # 30 rows per item
    n_items = rows // per_item
    pool = (open_items + closed_items)[:n_items]
    out = []
    for it in pool:
        type_ = "open" if it["dataset"] == "squad_v2" else "closed"
        for temp, k in plan:
            for cond in ("control", "treatment"):
                for s in range(k):
                    r = rng.random()
                    if r < 0.2:
                        text = rng.choice(["I don't know.", "I don’t know", "Unknown"])
                    elif r < 0.6 and it["answers"]:
                        text = rng.choice(it["answers"])
                    else:
                        text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 4)))
                    cid = build_custom_id(it["dataset"], it["id"], cond, temp, s, type_)
                    out.append([cid, it["dataset"], it["id"], cond, temp, s, type_, "r", "stop", text, 10, 3, 13])
    return out


def naive_baseline(pred_path: Path, items: dict, n_rows: int) -> float:
    """Per-row loop without dedupe or vectorisation, on the first n_rows; returns seconds."""
    import csv
    import statistics

    from scoring.abstention import is_abstention
    from scoring.normalize import _tokens, normalize_answer
    from scoring.rules import score_response
    from scoring.unsupported import _passage

    t0 = time.perf_counter()
    groups: dict = {}
    with pred_path.open(encoding="utf-8", newline="") as fh:
        for i, row in enumerate(csv.DictReader(fh)):
            if i >= n_rows:
                break
            for cached in (normalize_answer, _tokens, is_abstention, _passage):
                cached.cache_clear()
            res = score_response(items[f"{row['dataset']}|{row['item_id']}"], row["response_text"], row["type"],
                                 Unsupported())
            key = (row["dataset"], row["item_id"], row["type"], row["condition"], row["temp"])
            groups.setdefault(key, []).append(res["em"])
    {k: (statistics.mean(v), statistics.stdev(v) if len(v) > 1 else 0.0) for k, v in groups.items()}
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=180_000)
    args = parser.parse_args()
    rng = random.Random(7)
    open_items, closed_items = make_items(3000, 3000, rng)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        prepared = root / "prepared"
        write_jsonl_atomic(prepared / "open_book.jsonl", open_items)
        write_jsonl_atomic(prepared / "closed_book.jsonl", closed_items)
        rows = make_predictions(open_items, closed_items, args.rows, rng)
        pred = root / "predictions.csv"
        write_csv_atomic(pred, PREDICTIONS_COLUMNS, rows)
        from scoring.score_predictions import score_predictions

        t0, c0 = time.perf_counter(), time.process_time()
        out = score_predictions(pred, prepared, root / "out")
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
        n_out = len(pd.read_csv(out))
        items = {f"{it['dataset']}|{it['id']}": it for it in open_items + closed_items}
        subset = min(20_000, len(rows))
        naive = naive_baseline(pred, items, subset) * len(rows) / subset
    print(f"scoring: {len(rows):,} prediction rows -> {n_out:,} per-item rows in {elapsed:.2f} s "
          f"wall, {cpu:.2f} s CPU (target < 6 s; load average "
          f"{os.getloadavg()[0] if hasattr(os, 'getloadavg') else float('nan'):.1f})")
    print(f"baseline per-row loop (no dedupe/cache, {subset:,} rows extrapolated): {naive:.2f} s; "
          f"speed-up x{naive / elapsed:.1f}")


if __name__ == "__main__":
    main()
