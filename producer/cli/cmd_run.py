"""``python -m producer run``: enqueue, start the worker pool, show progress, wait, export, report paths."""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import click

from config.engines import is_dry_run_engine
from config.lookup import apply_data_overrides
from config.schema import EvalConfig
from config.secrets import redact_logging
from config.wording import plural
from producer.cli.command import command
from producer.cli.common import (
    aa_option,
    config_option,
    data_option,
    dry_run_option,
    force_option,
    limit_items_option,
    no_preflight_option,
    pick_options,
    preflight,
    retry_failed_option,
    yes_option,
)
from producer.host import exit_codes
from producer.host.console import make_console_safe, one_line_errors
from producer.ledger.status_record import RunStatus, TrialStatus
from producer.runs.layout import RunFolder, TrialFolder, validate_run_id
from workers.keep_awake import allow_sleep_option, keep_awake, should_prevent_sleep

PROGRESS_EVERY_S = 1.0
FINISHING_POLL_S = 0.1  # every request answered: only export and analysis are left, notice the end at once


def _progress_line(st: RunStatus) -> str:
    from producer.ledger.status import format_eta

    tot = st.totals
    finished = tot.done + tot.failed
    width = 28
    filled = int(width * finished / tot.total) if tot.total else width
    bar = "#" * filled + "-" * (width - filled)
    failed = f" failed {tot.failed}" if tot.failed else ""
    tail = "scoring, statistics, report ..." if finished == tot.total and st.state != "done" \
        else f"ETA {format_eta(st.eta_s)}"
    return f"[{bar}] {finished}/{tot.total}{failed}  {st.requests_per_min:.1f} req/min  {tail}"


def _cache_hits(run_id: str) -> int:
    from producer.ledger.db import connect
    from producer.ledger.queries import cache_hits

    return cache_hits(connect(readonly=True), run_id)


def overwrite(line: str, previous: int) -> str:
    """The progress line over the last one on a terminal: padded, so no character of a longer line stays
    behind ("ETA 16m45sn")."""
    return "\r" + line.ljust(previous)


def stop_for_crash_loop(run_id: str, why: str) -> None:
    """Raise the run's stop flag with the breaker's line (once) and give the dead workers' claims back."""
    from producer.ledger.db import connect
    from producer.ledger.queries import is_stopped
    from producer.ledger.run_record import set_run_stop
    from workers.reconcile import reconcile  # the composition root: the pool's children are gone

    conn = connect()
    if not is_stopped(conn, run_id):
        set_run_stop(conn, run_id, True, reason=f"{why}; then python -m producer run --resume {run_id}")
        reconcile()


def wait_for_run(run_id: str, pool, quiet: bool = False) -> RunStatus:
    """Supervise the pool and show progress until every trial of the run is exported."""
    from producer.ledger.db import connect
    from producer.ledger.status import run_status

    conn = connect(readonly=True)
    tty = sys.stdout.isatty()
    last_print, shown = 0.0, 0
    while True:
        pool.supervise()
        if pool.crash_loop is not None:  # the breaker tripped: stop the run with its one line
            stop_for_crash_loop(run_id, pool.crash_loop)
        st = run_status(conn, run_id)
        now = time.monotonic()
        if not quiet and (tty or now - last_print >= 10 or st.state == "done"):
            line = _progress_line(st)
            click.echo(overwrite(line, shown) if tty else line, nl=not tty)
            shown, last_print = len(line), now
        stopped = st.state == "stopped" and not st.totals.running
        if st.state == "done" or stopped:
            if tty and not quiet:
                click.echo("")
            return st
        tot = st.totals
        time.sleep(FINISHING_POLL_S if tot.done + tot.failed == tot.total else PROGRESS_EVERY_S)


def _echo_trial(trial: TrialFolder, t: TrialStatus) -> None:
    """A finished trial: its headline result and where its report and results are."""
    from producer.runs.manifests import read_trial_manifest

    report = trial.report_html
    if t.analysis not in (None, "done"):
        click.echo(f"  {trial.path.name}: analysis {t.analysis}: {t.analysis_error or ''}".rstrip(": "))
    elif report.is_file():
        try:
            sentences = (read_trial_manifest(trial.manifest).stage_status["report"].extra("headline")
                         or ["(see the report)"])
        except (OSError, ValueError, KeyError):
            sentences = ["(see the report)"]
        click.echo(f"  {trial.path.name}: {sentences[0]}")
        for also in (s for s in sentences[1:] if s.startswith("Also significant")):
            click.echo(f"    {also}")
        click.echo(f"    report: {report}")
    click.echo(f"    results: {trial.results_dir}")


@command()
@config_option(unless="resume")  # a resume reads the settings recorded with the run, not a config file
@pick_options
@aa_option
@data_option
@limit_items_option
@click.option("--workers", "-w", "workers", type=click.IntRange(min=1, max=64), default=2, show_default=True)
@click.option("--run-id", default=None, help="Run id for a new run (default: generated).")
@click.option("--resume", "resume", default=None, metavar="RUN_ID",
              help="Continue a stopped or crashed run with the settings it was created with "
                   "(no --config needed; works from any folder).")
