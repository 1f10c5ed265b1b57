"""``max_concurrent_requests`` unset means auto (issue 28): the config keeps None through the snapshot
workers read, the static figure is 1, and auto takes a server's reported slots capped at 64 while an
explicit value is always obeyed."""

from __future__ import annotations

import json

import pytest

from config.schema import MAX_IN_FLIGHT, validate_config_dict
from producer.planning.enqueue import absolute_snapshot
from tests.support.offline_config import offline_config_dict
from workers.engines.openai_compat import reported_slots, slot_checks

pytestmark = pytest.mark.unit


def _cfg(tmp_path, **overrides):
    return validate_config_dict(offline_config_dict(tmp_path, **overrides), "test", check_files=False)


def test_unset_is_auto_and_survives_the_snapshot_workers_read(tmp_path):
    cfg = _cfg(tmp_path)
    assert cfg.max_concurrent_requests is None and cfg.static_in_flight() == 1
    again = validate_config_dict(json.loads(json.dumps(absolute_snapshot(cfg))), "run r", check_files=False)
    assert again.max_concurrent_requests is None
    explicit = _cfg(tmp_path, max_concurrent_requests=3)
    assert validate_config_dict(absolute_snapshot(explicit), "run r", check_files=False).max_concurrent_requests == 3


def test_auto_takes_the_reported_slots_and_an_explicit_value_wins(tmp_path):
    auto, one = _cfg(tmp_path), _cfg(tmp_path, max_concurrent_requests=1)
    assert [auto.in_flight_for(s) for s in (4, None, 0, 500)] == [4, 1, 1, MAX_IN_FLIGHT]
    assert one.in_flight_for(4) == 1 and one.static_in_flight() == 1
    assert [reported_slots(p) for p in ({"total_slots": 4}, {}, {"total_slots": True}, {"total_slots": "4"})] == [4, None, None, None]


def test_preflight_says_what_auto_chose():
    assert "auto: 4 in flight" in slot_checks(None, 4)[0].detail and slot_checks(None, 4)[0].status == "ok"
    assert "does not report its slots" in slot_checks(None, None)[0].detail
    assert slot_checks(2, None) == []
