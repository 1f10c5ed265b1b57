"""Prevent-sleep during runs: the flag logic, the no-op off Windows, and the Windows API calls.

The Windows API (kernel32.SetThreadExecutionState) does not exist on Linux, so the calls are checked
against a recording stand-in for kernel32 passed through ``keep_awake(kernel32=...)``; that stand-in
is the only fake here, because the real one cannot be loaded on this OS.
"""

from __future__ import annotations

import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from config.schema import validate_config_dict
from tests.support.paths import ROOT
from workers.keep_awake import (
    ES_CONTINUOUS,
    ES_SYSTEM_REQUIRED,
    allow_sleep_option,
    keep_awake,
    should_prevent_sleep,
)


class RecordingKernel32:
    """Records SetThreadExecutionState calls; returns ``result`` like the real API (0 = failure)."""

    def __init__(self, result: int = ES_CONTINUOUS) -> None:
        self.calls: list[int] = []
        self.result = result

    def SetThreadExecutionState(self, flags: int) -> int:  # noqa: N802 (the Windows API's name)
        self.calls.append(flags)
        return self.result


@pytest.mark.unit
@pytest.mark.parametrize(
    ("config_value", "allow_sleep", "expected"),
    [(True, False, True), (False, False, False), (True, True, False), (None, False, True), (None, True, False)],
)
def test_flag_logic(config_value, allow_sleep, expected) -> None:
    assert should_prevent_sleep(config_value, allow_sleep) is expected


@pytest.mark.unit
def test_config_field_defaults_on_and_can_be_turned_off() -> None:
    assert validate_config_dict({"local_engine": "dry_run"}, check_files=False).prevent_sleep is True
    cfg = validate_config_dict({"local_engine": "dry_run", "prevent_sleep": False}, check_files=False)
    assert should_prevent_sleep(cfg.prevent_sleep, allow_sleep=False) is False


@pytest.mark.unit
@pytest.mark.skipif(sys.platform == "win32", reason="checks the no-op on other systems")
def test_noop_on_this_platform() -> None:
    with keep_awake(True) as active:
        assert active is False


@pytest.mark.unit
def test_windows_requests_and_resets() -> None:
    k32 = RecordingKernel32()
    with keep_awake(True, platform="win32", kernel32=k32) as active:
        assert active is True
        assert k32.calls == [ES_CONTINUOUS | ES_SYSTEM_REQUIRED]
    assert k32.calls == [ES_CONTINUOUS | ES_SYSTEM_REQUIRED, ES_CONTINUOUS]


@pytest.mark.unit
def test_windows_resets_when_the_run_fails() -> None:
    k32 = RecordingKernel32()
    with pytest.raises(RuntimeError), keep_awake(True, platform="win32", kernel32=k32):
        raise RuntimeError("worker crashed")
    assert k32.calls[-1] == ES_CONTINUOUS


@pytest.mark.unit
def test_windows_disabled_makes_no_call() -> None:
    k32 = RecordingKernel32()
    with keep_awake(False, platform="win32", kernel32=k32) as active:
        assert active is False
    assert k32.calls == []


@pytest.mark.unit
def test_windows_api_failure_is_not_fatal() -> None:
    k32 = RecordingKernel32(result=0)
    with keep_awake(True, platform="win32", kernel32=k32) as active:
        assert active is False
    assert k32.calls == [ES_CONTINUOUS | ES_SYSTEM_REQUIRED]  # nothing to reset


@pytest.mark.unit
def test_allow_sleep_option_parses() -> None:
    seen = {}

    @click.command()
    @allow_sleep_option
    def cmd(allow_sleep: bool) -> None:
        seen["allow_sleep"] = allow_sleep

    assert CliRunner().invoke(cmd, ["--allow-sleep"]).exit_code == 0
    assert seen["allow_sleep"] is True
    assert CliRunner().invoke(cmd, []).exit_code == 0
    assert seen["allow_sleep"] is False


@pytest.mark.parametrize("argv", [["-m", "workers", "--help"], ["-m", "producer", "run", "--help"]])
def test_pool_commands_offer_allow_sleep(argv: list[str]) -> None:
    """The commands that run the pool must expose the opt-out (integration with the pool's main)."""
    proc = subprocess.run([sys.executable, *argv], cwd=ROOT, capture_output=True, text=True,
                          encoding="utf-8", errors="replace", timeout=120)
    assert proc.returncode == 0, proc.stderr[-400:]
    assert "--allow-sleep" in proc.stdout
