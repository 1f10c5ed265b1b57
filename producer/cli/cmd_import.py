"""``python -m producer import FILE``: another tool's per-sample log becomes a read-only run of ours.

Why: "is our system prompt better than the numbers an Inspect AI, lm-evaluation-harness or promptfoo run
gave?" is a comparison across tools. The import writes the log's answers as a run folder in our layout
(``experiments/run_<id>``, the answers filed as control), so ``show``, ``compare`` and the reports read it
like any run; ``run --resume`` refuses it (nothing can be sent for it). producer/imports/ holds the readers.
"""

from __future__ import annotations

from pathlib import Path

import click

from producer.cli.command import command
from producer.host.console import make_console_safe, one_line_errors


@command("import")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--run-id", default=None, help="Run id of the imported run (default: import-<tool>-<sha256 prefix>).")
@click.option("--dataset", default=None, metavar="NAME",
              help="Which dataset the log's items are (squad_v2, triviaqa, nq_open or a custom dataset's name); "
                   "default: from the log's task name.")
@click.option("--temp", type=float, default=None,
              help="The sampling temperature the tool used, when its log does not say (default: the log's, else 0.0).")
@click.option("--experiments-dir", type=click.Path(path_type=Path), default=Path("experiments"), show_default=True,
              help="Where the run folder is written (compare and show look in ./experiments).")
@one_line_errors
def import_log(file: Path, run_id: str | None, dataset: str | None, temp: float | None, experiments_dir: Path) -> None:
    """Import FILE (an Inspect AI .eval/.json log, an lm-evaluation-harness samples_*.jsonl, a promptfoo JSON
    export) as a read-only run: show, compare and report it like one of ours."""
    from producer.imports.write import import_log as write_run

    make_console_safe()
    done = write_run(file, experiments_dir, run_id, dataset, temp)
    rec = done.record
    click.echo(f"imported {rec['samples']} answers of {rec['tool']} ({rec['source_name']}, {rec['dataset']}, "
               f"temp {rec['temperature']:g}) as run {done.run_id}: {done.run_dir}")
    click.echo(f"  scored by {rec['scorer_name']}")
    if rec["temperature_source"] not in ("log", "--temp"):
        click.echo(f"  temperature {rec['temperature_source']} (--temp sets it; pairs need the same temperature)")
    click.echo(f"  compare with: python -m producer compare {done.run_id} RUN_ID:control --allow-different-inputs")
