"""Batch input JSONL (CONTRACT section 2): one file per trial/prompt set × temperature × condition.

Why: a reader can audit every request body before anything is sent (the same bodies the local queue
and the Fireworks path send: both build them with ``iter_trial_requests``; the Fireworks path cuts and
uploads its own parts, ``producer/inputs/fireworks_plan.py``, rather than these files).
Files are optionally split into parts (``--parts-per-dataset`` or ``--lines-per-part``, and never
above ``fireworks.max_part_bytes``); every part is written and listed in ``build_manifest.json``
with its line count, and the build checks that every request appears exactly once.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from config.atomic import write_json_atomic, write_text_atomic
from config.contract import CONDITIONS, temp_label
from config.schema import EvalConfig
from producer.host.console import UserError
from producer.inputs.messages import load_prompt_texts
from producer.inputs.requests_build import iter_trial_requests
from producer.runs.layout import safe_slug  # the one slug rule: a prompt-set name never climbs out (no "..")
from producer.runs.manifests import config_fingerprint, now_iso
from producer.runs.trials import Trial, expand_trials

BUILD_MANIFEST = "build_manifest.json"


@dataclass(frozen=True)
class BuildResult:
    out_dir: Path
    manifest: Path
    files: list[dict[str, Any]]
    total_requests: int


def base_name(prompt_set: str, temp: float, condition: str) -> str:
    """``<prompt_set>__t<temp>__<condition>``: temp as in custom_ids (``0.7``), safe on Windows."""
    return f"{safe_slug(prompt_set)}__t{temp_label(temp)}__{condition}"


def plan_parts(n_lines: int, parts: int | None, lines_per_part: int | None) -> list[int]:
    """Line counts of each part: ``parts`` near-equal parts, or chunks of ``lines_per_part``."""
    if n_lines == 0:
        return []
    if lines_per_part:
        full, rest = divmod(n_lines, lines_per_part)
        return [lines_per_part] * full + ([rest] if rest else [])
    p = max(1, min(parts or 1, n_lines))
    size, extra = divmod(n_lines, p)
    return [size + 1 if i < extra else size for i in range(p)]


def _split_by_bytes(lines: list[str], max_bytes: int) -> list[list[str]]:
    chunks: list[list[str]] = [[]]
    used = 0
    for line in lines:
        n = len(line.encode("utf-8"))
        if n > max_bytes:
            raise UserError(f"one request is {n} bytes, above fireworks.max_part_bytes ({max_bytes})")
        if chunks[-1] and used + n > max_bytes:
            chunks.append([])
            used = 0
        chunks[-1].append(line)
        used += n
    return chunks


def _chunks(lines: list[str], parts: int | None, lines_per_part: int | None, max_bytes: int) -> list[list[str]]:
    out: list[list[str]] = []
    start = 0
    for count in plan_parts(len(lines), parts, lines_per_part):
        out.extend(_split_by_bytes(lines[start : start + count], max_bytes))
        start += count
    return out


def build_batch_inputs(
    cfg: EvalConfig,
    items: list[dict[str, Any]],
    out_dir: Path | None = None,
    parts_per_dataset: int | None = None,
    lines_per_part: int | None = None,
    trials: list[Trial] | None = None,
) -> BuildResult:
    """Write every request of every trial once; returns the manifest of written parts."""
    if parts_per_dataset and lines_per_part:
        raise UserError("use either --parts-per-dataset or --lines-per-part, not both")
    out_dir = Path(out_dir or cfg.paths.batch_inputs_dir)
    trials = trials or expand_trials(cfg)
    files: list[dict[str, Any]] = []
    expected = 0
    for trial in trials:
        texts = load_prompt_texts(cfg, trial.prompt_set)
        trial_dir = out_dir / trial.slug
        written: set[Path] = set()
        for temp in trial.temps:
            one_temp = dataclasses.replace(trial, temps=(temp,))
            for condition in CONDITIONS:
                lines = [
                    json.dumps(r.to_batch_row(), ensure_ascii=False, allow_nan=False) + "\n"
                    for r in iter_trial_requests(cfg, one_temp, items, texts, conditions=(condition,))
                ]
                expected += len(lines)
                chunks = _chunks(lines, parts_per_dataset, lines_per_part, cfg.fireworks.max_part_bytes)
                base = base_name(trial.prompt_set, temp, condition)
                for i, chunk in enumerate(chunks, start=1):
                    name = f"{base}.jsonl" if len(chunks) == 1 else f"{base}.part{i:03d}-of-{len(chunks):03d}.jsonl"
                    path = trial_dir / name
                    text = "".join(chunk)
                    write_text_atomic(path, text)
                    written.add(path)
                    files.append(
                        {
                            "trial": trial.slug,
                            "model": trial.model,
                            "prompt_set": trial.prompt_set,
                            "temp": temp_label(temp),
                            "condition": condition,
                            "part": i,
                            "parts": len(chunks),
                            "path": path.as_posix(),
                            "lines": len(chunk),
                            "bytes": len(text.encode("utf-8")),
                            "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
                        }
                    )
        _remove_stale_parts(trial_dir, written)
    total = sum(f["lines"] for f in files)
    if total != expected:  # a part was lost between planning and writing: never upload that
        raise UserError(f"build wrote {total} request lines but expected {expected}")
    manifest = write_json_atomic(
        out_dir / BUILD_MANIFEST,
        {
            "schema_version": 1,
            "created_at": now_iso(),
            "config_fingerprint": config_fingerprint(cfg),
            "parts_per_dataset": parts_per_dataset,
            "lines_per_part": lines_per_part,
            "max_part_bytes": cfg.fireworks.max_part_bytes,
            "total_requests": total,
            "trials": [t.slug for t in trials],
            "files": files,
        },
    )
    return BuildResult(out_dir, manifest, files, total)


def _remove_stale_parts(trial_dir: Path, keep: set[Path]) -> None:
    """Parts from an earlier build with another split would be uploaded twice: remove them."""
    if not trial_dir.is_dir():
        return
    for path in trial_dir.glob("*__t*__*.jsonl"):
        if path not in keep:
            path.unlink(missing_ok=True)


__all__ = ["BuildResult", "build_batch_inputs", "plan_parts", "base_name"]
