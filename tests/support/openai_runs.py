"""A demo-sized OpenAI batch run for the flow tests: its config, its environment (key and base of the
fake server) and its sizes; shared by test_openai_flow.py and test_batch_cancel_usage.py."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from tests.support.fireworks_runs import SIZES
from tests.support.offline_config import offline_config_dict
from tests.support.paths import ROOT
from tests.support.servers.fake_openai_batch import FakeOpenAIServer

KEY = "sk-proj-CANARY-openai-9f8e7d6c5b4a3210"
MODEL = "gpt-4o-mini"
TOTAL = 2 * sum(SIZES.values())  # two conditions, one temperature, one sample
PARTS = 4  # control/treatment x open/closed


def oa_config(tmp: Path) -> Path:
    raw = offline_config_dict(tmp, backend="openai", sizes=SIZES, retry_backoff_s=0.01, model_id=MODEL,
                              openai={"poll_interval_s": 0.1, "request_deadline_s": 20},
                              pricing={"models": {MODEL: {"input_per_mtok": 0.15, "output_per_mtok": 0.6}}})
    path = tmp / "oa.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path


def oa_env(tmp: Path, srv: FakeOpenAIServer) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "FIREWORKS_"))}
    env.update(EXCELLENCE_QUEUE_DIR=str(tmp / "queue"), PYTHONPATH=str(ROOT), OPENAI_API_KEY=KEY,
               OPENAI_BASE_URL=srv.base_url)
    return env
