"""The sections of the evaluation configuration (``config.schema.EvalConfig``'s nested models), and
the bounds they share.

Why a module of its own: the top-level model and its loader stay readable; every name here is also
importable from ``config.schema``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from config.contract import DATASET_TYPE, temp_label
from config.engines import BACKEND_NAMES, BATCH_BACKENDS, ENGINE_NAMES

Backend = Literal[BACKEND_NAMES]  # type: ignore[valid-type] - the names come from config/engines.py
LocalEngine = Literal[ENGINE_NAMES]  # type: ignore[valid-type] - the names come from config/engines.py
DATASETS = tuple(DATASET_TYPE)  # the built-in datasets; custom_datasets adds the user's own
# A custom dataset's name goes into every custom_id, item_key, file and HTML id: letters, digits, _ and -.
CUSTOM_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,47}")
# Bounds of what one machine can hold: a typo of a billion is an error, not a 28-billion-request run.
MAX_ITEMS_PER_DATASET = 1_000_000
MAX_SAMPLES_PER_ITEM = 10_000
MAX_TOP_K = 1_000_000
DAY_S = 86_400.0


def _check_temps(temps: list[float]) -> list[float]:
    """Temperatures in 0..2, distinct as written in custom_ids (repr(float(T)))."""
    if not temps:
        raise ValueError("at least one temperature is needed")
    for t in temps:
        if not 0.0 <= t <= 2.0:
            raise ValueError(f"temperature {t} outside 0..2")
    if len({temp_label(t) for t in temps}) != len(temps):
        raise ValueError("duplicate temperature")
    return [float(t) for t in temps]


class _Strict(BaseModel):
    """Base: unknown keys are errors (we suggest the closest valid key in the message)."""

    model_config = ConfigDict(extra="forbid", validate_default=True, allow_inf_nan=False)  # .inf / .nan: errors


class MaxNewTokens(_Strict):
    closed_book: int = Field(64, ge=1, le=131072)
    open_book: int = Field(128, ge=1, le=131072)


class Sizes(_Strict):
    """Items per dataset after the seeded shuffle: 0 = none, null = all."""

    squad_v2: int | None = Field(200, ge=0, le=MAX_ITEMS_PER_DATASET)
    triviaqa: int | None = Field(100, ge=0, le=MAX_ITEMS_PER_DATASET)
    nq_open: int | None = Field(100, ge=0, le=MAX_ITEMS_PER_DATASET)


class DataSources(_Strict):
    """Where each dataset comes from: ``sample`` (bundled), ``hub`` (download once) or a file path."""

    squad_v2: str = "sample"
    triviaqa: str = "sample"
    nq_open: str = "sample"


class CustomDataset(_Strict):
    """A user's own question-answer JSONL file (docs/configuration.md, *Your own dataset*)."""

    path: Path
    type: Literal["open_book", "closed_book", "mixed"]  # mixed: each row says its own (a "type" field)
    size: int | None = Field(None, ge=0, le=MAX_ITEMS_PER_DATASET)  # after the seeded shuffle; null = all


class Paths(_Strict):
    data_dir: Path = Path("data")
    raw_dir: Path = Path("data/raw")
    prepared_dir: Path = Path("data/prepared")
    batch_inputs_dir: Path = Path("data/batch_inputs")
    experiments_dir: Path = Path("experiments")

    @model_validator(mode="after")
    def _data_folders_follow_data_dir(self) -> Paths:
        """``raw``, ``prepared`` and ``batch_inputs`` not given explicitly live under ``data_dir``."""
        for name, sub in (("raw_dir", "raw"), ("prepared_dir", "prepared"), ("batch_inputs_dir", "batch_inputs")):
            if name not in self.model_fields_set:
                self.__dict__[name] = self.data_dir / sub
        return self


class ModelPrice(_Strict):
    """One model's prices (USD per million tokens); a field left out keeps the ``pricing`` value."""

    input_per_mtok: float | None = Field(None, ge=0, le=1_000_000)
    output_per_mtok: float | None = Field(None, ge=0, le=1_000_000)
    batch_discount: float | None = Field(None, ge=0, le=1)
    cached_input_multiplier: float | None = Field(None, ge=0, le=1)
    cache_write_multiplier: float | None = Field(None, ge=0, le=10)


class Pricing(_Strict):
    """USD per million tokens. ``batch_discount`` is a price multiplier (0.5 = pay half). ``models``
    gives a model its own prices (the config file is where the user edits them; none live in code)."""

    input_per_mtok: float = Field(0.15, ge=0, le=1_000_000)
    output_per_mtok: float = Field(0.60, ge=0, le=1_000_000)
    batch_discount: float = Field(0.5, ge=0, le=1)
    cached_input_multiplier: float = Field(1.0, ge=0, le=1)
    cache_write_multiplier: float = Field(1.25, ge=0, le=10)  # prompt tokens written to a cache (Anthropic: 1.25)
    models: dict[str, ModelPrice] = Field(default_factory=dict)

    def for_model(self, model: str | None) -> Pricing:
        """The prices that apply to ``model``: its ``models`` entry over the defaults (no ``models`` left)."""
        base = self.model_dump(exclude={"models"})
        own = self.models.get(model or "")
        if own is not None:
            base.update({k: v for k, v in own.model_dump().items() if v is not None})
        return Pricing(**base)


