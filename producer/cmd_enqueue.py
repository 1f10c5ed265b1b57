"""``python -m producer enqueue``: register a run and queue its work (idempotent)."""

from __future__ import annotations

from pathlib import Path

import click

from config.schema import EvalConfig
from producer.config_option import apply_data_overrides, config_option, data_option, limit_items_option
from producer.console import make_console_safe, one_line_errors

dry_run_option = click.option("--dry-run", is_flag=True, help="Use the dry_run engine (no model): the whole flow offline.")
retry_failed_option = click.option("--retry-failed", is_flag=True, help="Send failed requests of the run again.")
force_option = click.option("--force", is_flag=True,
                            help="Continue --run-id even though the config changed (the run keeps its own settings).")
yes_option = click.option("--yes", is_flag=True,
                          help="Run even when the request count or estimated time looks absurd (see `plan`).")
no_preflight_option = click.option("--no-preflight", is_flag=True,
                                   help="Skip the engine, model, context and disk checks (see `doctor`).")


def preflight(cfg: EvalConfig, skip: bool, check_data: bool = True) -> None:
    """Refuse to start a run that `doctor` would fail (one line, exit 1); show its warnings. ``cfg`` with
    any ``--data`` overrides applied; ``check_data=False`` for a resume (its items are in the ledger)."""
    if skip or cfg.backend != "local" or cfg.local_engine == "dry_run":
        return
    from producer.preflight import WARN, ensure_ready

    for check in ensure_ready(cfg, check_data):
        if check.status == WARN:
            click.echo(f"warning: {check.line()}", err=True)


@click.command()
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
    from producer.enqueue import check_outputs, enqueue_run
    from producer.plan import check_run_size
    from producer.queue_paths import queue_errors

    make_console_safe()
    check_outputs(cfg)
    check_run_size(cfg, data_overrides, limit_items, yes, "dry_run" if dry_run else None)
    preflight(apply_data_overrides(cfg, data_overrides), no_preflight or dry_run)
    with queue_errors():  # a disk filling while the run is registered: one line, nothing half-registered
        s = enqueue_run(cfg, config_path, run_id, limit_items, dry_run, data_overrides, retry_failed,
                        force=force, yes=yes)
    verb = "registered" if s.created else "resumed"
    click.echo(f"run {s.run_id} {verb}: {s.total} requests in {len(s.trials)} trial(s), engine {s.engine}; "
               f"{s.enqueued} chunk message(s) queued")
    click.echo(f"results: {s.run_dir}")
    click.echo("start workers: python -m workers -w 2   (Linux/macOS also: huey_consumer producer.huey -w 2 -k process)")
    click.echo(f"watch: python -m producer status --run-id {s.run_id} --watch")
