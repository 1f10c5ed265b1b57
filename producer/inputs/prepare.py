"""Prepared items (CONTRACT section 1): load sources, seeded shuffle, truncate, write once, reuse.

Why: every later stage reads ``data/prepared/``; re-running with the same inputs and config reuses
these files (checked by a fingerprint of the inputs, never by mtime), so a resumed run sees the
very same items in the very same order.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from config.atomic import write_json_atomic, write_jsonl_atomic
from config.schema import EvalConfig
from producer.host.console import UserError
from producer.inputs.datasets.data_errors import DataError
from producer.inputs.datasets.hub import sha256_file
from producer.inputs.datasets.readers import iter_jsonl
from producer.inputs.datasets.sources import DatasetSource, load_items, resolve_source
from producer.runs.manifests import config_fingerprint

PREPARE_VERSION = 1  # bump when item construction changes, so old prepared files are rebuilt
OPEN_BOOK = "open_book.jsonl"
CLOSED_BOOK = "closed_book.jsonl"
MANIFEST = "prepared_manifest.json"
BOOKS = {"open_book": "open", "closed_book": "closed"}  # prepared file -> the type of its datasets


@dataclass(frozen=True)
class PreparedData:
    open_book: Path
    closed_book: Path
    manifest: Path
    items: list[dict[str, Any]]
    reused: bool = False
    counts: dict[str, int] = field(default_factory=dict)


def target_size(cfg: EvalConfig, dataset: str, limit_items: int | None = None) -> int | None:
    """Items to keep for ``dataset``: config size (None = all) capped by ``--limit-items``."""
    size = cfg.dataset_size(dataset)
    if limit_items is not None:
        size = limit_items if size is None else min(size, limit_items)
    return size


def check_output_dir(path: Path, field: str) -> None:
    """``path`` is a folder, or can be made one, that this user can write: one line naming the field if not."""
    probe = Path(path).resolve()
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    if not probe.is_dir():
        raise UserError(f"{field}: {probe} is a file, not a folder: move the file away or set {field} to a folder")
    if not os.access(probe, os.W_OK):
        raise UserError(f"{field}: cannot write in {probe}: make it writable or set {field} to a folder "
                        "you can write to")


def check_something_selected(cfg: EvalConfig, limit_items: int | None = None) -> None:
    """Every size 0 (``--limit-items 0``) would be a run of nothing that reports nothing: refuse it."""
    if all(target_size(cfg, ds, limit_items) == 0 for ds in cfg.dataset_names()):
        raise DataError("nothing to evaluate: every dataset has size 0 (sizes, --limit-items): "
                        "give one dataset a size above 0")


def select_items(items: list[dict[str, Any]], dataset: str, seed: int, size: int | None) -> list[dict[str, Any]]:
    """Seeded shuffle (independent per dataset), then truncation: 0 = none, None = all."""
    shuffled = list(items)
    random.Random(f"{seed}:{dataset}").shuffle(shuffled)
    return shuffled if size is None else shuffled[:size]


def _canonical_sha(data: Any) -> str:
    text = json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _read_manifest(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _reusable(manifest: dict[str, Any] | None, fingerprint: str, files: dict[str, Path]) -> bool:
    if not manifest or manifest.get("fingerprint") != fingerprint:
        return False
    for book, path in files.items():
        entry = manifest.get("datasets", {}).get(book, {})
        if not path.is_file() or entry.get("sha256") != sha256_file(path):
            return False
    return True


def ensure_prepared(
    cfg: EvalConfig, data_overrides: dict[str, str] | None = None, limit_items: int | None = None
) -> PreparedData:
    """Prepare (or reuse) ``open_book.jsonl``/``closed_book.jsonl`` and their manifest."""
    out_dir = Path(cfg.paths.prepared_dir)
    files = {"open_book": out_dir / OPEN_BOOK, "closed_book": out_dir / CLOSED_BOOK}
    manifest_path = out_dir / MANIFEST
    check_something_selected(cfg, limit_items)
    check_output_dir(out_dir, "paths.prepared_dir")

    sources: dict[str, DatasetSource] = {}
    sizes: dict[str, int | None] = {}
    source_info: dict[str, dict[str, Any]] = {}
    loaded: dict[str, list[dict[str, Any]]] = {}
    for ds in cfg.dataset_names():
        size = target_size(cfg, ds, limit_items)
        sizes[ds] = size
        src = resolve_source(cfg, ds, data_overrides)
        sources[ds] = src
        info = src.describe()
        if size == 0:
            info["sha256"] = None  # not read at all
        else:
            loaded[ds] = load_items(src, download=True) or []
            info["sha256"] = sha256_file(src.path)
            info["items_available"] = len(loaded[ds])
        source_info[ds] = info

    fingerprint = _canonical_sha(
        {
            "version": PREPARE_VERSION,
            "data_seed": cfg.data_seed,
            "sizes": sizes,
            "sources": {ds: {k: i[k] for k in ("kind", "sha256", "type") if k in i} for ds, i in source_info.items()},
        }
    )
    previous = _read_manifest(manifest_path)
    if _reusable(previous, fingerprint, files):
        items = load_prepared_items(out_dir)
        return PreparedData(files["open_book"], files["closed_book"], manifest_path, items, True, _count(cfg, items))

    selected = {ds: select_items(loaded.get(ds, []), ds, cfg.data_seed, sizes[ds]) for ds in cfg.dataset_names()}
    books: dict[str, list[dict[str, Any]]] = {
        book: [item for chosen in selected.values() for item in chosen if cfg.item_type(item) == type_]
        for book, type_ in BOOKS.items()
    }
    datasets_entry = {}
    for book, rows in books.items():
        write_jsonl_atomic(files[book], rows)
        datasets_entry[book] = {
            "path": files[book].as_posix(),
            "items": len(rows),
            "sha256": sha256_file(files[book]),
        }
    for ds in cfg.dataset_names():
        source_info[ds]["items_selected"] = len(selected[ds])

    now = _now()
    write_json_atomic(
        manifest_path,
        {
            "schema_version": 1,
            "created_at": (previous or {}).get("created_at", now),
            "updated_at": now,
            "fingerprint": fingerprint,
            "config_fingerprint": config_fingerprint(cfg),
            "data_seed": cfg.data_seed,
            "sizes": sizes,
            "limit_items": limit_items,
            "datasets": datasets_entry,
            "sources": source_info,
        },
    )
    items = books["open_book"] + books["closed_book"]
    return PreparedData(files["open_book"], files["closed_book"], manifest_path, items, False, _count(cfg, items))


def _count(cfg: EvalConfig, items: list[dict[str, Any]]) -> dict[str, int]:
    counts = {ds: 0 for ds in cfg.dataset_names()}
    for item in items:
        counts[item["dataset"]] = counts.get(item["dataset"], 0) + 1
    return counts


def load_prepared_items(prepared_dir: Path | str) -> list[dict[str, Any]]:
    """Items from ``open_book.jsonl`` then ``closed_book.jsonl`` (CONTRACT section 1 shape)."""
    prepared_dir = Path(prepared_dir)
    items: list[dict[str, Any]] = []
    for name in (OPEN_BOOK, CLOSED_BOOK):
        path = prepared_dir / name
        if not path.is_file():
            raise UserError(f"prepared items not found: {path} (run `python -m producer prepare` first)")
        items.extend(row for _, row in iter_jsonl(path, "prepared"))
    return items
