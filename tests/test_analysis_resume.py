"""After an analysis that could not be written, ``run --resume`` redoes it (issue 30, item 4).

Why: the README says "resume when fixed", but a trial whose analysis failed (disk full, a file in the
way) kept ``analysis_state`` failed: resume exited 5 with the stale message and never wrote the report.
Reproduced with a file where the reports folder must go (what a full disk does to the same write).
"""

from __future__ import annotations

import pytest

from producer.host.exit_codes import NOT_WRITTEN, OK
from tests.support.cli import run_cli
from tests.support.offline_config import write_offline_config

pytestmark = pytest.mark.slow


def test_resume_redoes_a_failed_analysis_once_the_cause_is_fixed(tmp_path):
    cfg = write_offline_config(tmp_path)
    queue = tmp_path / "queue"
    trial = tmp_path / "experiments" / "run_t2" / "dry-run-default"
    trial.mkdir(parents=True)
    (trial / "reports").write_text("in the way", encoding="utf-8")
    first = run_cli(["run", "--config", str(cfg), "-w", "1", "--run-id", "t2"], cwd=tmp_path, queue=queue)
    assert first.returncode == NOT_WRITTEN, first.stdout + first.stderr
    assert "analysis failed: NotADirectoryError" in first.stdout
    (trial / "reports").unlink()  # the cause is fixed
    again = run_cli(["run", "--resume", "t2", "-w", "1"], cwd=tmp_path, queue=queue)
    assert again.returncode == OK, again.stdout + again.stderr
    assert "analysis failed" not in again.stdout
    assert (trial / "reports" / "report.html").is_file()
    status = run_cli(["status", "--run-id", "t2"], cwd=tmp_path, queue=queue)
    assert "analysis failed" not in status.stdout and "state done" in status.stdout
