"""The items a prompt fixed or broke (scoring.changed_items): from a real scored trial (prepared items,
predictions, the project's scoring and statistics stages), the fixed/broke lists equal significance.json's
McNemar b and c in every block and dataset subgroup, and the report lists them, escaped."""

from __future__ import annotations

import json
import random
import shutil
from collections import Counter
from pathlib import Path

import pytest

from config.atomic import write_csv_atomic, write_jsonl_atomic
from config.contract import PREDICTIONS_COLUMNS, build_custom_id
from config.schema import EvalConfig
from scoring.aggregate import ScoringInputError
from scoring.changed_items import CHANGES, changed_items, paired_items
from scoring.pipeline import analyse_trial
from tests.support.paths import ROOT

pytestmark = pytest.mark.unit

FIXTURE_RUN = ROOT / "tests" / "fixtures" / "report" / "run_demo"
HOSTILE = '</td><script>alert("x")</script><img src=x onerror="window.pwned=1">'
DATASETS = (("squad_v2", "open", 40), ("triviaqa", "closed", 24), ("nq_open", "closed", 24))
SAMPLES = (("0.0", 1), ("0.7", 3))


def make_trial(root: Path, seed: int = 11) -> tuple[Path, Path]:
    """A run folder (run/prepared, run/trial/results/predictions.csv) with seeded answers: gold, wrong or
    "I don't know." per condition and sample, so every block has items fixed and broken in both ways."""
    rng = random.Random(seed)
    open_book, closed_book, rows = [], [], []
    for dataset, type_, n in DATASETS:
        for i in range(n):
            item_id = f"{dataset[:2]}{i:03d}"
            unans = type_ == "open" and i % 3 == 0
            gold = f"answer {dataset} {i}"
            item = {"dataset": dataset, "id": item_id, "question": f"Question {i} about {dataset}?",
                    "answers": [] if unans else [gold, f"alias {i}"]}
            if type_ == "open":
                open_book.append({**item, "context": f"The passage says {gold}.", "is_unanswerable": unans})
            else:
                closed_book.append(item)
            for temp, k in SAMPLES:
                for cond in ("control", "treatment"):
                    p_right = 0.35 if cond == "control" else 0.6
                    for s in range(k):
                        roll = rng.random()
                        text = (gold if roll < p_right else "I don't know." if roll < p_right + 0.2
                                else f"wrong guess {rng.randint(0, 9)}")
                        if (dataset, i, temp) == ("squad_v2", 1, "0.0"):  # broke, with untrusted model output
                            text = gold if cond == "control" else HOSTILE
                        cid = build_custom_id(dataset, item_id, cond, temp, s, type_)
                        rows.append([cid, dataset, item_id, cond, temp, s, type_, f"r{len(rows)}", "stop", text,
                                     50, 5, 55])
    run = root / "run_t"
    write_jsonl_atomic(run / "prepared" / "open_book.jsonl", open_book)
    write_jsonl_atomic(run / "prepared" / "closed_book.jsonl", closed_book)
    results = run / "trial" / "results"
    rng.shuffle(rows)  # the lists' order must not depend on the file's
    write_csv_atomic(results / "predictions.csv", PREDICTIONS_COLUMNS, rows)
    return run / "prepared", results


