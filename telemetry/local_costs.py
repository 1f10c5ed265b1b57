"""``local_costs.json`` (CONTRACT section 8) and ``telemetry.csv`` for one trial.

Why: a local run's cost is time and hardware, not dollars. From the raw results rows (latency_s and
usage of every request) and the telemetry samples of the trial, this module writes latency percentiles,
token throughput, items per minute, GPU memory/utilisation/power and the workers' CPU and RAM, plus a
down-sampled time series the report plots. Telemetry fields are null when NVML was unavailable.

``local_costs.json`` keys (flat, stable; schema_version 1):
  requests, items, usage_missing, latency_p50_s, latency_p95_s, latency_p99_s, latency_mean_s,
  latency_max_s, prompt_tokens, completion_tokens, prompt_tokens_per_s, completion_tokens_per_s,
  wall_time_s, items_per_minute, requests_per_minute, gpu_mem_max_mib, gpu_mem_mean_mib,
  gpu_mem_total_mib, gpu_util_mean_pct, power_mean_w, temp_max_c, cpu_mean_pct, cpu_max_pct,
  rss_mean_mib, rss_max_mib, telemetry_samples, nvml_available, nvml_reason, gpu_name, engine, model,
  cache_hits (requests answered from the response cache, config ``cache: true``; left out of every
  latency, tokens/s and requests/minute figure, which describe the engine; their latency is the
  lookup's).

``telemetry.csv`` columns: TELEMETRY_CSV_COLUMNS (t_s = seconds since the first sample).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from config.atomic import write_csv_atomic, write_json_atomic
from config.contract import LOCAL_COSTS_JSON, TELEMETRY_CSV, parse_custom_id
from producer.host.queue_paths import ledger_path
from telemetry.nvml import GpuReader
from telemetry.sampler import Sample
from telemetry.store import TelemetryStore
from telemetry.worker_hook import flush_active

TELEMETRY_CSV_COLUMNS = (
    "t_s",
    "time_utc",
    "tokens_per_s",
    "requests_done",
    "gpu_mem_used_mib",
    "gpu_mem_total_mib",
    "gpu_util_pct",
    "power_w",
    "temp_c",
    "cpu_pct",
    "rss_mib",
)


def _stat(values: Sequence[float | None], how: str) -> float | None:
    vals = [float(v) for v in values if v is not None]
    if not vals:
        return None
    arr = np.asarray(vals, dtype=float)
    if how == "mean":
        return float(arr.mean())
    if how == "max":
        return float(arr.max())
    return float(np.percentile(arr, float(how)))


def _usage(row: dict[str, Any]) -> tuple[int | None, int | None]:
    usage = ((row.get("response") or {}).get("body") or {}).get("usage") or {}
    p, c = usage.get("prompt_tokens"), usage.get("completion_tokens")
    return (int(p) if p is not None else None, int(c) if c is not None else None)


def summarise(
    rows: Iterable[dict[str, Any]],
    samples: Sequence[Sample] = (),
    wall_time_s: float | None = None,
    engine: dict[str, Any] | None = None,
    model: dict[str, Any] | None = None,
    nvml_reason: str | None = None,
    gpu_name: str | None = None,
) -> dict[str, Any]:
    """The ``local_costs.json`` mapping from raw results rows (CONTRACT 3) and telemetry samples.

    ``wall_time_s``: the trial's inference wall time if the caller knows it (ledger timestamps); else the
    span of the samples; else the sum of request latencies (a serial engine's lower bound)."""
    latencies: list[float] = []
    prompt_total = completion_total = 0
    usage_missing = 0
    items: set[tuple[str, str]] = set()
    n = cache_hits = 0
    gen_prompt = gen_completion = 0  # tokens the engine generated now (cache hits left out of speeds)
    for row in rows:
        n += 1
        hit = bool((row.get("engine") or {}).get("cache_hit"))
        cache_hits += hit
        if row.get("latency_s") is not None and not hit:  # a lookup's microseconds are no engine latency
            latencies.append(float(row["latency_s"]))
        p, c = _usage(row)
        if p is None or c is None:
            usage_missing += 1
        prompt_total += p or 0
        completion_total += c or 0
        if not hit:
            gen_prompt += p or 0
            gen_completion += c or 0
        try:
            cid = parse_custom_id(row["custom_id"])
            items.add((cid.dataset, cid.item_id))
        except Exception:
            pass
    samples = list(samples)
    if wall_time_s is None and len(samples) >= 2:
        wall_time_s = samples[-1].t - samples[0].t
    if (wall_time_s is None or wall_time_s <= 0) and latencies:
        wall_time_s = sum(latencies)
    wall = wall_time_s if wall_time_s and wall_time_s > 0 else None

    gpu_used = [s.gpu_mem_used_mib for s in samples]
    nvml_available = any(v is not None for v in gpu_used)
    if nvml_available:
        nvml_reason = None
    elif nvml_reason is None:
        nvml_reason = "NVML unavailable: no GPU samples recorded"
    return {
        "schema_version": 1,
        "requests": n,
        "items": len(items),
        "usage_missing": usage_missing,
        "latency_p50_s": _stat(latencies, "50"),
        "latency_p95_s": _stat(latencies, "95"),
        "latency_p99_s": _stat(latencies, "99"),
        "latency_mean_s": _stat(latencies, "mean"),
        "latency_max_s": _stat(latencies, "max"),
        "prompt_tokens": prompt_total,
        "completion_tokens": completion_total,
        "prompt_tokens_per_s": gen_prompt / wall if wall and n > cache_hits else None,
        "completion_tokens_per_s": gen_completion / wall if wall and n > cache_hits else None,
        "wall_time_s": wall,
        "items_per_minute": len(items) / wall * 60 if wall and not cache_hits else None,
        "requests_per_minute": (n - cache_hits) / wall * 60 if wall and n > cache_hits else None,
        "gpu_mem_max_mib": _stat(gpu_used, "max"),
        "gpu_mem_mean_mib": _stat(gpu_used, "mean"),
        "gpu_mem_total_mib": _stat([s.gpu_mem_total_mib for s in samples], "max"),
        "gpu_util_mean_pct": _stat([s.gpu_util_pct for s in samples], "mean"),
        "power_mean_w": _stat([s.power_w for s in samples], "mean"),
        "temp_max_c": _stat([s.temp_c for s in samples], "max"),
        "cpu_mean_pct": _stat([s.cpu_pct for s in samples], "mean"),
        "cpu_max_pct": _stat([s.cpu_pct for s in samples], "max"),
        "rss_mean_mib": _stat([s.rss_mib for s in samples], "mean"),
        "rss_max_mib": _stat([s.rss_mib for s in samples], "max"),
        "telemetry_samples": len(samples),
        "nvml_available": nvml_available,
        "nvml_reason": nvml_reason,
        "gpu_name": gpu_name if nvml_available else None,
        "engine": dict(engine or {}),
        "model": dict(model or {}),
        "cache_hits": cache_hits,
    }


def _delta(cur: int, prev: int) -> int:
    """Counter difference; a drop means the worker (and its counters) restarted."""
    return cur - prev if cur >= prev else cur


def time_series(samples: Sequence[Sample], max_rows: int = 2000) -> list[dict[str, Any]]:
    """Down-sample to at most ``max_rows`` buckets (means of the GPU/CPU fields; tokens/s from the
    cumulative completion counter over each bucket)."""
    samples = sorted(samples, key=lambda s: s.t)
    if not samples:
        return []
    t0 = samples[0].t
    span = samples[-1].t - t0
    width = max(span / max_rows, 1e-9)
    buckets: list[tuple[int, list[Sample]]] = []
    for s in samples:
        idx = min(int((s.t - t0) / width), max_rows - 1) if span > 0 else 0
        if not buckets or idx != buckets[-1][0]:
            buckets.append((idx, []))
        buckets[-1][1].append(s)
    out: list[dict[str, Any]] = []
    prev: Sample | None = None
    for _, group in buckets:
        last = group[-1]
        tps = None
        if prev is not None and last.t > prev.t:
            tps = _delta(last.completion_tokens, prev.completion_tokens) / (last.t - prev.t)
        out.append(
            {
                "t_s": round(last.t - t0, 3),
                "time_utc": datetime.fromtimestamp(last.t, UTC).isoformat(timespec="seconds"),
                "tokens_per_s": tps,
                "requests_done": last.requests_done,
                "gpu_mem_used_mib": _stat([s.gpu_mem_used_mib for s in group], "mean"),
                "gpu_mem_total_mib": last.gpu_mem_total_mib,
                "gpu_util_pct": _stat([s.gpu_util_pct for s in group], "mean"),
                "power_w": _stat([s.power_w for s in group], "mean"),
                "temp_c": _stat([s.temp_c for s in group], "mean"),
                "cpu_pct": _stat([s.cpu_pct for s in group], "mean"),
                "rss_mib": _stat([s.rss_mib for s in group], "mean"),
            }
        )
        prev = last
    return out


def write_local_costs(
    results_dir: Path,
    rows: Iterable[dict[str, Any]],
    samples: Sequence[Sample] = (),
    **kwargs: Any,
) -> dict[str, Any]:
    """Write ``local_costs.json`` and ``telemetry.csv`` (header only when no samples) atomically."""
    results_dir = Path(results_dir)
    data = summarise(rows, samples, **kwargs)
    write_json_atomic(results_dir / LOCAL_COSTS_JSON, data)
    series = time_series(samples)
    write_csv_atomic(results_dir / TELEMETRY_CSV, TELEMETRY_CSV_COLUMNS, series)
    return data


def wall_time_from_results(finished_at: Sequence[float | None], latencies: Sequence[float | None]) -> float | None:
    """Inference wall time of a trial: first request's start (finish - latency) to last finish."""
    pairs = [(f, lat or 0.0) for f, lat in zip(finished_at, latencies, strict=True) if f is not None]
    if not pairs:
        return None
    return max(f for f, _ in pairs) - min(f - lat for f, lat in pairs)


def export_local_costs(
    results_dir: Path,
    raw_rows: Sequence[dict[str, Any]],
    run_id: str,
    trial: str,
    cfg: Any = None,
    finished_at: Sequence[float | None] | None = None,
    ledger: Path | None = None,
) -> dict[str, Any] | None:
    """The export step's call: local_costs.json + telemetry.csv for a local trial (None for Fireworks).

    ``finished_at``: the ledger's result timestamps, aligned with ``raw_rows`` (for the wall time)."""
    if cfg is not None and getattr(cfg, "backend", "local") != "local":
        return None

    flush_active()  # when the export runs in the inference process, its last samples are still buffered
    if ledger is None:
        ledger = ledger_path()
    samples = TelemetryStore(ledger).read(run_id, trial) if Path(ledger).exists() else []
    wall = None
    if finished_at is not None:
        wall = wall_time_from_results(finished_at, [r.get("latency_s") for r in raw_rows])
    engine = dict(raw_rows[0].get("engine") or {}) if raw_rows else {}
    for per_request in ("usage_estimated", "cache_hit", "cached_latency_s"):
        engine.pop(per_request, None)
    model: dict[str, Any] = {}
    if cfg is not None:
        model = {"local_engine": engine.get("name") or cfg.local_engine, "local_model": engine.get("model") or cfg.local_model,
                 "n_ctx": cfg.n_ctx, "n_gpu_layers": cfg.n_gpu_layers, "kv_cache_type": cfg.kv_cache_type,
                 "max_concurrent_requests": cfg.max_concurrent_requests,
                 "telemetry_enabled": cfg.enable_local_telemetry}
    reason = gpu_name = None
    if cfg is not None and not cfg.enable_local_telemetry:
        reason = "NVML unavailable: telemetry disabled (enable_local_telemetry: false)"
    else:  # same machine as the worker: name the GPU, or say why NVML could not be read

        with GpuReader() as reader:
            reason, gpu_name = reader.reason, reader.device_name
    return write_local_costs(results_dir, raw_rows, samples, wall_time_s=wall, engine=engine, model=model,
                             nvml_reason=reason, gpu_name=gpu_name)
