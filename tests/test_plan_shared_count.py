"""`plan` counts the requests that will really be generated (issue 29, item 3).

Why: a sweep shares its control generations between trials (producer/inputs/sweep_share.py): the plan
said 208 requests where 156 ran. It now says both: how many the trials hold and how many are generated.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from config.schema import load_config
from producer.planning.plan import make_plan, plan_json, render_plan
from tests.support.paths import ROOT

pytestmark = pytest.mark.unit


def test_a_sweep_over_treatments_generates_its_control_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    path = Path("config/eval_config.demo_prompts.yaml")
    plan = make_plan(load_config(path), path)
    assert len(plan.trials) == 10 and len(plan.items) == 84
    text = render_plan(plan)
    # 10 trials x 84 items x 2 conditions; the control (84) is generated once, each treatment once
    assert "total requests: 1,680, of which 924 are generated (756 reuse another trial's answer)" in text
    assert plan_json(plan)["generated_requests"] == 924


def test_one_trial_generates_every_request(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    path = Path("config/eval_config.demo.yaml")
    plan = make_plan(load_config(path), path)
    assert "total requests: 168 (prompt tokens" in render_plan(plan)
    assert plan_json(plan)["generated_requests"] == 168
