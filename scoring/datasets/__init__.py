"""Per-dataset scoring facts: which type each dataset is scored as (CONTRACT section 6).

The rules themselves live in scoring.rules; these modules stay thin and only say what differs.
"""

from __future__ import annotations

from config.contract import DATASET_TYPE


def scoring_type(dataset: str) -> str:
    """"open" or "closed" for a known dataset; raises KeyError naming an unknown one."""
    try:
        return DATASET_TYPE[dataset]
    except KeyError:
        raise KeyError(f"unknown dataset {dataset!r} (known: {sorted(DATASET_TYPE)})") from None
