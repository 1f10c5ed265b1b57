"""Is a run imported? Read from its folder (``run_state.json``'s ``imported``), for the commands that must
refuse to send requests for it and those that find it without a ledger (``show``, ``compare``).

Why the folder and not the ledger: an imported run never had requests, so the ledger (which owns the
requests) has nothing to say about it; its folder is its whole record.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from producer.host.console import UserError
from producer.runs.layout import RunFolder, RunLayout
from producer.runs.manifests import read_run_state

IMPORTED_CONDITION = "control"  # an imported log is one answer set: it is filed as the control answers
IMPORTED_KEY = "imported"  # the key of the record in run_state.json and trial_manifest.json


def imported_record(folder: RunFolder) -> dict[str, Any] | None:
    """The ``imported`` record of a run folder, None when the run is not an imported one."""
    from pydantic import ValidationError

    layout = RunLayout(folder.path.parent, folder.path.name.removeprefix("run_"))
    try:
        record = read_run_state(layout).extra(IMPORTED_KEY)
    except (OSError, ValueError, ValidationError):  # a damaged run_state.json: not an import we can vouch for
        return None
    return record if isinstance(record, dict) else None


def imported_here(run_id: str, experiments_dir: Path | None = None) -> tuple[RunFolder, dict[str, Any]] | None:
    """(folder, record) of the imported run ``run_id`` under ``experiments_dir`` (default ``./experiments``)."""
    folder = RunLayout(Path(experiments_dir or "experiments").resolve(), run_id).folder
    record = imported_record(folder)
    return (folder, record) if record is not None else None


def refuse_imported_folder(folder: RunFolder, action: str) -> None:
    """One line, exit 2, when ``folder`` holds an imported run: it is read-only."""
    record = imported_record(folder)
    if record is not None:
        run_id = folder.path.name.removeprefix("run_")
        raise UserError(f"run {run_id} was imported from {record.get('tool')} ({record.get('source_name')}): it is "
                        f"read-only, so it cannot be {action}; show, compare or report it instead")


def refuse_if_imported(run_id: str, action: str) -> None:
    """One line, exit 2, when ``run_id`` is an imported run in ./experiments: nothing can be sent for it."""
    found = imported_here(run_id)
    if found is not None:
        refuse_imported_folder(found[0], action)


def imported_run_row(run_id: str) -> dict[str, Any] | None:
    """What ``show`` reads of a run (the ledger's run row's keys, and its trials) for an imported run in
    ``./experiments``; None when there is none."""
    found = imported_here(run_id)
    if found is None:
        return None
    folder, _ = found
    trials = sorted(p.parent.parent.name for p in folder.path.glob("*/results/trial_manifest.json"))
    return {"run_id": run_id, "experiments_dir": str(folder.path.parent), "prepared_dir": str(folder.prepared_dir),
            "trials": trials, "conditions": (IMPORTED_CONDITION,)}
