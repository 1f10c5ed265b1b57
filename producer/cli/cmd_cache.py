"""``python -m producer cache stats|clear``: the response cache (config ``cache: true``) in the queue folder.

Why one command with an action: the cache has two questions, what is in it and how to empty it; both
work on the same file (``queue/response_cache.sqlite3``, or under ``EXCELLENCE_QUEUE_DIR``).
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from config.wording import plural
from producer.cli.command import command
from producer.host.console import UserError, make_console_safe, one_line_errors


def _size_on_disk(path: Path) -> int:
    """The database and its write-ahead log (and index) files, in bytes."""
    return sum(p.stat().st_size for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")) if p.is_file())


def _when(ts: float | None) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M") if ts else "-"


def _mib(n: int) -> str:
    return f"{n / 1048576:.1f} MiB" if n >= 104858 else f"{n / 1024:.1f} KiB"


def _stats(path: Path, as_json: bool) -> None:
    from producer.ledger.response_cache import cache_connect, cache_stats

    groups: list[dict[str, Any]] = cache_stats(cache_connect(path)) if path.is_file() else []
    out = {"path": str(path), "exists": path.is_file(), "size_bytes": _size_on_disk(path),
           "entries": sum(g["entries"] for g in groups), "hits": sum(g["hits"] for g in groups), "models": groups}
    if as_json:
        click.echo(json.dumps(out, indent=2))
        return
    if not out["exists"]:
        click.echo(f"no response cache at {path} (set cache: true in the config to use one)")
        return
    # a reuse is one request answered from the cache: the sum of the runs' stage_status.generated.cache_hits
    # (a sweep's shared control answer is looked up once, whatever number of trials it is copied to)
    click.echo(f"response cache {path}: {plural(out['entries'], 'answer')}, reused {plural(out['hits'], 'time')} (requests answered "
               f"from it), {_mib(out['size_bytes'])} on disk")
    for g in groups:
        click.echo(f"  {g['engine']:<10} {g['model']} ({g['model_id'][:19]}): {plural(g['entries'], 'answer')}, "
                   f"{g['hits']} reuses, {_mib(g['bytes'])}, last used {_when(g['last_at'])} UTC")


def _clear(path: Path, yes: bool) -> None:
    from producer.host.queue_paths import QueueError
    from producer.ledger.response_cache import cache_close_all, cache_connect, clear_responses

    if not path.is_file():
        click.echo(f"no response cache at {path}: nothing to clear")
        return
    if not yes:
        if not sys.stdin or not sys.stdin.isatty():
            raise UserError("cache clear asks before deleting: add --yes to clear without asking")
        if not click.confirm(f"delete every cached answer in {path}?", default=False):
            click.echo("nothing deleted")
            return
    try:
        n = clear_responses(cache_connect(path))
    except QueueError as exc:  # damaged or not SQLite: it holds nothing a run needs, so the file goes
        cache_close_all()
        for part in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
            part.unlink(missing_ok=True)
        click.echo(f"removed the damaged response cache {path} ({' '.join(str(exc).split())[:200]})")
        return
    finally:
        cache_close_all()
    click.echo(f"cleared {n} cached answers; {_mib(_size_on_disk(path))} left on disk ({path})")


@command()
@click.argument("action", type=click.Choice(["stats", "clear"]))
@click.option("--yes", "-y", is_flag=True, help="clear: do not ask before deleting.")
@click.option("--json", "as_json", is_flag=True, help="stats: machine-readable output.")
@one_line_errors
def cache(action: str, yes: bool, as_json: bool) -> None:
    """The response cache (cache: true): `stats` (answers, reuses, size per engine and model) or
    `clear` (delete every cached answer; asks unless --yes)."""
    from producer.host.queue_paths import response_cache_path

    make_console_safe()
    path = response_cache_path(create=False)
    if action == "stats":
        _stats(path, as_json)
    else:
        _clear(path, yes)
