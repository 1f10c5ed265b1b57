"""``python -m workers -w N [--config C]``: the spawn-safe worker pool (Windows, Linux, macOS).

Exactly one child holds the in-process model (the model lock in the queue folder); the others score
and export. Ctrl+C, SIGTERM and Ctrl+Break stop cleanly with a hint on how to continue; a crashed child is
restarted; start-up reconciles the ledger. Children exit by themselves when this process is killed.
"""

from __future__ import annotations

import logging

import click

from config.secrets import redact_logging
from producer.host.console import UserError, make_console_safe, one_line_errors
from producer.host.exit_codes import STOPPED
from producer.host.queue_paths import pin_queue_dir
from workers.keep_awake import allow_sleep_option, keep_awake, should_prevent_sleep
from workers.pool import WorkerPool, ctrl_break_is_ctrl_c


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-w", "--workers", "workers", type=click.IntRange(min=1, max=64), default=2, show_default=True,
              help="Worker processes (one of them runs inference, the others score and export).")
@click.option("--config", "config_ref", default=None, metavar="PATH|NAME",
              help="Optional: validate this config and use its prevent_sleep setting. Engine settings come "
                   "from each run's snapshot in the ledger.")
@allow_sleep_option
@click.option("-v", "--verbose", is_flag=True, help="Log every task.")
@one_line_errors
def main(workers: int, config_ref: str | None, allow_sleep: bool, verbose: bool) -> None:
    """Start N worker processes that execute the queue until Ctrl+C."""
    make_console_safe()
    ctrl_break_is_ctrl_c()
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(asctime)s %(message)s")
    redact_logging()  # no key in a log line, whoever echoed it
    prevent = True
    if config_ref is not None:
        from config.lookup import load_config_ref  # lazy: --help speed (pydantic)

        cfg, _ = load_config_ref(config_ref)
        prevent = cfg.prevent_sleep

    click.echo(f"queue: {pin_queue_dir()}  workers: {workers}  (Ctrl+C to stop)")
    pool = WorkerPool(workers, logging.INFO if verbose else logging.WARNING)
    with keep_awake(should_prevent_sleep(prevent, allow_sleep)):
        stopped = pool.run_forever()
    if pool.crash_loop is not None:  # the breaker tripped: the work stays queued for a fixed setup
        raise UserError(f"stopped: {pool.crash_loop}; then start the workers again", STOPPED)
    if stopped:  # Ctrl+C, SIGTERM or Ctrl+Break: say how to continue (the unfinished work stays queued)
        click.echo(f"stopped: unfinished requests stay queued. continue with: python -m workers -w {workers}"
                   " (or: python -m producer run --resume RUN_ID; see python -m producer status)")


if __name__ == "__main__":
    main()
