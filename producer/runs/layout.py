"""Where a run's files live (CONTRACT section 9): one source of truth for every artifact path.

Why the checks here: every name that becomes part of a path (run id, trial slug, prompt-set name in an
archive) goes through ``safe_slug`` or ``validate_run_id``, so no name can climb out of ``experiments/``
(``..``, a separator, a drive letter) or name a Windows device (``CON``, ``NUL``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from producer.host.console import UserError

RUN_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_SLUG_UNSAFE = re.compile(r'[\x00-\x1f:*?"<>|\\/\s]+')
_DOTS = re.compile(r"\.{2,}")
_ESCAPES = re.compile(r"[\x00-\x1f:\\/]")
_WINDOWS_DEVICES = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(1, 10)), *(f"lpt{i}" for i in range(1, 10))}


def safe_slug(name: str, fallback: str = "unnamed") -> str:
    """A single, Windows-safe path component: unsafe characters become ``-``, no ``..``, no leading or
    trailing dot or dash, no device name; ``fallback`` when nothing is left."""
    slug = _DOTS.sub(".", _SLUG_UNSAFE.sub("-", str(name))).strip("-.")
    slug = slug or fallback
    if slug.split(".")[0].lower() in _WINDOWS_DEVICES:
        slug = f"_{slug}"
    return slug


def validate_run_id(run_id: str) -> str:
    """A run id names the folder ``run_<id>``: letters, digits, ``.``, ``_``, ``-``; no ``..``."""
    if not RUN_ID_RE.fullmatch(run_id) or ".." in run_id:
        raise UserError(f"invalid run id {run_id!r}: use 1-100 letters, digits, '.', '_' or '-' "
                        "(starting with a letter or digit, no '..')")
    return run_id


@dataclass(frozen=True)
class RunLayout:
    experiments_dir: Path
    run_id: str

    def __post_init__(self) -> None:
        validate_run_id(self.run_id)

    @property
    def run_dir(self) -> Path:
        return Path(self.experiments_dir) / f"run_{self.run_id}"

    @property
    def run_state(self) -> Path:
        return self.run_dir / "run_state.json"

    @property
    def effective_config(self) -> Path:
        return self.run_dir / "effective_config.yaml"

    def trial_dir(self, trial_slug: str) -> Path:
        """A trial's folder; the slug must already be one safe path component (``safe_slug``)."""
        if not str(trial_slug).strip(".") or _ESCAPES.search(str(trial_slug)):  # last guard against a climb
            raise ValueError(f"trial slug {trial_slug!r} is not a safe folder name")
        return self.run_dir / trial_slug

    def results_dir(self, trial_slug: str) -> Path:
        return self.trial_dir(trial_slug) / "results"

    def reports_dir(self, trial_slug: str) -> Path:
        return self.trial_dir(trial_slug) / "reports"

    def artifact(self, trial_slug: str, name: str) -> Path:
        """e.g. artifact(slug, "predictions.csv") -> .../<slug>/results/predictions.csv"""
        return self.results_dir(trial_slug) / name
