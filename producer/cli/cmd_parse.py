"""``python -m producer parse``: raw results JSONL (any backend's shape) -> predictions.csv."""

from __future__ import annotations

from pathlib import Path

import click

from config.wording import plural
from producer.cli.command import command
from producer.host.console import UserError, make_console_safe, one_line_errors


@command()
@click.option("--results-jsonl", "results_jsonl", required=True,
              type=click.Path(path_type=Path), help="Raw results JSONL (CONTRACT section 3, or Fireworks output).")
@click.option("--out-csv", "out_csv", required=True, type=click.Path(path_type=Path),
              help="predictions.csv to write (atomically).")
@one_line_errors
def parse(results_jsonl: Path, out_csv: Path) -> None:
    """Rejects malformed rows and duplicate or malformed custom_ids, naming the line."""
    from producer.runs.results_io import ResultsFormatError, read_raw_results, write_predictions_csv

    make_console_safe()
    if not results_jsonl.is_file():
        raise UserError(f"results file not found: {results_jsonl}")
    try:
        rows = list(read_raw_results(results_jsonl))
        n = write_predictions_csv(rows, out_csv)
    except ResultsFormatError as exc:
        raise UserError(str(exc)) from None
    except UnicodeDecodeError:
        raise UserError(f"{results_jsonl}: not UTF-8 text") from None
    click.echo(f"wrote {plural(n, 'row')} to {out_csv}")
