"""costs.json from predictions.csv token usage and the configured prices (CONTRACT section 8).

    python -m producer costs --pred-csv P --out-path O [--config C] [--manifest trial_manifest.json]
    (alias: python -m scoring.costs)

Prices are USD per million tokens. ``batch_discount`` is a price multiplier (0.5 = pay half), applied
when the run used a batch API (Fireworks, OpenAI, Anthropic). ``pricing.models`` gives a model its own prices. For a local run nothing is billed: ``usd`` is the *equivalent
cloud cost* of the same tokens at the configured on-demand prices (``usd_kind`` says which), and
``usd_if_batch`` gives the batch-API equivalent. When cached prompt tokens are known they are charged at
``cached_input_multiplier`` times the input price, and prompt tokens a provider wrote to its cache
(Anthropic's ``cache_creation_input_tokens``, kept as ``engine.cache_write_tokens``) at
``cache_write_multiplier`` times it.

Both facts come from ``raw_results.jsonl`` beside predictions.csv: cached prompt tokens
(``usage.prompt_tokens_details.cached_tokens``) and the rows a sweep reused from another trial
(``engine.shared_control_from``: generated and paid for once, by the owner trial). Token totals count
every row of the trial; ``usd`` leaves the reused rows out so that a sweep's trials add up to its bill.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from config.atomic import write_json_atomic
from config.contract import RAW_RESULTS_JSONL
from config.engines import is_batch
from config.schema import EvalConfig, Pricing
from producer.host.console import UserError
from producer.runs.layout import TrialFolder
from producer.runs.manifests import read_trial_manifest
from producer.runs.results_io import ResultsFormatError, check_unique_custom_ids
from producer.runs.run_records import TrialManifest

TOKEN_COLUMNS = ("prompt_tokens", "completion_tokens", "total_tokens")


def usd_of(prompt: int, completion: int, cached: int, pricing: Pricing, multiplier: float,
           cache_write: int = 0) -> float:
    """USD of these tokens at ``pricing`` (cached prompt tokens at the cached multiplier, prompt tokens
    written to the cache at ``cache_write_multiplier``), times ``multiplier`` (1 on demand,
    ``batch_discount`` for the batch API); ``plan`` estimates with it too."""
    cache_write = max(0, min(cache_write, prompt - cached))
    uncached = prompt - cached - cache_write
    cost = (uncached * pricing.input_per_mtok + cached * pricing.input_per_mtok * pricing.cached_input_multiplier
            + cache_write * pricing.input_per_mtok * pricing.cache_write_multiplier
            + completion * pricing.output_per_mtok) / 1_000_000
    return cost * multiplier


def raw_usage_facts(raw_path: Path) -> tuple[dict[str, int], set[str], dict[str, int]]:
    """(cached prompt tokens per custom_id, custom_ids reused from another trial, prompt tokens each row
    wrote to the provider's cache: ``engine.cache_write_tokens``) from raw_results.jsonl; empty when the
    file is absent (a trial scored from predictions.csv alone)."""
    cached: dict[str, int] = {}
    shared: set[str] = set()
    writes: dict[str, int] = {}
    if not raw_path.is_file():
        return cached, shared, writes
    with open(raw_path, encoding="utf-8") as fh:
        for line in fh:
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if not isinstance(row, dict) or "custom_id" not in row:
                continue
            cid = str(row["custom_id"])
            usage = (((row.get("response") or {}).get("body") or {}).get("usage") or {})
            tokens = (usage.get("prompt_tokens_details") or {}).get("cached_tokens")
            if isinstance(tokens, int | float):
                cached[cid] = int(tokens)
            engine = row.get("engine") or {}
            if engine.get("shared_control_from"):
                shared.add(cid)
            if isinstance(engine.get("cache_write_tokens"), int | float):
                writes[cid] = int(engine["cache_write_tokens"])
    return cached, shared, writes


def compute_costs(pred_csv: Path, pricing: Pricing, backend: str = "local", *,
                  cached_prompt_tokens: int | None = None, usage_estimated: bool | None = None,
                  shared_ids: set[str] | frozenset[str] = frozenset(), cache_write_tokens: int = 0) -> dict[str, Any]:
    """Token totals and USD for one trial's predictions.csv (``shared_ids``: rows paid by another trial)."""
    try:
        df = pd.read_csv(pred_csv, usecols=["custom_id", *TOKEN_COLUMNS], dtype=object, keep_default_na=False,
                         encoding="utf-8")
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read token columns of {pred_csv}: {exc.__class__.__name__}") from None
    try:  # a repeated row would be billed twice
        check_unique_custom_ids(df["custom_id"].tolist(), pred_csv)
    except ResultsFormatError as exc:
        raise UserError(str(exc)) from None
    nums = pd.DataFrame({c: pd.to_numeric(df[c].astype(object), errors="coerce").astype(float) for c in TOKEN_COLUMNS})
    prompt = int(nums["prompt_tokens"].fillna(0).sum())
    completion = int(nums["completion_tokens"].fillna(0).sum())
    known = nums["prompt_tokens"].notna() | nums["completion_tokens"].notna()
    own = ~df["custom_id"].isin(shared_ids)
    paid_prompt = int(nums.loc[own, "prompt_tokens"].fillna(0).sum())
    paid_completion = int(nums.loc[own, "completion_tokens"].fillna(0).sum())
    cached = min(int(cached_prompt_tokens or 0), paid_prompt)
    batch = is_batch(backend)
    multiplier = pricing.batch_discount if batch else 1.0
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "usd": usd_of(paid_prompt, paid_completion, cached, pricing, multiplier, cache_write_tokens),
        "usd_kind": "billed_estimate" if batch else "equivalent_cloud_cost",
        "usd_if_batch": usd_of(paid_prompt, paid_completion, cached, pricing, pricing.batch_discount, cache_write_tokens),
        "batch_discount_applied": batch,
        "usage_records": int(known.sum()),
        "rows": int(len(df)),
        "rows_without_usage": int((~known).sum()),
        "shared_rows": int((~own).sum()),
        "cached_prompt_tokens": cached_prompt_tokens,
        **({"cache_write_tokens": cache_write_tokens} if cache_write_tokens else {}),
        "usage_estimated": usage_estimated,
        "backend": backend,
        "pricing": pricing.model_dump(mode="json"),
    }


