"""``python -m producer show``: one item's transcript, or the items whose outcome changed, in the terminal.

Why: after "did the treatment change the false-answer rate?" comes "on which questions, and what did the
model say?". ``show`` answers from the trial's transcripts.jsonl (CONTRACT section 10) without a join
by hand; it only reads (the ledger read-only, the run folder's files).
"""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path
from typing import Any

import click

from producer.cli.command import command
from producer.host.console import UserError, make_console_safe, one_line_errors, terminal_safe

CONTEXT_CHARS = 300  # a passage is trimmed to this in the terminal (--json has it whole)
CELL_CHARS = 40  # a table cell of --changed


def _run_and_trial(run_id: str | None, trial: str | None) -> tuple[str, str, dict[str, Any]]:
    """(run_id, trial slug, run row) from the ledger, read-only; one-line errors for what is not there."""
    from producer.cli.cmd_status import _open_readonly
    from producer.ledger.locate import find_run_queue
    from producer.ledger.queries import get_run, latest_run, trial_names
    from producer.runs.layout import validate_run_id

    if run_id is not None:
        from producer.imports.record import imported_run_row

        validate_run_id(run_id)
        row = imported_run_row(run_id)  # an imported run has a folder in ./experiments, no ledger rows
        if row is not None:
            return run_id, _pick_trial(run_id, trial, row.pop("trials")), row
        if find_run_queue(run_id) is None:
            raise UserError(f"unknown run id {run_id!r} (see: python -m producer status)")
    conn = _open_readonly()
    run_id = run_id or latest_run(conn)
    if run_id is None:
        raise UserError("no runs in the ledger yet")
    run = get_run(conn, run_id)
    if run is None:
        raise UserError(f"unknown run id {run_id!r} (see: python -m producer status)")
    return run_id, _pick_trial(run_id, trial, trial_names(conn, run_id)), dict(run)


def _pick_trial(run_id: str, trial: str | None, names: list[str]) -> str:
    if trial is None:
        if len(names) != 1:
            raise UserError(f"run {run_id} has {len(names)} trials ({', '.join(names)}): pick one with --trial SLUG")
        return names[0]
    if trial not in names:
        raise UserError(f"run {run_id} has no trial {trial!r} (its trials: {', '.join(names)})")
    return trial


def _results_dir(run: dict[str, Any], trial: str) -> Path:
    from producer.runs.layout import RunLayout

    return RunLayout(Path(run["experiments_dir"]), run["run_id"]).results_dir(trial)


def _item_lines(path: Path, wanted: str, where: str) -> list[dict[str, Any]]:
    """The transcript lines of the item ``wanted`` (``dataset|id`` or a bare id, unambiguous)."""
    from scoring.transcripts import read_transcripts

    by_key: dict[str, list[dict[str, Any]]] = {}
    for line in read_transcripts(path, mentions=wanted.rpartition("|")[2]):
        if line["item_key"] == wanted or ("|" not in wanted and line["item_id"] == wanted):
            by_key.setdefault(line["item_key"], []).append(line)
    if not by_key:
        raise UserError(f"no item {wanted!r} in {where}")
    if len(by_key) > 1:
        raise UserError(f"item id {wanted!r} is ambiguous in {where}: {', '.join(sorted(by_key))} "
                        "(give it as dataset|id)")
    return next(iter(by_key.values()))


def _wrap(label: str, text: str, width: int) -> str:
    """``label`` then ``text`` on one wrapped, indented paragraph (whitespace collapsed)."""
    return textwrap.fill(" ".join(terminal_safe(text).split()) or '""', width=width, initial_indent=label,
                         subsequent_indent=" " * len(label))


def _scores(side: dict[str, Any]) -> str:
    keys = ("em", "f1", "abstained", "false_answer", "unsupported")
    return "  ".join(f"{k} {side[k]:g}" for k in keys if side.get(k) is not None)


def _side_text(cond: str, side: dict[str, Any] | None, width: int) -> list[str]:
    label = f"  {cond:<10} "
    if side is None:
        return [f"{label}(no result: the request failed or has not run; see errors.jsonl)"]
    tokens = side.get("completion_tokens")
    facts = [str(side.get("finish_reason") or "?"), f"{tokens} tokens" if tokens is not None else None,
             f"{side['latency_s']:.2f} s" if side.get("latency_s") is not None else None]
    return [_wrap(label, side["response"], width),
            " " * len(label) + f"[{_scores(side)}] " + ", ".join(f for f in facts if f)]


