"""Which items the treatment changed: every paired item of a trial with both answers side by side.

Why here: "did the false-answer rate change?" is followed by "on which questions, and what did the
model say?". The answer joins the trial's own files (per_item_scores.csv, predictions.csv and the
prepared items), never the ledger or the workers. An item's verdicts use the definitions the statistics
use (scoring.stats.is_right / is_abstaining on the same paired frame, scoring.stats.split_pairs), so
for every (temp, type) block and every dataset subgroup the "fixed" and "broke" lists hold exactly
significance.json's McNemar b and c items.

Changes: "fixed" (control wrong, treatment right), "broke" (control right, treatment wrong); for
unanswerable open-book items also "now_abstains" (control answered, treatment abstains) and
"now_answers" (the reverse). On an unanswerable item abstaining *is* the right answer, so such an item
is listed both as fixed/broke and as now_abstains/now_answers.

With K > 1 samples per item, the response shown for a condition is its representative sample: the
lowest-numbered sample whose own verdict agrees with the condition's item verdict (a sample with EM 1
for a condition that is right, EM 0 for one that is wrong); sample 0 when none does or the item is not
in the prepared items.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from config.contract import PER_ITEM_SCORES_CSV, PREDICTIONS_CSV, TYPES, item_key, parse_item_key
from producer.host.console import UserError
from producer.inputs.prepare import load_prepared_items
from producer.runs.layout import TrialFolder
from scoring.aggregate import ScoringInputError, read_per_item_csv, read_predictions
from scoring.rules import item_parts, score_parts
from scoring.stats import is_abstaining, is_right, split_pairs

CHANGES = ("fixed", "broke", "now_abstains", "now_answers")
CHANGE_LABELS = {"fixed": "treatment fixed", "broke": "treatment broke", "now_abstains": "treatment now abstains",
                 "now_answers": "treatment now answers"}


@dataclass
class _Pair:
    temp: str
    type: str
    dataset: str
    item_id: str
    item_key: str
    question: str | None  # None: the item is not in the prepared items
    answers: list[str]
    unanswerable: bool
    control_response: str | None  # the representative sample's text; None: no prediction row
    treatment_response: str | None
    control_em: float  # mean EM over the K samples (per_item_scores.csv)
    treatment_em: float
    control_right: bool
    treatment_right: bool
    control_abstain: float  # mean abstain rate
    treatment_abstain: float
    control_sample: int | None  # sample_index of the representative response
    treatment_sample: int | None
    control_samples: int  # K: prediction rows of the condition
    treatment_samples: int
    control_contains: float | None = None  # mean contains-answer rate (issue 29); None in older score files
    treatment_contains: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values (``show --json``, items.html)."""
        return asdict(self)


@dataclass
class PairedItem(_Pair):
    """One item × temperature × type with both conditions scored; ``changes`` empty when unchanged."""

    changes: tuple[str, ...] = field(default_factory=tuple)


@dataclass
class ChangedItem(_Pair):
    """One change of one paired item; ``change`` is one of CHANGES."""

    change: str = ""


def default_prepared_dir(results_dir: Path) -> Path:
    """The run's frozen copy of its items: ``run_<ID>/prepared`` beside ``run_<ID>/<slug>/results``."""
    return TrialFolder.of_results(Path(results_dir).resolve()).run_folder.prepared_dir


def load_items(prepared_dir: Path | None) -> dict[str, dict[str, Any]]:
    """Prepared items by item_key; empty when the folder holds none (questions then show as missing)."""
    if prepared_dir is None or not Path(prepared_dir).is_dir():
        return {}
    try:
        items = load_prepared_items(Path(prepared_dir))
    except UserError:
        return {}
    return {item_key(str(it["dataset"]), str(it["id"])): it for it in items}


def _samples(results_dir: Path) -> dict[tuple[str, str, str], dict[int, str]]:
    """{(item_key, temp, condition): {sample_index: response_text}} from predictions.csv (empty if absent)."""
    path = results_dir / PREDICTIONS_CSV
    if not path.is_file():
        return {}
    df = read_predictions(path)
    if "sample_index" not in df.columns:
        raise ScoringInputError(f"{path}: missing columns ['sample_index']")
    out: dict[tuple[str, str, str], dict[int, str]] = {}
    for ds, iid, cond, temp, s, text in zip(df["dataset"], df["item_id"], df["condition"], df["temp"],
                                            df["sample_index"], df["response_text"], strict=True):
        try:
            index = int(s)
        except ValueError:
            raise ScoringInputError(f"{path}: sample_index {s!r} is not an integer") from None
        out.setdefault((item_key(ds, iid), temp, cond), {})[index] = text
    return out


def _representative(samples: dict[int, str], right: bool, parts: tuple | None, type_: str) -> tuple[int | None, str | None]:
    if not samples:
        return None, None
    order = sorted(samples)
    if parts is not None and len(order) > 1:
        for index in order:
            if bool(is_right(score_parts(*parts, samples[index], type_)["em"])) == right:
                return index, samples[index]
    return order[0], samples[order[0]]


