"""A demo-sized Anthropic batch run for the flow tests: its config, its environment (key and base of the
fake server) and its sizes; the sizes and parts are the OpenAI run's (tests/support/openai_runs.py)."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from tests.support.fireworks_runs import SIZES
from tests.support.offline_config import offline_config_dict
from tests.support.openai_runs import PARTS, TOTAL
from tests.support.paths import ROOT
from tests.support.servers.fake_anthropic_batch import FakeAnthropicServer

KEY = "sk-ant-api03-CANARY-anthropic-0f1e2d3c4b5a6978"
MODEL = "claude-sonnet-4-5"
PRICES = {"input_per_mtok": 3.0, "output_per_mtok": 15.0, "cached_input_multiplier": 0.1,
          "cache_write_multiplier": 1.25}

__all__ = ["KEY", "MODEL", "PARTS", "PRICES", "TOTAL", "an_config", "an_env"]


def an_config(tmp: Path, **over: object) -> Path:
    raw = offline_config_dict(tmp, backend="anthropic", sizes=SIZES, retry_backoff_s=0.01, model_id=MODEL,
                              temps=[0.7], samples_per_item={"0.7": 1},
                              anthropic={"poll_interval_s": 0.1, "request_deadline_s": 20, "cache_min_tokens": 1},
                              pricing={"models": {MODEL: PRICES}})
    raw.update(over)
    path = tmp / "an.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path


def an_env(tmp: Path, srv: FakeAnthropicServer) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "OPENAI_", "FIREWORKS_"))}
    env.update(EXCELLENCE_QUEUE_DIR=str(tmp / "queue"), PYTHONPATH=str(ROOT), ANTHROPIC_API_KEY=KEY,
               ANTHROPIC_BASE_URL=srv.base_url)
    return env
