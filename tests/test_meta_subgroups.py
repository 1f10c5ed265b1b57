"""Items may carry a free-form ``meta`` object, and ``stats.subgroups: [meta.category]`` adds a paired
comparison per group, in the one FDR family (issue 29, item 3).

Why: a researcher's own questions come in kinds (geography, dates, people); "does the prompt help on
dates?" is the next question after the overall effect, and testing it per group must not escape the
multiple-testing correction.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from config.errors import ConfigError
from config.schema import StatsConfig, validate_config_dict
from producer.inputs.datasets.custom import load_custom
from producer.inputs.datasets.data_errors import DataError
from scoring.stats import build_significance, run_stats
from tests.support.offline_config import offline_config_dict

pytestmark = pytest.mark.unit
OPEN_ONLY_COLUMNS = ("f1", "f1_std", "false_answer_rate", "false_answer_rate_std", "unsupported_rate",
                     "unsupported_rate_std")


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_a_row_may_carry_meta_and_the_item_keeps_it(tmp_path: Path) -> None:
    path = _write(tmp_path / "caps.jsonl", [
        {"id": "a", "question": "Capital of France?", "answers": ["Paris"], "meta": {"category": "geo", "year": 2020}},
        {"id": "b", "question": "Capital of Peru?", "answers": ["Lima"]},
    ])
    first, second = load_custom("caps", path, "closed_book")
    assert first["meta"] == {"category": "geo", "year": "2020"}  # values are labels: text
    assert "meta" not in second


@pytest.mark.parametrize(("meta", "says"), [
    ("geo", "field 'meta' must be an object"),
    ({"category": ["a", "b"]}, "meta.category must be a string, number or true/false"),
    ({"bad key!": "x"}, "meta key 'bad key!'"),
])
def test_a_bad_meta_is_one_line(tmp_path: Path, meta, says) -> None:
    path = _write(tmp_path / "caps.jsonl", [{"id": "a", "question": "Q?", "answers": ["A"], "meta": meta}])
    with pytest.raises(DataError, match="line 1: ") as info:
        load_custom("caps", path, "closed_book")
    assert says in str(info.value) and "\n" not in str(info.value)


def test_subgroups_must_name_a_meta_field(tmp_path: Path) -> None:
    ok = validate_config_dict(offline_config_dict(tmp_path, stats={"subgroups": ["meta.category"]}))
    assert ok.stats.subgroups == ["meta.category"]
    with pytest.raises(ConfigError, match="meta.<field>"):
        validate_config_dict(offline_config_dict(tmp_path, stats={"subgroups": ["category"]}))


def _per_item():
    import pandas as pd

    rows = []
    for i in range(40):  # 40 closed-book items: the treatment fixes the "date" ones only
        key = f"caps|q{i:02d}"
        date = i % 2 == 0
        for cond, em in (("control", 0.0), ("treatment", 1.0 if date and i % 4 == 0 else 0.0)):
            rows.append({"item_key": key, "type": "closed", "condition": cond, "temp": "0.0", "em": em, "em_std": 0.0,
                         "abstain_rate": 0.0, "abstain_rate_std": 0.0, "contains_answer": em,
                         "contains_answer_std": 0.0, **{c: float("nan") for c in OPEN_ONLY_COLUMNS}})
    return pd.DataFrame(rows), {f"caps|q{i:02d}": {"meta.category": "date" if i % 2 == 0 else "place"}
                                for i in range(40)}


def test_each_group_is_compared_and_counted_in_the_fdr_family() -> None:
    per_item, groups = _per_item()
    cfg = StatsConfig(bootstrap_samples=200, permutation_samples=200, subgroups=["meta.category"])
    plain = build_significance(per_item, cfg.model_copy(update={"subgroups": []}))
    sig = build_significance(per_item, cfg, groups=groups)
    block = sig["results"]["0.0"]["closed"]
    by = block["subgroups"]["meta.category"]
    assert sorted(by) == ["date", "place"]
    assert by["date"]["n_items"] == 20 and by["date"]["mcnemar"]["b"] == 10
    assert by["place"]["metrics"]["em"]["delta_mean"] == 0.0
    # each group's McNemar and Wilcoxon tests join the one family
    assert sig["stats_config"]["fdr"]["n_tests"] == plain["stats_config"]["fdr"]["n_tests"] + 2 * (1 + 3)
    assert by["date"]["mcnemar"]["q_value"] is not None


def test_run_stats_reads_the_groups_from_the_prepared_items(tmp_path: Path) -> None:
    per_item, groups = _per_item()
    prepared = tmp_path / "prepared"
    prepared.mkdir()
    (prepared / "open_book.jsonl").write_text("", encoding="utf-8")
    _write(prepared / "closed_book.jsonl", [
        {"dataset": "caps", "id": f"q{i:02d}", "question": "Q?", "answers": ["A"],
         "meta": {"category": groups[f"caps|q{i:02d}"]["meta.category"]}} for i in range(40)])
    csv = tmp_path / "per_item_scores.csv"
    from scoring.aggregate import write_per_item_csv

    write_per_item_csv(per_item, csv)
    cfg = StatsConfig(bootstrap_samples=200, permutation_samples=200, subgroups=["meta.category"])
    out = run_stats(csv, cfg, tmp_path / "significance.json", prepared)
    sig = json.loads(out.read_text(encoding="utf-8"))
    assert sorted(sig["results"]["0.0"]["closed"]["subgroups"]["meta.category"]) == ["date", "place"]


def test_the_report_has_a_table_per_group_field() -> None:
    from scoring.report_sig import meta_subgroup_rows

    per_item, groups = _per_item()
    cfg = StatsConfig(bootstrap_samples=200, permutation_samples=200, subgroups=["meta.category"])
    sig = build_significance(per_item, cfg, groups=groups)
    rows = meta_subgroup_rows(sig["results"]["0.0"]["closed"])
    assert [(field, value) for field, value, _ in rows] == [("meta.category", "date"), ("meta.category", "place")]
    from scoring.report_text import meta_subgroup_table

    table = meta_subgroup_table(sig["results"]["0.0"]["closed"], "0.0", "closed")
    em_date = next(row for row in table.rows if row[:3] == ["meta.category", "date", "EM"])
    assert em_date[3].startswith("+50.0") and em_date[-1] == "20"