@pytest.fixture(scope="module")
def trial(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The trial scored and analysed by the project's own pipeline (report included)."""
    prepared, results = make_trial(tmp_path_factory.mktemp("changed"))
    (results / "trial_manifest.json").write_text(json.dumps({"schema_version": 2, "run_id": "t", "stage_status": {}}),
                                                 encoding="utf-8")
    cfg = EvalConfig.model_validate({"local_engine": "dry_run",
                                     "stats": {"bootstrap_samples": 200, "permutation_samples": 200}})
    analyse_trial(results, prepared, cfg, reports_dir=results.parent / "reports")
    return prepared, results


def _blocks(sig: dict) -> list[tuple[str, str, str | None, dict]]:
    """(temp, type, dataset or None, mcnemar) for every block and dataset subgroup of significance.json."""
    out = []
    for temp, per_type in sig["results"].items():
        for type_, block in per_type.items():
            out.append((temp, type_, None, block["mcnemar"]))
            for name, sub in block["subgroups"]["dataset"].items():
                out.append((temp, type_, name, sub["mcnemar"]))
    return out


def _assert_lists_match_mcnemar(results: Path, prepared: Path | None) -> int:
    sig = json.loads((results / "significance.json").read_text(encoding="utf-8"))
    items = changed_items(results, prepared)
    counted = Counter((c.temp, c.type, c.dataset, c.change) for c in items)
    blocks = _blocks(sig)
    assert len(blocks) >= 8
    for temp, type_, dataset, m in blocks:
        fixed, broke = (sum(v for (t, ty, ds, ch), v in counted.items()
                            if (t, ty, ch) == (temp, type_, change) and dataset in (None, ds))
                        for change in ("fixed", "broke"))
        assert (fixed, broke) == (m["b"], m["c"]), (temp, type_, dataset)
    return len(items)


def test_lists_equal_mcnemar_b_and_c_of_a_real_trial(trial: tuple[Path, Path]) -> None:
    prepared, results = trial
    sig = json.loads((results / "significance.json").read_text(encoding="utf-8"))
    for temp, type_, dataset, m in _blocks(sig):  # the data really holds discordant items both ways
        if dataset is None:
            assert m["b"] > 0 and m["c"] > 0, (temp, type_)
    assert _assert_lists_match_mcnemar(results, prepared) > 0


def test_unanswerable_items_also_say_abstains_or_answers(trial: tuple[Path, Path]) -> None:
    prepared, results = trial
    items = changed_items(results, prepared)
    by_key = {(c.temp, c.item_key, c.change): c for c in items}
    abst = [c for c in items if c.change in ("now_abstains", "now_answers")]
    assert {c.change for c in abst} == {"now_abstains", "now_answers"}
    for c in abst:  # only unanswerable open-book items; abstaining is their right answer
        assert c.unanswerable and c.type == "open" and c.answers == []
        twin = "fixed" if c.change == "now_abstains" else "broke"
        assert (c.temp, c.item_key, twin) in by_key
        if c.change == "now_abstains":
            assert c.control_abstain < 0.5 <= c.treatment_abstain
        else:
            assert c.treatment_abstain < 0.5 <= c.control_abstain
    assert not any(c.unanswerable for c in items if c.type == "closed")


def test_items_carry_both_answers_sorted_by_dataset_and_id(trial: tuple[Path, Path]) -> None:
    prepared, results = trial
    items = changed_items(results, prepared)
    assert {c.change for c in items} <= set(CHANGES)
    for temp in ("0.0", "0.7"):
        for type_ in ("open", "closed"):
            keys = [(c.dataset, c.item_id) for c in items if (c.temp, c.type) == (temp, type_)]
            assert keys == sorted(keys) and keys
    first = items[0].to_dict()
    for name in ("temp", "type", "dataset", "item_id", "item_key", "change", "question", "answers",
                 "control_response", "treatment_response", "control_em", "treatment_em"):
        assert name in first
    json.dumps([c.to_dict() for c in items])  # plain values, for show --json
    hostile = [c for c in items if c.item_key == "squad_v2|sq001" and c.temp == "0.0"]
    assert hostile and hostile[0].treatment_response == HOSTILE  # kept verbatim; escaped where rendered


def test_representative_sample_agrees_with_the_verdict(trial: tuple[Path, Path]) -> None:
    """With K = 3, the response shown for a right condition is one of its right samples (EM 1)."""
    prepared, results = trial
    pairs = [p for p in paired_items(results, prepared) if p.temp == "0.7" and not p.unanswerable]
    checked = 0
    for p in pairs:
        assert p.control_samples == p.treatment_samples == 3
        gold = f"answer {p.dataset} {int(p.item_id[2:])}"
        for cond in ("control", "treatment"):
            right, text = getattr(p, f"{cond}_right"), getattr(p, f"{cond}_response")
            assert (text == gold) == right, (p.item_key, cond, text)
            checked += 1
    assert checked > 50


def test_report_lists_changed_items_and_links_items_html(trial: tuple[Path, Path]) -> None:
    _, results = trial
    reports = results.parent / "reports"
    html = (reports / "report.html").read_text(encoding="utf-8")
    md = (reports / "report.md").read_text(encoding="utf-8")
    assert "<h2>Items that changed</h2>" in html and '<a href="items.html">' in html
    for label in ("Treatment fixed (", "Treatment broke (", "Treatment now abstains (", "Treatment now answers ("):
        assert label in html, label
    assert "<script" not in html.lower() and "&lt;/td&gt;&lt;script&gt;alert(&quot;x&quot;)" in html
    sig = json.loads((results / "significance.json").read_text(encoding="utf-8"))
    m = sig["results"]["0.0"]["closed"]["mcnemar"]
    assert (f"Items that changed at temperature 0.0, closed-book: treatment fixed {m['b']}, broke {m['c']} "
            in md)
    assert "\nAll paired items (" in md and "rows): items.html\n" in md
    assert HOSTILE not in md and "wrong guess" not in md  # report.md: counts only, no model text lists
    assert (reports / "items.html").is_file()
    stages = json.loads((results / "trial_manifest.json").read_text(encoding="utf-8"))["stage_status"]
    assert stages["report"]["status"] == "done"
    assert (reports / "items.html").as_posix() in stages["report"]["artifacts"]  # recorded with the report


def test_report_shows_at_most_25_per_list(tmp_path: Path) -> None:
    run = tmp_path / "run_demo"
    shutil.copytree(FIXTURE_RUN, run)
    from scoring.report import write_report

    out = write_report(run / "demo-default" / "results", None, figures=False)
    html = out["report_html"].read_text(encoding="utf-8")
    section = html.split("<h2>Items that changed</h2>")[1].split("<h2>")[0]
    assert "Treatment fixed (37 items)" in section and "treatment fixed: the first 25 of 37." in section
    first_table = section.split("<table>")[1].split("</table>")[0]
    assert first_table.count("<tr>") == 26  # header + 25
    assert 'href="items.html#temp=0.0&amp;type=open&amp;change=fixed"' in section
    assert "Is &lt;img src=x onerror=alert(1)&gt; a capital &amp; a city?" in section  # question escaped
    assert out["items_html"] == out["report_html"].with_name("items.html")


def test_fixture_lists_match_its_significance(tmp_path: Path) -> None:
    """The report fixture's significance.json (built independently) agrees too, prepared items or not."""
    results = FIXTURE_RUN / "demo-default" / "results"
    assert _assert_lists_match_mcnemar(results, None) > 0  # the run's own prepared/ snapshot
    assert _assert_lists_match_mcnemar(results, tmp_path / "none") > 0  # no questions, same lists
    assert all(c.question is None for c in changed_items(results, tmp_path / "none"))


def test_missing_per_item_scores_is_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(ScoringInputError, match=r"^per-item scores not found: .*run the score stage first"):
        changed_items(tmp_path, tmp_path)
