"""Keep a Windows laptop from sleeping while a run is active.

Why: overnight runs on a laptop stop when Windows goes to sleep after its idle timeout; the queue
survives, but the night is lost. While the pool runs, the main thread asks Windows to stay awake with
``SetThreadExecutionState(ES_CONTINUOUS | ES_SYSTEM_REQUIRED)`` and clears the request on exit (the
request also ends by itself when the process dies). The display may still turn off; the lid and
the power button still work. Elsewhere this is a no-op.

Opt out with ``prevent_sleep: false`` in the config or ``--allow-sleep`` on the command line.

Usage (the pool's main, on the main thread, around the whole run)::

    with keep_awake(should_prevent_sleep(cfg.prevent_sleep, allow_sleep)):
        run_pool(...)
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click

log = logging.getLogger(__name__)

ES_CONTINUOUS = 0x80000000
ES_SYSTEM_REQUIRED = 0x00000001
KEEP_AWAKE_FLAGS = ES_CONTINUOUS | ES_SYSTEM_REQUIRED
RESET_FLAGS = ES_CONTINUOUS

ALLOW_SLEEP_HELP = "Let Windows sleep during the run (default: keep it awake; config prevent_sleep)."

# The CLI flag, shared by every command that runs the pool (``python -m workers``, ``producer run``).
allow_sleep_option = click.option("--allow-sleep", "allow_sleep", is_flag=True, default=False,
                                  help=ALLOW_SLEEP_HELP)


def should_prevent_sleep(config_prevent_sleep: bool | None, allow_sleep: bool = False) -> bool:
    """The command-line flag wins over the config; the config default is to prevent sleep."""
    if allow_sleep:
        return False
    return True if config_prevent_sleep is None else bool(config_prevent_sleep)


def _windows_kernel32() -> Any:
    import ctypes

    return ctypes.windll.kernel32  # type: ignore[attr-defined]  # only exists on Windows


@contextmanager
def keep_awake(enabled: bool = True, *, platform: str | None = None, kernel32: Any = None) -> Iterator[bool]:
    """Ask the OS not to sleep for the duration of the block; yields whether the request is active.

    ``platform`` and ``kernel32`` exist for tests (the Windows API is not available elsewhere).
    A failed request is logged and ignored: staying awake is a convenience, never a reason to stop.
    """
    platform = sys.platform if platform is None else platform
    if not enabled or platform != "win32":
        yield False
        return
    try:
        k32 = kernel32 if kernel32 is not None else _windows_kernel32()
        previous = k32.SetThreadExecutionState(KEEP_AWAKE_FLAGS)
    except (AttributeError, OSError) as exc:
        log.warning("could not ask Windows to stay awake (%s); the PC may sleep during the run", exc)
        yield False
        return
    if not previous:  # 0 means the call failed
        log.warning("SetThreadExecutionState failed; the PC may sleep during the run")
        yield False
        return
    log.info("keeping Windows awake while the run is active (--allow-sleep to disable)")
    try:
        yield True
    finally:
        try:
            k32.SetThreadExecutionState(RESET_FLAGS)
        except (AttributeError, OSError):
            pass
