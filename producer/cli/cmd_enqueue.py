"""``python -m producer enqueue``: register a run and queue its work (idempotent)."""

from __future__ import annotations

from pathlib import Path

import click

from config.lookup import apply_data_overrides
from config.schema import EvalConfig
from config.wording import plural
from producer.cli.command import command
from producer.cli.common import (
    config_option,
    data_option,
    dry_run_option,
    force_option,
    limit_items_option,
    no_preflight_option,
    preflight,
    retry_failed_option,
    yes_option,
)
from producer.host.console import make_console_safe, one_line_errors


@command()
@config_option
@data_option
@limit_items_option
@click.option("--run-id", default=None, help="Run id (default: resume the unfinished run of this config, else new).")
@dry_run_option
@retry_failed_option
@force_option
@no_preflight_option
@yes_option
@one_line_errors
def enqueue(cfg: EvalConfig, config_path: Path, data_overrides: dict[str, str], limit_items: int | None,
            run_id: str | None, dry_run: bool, retry_failed: bool, force: bool, no_preflight: bool,
            yes: bool) -> None:
    """Prepare if needed, register the run in the ledger and queue every missing request."""
    from producer.host.queue_paths import queue_errors
    from producer.planning.enqueue import check_outputs, enqueue_run
    from producer.planning.plan import check_run_size

    make_console_safe()
    check_outputs(cfg)
    check_run_size(cfg, data_overrides, limit_items, yes, "dry_run" if dry_run else None)
    preflight(apply_data_overrides(cfg, data_overrides), no_preflight or dry_run)
    with queue_errors():  # a disk filling while the run is registered: one line, nothing half-registered
        from workers.reconcile import reconcile_run  # opens the queue: a damaged one is one line

        s = enqueue_run(cfg, config_path, run_id, limit_items, dry_run, data_overrides, retry_failed,
                        force=force, yes=yes, reconcile=reconcile_run)
    verb = "registered" if s.created else "resumed"
    click.echo(f"run {s.run_id} {verb}: {plural(s.total, 'request')} in {plural(len(s.trials), 'trial')}, engine {s.engine}; "
               f"{plural(s.enqueued, 'chunk message')} queued")
    click.echo(f"results: {s.run_dir}")
    click.echo("start workers: python -m workers -w 2   (Linux/macOS also: huey_consumer producer.huey -w 2 -k process)")
    click.echo(f"watch: python -m producer status --run-id {s.run_id} --watch")
