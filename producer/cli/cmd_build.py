"""``python -m producer build``: prepared items -> batch input JSONL parts and build_manifest.json."""

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
@click.option("--parts-per-dataset", type=click.IntRange(min=1), default=None, help="Split each file into N parts.")
@click.option("--lines-per-part", type=click.IntRange(min=1), default=None, help="At most N requests per part.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=None, help="Default: paths.batch_inputs_dir.")
@one_line_errors
def build(
    cfg: EvalConfig,
    config_path: Path,
    data_overrides: dict[str, str],
    limit_items: int | None,
    parts_per_dataset: int | None,
    lines_per_part: int | None,
    out_dir: Path | None,
) -> None:
    """Write one batch input file per prompt set x temperature x condition (optionally in parts)."""
    from producer.inputs.prepare import ensure_prepared
    from producer.planning.build import build_batch_inputs

    prepared = ensure_prepared(cfg, data_overrides=data_overrides, limit_items=limit_items)
    result = build_batch_inputs(cfg, prepared.items, out_dir, parts_per_dataset, lines_per_part)
    for f in result.files:
        click.echo(f"  {f['path']}  {f['lines']} requests")
    click.echo(f"{result.total_requests} requests in {len(result.files)} files; manifest {result.manifest}")
