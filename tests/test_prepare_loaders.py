"""Loaders read real-format fixtures of every official format; prepare shuffles, truncates and reuses."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from config.schema import load_config
from producer.inputs.datasets.data_errors import DataError
from producer.inputs.datasets.formats import load_nq_open, load_squad_v2, load_triviaqa
from producer.inputs.datasets.items import question_hash_id
from producer.inputs.datasets.sources import SAMPLE_FILES, SAMPLES_DIR
from producer.inputs.prepare import ensure_prepared, load_prepared_items, select_items
from tests.support.paths import FIXTURES, ROOT
from tests.support.workdirs import make_workdir


@pytest.mark.unit
def test_squad_v2_official_json() -> None:
    items = load_squad_v2(FIXTURES / "squad_v2_dev_mini.json")
    assert [i["id"] for i in items] == [
        "56ddde6b9a695914005b9628",
        "56ddde6b9a695914005b9629",
        "5ad39d53604f3c001a3fe8d1",
        "56e16182e3433e1400422e28",
        "5ad5316b5b96ef001a10ab72",
    ]
    first, second, impossible = items[:3]
    assert first["answers"] == ["France"]  # the four identical annotations collapse to one
    assert second["answers"] == ["10th and 11th centuries", "in the 10th and 11th centuries"]
    assert impossible["answers"] == [] and impossible["is_unanswerable"] is True
    assert first["is_unanswerable"] is False
    assert "Rollo, agreed" in first["context"]  # whitespace collapsed
    assert "\n" not in items[3]["context"]
    assert list(first) == ["dataset", "id", "context", "question", "answers", "is_unanswerable"]


@pytest.mark.unit
def test_triviaqa_official_json_value_plus_aliases() -> None:
    items = load_triviaqa(FIXTURES / "triviaqa_verified_web_dev_mini.json")
    assert [i["id"] for i in items] == ["tc_33", "sfq_2517", "qb_1234"]
    assert items[0]["answers"][0] == "Sunset Boulevard"
    assert set(items[0]["answers"]) == {
        "Sunset Boulevard", "Sunset Blvd", "West Sunset Boulevard", "Sunset Bulevard", "Sunset Blvd.",
    }
    assert items[1]["question"] == "Where in the UK was the Llyn Peninsula?"
    assert list(items[0]) == ["dataset", "id", "question", "answers"]


@pytest.mark.unit
def test_triviaqa_hf_rc_nocontext_jsonl_matches_official() -> None:
    hf = load_triviaqa(FIXTURES / "triviaqa_rc.nocontext_validation_mini.jsonl")
    official = load_triviaqa(FIXTURES / "triviaqa_verified_web_dev_mini.json")
    assert hf[0] == official[0]
    assert hf[1] == {"dataset": "triviaqa", "id": "tc_40", "question": "Who was the man behind The Chipmunks?",
                     "answers": ["David Seville"]}


@pytest.mark.unit
def test_triviaqa_hf_parquet(tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    rows = [json.loads(line) for line in
            (FIXTURES / "triviaqa_rc.nocontext_validation_mini.jsonl").read_text(encoding="utf-8").splitlines()]
    path = tmp_path / "validation-00000-of-00001.parquet"
    pd.DataFrame(rows).to_parquet(path)
    assert load_triviaqa(path) == load_triviaqa(FIXTURES / "triviaqa_rc.nocontext_validation_mini.jsonl")


def test_parquet_without_pyarrow_says_what_to_install(tmp_path: Path) -> None:
    path = tmp_path / "x.parquet"
    path.write_bytes(b"PAR1")
    code = (
        "import sys; sys.modules['pyarrow'] = None\n"
        "from producer.inputs.datasets.formats import load_triviaqa\n"
        "from producer.inputs.datasets.data_errors import DataError\n"
        f"try:\n    load_triviaqa({str(path)!r})\nexcept DataError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, encoding="utf-8",
                         cwd=ROOT, check=True).stdout
    assert "needs pyarrow: run `pip install pyarrow`" in out and out.count("\n") == 1


@pytest.mark.unit
def test_nq_open_jsonl_ids_are_stable_question_hashes() -> None:
    items = load_nq_open(FIXTURES / "NQ-open.dev.mini.jsonl")
    assert len(items) == 4
    assert items[0]["answers"] == ["14 December 1972 UTC", "December 1972"]
    assert items[0]["id"] == question_hash_id("when was the last time anyone was on the moon")
    assert items[0]["id"] == question_hash_id("when was  the last time anyone was on the moon ")
    assert len({i["id"] for i in items}) == 4 and all("|" not in i["id"] for i in items)


@pytest.mark.unit
def test_malformed_jsonl_names_its_line() -> None:
    with pytest.raises(DataError, match=r"nq_open_malformed.jsonl: line 2: malformed JSON"):
        load_nq_open(FIXTURES / "nq_open_malformed.jsonl")


@pytest.mark.unit
def test_bundled_samples_are_valid_and_balanced() -> None:
    squad = load_squad_v2(SAMPLES_DIR / SAMPLE_FILES["squad_v2"])
    tqa = load_triviaqa(SAMPLES_DIR / SAMPLE_FILES["triviaqa"])
    nq = load_nq_open(SAMPLES_DIR / SAMPLE_FILES["nq_open"])
    assert len(squad) >= 30 and len(tqa) >= 25 and len(nq) >= 25
    unanswerable = sum(i["is_unanswerable"] for i in squad)
    assert 0.25 <= unanswerable / len(squad) <= 0.4
    for item in squad:  # every gold answer is a span of its passage, as in SQuAD
        assert all(a in item["context"] for a in item["answers"])
    assert all(i["answers"] for i in tqa + nq)


def _cfg(work: Path, monkeypatch: pytest.MonkeyPatch, **sizes):
    monkeypatch.chdir(work)
    cfg = load_config("config/eval_config.demo.yaml")
    if sizes:
        cfg = cfg.model_copy(update={"sizes": cfg.sizes.model_copy(update=sizes)})
    return cfg


@pytest.mark.unit
def test_prepare_writes_contract_files_and_reuses_by_fingerprint(tmp_path: Path, monkeypatch) -> None:
    work = make_workdir(tmp_path)
    nq = work / "nq.jsonl"
    shutil.copy(FIXTURES / "NQ-open.dev.mini.jsonl", nq)
    cfg = _cfg(work, monkeypatch, squad_v2=4, triviaqa=3, nq_open=None)
    overrides = {"nq_open": str(nq)}
    first = ensure_prepared(cfg, overrides)
    assert not first.reused and first.counts == {"squad_v2": 4, "triviaqa": 3, "nq_open": 4}
    manifest = json.loads(first.manifest.read_text(encoding="utf-8"))
    assert manifest["schema_version"] == 1
    assert manifest["datasets"]["open_book"]["items"] == 4 and manifest["datasets"]["closed_book"]["items"] == 7
    assert manifest["sources"]["nq_open"]["kind"] == "file" and manifest["sources"]["squad_v2"]["kind"] == "sample"
    assert load_prepared_items(cfg.paths.prepared_dir) == first.items
    stamps = {p: p.stat().st_mtime_ns for p in (first.open_book, first.closed_book, first.manifest)}

    again = ensure_prepared(cfg, overrides)
    assert again.reused and again.items == first.items
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps  # nothing rewritten

    os.utime(nq, ns=(1, 1))  # only the mtime changes: still reused
    assert ensure_prepared(cfg, overrides).reused

    with nq.open("a", encoding="utf-8") as fh:  # content changes: prepared again
        fh.write('{"question": "what is the capital of peru", "answer": ["Lima"]}\n')
    changed = ensure_prepared(cfg, overrides)
    assert not changed.reused and changed.counts["nq_open"] == 5

    first.closed_book.write_text("", encoding="utf-8")  # a damaged output is rebuilt
    assert not ensure_prepared(cfg, overrides).reused
    reseeded = cfg.model_copy(update={"data_seed": 7})
    assert not ensure_prepared(reseeded, overrides).reused


@pytest.mark.unit
def test_shuffle_is_seeded_and_sizes_truncate(tmp_path: Path, monkeypatch) -> None:
    items = [{"id": str(i)} for i in range(50)]
    a = select_items(items, "squad_v2", 42, None)
    assert a == select_items(items, "squad_v2", 42, None) and a != items
    assert a != select_items(items, "squad_v2", 43, None)
    assert select_items(items, "squad_v2", 42, 10) == a[:10]
    assert select_items(items, "squad_v2", 42, 0) == []
    work = make_workdir(tmp_path)
    cfg = _cfg(work, monkeypatch, squad_v2=0, triviaqa=None, nq_open=5)
    full = ensure_prepared(cfg)
    assert full.counts == {"squad_v2": 0, "triviaqa": 25, "nq_open": 5}
    assert full.open_book.read_text(encoding="utf-8") == ""
    limited = ensure_prepared(cfg, limit_items=2)
    assert limited.counts == {"squad_v2": 0, "triviaqa": 2, "nq_open": 2}
    full_tqa = [i["id"] for i in full.items if i["dataset"] == "triviaqa"]
    assert [i["id"] for i in limited.items if i["dataset"] == "triviaqa"] == full_tqa[:2]


def test_prepare_cli_twice_reuses(tmp_path: Path) -> None:
    from tests.support.cli import run_cli

    work = make_workdir(tmp_path)
    first = run_cli(["prepare", "--config", "demo", "--limit-items", "3"], cwd=work)
    assert first.returncode == 0 and "written" in first.stdout
    second = run_cli(["prepare", "--config", "demo", "--limit-items", "3"], cwd=work)
    assert second.returncode == 0 and "reused" in second.stdout
    rows = (work / "data/prepared/closed_book.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(rows) == 6 and {json.loads(r)["dataset"] for r in rows} == {"triviaqa", "nq_open"}
