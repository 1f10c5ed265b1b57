"""``python -m producer archive --run-id R``: one zip with everything a reader needs to trust a run.

Why: results, reports, manifests, the effective config and the exact prompt texts travel together,
so a run can be re-read (or re-analysed) months later on another machine. The zip is written to a
temporary file next to the target and moved into place, so a crash never leaves half an archive.
Prompt and instruction files named by ``effective_config.yaml`` are copied under ``prompts/``.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import click
import yaml

from config.atomic import atomic_target
from config.contract import CONDITIONS, PREDICTIONS_CSV
from producer.cli.command import command
from producer.host.console import UserError, make_console_safe, one_line_errors
from producer.runs.layout import RunFolder, RunLayout, TrialFolder, safe_slug, validate_run_id

SKIP_SUFFIXES = (".tmp", ".lock")


def _prompt_files(run_dir: Path) -> dict[str, Path]:
    """arcname -> file for every prompt / instruction file named in effective_config.yaml."""
    cfg_path = RunFolder(run_dir).effective_config
    if not cfg_path.is_file():
        return {}
    data = yaml.safe_load(cfg_path.read_text(encoding="utf-8")) or {}
    out: dict[str, Path] = {}
    folders: set[str] = set()
    for name, pset in (data.get("prompt_sets") or {}).items():
        folder = safe_slug(str(name))  # "x/y" and "x-y" slug alike: the second gets its own folder
        base, n = folder, 1
        while folder in folders or folder == "task_instructions":
            n += 1
            folder = f"{base}-{n}"
        folders.add(folder)
        for cond in CONDITIONS:
            p = Path(str(pset.get(cond, "")))
            if p.is_file():
                out[f"prompts/{folder}/{cond}_{safe_slug(p.name)}"] = p
    for kind, value in (data.get("task_instructions") or {}).items():
        p = Path(str(value))
        if p.is_file():
            out[f"prompts/task_instructions/{safe_slug(str(kind))}_{safe_slug(p.name)}"] = p
    return out


def unfinished_trials(run_dir: Path) -> list[str]:
    """Trial folders without predictions.csv (the run is not finished)."""
    return sorted(p.name for p in run_dir.iterdir()
                  if TrialFolder(p).results_dir.is_dir() and not TrialFolder(p).artifact(PREDICTIONS_CSV).is_file())


def archive_run(run_dir: Path, out: Path | None = None, allow_unfinished: bool = False) -> Path:
    """Zip ``run_dir`` (plus its prompts) into ``out`` (default: ``<experiments>/run_<id>.zip``), atomically."""
    run_dir = Path(run_dir)
    folder = RunFolder(run_dir)
    if not folder.run_state.is_file() and not folder.effective_config.is_file():
        raise UserError(f"not a run folder: {run_dir}")
    missing = unfinished_trials(run_dir)
    if missing and not allow_unfinished:
        raise UserError(f"run is not finished (no predictions.csv in: {', '.join(missing)}); "
                        "finish it or pass --allow-unfinished")
    out = Path(out) if out else run_dir.parent / f"{run_dir.name}.zip"
    with atomic_target(out) as tmp, zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(run_dir.rglob("*")):
            if path.is_file() and not path.name.endswith(SKIP_SUFFIXES):
                zf.write(path, f"{run_dir.name}/{path.relative_to(run_dir).as_posix()}")
        for arcname, path in _prompt_files(run_dir).items():
            zf.write(path, f"{run_dir.name}/{arcname}")
    return out


@command()
@click.option("--run-id", required=True, help="The run to pack (folder experiments/run_<RUN_ID>).")
@click.option("--experiments-dir", type=click.Path(path_type=Path), default=Path("experiments"), show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Zip path (default: next to the run folder).")
@click.option("--allow-unfinished", is_flag=True, help="Pack a run whose trials are not all finished.")
@one_line_errors
def archive(run_id: str, experiments_dir: Path, out: Path | None, allow_unfinished: bool) -> None:
    """Pack a finished run (results, reports, manifests, effective config, prompts) into one zip."""
    make_console_safe()
    validate_run_id(run_id)
    run_dir = RunLayout.find_folder(experiments_dir, run_id).path
    if not run_dir.is_dir():
        raise UserError(f"no run folder {run_dir}")
    path = archive_run(run_dir, out, allow_unfinished)
    click.echo(f"archived {run_dir} -> {path}")
