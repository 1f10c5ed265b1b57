"""Per-item score frames for the statistics tests, and a JSON reader that refuses NaN and Infinity.

Why shared: the paired and unpaired statistics tests build the same synthetic per-item tables.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from config.contract import PER_ITEM_COLUMNS, item_key


def strict_loads(text: str) -> Any:
    """``json.loads`` that fails on NaN/Infinity (significance.json must be strict JSON)."""
    def refuse(token: str):
        raise ValueError(f"non-strict JSON token {token}")

    return json.loads(text, parse_constant=refuse)


def frame(rows: list[dict]) -> pd.DataFrame:
    """``rows`` as a per-item table with every contract column (missing ones NaN)."""
    out = pd.DataFrame(rows)
    for col in PER_ITEM_COLUMNS:
        if col not in out:
            out[col] = np.nan
    return out[list(PER_ITEM_COLUMNS)]


def synthetic(n: int = 60, seed: int = 0, temps: Sequence[str] = ("0.0", "0.7")) -> pd.DataFrame:
    """A seeded per-item table of ``n`` items per temperature across the three datasets."""
    rng = np.random.default_rng(seed)
    rows = []
    for temp in temps:
        for i in range(n):
            ds = ("squad_v2", "triviaqa", "nq_open")[i % 3]
            open_ = ds == "squad_v2"
            for cond in ("control", "treatment"):
                em = float(rng.integers(0, 4) / 3)
                row = {"item_key": item_key(ds, f"q{i}"), "type": "open" if open_ else "closed",
                       "condition": cond, "temp": temp, "em": em, "abstain_rate": float(rng.integers(0, 4) / 3)}
                if open_:
                    row.update(f1=min(1.0, em + rng.uniform(0, 0.2)), false_answer_rate=float(rng.integers(0, 2)),
                               unsupported_rate=float(rng.integers(0, 2)))
                rows.append(row)
    return frame(rows)