def read_manifest(manifest: Path | None) -> TrialManifest:
    """The trial manifest (an empty one when missing or unreadable: costs never fail on it)."""
    if manifest is None or not Path(manifest).is_file():
        return TrialManifest()
    try:
        return read_trial_manifest(Path(manifest))
    except (OSError, ValueError):
        return TrialManifest()


def usage_estimated_from_manifest(manifest: Path | None) -> bool | None:
    """The trial manifest's ``usage_estimated`` flag (token counts estimated, not engine-reported)."""
    m = read_manifest(manifest)
    value = m.usage_estimated if m.usage_estimated is not None else m.extra("tokens_estimated")
    return bool(value) if value is not None else None


def model_from_manifest(manifest: Path | None) -> str | None:
    """The trial's model (``trial.model`` of trial_manifest.json), whose prices apply; None if unknown."""
    trial = read_manifest(manifest).trial
    return trial.model if trial is not None and trial.model else None


def reported_by_provider(pred_csv: Path, backend: str, pricing: Pricing) -> dict[str, Any] | None:
    """What the batch service itself reported for the trial's own jobs (``<provider>/jobs.jsonl``: the
    parts this trial sent; rows reused from another trial are in that trial's jobs), and its USD at the
    same prices; None for a local run or when the service reported no usage."""
    if not is_batch(backend):
        return None
    trial = TrialFolder.of_results(Path(pred_csv).parent)
    jobs = trial.run_folder.batch_jobs(backend)
    if not jobs.is_file():
        return None
    keys = ("input_tokens", "cached_input_tokens", "output_tokens", "cache_write_tokens")
    total = dict.fromkeys(keys, 0)
    parts = 0
    for line in jobs.read_text(encoding="utf-8").splitlines():
        try:
            job = json.loads(line)
        except ValueError:
            continue
        usage = job.get("usage") if isinstance(job, dict) and job.get("trial") == trial.path.name else None
        if not isinstance(usage, dict):
            continue
        parts += 1
        for k in keys:
            total[k] += int(usage.get(k) or 0)
    if not parts:
        return None
    usd = usd_of(total["input_tokens"], total["output_tokens"], min(total["cached_input_tokens"], total["input_tokens"]),
                 pricing, pricing.batch_discount, total["cache_write_tokens"])
    return {**total, "parts": parts, "usd": usd}


def write_costs(pred_csv: Path, out_path: Path, cfg: EvalConfig | None = None, manifest: Path | None = None) -> Path:
    """costs.json; the prices are the trial's model's (``pricing.models``) over the ``pricing`` defaults."""
    model = model_from_manifest(manifest) or (cfg.model_name() if cfg is not None else None)
    pricing = cfg.pricing.for_model(model) if cfg is not None else Pricing()
    backend = cfg.backend if cfg is not None else "local"
    cached, shared, writes = raw_usage_facts(Path(pred_csv).parent / RAW_RESULTS_JSONL)
    own_cached = sum(v for k, v in cached.items() if k not in shared)
    data = compute_costs(Path(pred_csv), pricing, backend, usage_estimated=usage_estimated_from_manifest(manifest),
                         cached_prompt_tokens=own_cached if cached else None, shared_ids=shared,
                         cache_write_tokens=sum(v for k, v in writes.items() if k not in shared))
    reported = reported_by_provider(Path(pred_csv), backend, pricing)
    if reported is not None:
        data["reported_by_provider"] = reported
    return write_json_atomic(Path(out_path), data)


if __name__ == "__main__":  # alias: the command lives in producer/cli/cmd_costs.py
    from producer.cli import run_alias

    run_alias("costs", "python -m scoring.costs")
