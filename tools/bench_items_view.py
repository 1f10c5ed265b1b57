"""Benchmark: size of reports/items.html and its load time in headless Chromium.

A synthetic but realistic scored trial (default 1,000 items: half SQuAD-v2-like open-book with a third
unanswerable, half closed-book; control and treatment, K = 1, one temperature; answers of 1-40 words)
goes through the real scoring stage (per_item_scores.csv) and the real writer
(scoring.changed_items.paired_items -> scoring.items_html.write_items_html). Chromium then opens the
page from file:// over the DevTools protocol (tools/cdp.py): the time from the navigation command to
the load event (the inline script has run by then), and the time one search keystroke takes to filter.

    python tools/bench_items_view.py [--items 1000] [--temps 1] [--repeats 3]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from config.atomic import write_csv_atomic, write_jsonl_atomic  # noqa: E402
from config.contract import PREDICTIONS_COLUMNS, build_custom_id  # noqa: E402

WORDS = ("paris london river mountain king queen battle treaty empire science music painting "
         "france england ocean desert planet star galaxy novel poem war peace city village").split()


def _words(rng: random.Random, lo: int, hi: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(lo, hi)))


def make_trial(root: Path, n_items: int, temps: int, rng: random.Random) -> tuple[Path, Path]:
    open_items, closed_items, rows = [], [], []
    for i in range(n_items):
        is_open = i < n_items // 2
        unans = is_open and i % 3 == 0
        gold = _words(rng, 1, 3)
        item = {"dataset": "squad_v2" if is_open else "triviaqa", "id": f"{'s' if is_open else 't'}{i:05d}",
                "question": _words(rng, 6, 16).capitalize() + "?",
                "answers": [] if unans else [gold] + [_words(rng, 1, 3) for _ in range(rng.randint(0, 6))]}
        if is_open:
            open_items.append({**item, "context": _words(rng, 80, 160), "is_unanswerable": unans})
        else:
            closed_items.append(item)
        type_ = "open" if is_open else "closed"
        for t in range(temps):
            for cond in ("control", "treatment"):
                roll = rng.random()
                text = gold if roll < 0.45 else "I don't know." if roll < 0.6 else _words(rng, 1, 40)
                cid = build_custom_id(item["dataset"], item["id"], cond, 0.7 * t, 0, type_)
                rows.append([cid, item["dataset"], item["id"], cond, repr(0.7 * t), 0, type_, f"r{len(rows)}",
                             "stop", text, 120, 12, 132])
    prepared = root / "prepared"
    write_jsonl_atomic(prepared / "open_book.jsonl", open_items)
    write_jsonl_atomic(prepared / "closed_book.jsonl", closed_items)
    results = root / "trial" / "results"
    write_csv_atomic(results / "predictions.csv", PREDICTIONS_COLUMNS, rows)
    return prepared, results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--temps", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    from scoring.changed_items import paired_items
    from scoring.items_html import write_items_html
    from scoring.score_predictions import score_predictions
    from tools.cdp import CdpError, Chromium

    with tempfile.TemporaryDirectory(prefix="bench-items-") as tmp:
        prepared, results = make_trial(Path(tmp), args.items, args.temps, random.Random(5))
        score_predictions(results / "predictions.csv", prepared, results)
        start = time.perf_counter()
        pairs = paired_items(results, prepared)
        page = write_items_html(results.parent / "reports", pairs, "bench")
        write_s = time.perf_counter() - start
        size = page.stat().st_size
        print(f"items.html: {args.items} items x 2 conditions x {args.temps} temperature(s) = {len(pairs)} rows, "
              f"{size:,} bytes ({size / 1e6:.2f} MB); built in {write_s:.2f} s")
        try:
            loads, filters = [], []
            with Chromium(width=1400, height=1000, timeout_s=120) as browser:
                for _ in range(args.repeats):
                    loads.append(browser.open(page))
                    rows = browser.eval("document.querySelectorAll('#items tbody tr').length")
                    filters.append(browser.eval(
                        "(() => { const q = document.getElementById('q'), t = performance.now(); q.value = 'paris';"
                        " q.dispatchEvent(new Event('input')); void document.body.offsetHeight;"
                        " return (performance.now() - t) / 1000; })()"))
        except CdpError as exc:
            print(f"chromium: {exc}", file=sys.stderr)
            return 2
        print(f"load in headless Chromium (navigate -> load event, file://): median {statistics.median(loads):.2f} s "
              f"(runs: {', '.join(f'{x:.2f}' for x in loads)}); {rows} rows in the page")
        print(f"one search keystroke (filter + layout): median {statistics.median(filters) * 1000:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
