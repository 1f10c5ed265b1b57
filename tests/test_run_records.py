"""Typed run records (issue 24.5): run_state.json, trial_manifest.json and ``status --json`` are read and
written through one model each, and RunLayout (producer/runs/layout.py) owns every path of a run folder.

The round trips use the files a real dry_run run writes (real subprocesses, real SQLite): reading a file
into its model and dumping it again gives the same bytes, so the formats of docs/contract.md section 9
are unchanged (same keys, same order, same values)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from config.atomic import to_strict_json
from producer.ledger.status_record import RunStatus
from producer.runs.run_records import RunState, TrialManifest, read_record
from tests.support.paths import ROOT
from tests.support.queue_runs import producer, run_id_of, write_config

PACKAGES = ("producer", "workers", "scoring", "telemetry", "config")
# a run folder's names, joined by hand: each belongs to producer/runs/layout.py alone
HAND_BUILT = re.compile(
    r"""/\s*"(prepared|results|reports|fireworks|summary[a-z_.]*|run_state\.json|effective_config\.yaml"""
    r"""|trial_manifest\.json|report\.html)"|f"run_\{|"run_state\.json"|"effective_config\.yaml"|"""
    r"""\.parent\.parent\s*/\s*"prepared\"""")
OWNER = ROOT / "producer" / "runs" / "layout.py"


@pytest.mark.unit
def test_no_run_path_is_built_outside_the_layout() -> None:
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if path == OWNER:
                continue
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if HAND_BUILT.search(line):
                    found.append(f"{path.relative_to(ROOT).as_posix()}:{n}: {line.strip()}")
    assert found == []  # allow-list: none


@pytest.mark.unit
def test_each_record_file_has_one_reader_and_one_writer() -> None:
    """Only producer/runs/run_records.py turns a record file into JSON and back; the manifests module is the
    only caller that writes run_state.json and trial_manifest.json."""
    writers = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            text = path.read_text(encoding="utf-8")
            if re.search(r"\bwrite_record\(|\bread_record\(", text):
                writers.append(path.relative_to(ROOT).as_posix())
    assert writers == ["producer/runs/manifests.py", "producer/runs/run_records.py"]


def _as_written(data: dict) -> str:
    """The bytes write_json_atomic gives a JSON object."""
    return json.dumps(to_strict_json(data), indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def test_records_of_a_dry_run_round_trip_byte_for_byte(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, local_engine="dry_run")
    queue = tmp_path / "queue"
    done = producer(["run", "--config", str(cfg), "--workers", "1"], queue)
    assert done.returncode == 0, done.stdout + done.stderr
    stopped = producer(["stop", "--run-id", run_id_of(queue)], queue)  # adds stop_updated_at
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    run_dir = tmp_path / "experiments" / f"run_{run_id_of(queue)}"

    state_file = run_dir / "run_state.json"
    state = read_record(state_file, RunState)
    assert state.stop_requested is True and state.phases["parse"].status == "done"
    assert state.phases["submit"].extra("note", "").startswith("local engine")
    assert _as_written(state.to_json()) == state_file.read_text(encoding="utf-8")

    (manifest_file,) = run_dir.glob("*/results/trial_manifest.json")
    manifest = read_record(manifest_file, TrialManifest)
    assert manifest.dry_run is True and manifest.batching is not None and manifest.batching.mode == "none"
    assert manifest.stage_status["generated"].extra("cache_hits") == 0
    assert manifest.stage_status["report"].extra("headline")
    assert _as_written(manifest.to_json()) == manifest_file.read_text(encoding="utf-8")

    printed = producer(["status", "--json"], queue)
    assert printed.returncode == 0, printed.stderr
    st = RunStatus.model_validate_json(printed.stdout)
    assert st.state == "done" and st.stop_requested is True and st.totals.done == st.totals.total == 8
    assert json.dumps(st.to_json(), indent=2) + "\n" == printed.stdout


@pytest.mark.unit
def test_a_newer_file_keeps_fields_this_version_does_not_know(tmp_path: Path) -> None:
    path = tmp_path / "trial_manifest.json"
    data = {"schema_version": 3, "run_id": "r", "from_the_future": {"x": 1},
            "stage_status": {"parsed": {"status": "done", "updated_at": None, "artifacts": [], "rows": 4}}}
    path.write_text(json.dumps(data), encoding="utf-8")
    record = read_record(path, TrialManifest)
    assert record.stage_status["parsed"].extra("rows") == 4
    assert record.to_json() == data
