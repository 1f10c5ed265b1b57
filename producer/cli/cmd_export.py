"""``python -m producer export --results-dir R --format csv|latex|markdown``: the effects as one tidy table.

Why: a paper needs the numbers, not a screenshot; scoring/export_table.py reads them from the trial's
(or a comparison's) significance.json, with the same reader the report uses.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from config.atomic import write_text_atomic
from config.contract import SIGNIFICANCE_JSON
from producer.cli.command import command
from producer.host.console import UserError, make_console_safe, one_line_errors


@command()
@click.option("--results-dir", required=True, type=click.Path(path_type=Path),
              help="<run>/<trial>/results, or a comparison's <condition>/results")
@click.option("--format", "fmt", type=click.Choice(["csv", "latex", "markdown"]), default="csv", show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Write here instead of printing.")
@one_line_errors
def export(results_dir: Path, fmt: str, out: Path | None) -> None:
    """One row per temperature x type x dataset x metric: control, treatment, delta, CI, p, q, n, verdict."""
    from scoring.export_table import render, tidy_rows

    make_console_safe()
    path = results_dir / SIGNIFICANCE_JSON
    if not path.is_file():
        raise UserError(f"no {SIGNIFICANCE_JSON} in {results_dir}: analyse the trial first "
                        f"(python -m producer analyse --results-dir {results_dir})")
    try:
        sig = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: cannot read ({exc.__class__.__name__})") from None
    text = render(tidy_rows(sig), fmt)
    if out is None:
        click.echo(text, nl=False)
    else:
        write_text_atomic(out, text)
        click.echo(f"{fmt}: {out}")