def format_item(lines: list[dict[str, Any]], context: str | None, where: str, width: int,
                conditions: tuple[str, ...] | None = None) -> str:
    """The terminal view of one item: question, gold, the passage trimmed, every temp/sample's two answers
    (``conditions``: the ones to show; an imported run has one)."""
    from config.contract import CONDITIONS

    first = lines[0]
    question = first.get("question")
    out = [f"{first['item_key']}  ({first['type']}-book, {where})",
           _wrap("question: ", question if question is not None else "(not in the run's prepared items)", width)]
    gold = " | ".join(first.get("answers") or []) or "(none)"
    if first.get("is_unanswerable"):
        gold += "  [unanswerable: the right answer is to abstain]"
    out.append(_wrap("gold:     ", gold, width))
    if context is not None:
        short = context if len(context) <= CONTEXT_CHARS else context[:CONTEXT_CHARS].rstrip() + " ..."
        out.append(_wrap("context:  ", f"{short} ({len(context)} chars, --json for all)", width))
    for line in lines:
        out.append("")
        out.append(f"temp {line['temp']}, sample {line['sample_index']}")
        for cond in conditions or CONDITIONS:
            out.extend(_side_text(cond, line.get(cond), width))
    return "\n".join(out)


def _show_item(item_id: str, run_id: str, trial: str, run: dict[str, Any], as_json: bool) -> None:
    from config.contract import CONTEXTS_JSONL, TRANSCRIPTS_JSONL
    from scoring.transcripts import read_contexts

    results = _results_dir(run, trial)
    path = results / TRANSCRIPTS_JSONL
    where = f"run {run_id}, trial {trial}"
    if not path.is_file():
        raise UserError(f"no transcripts for {where} yet: they are written when all its requests are done "
                        f"(see: python -m producer status --run-id {run_id})")
    lines = _item_lines(path, item_id, where)
    cid = lines[0].get("context_id")
    context = read_contexts(results / CONTEXTS_JSONL).get(cid) if cid else None
    if as_json:
        click.echo(json.dumps({"run_id": run_id, "trial": trial, "item_key": lines[0]["item_key"],
                               "context": context, "lines": lines}, ensure_ascii=False, indent=2))
        return
    width = max(60, min(shutil.get_terminal_size((100, 24)).columns, 120) - 1)
    click.echo(format_item(lines, context, where, width, run.get("conditions")))


def _cell(text: Any, chars: int = CELL_CHARS) -> str:
    text = " ".join(terminal_safe("" if text is None else text).split())
    return text if len(text) <= chars else text[: chars - 3] + "..."


def _show_changed(run_id: str, trial: str, run: dict[str, Any], as_json: bool) -> None:
    from config.contract import PER_ITEM_SCORES_CSV
    from scoring.changed_items import changed_items

    results = _results_dir(run, trial)
    if not (results / PER_ITEM_SCORES_CSV).is_file():
        raise UserError(f"run {run_id}, trial {trial} has no scores yet: they are written when all its "
                        f"requests are done (see: python -m producer status --run-id {run_id})")
    try:
        rows = [c.to_dict() for c in changed_items(results, Path(run["prepared_dir"]))]
    except (OSError, ValueError) as exc:  # a results folder edited or damaged by hand
        raise UserError(f"changed items of run {run_id}, trial {trial}: {exc}") from None
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    if not rows:
        click.echo(f"no item changed outcome between control and treatment (run {run_id}, trial {trial})")
        return
    head = ("temp", "type", "change", "item", "question", "control", "treatment")
    table = [head] + [(str(r["temp"]), str(r["type"]), str(r["change"]), str(r["item_key"]),
                       _cell(r["question"]), _cell(r["control_response"], 24), _cell(r["treatment_response"], 24))
                      for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(head))]
    for row in table:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    click.echo(changed_summary(rows, run_id))


def changed_summary(rows: list[dict[str, Any]], run_id: str) -> str:
    """The closing line of ``show --changed``: items, not rows (an unanswerable item can both break and
    now answer: one item, two changes)."""
    items = len({(r["temp"], r["type"], r["item_key"]) for r in rows})
    text = f"{items} changed {'item' if items == 1 else 'items'}"
    if len(rows) != items:
        text += f" ({len(rows)} changes: an item can change in two ways)"
    return f"{text}; `python -m producer show --run-id {run_id} ITEM_ID` for one"


@command()
@click.argument("item_id", required=False, metavar="[ITEM_ID]")
@click.option("--run-id", default=None, help="Run id (default: the latest run).")
@click.option("--trial", default=None, metavar="SLUG", help="Trial slug (default: the run's only trial).")
@click.option("--changed", is_flag=True, help="List the items whose outcome changed (treatment fixed, broke, ...).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@one_line_errors
def show(item_id: str | None, run_id: str | None, trial: str | None, changed: bool, as_json: bool) -> None:
    """One item's transcript (ITEM_ID: dataset|id or just the id): question, gold, passage and, for each
    temperature and sample, the control and treatment answers with their scores. --changed: the items
    whose outcome changed between the conditions, as a table."""
    make_console_safe()
    if changed == (item_id is not None):
        raise UserError("give either an ITEM_ID or --changed (see: python -m producer show -h)")
    run_id, trial, run = _run_and_trial(run_id, trial)
    if changed:
        _show_changed(run_id, trial, run, as_json)
    else:
        _show_item(str(item_id), run_id, trial, run, as_json)
