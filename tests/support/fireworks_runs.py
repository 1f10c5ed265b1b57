"""A Fireworks run through the real CLI against the fake server: its config, environment and outputs.

Why shared: the flow, resilience, environment and shared-local Fireworks tests all start runs this way.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import yaml

from tests.support.offline_config import offline_config_dict
from tests.support.paths import ROOT
from tests.support.servers.fake_fireworks import FakeFireworksServer

KEY = "fw-test-SECRET-0123456789abcdef"
SIZES = {"squad_v2": 2, "triviaqa": 2, "nq_open": 1}


def fw_config(tmp: Path, **over: object) -> Path:
    """A Fireworks-backend config in ``tmp`` (small sizes, fast polling), with ``over`` on top."""
    raw = offline_config_dict(tmp, backend="fireworks", sizes=SIZES, retry_backoff_s=0.01,
                              model_id="accounts/fireworks/models/model-a",
                              fireworks={"poll_interval_s": 0.1, "request_deadline_s": 20})
    raw.update(over)
    path = tmp / "fw.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path


def fw_env(tmp: Path, srv: FakeFireworksServer | None) -> dict[str, str]:
    """No FIREWORKS_* from this shell; the fake server's key and address when ``srv`` is given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FIREWORKS_") and k != "OPENAI_BASE_URL"}
    env["EXCELLENCE_QUEUE_DIR"] = str(tmp / "queue")
    env["PYTHONPATH"] = str(ROOT)
    if srv is not None:
        env.update(FIREWORKS_API_KEY=KEY, FIREWORKS_ACCOUNT_ID="acct", FIREWORKS_API_BASE=srv.base_url)
    return env


def run_producer(tmp: Path, env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """``python -m producer <args>`` in ``tmp``."""
    return subprocess.run([sys.executable, "-m", "producer", *args], cwd=tmp, env=env, capture_output=True,
                          text=True, encoding="utf-8", timeout=timeout)


def run_dir_of(tmp: Path) -> Path:
    """The one run folder under ``tmp``/experiments."""
    (run,) = (tmp / "experiments").glob("run_*")
    return run


def read_predictions_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """(header, rows) of a predictions.csv."""
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        return list(reader.fieldnames or []), list(reader)
