"""Where each dataset comes from: ``sample`` (bundled), ``hub`` (official download), a URL or a file.

Why: the config (``data: {squad_v2: sample|hub|<path>}``, ``custom_datasets``) and ``--data name=path``
overrides resolve through this one function, so prepare, plan and doctor agree on what would be read.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from config.schema import DATASETS, EvalConfig
from producer.inputs.datasets.custom import load_custom
from producer.inputs.datasets.data_errors import DataError
from producer.inputs.datasets.formats import LOADERS
from producer.inputs.datasets.hub import HUB_URLS, ensure_downloaded, file_name_for

SOURCE_KINDS = ("sample", "hub", "url", "file", "custom")
SAMPLES_DIR = Path(__file__).resolve().parents[2] / "samples"
SAMPLE_FILES = {
    "squad_v2": "squad_v2_sample.json",
    "triviaqa": "triviaqa_sample.json",
    "nq_open": "nq_open_sample.jsonl",
}


@dataclass(frozen=True)
class DatasetSource:
    dataset: str
    kind: str  # sample | hub | url | file | custom
    path: Path  # where the file is (or will be, for hub/url)
    url: str | None = None
    book: str | None = None  # custom: open_book | closed_book, as declared

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "path": str(self.path)}
        if self.url:
            out["url"] = self.url
        if self.book:
            out["type"] = self.book
        return out

    @property
    def available(self) -> bool:
        """True when the file can be read without a download."""
        return self.path.is_file()


def parse_data_overrides(values: list[str] | tuple[str, ...] | None) -> dict[str, str]:
    """``["nq_open=path", ...]`` -> ``{"nq_open": "path"}``; unknown dataset names are errors."""
    out: dict[str, str] = {}
    for value in values or ():
        name, sep, spec = value.partition("=")
        name, spec = name.strip(), spec.strip()
        if not sep or not spec:
            raise DataError(f"--data {value!r}: expected NAME=SOURCE, e.g. nq_open=data/NQ-open.dev.jsonl")
        if name not in DATASETS:
            raise DataError(f"--data {value!r}: unknown dataset {name!r} (one of {', '.join(DATASETS)}; a custom "
                            "dataset takes its file from custom_datasets.<name>.path in the config)")
        out[name] = spec
    return out


def resolve_source(cfg: EvalConfig, dataset: str, overrides: dict[str, str] | None = None) -> DatasetSource:
    custom = cfg.custom_datasets.get(dataset)
    if custom is not None:
        return DatasetSource(dataset, "custom", Path(custom.path), book=custom.type)
    spec = (overrides or {}).get(dataset) or getattr(cfg.data, dataset)
    if spec == "sample":
        return DatasetSource(dataset, "sample", SAMPLES_DIR / SAMPLE_FILES[dataset])
    if spec == "hub":
        url = HUB_URLS[dataset]
        return DatasetSource(dataset, "hub", Path(cfg.paths.raw_dir) / dataset / file_name_for(url), url)
    if spec.startswith(("http://", "https://")):
        return DatasetSource(dataset, "url", Path(cfg.paths.raw_dir) / dataset / file_name_for(spec), spec)
    return DatasetSource(dataset, "file", Path(spec))


def load_items(source: DatasetSource, download: bool = True) -> list[dict[str, Any]] | None:
    """All items of one source in file order; None when a hub/url file is absent and download is False."""
    path = source.path
    if source.kind in ("hub", "url"):
        if not path.is_file():
            if not download:
                return None
            ensure_downloaded(source.url or "", path, source.dataset)
    items = read_source(source)
    if not items:  # an empty file would silently drop a whole dataset from the comparison
        if source.kind == "custom":
            raise DataError(f"{source.dataset}: {path}: the file holds no items (empty?): add questions, one "
                            f"JSON object per line, or set custom_datasets.{source.dataset}.size: 0")
        raise DataError(f"{source.dataset}: {path}: the file holds no items (empty?): use a full file, "
                        f"the bundled sample (data.{source.dataset}: sample), or sizes.{source.dataset}: 0")
    return items


def read_source(source: DatasetSource) -> list[dict[str, Any]]:
    """The items of a file already on disk, through its format's loader."""
    if source.kind == "custom":
        return load_custom(source.dataset, source.path, source.book or "closed_book")
    return LOADERS[source.dataset](source.path)