def _changes(ctl_right: bool, trt_right: bool, unanswerable: bool, ctl_abst: bool, trt_abst: bool) -> tuple[str, ...]:
    out = []
    if trt_right != ctl_right:
        out.append("fixed" if trt_right else "broke")
    if unanswerable and trt_abst != ctl_abst:
        out.append("now_abstains" if trt_abst else "now_answers")
    return tuple(out)


def paired_items(results_dir: Path, prepared_dir: Path | None = None) -> list[PairedItem]:
    """Every paired item of the trial, by temperature, type, dataset and item id.

    Raises ScoringInputError (one line) when per_item_scores.csv is missing or unreadable; a missing
    predictions.csv or prepared folder only leaves responses or questions empty."""
    results_dir = Path(results_dir)
    path = results_dir / PER_ITEM_SCORES_CSV
    if not path.is_file():
        raise ScoringInputError(f"per-item scores not found: {path} (run the score stage first)")
    per_item = read_per_item_csv(path)
    per_item["temp"] = per_item["temp"].astype(str)
    items = load_items(default_prepared_dir(results_dir) if prepared_dir is None else prepared_dir)
    samples = _samples(results_dir)
    out: list[PairedItem] = []
    for temp in sorted(per_item["temp"].unique(), key=float):
        for type_ in TYPES:
            frame, _ = split_pairs(per_item, temp, type_)
            out += _block_rows(frame, temp, type_, items, samples)
    return out


def _block_rows(frame: pd.DataFrame, temp: str, type_: str, items: dict[str, dict[str, Any]],
                samples: dict[tuple[str, str, str], dict[int, str]]) -> list[PairedItem]:
    if frame.empty:
        return []
    ctl_right = is_right(frame["em_control"].to_numpy(float))
    trt_right = is_right(frame["em_treatment"].to_numpy(float))
    ctl_abst = is_abstaining(frame["abstain_rate_control"].to_numpy(float))
    trt_abst = is_abstaining(frame["abstain_rate_treatment"].to_numpy(float))
    rows = []
    for i, key in enumerate(frame.index):
        dataset, item_id = parse_item_key(str(key))
        item = items.get(str(key))
        parts = item_parts(item) if item is not None else None
        unanswerable = type_ == "open" and parts is not None and parts[1]
        ctl = samples.get((str(key), temp, "control"), {})
        trt = samples.get((str(key), temp, "treatment"), {})
        c_index, c_text = _representative(ctl, bool(ctl_right[i]), parts, type_)
        t_index, t_text = _representative(trt, bool(trt_right[i]), parts, type_)
        answers = (item.get("answers") or []) if item is not None else []
        rows.append(PairedItem(
            temp=temp, type=type_, dataset=dataset, item_id=item_id, item_key=str(key),
            question=None if item is None else str(item.get("question", "")),
            answers=[answers] if isinstance(answers, str) else [str(a) for a in answers],
            unanswerable=bool(unanswerable), control_response=c_text, treatment_response=t_text,
            control_em=float(frame["em_control"].iloc[i]), treatment_em=float(frame["em_treatment"].iloc[i]),
            control_right=bool(ctl_right[i]), treatment_right=bool(trt_right[i]),
            control_abstain=float(frame["abstain_rate_control"].iloc[i]),
            treatment_abstain=float(frame["abstain_rate_treatment"].iloc[i]),
            control_contains=_mean_or_none(frame, "contains_answer_control", i),
            treatment_contains=_mean_or_none(frame, "contains_answer_treatment", i),
            control_sample=c_index, treatment_sample=t_index, control_samples=len(ctl), treatment_samples=len(trt),
            changes=_changes(bool(ctl_right[i]), bool(trt_right[i]), bool(unanswerable), bool(ctl_abst[i]),
                             bool(trt_abst[i]))))
    rows.sort(key=lambda r: (r.dataset, r.item_id))
    return rows


def _mean_or_none(frame: pd.DataFrame, column: str, i: int) -> float | None:
    if column not in frame.columns or pd.isna(frame[column].iloc[i]):
        return None
    return float(frame[column].iloc[i])


def changes_of(pairs: list[PairedItem]) -> list[ChangedItem]:
    """One ChangedItem per change of each paired item, keeping their order."""
    out = []
    for pair in pairs:
        base = {k: v for k, v in asdict(pair).items() if k != "changes"}
        out += [ChangedItem(**base, change=change) for change in pair.changes]
    return out


def changed_items(results_dir: Path, prepared_dir: Path | None = None) -> list[ChangedItem]:
    """The discordant items of a trial (see the module docstring), sorted by temperature, type, dataset
    and item id; ``prepared_dir`` None: the run's own ``prepared/`` snapshot."""
    return changes_of(paired_items(results_dir, prepared_dir))
