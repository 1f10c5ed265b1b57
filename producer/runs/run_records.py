"""Typed records of a run folder (docs/contract.md section 9): ``run_state.json`` and ``trial_manifest.json``.

Why models: readers use attributes (``state.phases["parse"].status``) instead of nested string keys, and
the one reader and the one writer of each file live here. Why ``extra="allow"``: a file written by a newer
or older version keeps the fields this version does not know (additions only, never a loss). Why the
field order and ``exclude_unset``: ``dump_record`` writes the same keys in the same order as the plain
dicts did, so the files stay byte-for-byte what readers saw before (a field absent from a file stays
absent). Entries whose later keys depend on their history (a phase's ``started_at``/``finished_at``/
``note``/``error``, a stage's ``results``/``headline``/``jobs``) keep those keys as extras, in the order
they arrived.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict

from config.atomic import write_json_atomic


class Record(BaseModel):
    """A JSON object of a run folder: unknown fields kept in arrival order, absent fields never written."""

    model_config = ConfigDict(extra="allow")

    def set(self, **values: Any) -> None:
        """Set fields, known or not (an unknown one goes after the others, as a dict update would)."""
        for name, value in values.items():
            setattr(self, name, value)

    def drop(self, name: str) -> None:
        """Remove an extra field (``dict.pop``); a known field goes back to unset (not written)."""
        if self.__pydantic_extra__ is not None and name in self.__pydantic_extra__:
            del self.__pydantic_extra__[name]
        self.__pydantic_fields_set__.discard(name)

    def extra(self, name: str, default: Any = None) -> Any:
        """An extra field by name (``headline``, ``cache_hits`` ...), ``default`` when absent."""
        return (self.__pydantic_extra__ or {}).get(name, default)

    def to_json(self) -> dict[str, Any]:
        """The JSON object as written: fields in declared order, then extras; unset fields left out."""
        return self.model_dump(mode="json", exclude_unset=True)


R = TypeVar("R", bound=Record)


def read_json_object(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``; ``{}`` when the file does not exist yet (or holds no object)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    return data if isinstance(data, dict) else {}


def read_record(path: Path, model: type[R]) -> R:
    """The one reader of a record file; an empty record when the file does not exist yet."""
    return model.model_validate(read_json_object(path))


def write_record(path: Path, record: Record) -> Path:
    """The one writer of a record file (atomic: config.atomic)."""
    return write_json_atomic(Path(path), record.to_json())


# --- run_state.json ---------------------------------------------------------------------------------


class PhaseEntry(Record):
    """One phase of ``run_state.json``; ``started_at``, ``finished_at``, ``note``, ``error``, ``parts`` ... are
    extras in arrival order."""

    status: str = "pending"
    updated_at: str | None = None


class RunState(Record):
    """``run_state.json``: phases, timestamps, config fingerprint, stop flag."""

    schema_version: int = 1
    run_id: str | None = None
    dry_run: bool = False
    created_at: str | None = None
    config_fingerprint: str | None = None
    config_path: str | None = None
    stop_requested: bool = False
    phase_order: list[str] = []
    phases: dict[str, PhaseEntry] = {}
    updated_at: str | None = None
    stop_updated_at: str | None = None

    def phase(self, name: str) -> PhaseEntry:
        """The phase's entry, created empty (and recorded) when missing (``setdefault``)."""
        if "phases" not in self.model_fields_set:
            self.phases = {}
        if name not in self.phases:
            self.phases[name] = PhaseEntry.model_construct(_fields_set=set())
        return self.phases[name]


# --- trial_manifest.json ----------------------------------------------------------------------------


class TrialSettings(Record):
    slug: str
    model: str
    prompt_set: str
    temps: list[str] = []
    top_p: int | float | None = None
    top_k: int | None = None
    max_new_tokens: dict[str, int] = {}
    stop: list[str] = []
    seed: int | None = None


class PromptEntry(Record):
    path: str
    sha256: str
    chars: int
    tokens: int
    tokens_estimated: bool


class PromptsRecord(Record):
    prompt_set: str
    token_counts: str | None = None
    control: PromptEntry
    treatment: PromptEntry
    open_book_instruction: PromptEntry | None = None
    closed_book_instruction: PromptEntry | None = None


class Batching(Record):
    """How the engine batched the requests (issue 17), the same for both conditions."""

    engine: str
    n_parallel: int | None = None
    max_concurrent_requests: int | None = None
    max_concurrent_requests_source: str | None = None
    server_parallel: int | None = None
    server_parallel_source: str | None = None
    same_for_both_conditions: bool = True
    mode: str | None = None
    description: str | None = None


class StageEntry(Record):
    """One stage of a trial; ``results``, ``failed``, ``cache_hits``, ``headline``, ``error``, ``jobs`` ... are
    extras in arrival order."""

    status: str = "pending"
    updated_at: str | None = None
    artifacts: list[str] = []


class TrialManifest(Record):
    """``<slug>/results/trial_manifest.json`` (schema_version 2)."""

    schema_version: int = 2
    run_id: str | None = None
    created_at: str | None = None
    updated_at: str | None = None
    config_fingerprint: str | None = None
    dry_run: bool = False
    trial: TrialSettings | None = None
    prompts: PromptsRecord | None = None
    temps: list[str] = []
    samples_per_item: dict[str, int] = {}
    engine: dict[str, Any] = {}  # its keys and their order depend on the backend (manifests.engine_settings)
    batching: Batching | None = None
    counts: dict[str, dict[str, dict[str, int]]] = {}
    stage_status: dict[str, StageEntry] = {}
    shared_control_from: list[str] | None = None
    shared_requests: dict[str, int] | None = None
    usage_estimated: bool | None = None

    def stage(self, name: str) -> StageEntry:
        """The stage's entry, created empty (and recorded) when missing (``setdefault``)."""
        if "stage_status" not in self.model_fields_set:
            self.stage_status = {}
        if name not in self.stage_status:
            self.stage_status[name] = StageEntry.model_construct(_fields_set=set())
        return self.stage_status[name]
