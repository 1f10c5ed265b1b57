"""``python -m producer status``: where a run stands (read-only; never blocks workers)."""

from __future__ import annotations

import json
import time

import click

from producer.cli.command import command
from producer.host.console import UserError, make_console_safe, one_line_errors


def _open_readonly():
    from producer.host.queue_paths import ledger_path
    from producer.ledger.db import connect

    path = ledger_path(create=False)
    if not path.exists():
        raise UserError(f"no ledger at {path}: enqueue a run first (python -m producer enqueue)")
    return connect(path, readonly=True)


@command()
@click.option("--run-id", default=None, help="Run id (default: the latest run).")
@click.option("--watch", is_flag=True, help="Refresh every few seconds until Ctrl+C.")
@click.option("--interval", type=click.FloatRange(min=0.5), default=5.0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@one_line_errors
def status(run_id: str | None, watch: bool, interval: float, as_json: bool) -> None:
    """Per trial and condition: done, running, queued, pending, failed; rate, ETA, workers, queue depth."""
    from producer.ledger.queries import latest_run
    from producer.ledger.status import format_status, run_status

    make_console_safe()
    if run_id is not None:  # from any folder, as `run --resume RUN_ID` works: find the queue that holds it
        from producer.ledger.locate import find_run_queue

        find_run_queue(run_id)
    conn = _open_readonly()
    run_id = run_id or latest_run(conn)
    if run_id is None:
        raise UserError("no runs in the ledger yet")
    while True:
        try:
            st = run_status(conn, run_id)
        except KeyError:
            raise UserError(f"unknown run id {run_id!r}") from None
        click.echo(json.dumps(st.to_json(), indent=2) if as_json else format_status(st))
        if not as_json:  # tokens/s and VRAM now, from the telemetry samples (read-only)
            from producer.host.queue_paths import ledger_path
            from telemetry.store import status_line

            line = status_line(ledger_path(), run_id)
            if line:
                click.echo(line)
        if not watch or st.state == "done":
            return
        time.sleep(interval)
        click.echo("")
