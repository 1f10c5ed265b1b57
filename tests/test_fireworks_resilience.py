"""Paid work is never paid twice and nothing waits for ever (``producer run`` against the fake server).

- expired signed URLs / a 401 from getDownloadEndpoint never fail a COMPLETED job; ``--retry-failed``
  re-sends only rows the job reported as errors (or never returned), never rows it returned;
- a job stuck in PENDING past ``fireworks.poll_deadline_s`` stops the run with the job id and what to do;
- download file names from the API cannot leave their folder.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path, PureWindowsPath

import pytest

from producer.host.exit_codes import SOME_FAILED, STOPPED
from tests.support.fireworks_runs import (
    KEY,
    SIZES,
    fw_config,
    fw_env,
    read_predictions_csv,
    run_dir_of,
    run_producer,
)
from tests.support.servers.fake_fireworks import FakeFireworksServer, FakeState, Fault

TOTAL = 2 * sum(SIZES.values())  # two conditions, one temperature, one sample
PARTS = 4  # control/treatment x open/closed


@pytest.fixture
def server():
    srv = FakeFireworksServer(FakeState(api_key=KEY)).start()
    yield srv
    srv.stop()


def _rows(tmp: Path) -> list[dict[str, str]]:
    (pred,) = run_dir_of(tmp).glob("*/results/predictions.csv")
    return read_predictions_csv(pred)[1]


def _resent(server: FakeFireworksServer, before: set[str]) -> int:
    return sum(len(v["rows"]) for k, v in server.state.datasets.items() if k.endswith("-in") and k not in before)


def _inputs(server: FakeFireworksServer) -> set[str]:
    return {k for k in server.state.datasets if k.endswith("-in")}


def test_expired_signed_urls_never_fail_a_completed_job(tmp_path, server):
    server.state.faults += [Fault("signed", 403, 3, message="Request has expired"),
                            Fault("download", 401, 2, message="Request had invalid authentication credentials")]
    cfg = fw_config(tmp_path)
    env = fw_env(tmp_path, server)
    proc = run_producer(tmp_path, env, "run", "--config", str(cfg), "-w", "1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert len(_rows(tmp_path)) == TOTAL  # every row Fireworks returned is in
    assert server.state.counts["job_creates"] == PARTS
    assert server.state.counts["download"] > PARTS  # fresh URLs were asked for
    assert server.state.signed_with_auth == 0
    run_id = run_dir_of(tmp_path).name[len("run_"):]
    again = run_producer(tmp_path, env, "run", "--config", str(cfg), "--resume", run_id, "--retry-failed", "-w", "1")
    assert again.returncode == 0, again.stdout + again.stderr
    assert server.state.counts["job_creates"] == PARTS  # nothing paid twice
    assert KEY not in proc.stdout + proc.stderr + again.stdout + again.stderr


def test_retry_failed_sends_only_rows_the_job_did_not_return(tmp_path, server):
    """A part failed after its job COMPLETED (as the old code did on an expired URL) is downloaded again,
    not re-created; only the rows Fireworks reported as errors get a new job."""
    server.state.fail_index = {0}  # the first row of every job goes to error-data
    cfg = fw_config(tmp_path)
    env = fw_env(tmp_path, server)
    proc = run_producer(tmp_path, env, "run", "--config", str(cfg), "-w", "1")
    assert proc.returncode == SOME_FAILED, proc.stdout + proc.stderr
    assert len(_rows(tmp_path)) == TOTAL - PARTS
    run_id = run_dir_of(tmp_path).name[len("run_"):]
    db = sqlite3.connect(tmp_path / "queue" / "ledger.sqlite3")
    with db:  # the ledger the old code left behind: a COMPLETED job's part failed, all its rows failed
        assert db.execute("select job_state from fireworks_parts where part = 0").fetchone()[0] == "JOB_STATE_COMPLETED"
        db.execute("update fireworks_parts set state = 'failed', error = 'signed URL: HTTP 403' where part = 0")
        db.execute("update requests set state = 'failed', last_error = 'HTTP 403' where chunk = 0")
    db.close()
    server.state.fail_index = set()
    before = _inputs(server)
    retry = run_producer(tmp_path, env, "run", "--config", str(cfg), "--resume", run_id, "--retry-failed", "-w", "1")
    assert retry.returncode == SOME_FAILED, retry.stdout + retry.stderr  # part 0's error row is still failed
    assert server.state.counts["job_creates"] == PARTS + (PARTS - 1)  # no new job for part 0
    assert _resent(server, before) == PARTS - 1  # one error row per other part, nothing returned twice
    assert len(_rows(tmp_path)) == TOTAL - 1
    before = _inputs(server)
    last = run_producer(tmp_path, env, "run", "--config", str(cfg), "--resume", run_id, "--retry-failed", "-w", "1")
    assert last.returncode == 0, last.stdout + last.stderr
    assert _resent(server, before) == 1 and server.state.counts["job_creates"] == 2 * PARTS
    assert len(_rows(tmp_path)) == TOTAL


def test_a_job_stuck_pending_stops_the_run_at_the_deadline(tmp_path, server):
    server.state.hold_state = "JOB_STATE_PENDING"  # a model without batch support
    cfg = fw_config(tmp_path, fireworks={"poll_interval_s": 0.1, "request_deadline_s": 20, "poll_deadline_s": 1.5})
    env = fw_env(tmp_path, server)
    proc = run_producer(tmp_path, env, "run", "--config", str(cfg), "-w", "1", timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode == STOPPED, out
    stop_line = next(ln for ln in proc.stdout.splitlines() if " stopped: " in ln)
    jobs = set(server.state.jobs)
    assert any(j in stop_line for j in jobs), stop_line
    assert "still PENDING" in stop_line and "poll_deadline_s" in stop_line and "--resume" in stop_line
    assert "Traceback" not in out and KEY not in out
    run_id = run_dir_of(tmp_path).name[len("run_"):]
    status = run_producer(tmp_path, env, "status")
    assert "still PENDING" in status.stdout, status.stdout
    db = sqlite3.connect(tmp_path / "queue" / "ledger.sqlite3")
    windows = [r[0] for r in db.execute("select deadline_at from fireworks_parts where state = 'submitted'")]
    db.close()
    assert 0 in windows  # the stopped part starts a new window when the run is resumed
    server.state.hold_state = None
    assert server.finish_jobs() == PARTS  # the jobs ran after all: resume downloads them, creates none
    resumed = run_producer(tmp_path, env, "run", "--resume", run_id, "-w", "1", timeout=120)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert server.state.counts["job_creates"] == PARTS and len(_rows(tmp_path)) == TOTAL


@pytest.mark.unit
@pytest.mark.parametrize("name, safe", [
    ("dataset/x/BIJOutputSet.jsonl", "BIJOutputSet.jsonl"), ("..\\..\\..\\evil.jsonl", "evil.jsonl"),
    ("../../etc/passwd", "passwd"), ("C:\\Windows\\win.ini", "win.ini"), ("C:evil.txt", "C_evil.txt"),
    ("..", "file"), ("dir/..", "file"), ("", "file"), ("error-data. . ", "error-data"), ("NUL", "_NUL"),
    ("con.jsonl", "_con.jsonl"), ('a<b>c:"d|e?f*', "a_b_c__d_e_f_"), ("x\x00y", "x_y"),
])
def test_api_file_names_become_safe_base_names(name, safe):
    from workers.fireworks.download import safe_file_name

    assert safe_file_name(name) == safe
    folder = PureWindowsPath("C:/runs/run_1/fireworks/downloads/part-0000")  # the Windows branch, checked statically
    target = folder / safe_file_name(name)
    assert target.parent == folder and ".." not in target.parts and not PureWindowsPath(safe).drive
    assert (Path("/tmp/part-0000") / safe_file_name(name)).parent == Path("/tmp/part-0000")


@pytest.mark.unit
def test_clashing_names_stay_apart():
    from workers.fireworks.download import name_files

    names = name_files(["a/error-data", "b\\error-data", "c/ERROR-DATA"])
    assert len({n.lower() for n in names.values()}) == 3


def test_hostile_download_names_stay_in_their_folder(tmp_path, server):
    server.state.file_key_format = "..\\..\\..\\..\\{name}"  # as a hostile or broken API could answer
    cfg = fw_config(tmp_path)
    proc = run_producer(tmp_path, fw_env(tmp_path, server), "run", "--config", str(cfg), "-w", "1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert len(_rows(tmp_path)) == TOTAL
    downloads = run_dir_of(tmp_path) / "fireworks" / "downloads"
    files = sorted(p.relative_to(downloads).as_posix() for p in downloads.rglob("*") if p.is_file())
    assert files == sorted(f"part-{i:04d}/{n}" for i in range(PARTS) for n in ("BIJOutputSet.jsonl", "error-data"))
    stray = [p for p in tmp_path.rglob("*") if "\\" in p.name or p.name in ("BIJOutputSet.jsonl", "error-data")
             and p.parent.parent != downloads]
    assert not stray, stray
    jobs = [json.loads(x) for x in (run_dir_of(tmp_path) / "fireworks" / "jobs.jsonl").read_text(
        encoding="utf-8").splitlines()]
    assert {j["state"] for j in jobs} == {"downloaded"}


@pytest.mark.unit
@pytest.mark.parametrize("stamp", ["2023-11-07T05:31:56Z", "2023-11-07T05:31:56.123Z", "2023-11-07T05:31:56.123456789Z",
                                   "2023-11-07T05:31:56+00:00"])
def test_create_time_is_read_in_every_rfc3339_form(stamp):
    from workers.fireworks.provider import created_at

    assert int(created_at({"createTime": stamp})) == 1699335116
    assert created_at({}) is None and created_at({"createTime": "yesterday"}) is None