@dry_run_option
@retry_failed_option
@force_option
@no_preflight_option
@yes_option
@allow_sleep_option
@click.option("-v", "--verbose", is_flag=True, help="Log worker activity.")
@one_line_errors
def run(cfg: EvalConfig | None, config_path: Path | None, data_overrides: dict[str, str], limit_items: int | None,
        workers: int, run_id: str | None, resume: str | None, dry_run: bool, retry_failed: bool, force: bool,
        no_preflight: bool, yes: bool, allow_sleep: bool, verbose: bool) -> None:
    """Run a whole local evaluation: results, predictions.csv and the report of every trial."""
    from producer.host.queue_paths import queue_errors
    from producer.planning.enqueue import enqueue_run, resume_run
    from workers.pool import WorkerPool, ctrl_break_is_ctrl_c

    make_console_safe()
    for given in (run_id, resume):  # a run id names a folder: checked before anything starts
        if given is not None:
            validate_run_id(given)
    ctrl_break_is_ctrl_c()
    level = logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(asctime)s %(message)s")
    redact_logging()  # no key in a log line, whoever echoed it
    if resume:  # the run's own settings (absolute paths), and its engine must answer before anything is re-sent
        from producer.imports.record import refuse_if_imported
        from producer.planning.enqueue import recorded_config

        refuse_if_imported(resume, "resumed")  # an imported run sends nothing
        cfg, engine = recorded_config(resume)
        preflight(cfg, no_preflight or is_dry_run_engine(engine), check_data=False)
    else:
        from producer.planning.enqueue import check_outputs
        from producer.planning.plan import check_run_size

        check_outputs(cfg)
        check_run_size(cfg, data_overrides, limit_items, yes, "dry_run" if dry_run else None)
        preflight(apply_data_overrides(cfg, data_overrides), no_preflight or dry_run)
    pool = WorkerPool(workers, level)
    s = None
    with keep_awake(should_prevent_sleep(cfg.prevent_sleep, allow_sleep)):
        pool.start()  # the workers start up (spawn, imports) while the run is registered
        try:
            with queue_errors():
                from workers.reconcile import reconcile_run  # the queue is open: pool.start() reconciled

                if resume:
                    s = resume_run(resume, retry_failed, reconcile=reconcile_run)
                else:
                    s = enqueue_run(cfg, config_path, run_id, limit_items, dry_run, data_overrides, retry_failed,
                                    force=force, yes=yes, reconcile=reconcile_run)
            click.echo(f"run {s.run_id}: {plural(s.total, 'request')}, {plural(len(s.trials), 'trial')}, engine {s.engine}, "
                       f"{plural(workers, 'worker')}")
            st = wait_for_run(s.run_id, pool)
        except KeyboardInterrupt:
            click.echo("")
            click.echo("stopping: current requests finish, the rest stays queued ...")
            st = None
        finally:  # whatever happened (a bad --resume id, a dataset error), no worker outlives the command
            try:
                pool.stop()
            except KeyboardInterrupt:  # a second Ctrl+C: stop now, the requests in flight go back to the queue
                pool.stop(grace_s=0)
                click.echo("stopped at once: the requests in flight go back to the queue")
                if s is not None:
                    click.echo(f"resume with: python -m producer run --resume {s.run_id}")
                raise SystemExit(exit_codes.INTERRUPTED) from None
    if st is None:
        if s is not None:
            click.echo(f"stopped. resume with: python -m producer run --resume {s.run_id}")
        raise SystemExit(exit_codes.INTERRUPTED)
    if st.state == "stopped":
        why = st.stop_reason or "stop requested (python -m producer stop)"
        click.echo(f"run {s.run_id} stopped: {why}")
        click.echo(f"resume when fixed: python -m producer run --resume {s.run_id}")
        not_written = any(t.export == "failed" for t in st.trials.values())
        raise SystemExit(exit_codes.NOT_WRITTEN if not_written else exit_codes.STOPPED)
    tot = st.totals
    hits = _cache_hits(s.run_id)
    click.echo(f"done: {plural(tot.done, 'result')}, {tot.failed} failed"
               + (f" ({hits} answered from the response cache)" if hits else ""))
    run_folder = RunFolder(Path(st.run_dir))
    for name, t in st.trials.items():
        _echo_trial(run_folder.trial(name), t)
    summary = run_folder.summary_html
    if summary.is_file():
        click.echo(f"summary of all trials: {summary}")
    if tot.failed:
        click.echo(f"  failed requests: errors.jsonl in each results folder; retry: "
                   f"python -m producer run --resume {s.run_id} --retry-failed")
    code = exit_codes.finished_run_code(tot.done, tot.failed)
    if code == exit_codes.OK and any(t.analysis not in (None, "done") for t in st.trials.values()):
        code = exit_codes.NOT_WRITTEN  # results are in, but a report could not be made
    if code != exit_codes.OK:
        raise SystemExit(code)