class Unsupported(_Strict):
    strategy: Literal["baseline", "overlap"] = "baseline"
    threshold: float = Field(0.5, ge=0, le=1)
    min_token_overlap: int = Field(1, ge=0, le=100_000)


class PromptSet(_Strict):
    control: Path
    treatment: Path


class TaskInstructions(_Strict):
    open_book: Path = Path("config/task_instructions/open_book.txt")
    closed_book: Path = Path("config/task_instructions/closed_book.txt")


class StatsConfig(_Strict):
    bootstrap_samples: int = Field(5000, ge=100, le=1_000_000)
    permutation_samples: int = Field(5000, ge=100, le=1_000_000)
    seed: int = 1234
    enable_fdr: bool = True
    risk_thresholds: list[float] = Field(default_factory=lambda: [0.0, 0.25, 0.5, 0.75, 1.0])
    tost_margins: dict[str, float] = Field(default_factory=lambda: {"em": 0.02, "f1": 0.02})
    tost_alpha: float = Field(0.05, gt=0, lt=1)
    # per-group comparisons by an item label of a custom dataset (``"meta": {"category": ...}`` on its rows)
    subgroups: list[str] = Field(default_factory=list)

    @field_validator("subgroups")
    @classmethod
    def _subgroups_valid(cls, value: list[str]) -> list[str]:
        for name in value:
            if not re.fullmatch(r"meta\.[A-Za-z][A-Za-z0-9_-]{0,47}", name):
                raise ValueError(f"{name!r}: a subgroup is meta.<field>, a key of the items' meta object "
                                 "(e.g. meta.category)")
        if len(set(value)) != len(value):
            raise ValueError("a subgroup is named twice")
        return value


class TrialSpec(_Strict):
    """One trial: every field left out inherits the top-level value."""

    id: str | None = None
    model: str | None = None
    prompt_set: str | None = None
    temps: list[float] | None = None
    top_p: float | None = Field(None, gt=0, le=1)
    top_k: int | None = Field(None, ge=0, le=MAX_TOP_K)
    max_new_tokens: MaxNewTokens | None = None

    @field_validator("temps")
    @classmethod
    def _temps_valid(cls, temps: list[float] | None) -> list[float] | None:
        return None if temps is None else _check_temps(temps)


class Sweep(_Strict):
    """Cartesian product of the listed values; empty lists inherit the top-level value."""

    models: list[str] = Field(default_factory=list)
    prompt_sets: list[str] = Field(default_factory=list)
    top_p: list[Annotated[float, Field(gt=0, le=1)]] = Field(default_factory=list)
    top_k: list[Annotated[int, Field(ge=0, le=MAX_TOP_K)]] = Field(default_factory=list)
    max_new_tokens: list[MaxNewTokens] = Field(default_factory=list)


class FireworksSettings(_Strict):
    poll_interval_s: float = Field(30.0, gt=0, le=DAY_S)
    max_part_bytes: int = Field(150_000_000, gt=1000, le=100_000_000_000)
    request_deadline_s: float = Field(600.0, gt=0, le=7 * DAY_S)
    # a job not done this long after its creation stops the run (a model without batch support stays PENDING)
    poll_deadline_s: float = Field(86_400.0, gt=0, le=30 * DAY_S)


class OpenAISettings(_Strict):
    """The OpenAI Batch API backend (docs/batch-providers.md)."""

    poll_interval_s: float = Field(30.0, gt=0, le=DAY_S)
    max_part_bytes: int = Field(BATCH_BACKENDS["openai"].max_part_bytes, gt=1000,
                                le=BATCH_BACKENDS["openai"].max_part_bytes)
    max_part_rows: int = Field(BATCH_BACKENDS["openai"].max_part_rows or 1, ge=1,
                               le=BATCH_BACKENDS["openai"].max_part_rows or 1)
    request_deadline_s: float = Field(600.0, gt=0, le=7 * DAY_S)
    # a batch not done this long after its creation stops the run (the completion window is 24 h)
    poll_deadline_s: float = Field(90_000.0, gt=0, le=30 * DAY_S)
    # reasoning models (o-series, gpt-5): no temperature or top_p; max_completion_tokens instead of max_tokens
    reasoning_models: list[str] = Field(default_factory=lambda: [
        "o1", "o1-mini", "o3", "o3-mini", "o4-mini", "gpt-5", "gpt-5-mini", "gpt-5-nano"])


class AnthropicSettings(_Strict):
    """The Anthropic Message Batches API backend (docs/batch-providers.md)."""

    poll_interval_s: float = Field(30.0, gt=0, le=DAY_S)
    max_part_bytes: int = Field(BATCH_BACKENDS["anthropic"].max_part_bytes, gt=1000,
                                le=BATCH_BACKENDS["anthropic"].max_part_bytes)
    max_part_rows: int = Field(BATCH_BACKENDS["anthropic"].max_part_rows or 1, ge=1,
                               le=BATCH_BACKENDS["anthropic"].max_part_rows or 1)
    request_deadline_s: float = Field(600.0, gt=0, le=7 * DAY_S)
    poll_deadline_s: float = Field(90_000.0, gt=0, le=30 * DAY_S)  # batches expire 24 h after creation
    # mark a system prompt of at least this many (estimated) tokens for prompt caching; 0: never
    cache_min_tokens: int = Field(1024, ge=0, le=1_000_000)
    match_skew_s: float = Field(300.0, ge=0, le=DAY_S)  # clock difference allowed when finding a batch after a crash
