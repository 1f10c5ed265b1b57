"""``python -m producer stop``: cooperative stop; ``run --resume`` / ``enqueue --run-id`` continue it."""

from __future__ import annotations

import click

from producer.cli.command import command
from producer.host.console import UserError, make_console_safe, one_line_errors


@command()
@click.option("--run-id", default=None, help="Run id (default: the latest unfinished run).")
@click.option("--cancel-batches", is_flag=True,
              help="Batch runs: also cancel each open job on the provider (rows it answered are kept).")
@one_line_errors
def stop(run_id: str | None, cancel_batches: bool) -> None:
    """Workers finish their current request, give the rest back and take no more of this run.

    With --cancel-batches a batch run's jobs are cancelled on the service too: the run stops paying."""
    from producer.host.queue_paths import ledger_path
    from producer.ledger import connect
    from producer.ledger.queries import get_run, latest_run
    from producer.ledger.run_record import set_run_stop

    make_console_safe()
    if not ledger_path(create=False).exists():
        raise UserError(f"no ledger at {ledger_path(create=False)}: nothing to stop")
    conn = connect()
    run_id = run_id or latest_run(conn, unfinished=True)
    if run_id is None or get_run(conn, run_id) is None:
        raise UserError("no such run (or nothing unfinished to stop)")
    set_run_stop(conn, run_id, True)  # first: no job is created after the cancels
    click.echo(f"run {run_id}: stop requested; resume with: python -m producer run --resume {run_id}")
    if cancel_batches:
        from workers.batch.cancel import cancel_run_batches  # the composition root may reach the workers

        lines = cancel_run_batches(run_id)
        for line in lines:
            click.echo(f"  {line}")
        if lines:
            click.echo(f"  rows not answered fail at the next resume; send them again with:"
                       f" python -m producer run --resume {run_id} --retry-failed")
        else:
            click.echo("  no batch job of this run is open: nothing to cancel")
