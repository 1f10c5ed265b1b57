"""``python -m producer prepare``: write (or reuse) the prepared items of CONTRACT section 1."""

from __future__ import annotations

from pathlib import Path

import click

from config.schema import EvalConfig
from producer.cli.command import command
from producer.cli.common import config_option, data_option, limit_items_option
from producer.host.console import one_line_errors


@command()
@config_option
@data_option
@limit_items_option
@one_line_errors
def prepare(cfg: EvalConfig, config_path: Path, data_overrides: dict[str, str], limit_items: int | None) -> None:
    """Load each dataset source, shuffle with data_seed, truncate to sizes and write data/prepared/."""
    from producer.inputs.prepare import ensure_prepared

    result = ensure_prepared(cfg, data_overrides=data_overrides, limit_items=limit_items)
    state = "reused (same inputs and config)" if result.reused else "written"
    counts = ", ".join(f"{ds} {n}" for ds, n in result.counts.items())
    click.echo(f"prepared items {state}: {counts}")
    click.echo(f"  {result.open_book}")
    click.echo(f"  {result.closed_book}")
    click.echo(f"  {result.manifest}")
