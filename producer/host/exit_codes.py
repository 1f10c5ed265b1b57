"""Exit statuses of the CLI, in one place (README: "Exit codes").

Why distinct codes: a script or scheduler running ``python -m producer run`` overnight must tell a
complete run from one that finished with failed requests, one where nothing worked, one that stopped
and one whose results could not be written, without parsing the output.
"""

from __future__ import annotations

OK = 0  # every request has a result; every trial exported and analysed
STOPPED = 1  # stopped before the end (python -m producer stop, or engine down): resume continues it
BAD_INPUT = 2  # bad command line, config or data: one line says what; nothing was run
SOME_FAILED = 3  # the run finished, but some requests failed for good (errors.jsonl; --retry-failed)
ALL_FAILED = 4  # the run finished, but every request failed: there is nothing to analyse
NOT_WRITTEN = 5  # results or a report could not be written (disk full, read-only folder): resume when fixed
INTERRUPTED = 130  # Ctrl+C (or Ctrl+Break on Windows): resume continues it

TABLE = (
    (OK, "every request has a result; every trial exported and analysed"),
    (STOPPED, "stopped before the end (`producer stop`, or the engine went down); `run --resume` continues"),
    (BAD_INPUT, "bad command line, config or data; one line says what; nothing was run"),
    (SOME_FAILED, "finished, but some requests failed for good (errors.jsonl; `run --resume ID --retry-failed`)"),
    (ALL_FAILED, "finished, but every request failed: nothing to analyse"),
    (NOT_WRITTEN, "results or a report could not be written (disk full, read-only folder); resume when fixed"),
    (INTERRUPTED, "Ctrl+C (Ctrl+Break on Windows); `run --resume` continues"),
)


def finished_run_code(done: int, failed: int) -> int:
    """The exit status of a run whose every request is final."""
    if failed and not done:
        return ALL_FAILED
    return SOME_FAILED if failed else OK


ABORT_CODES = (134, 3, 0xC0000409)  # abort(): a POSIX shell's 128+SIGABRT, the Windows CRT, a fast-fail


def exit_words(code: int | None) -> str:
    """A child process's exit code as a person reads it: a signal on POSIX, abort() on either system."""
    if code is None:
        return "no exit code"
    if code < 0:
        return f"killed by signal {-code}" + (" (abort)" if code == -6 else "")
    return f"exit {code}" + (" (abort)" if code in ABORT_CODES else "")
