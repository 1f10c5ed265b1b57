"""Facts fixed by the data contract (docs/contract.md), in one place each. "CONTRACT section N" in
comments means section N of docs/contract.md.

custom_id = ``dataset|item_id|condition|temp|sample_index|type``. Nothing else in the project
splits on ``|``: build and parse here.
"""

from __future__ import annotations

from dataclasses import dataclass

CONDITIONS = ("control", "treatment")
TYPES = ("open", "closed")
DATASET_TYPE = {"squad_v2": "open", "triviaqa": "closed", "nq_open": "closed"}

PREDICTIONS_COLUMNS = (
    "custom_id",
    "dataset",
    "item_id",
    "condition",
    "temp",
    "sample_index",
    "type",
    "request_id",
    "finish_reason",
    "response_text",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
)

# A trial's files under <run>/<trial-slug>/results/ (CONTRACT section 9)
PREDICTIONS_CSV = "predictions.csv"
RAW_RESULTS_JSONL = "raw_results.jsonl"
ERRORS_JSONL = "errors.jsonl"
PER_ITEM_SCORES_CSV = "per_item_scores.csv"
SIGNIFICANCE_JSON = "significance.json"
COSTS_JSON = "costs.json"
LOCAL_COSTS_JSON = "local_costs.json"
TELEMETRY_CSV = "telemetry.csv"
TRIAL_MANIFEST_JSON = "trial_manifest.json"
TRANSCRIPTS_JSONL = "transcripts.jsonl"  # one line per item x temp x sample (CONTRACT section 10)
CONTEXTS_JSONL = "contexts.jsonl"  # each open-book context once, by context_id (CONTRACT section 10)
NOISE_FLOOR_JSON = "noise_floor.json"  # config aa: the A/A noise floor beside the effect (CONTRACT section 9)

PER_ITEM_COLUMNS = (
    "abstain_rate",
    "abstain_rate_std",
    "condition",
    "contains_answer",  # added (issue 29)
    "contains_answer_std",
    "em",
    "em_std",
    "f1",
    "f1_std",
    "false_answer_rate",
    "false_answer_rate_std",
    "item_key",
    "temp",
    "type",
    "unsupported_rate",
    "unsupported_rate_std",
)


def temp_label(temp: float) -> str:
    """The temperature as written in custom_ids: ``repr(float(T))`` (never rounded)."""
    return repr(float(temp))


def item_key(dataset: str, item_id: str) -> str:
    """``dataset|item_id``: the pairing key of per_item_scores.csv (CONTRACT section 5)."""
    if "|" in str(dataset) or "|" in str(item_id):
        raise CustomIdError(f"item id {item_id!r} or dataset {dataset!r} contains '|'")
    return f"{dataset}|{item_id}"


def parse_item_key(key: str) -> tuple[str, str]:
    """(dataset, item_id) from an item_key built by :func:`item_key`."""
    dataset, sep, item_id = str(key).partition("|")
    if not sep or not dataset or not item_id or "|" in item_id:
        raise CustomIdError(f"item_key {key!r} is not dataset|item_id")
    return dataset, item_id


class CustomIdError(ValueError):
    """A custom_id that does not follow the contract."""


@dataclass(frozen=True)
class CustomId:
    dataset: str
    item_id: str
    condition: str
    temp: str
    sample_index: int
    type: str

    def __str__(self) -> str:
        return "|".join(
            (self.dataset, self.item_id, self.condition, self.temp, str(self.sample_index), self.type)
        )

    @property
    def item_key(self) -> str:
        return f"{self.dataset}|{self.item_id}"


def build_custom_id(
    dataset: str, item_id: str, condition: str, temp: float | str, sample_index: int, type_: str
) -> str:
    """Build and validate a custom_id. ``temp`` may be a float or an existing label."""
    label = temp if isinstance(temp, str) else temp_label(temp)
    cid = CustomId(dataset, str(item_id), condition, label, int(sample_index), type_)
    _validate(cid)
    return str(cid)


def parse_custom_id(custom_id: str) -> CustomId:
    """Parse a custom_id; raises CustomIdError naming what is wrong."""
    if not isinstance(custom_id, str):
        raise CustomIdError(f"custom_id must be a string, got {type(custom_id).__name__}")
    parts = custom_id.split("|")
    if len(parts) != 6:
        raise CustomIdError(f"custom_id {custom_id!r} has {len(parts)} fields, expected 6")
    dataset, item_id, condition, temp, sample, type_ = parts
    try:
        sample_index = int(sample)
    except ValueError:
        raise CustomIdError(f"custom_id {custom_id!r}: sample_index {sample!r} is not an integer") from None
    cid = CustomId(dataset, item_id, condition, temp, sample_index, type_)
    _validate(cid)
    if str(cid) != custom_id:
        raise CustomIdError(f"custom_id {custom_id!r} is not in canonical form")
    return cid


def _validate(cid: CustomId) -> None:
    if not cid.dataset or not cid.item_id:
        raise CustomIdError(f"custom_id {cid}: empty dataset or item_id")
    if "|" in cid.item_id or "|" in cid.dataset:
        raise CustomIdError(f"item id {cid.item_id!r} contains '|'")
    if cid.condition not in CONDITIONS:
        raise CustomIdError(f"custom_id {cid}: condition {cid.condition!r} not in {CONDITIONS}")
    if cid.type not in TYPES:
        raise CustomIdError(f"custom_id {cid}: type {cid.type!r} not in {TYPES}")
    try:
        value = float(cid.temp)
    except ValueError:
        raise CustomIdError(f"custom_id {cid}: temp {cid.temp!r} is not a number") from None
    if temp_label(value) != cid.temp:
        raise CustomIdError(f"custom_id {cid}: temp {cid.temp!r} is not repr(float(T))")
    if cid.sample_index < 0:
        raise CustomIdError(f"custom_id {cid}: negative sample_index")
