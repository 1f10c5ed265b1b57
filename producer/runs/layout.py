"""Where a run's files live (CONTRACT section 9): one source of truth for every artifact path.

Why the checks here: every name that becomes part of a path (run id, trial slug, prompt-set name in an
archive) goes through ``safe_slug`` or ``validate_run_id``, so no name can climb out of ``experiments/``
(``..``, a separator, a drive letter) or name a Windows device (``CON``, ``NUL``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from config.contract import TRIAL_MANIFEST_JSON
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


RUN_STATE_JSON = "run_state.json"
EFFECTIVE_CONFIG_YAML = "effective_config.yaml"
PREPARED_DIR = "prepared"
RESULTS_DIR = "results"
REPORTS_DIR = "reports"
FIGURES_DIR = "figures"
SUMMARY_HTML = "summary.html"
SUMMARY_MD = "summary.md"
SUMMARY_FIGURES_DIR = "summary_figures"
REPORT_HTML = "report.html"
REPORT_MD = "report.md"


@dataclass(frozen=True)
class TrialFolder:
    """A trial folder's files from its path alone: ``analyse``, ``report`` and the scoring modules get a
    results folder, which may sit anywhere (no run id to check)."""

    path: Path

    @classmethod
    def of_results(cls, results_dir: Path | str) -> TrialFolder:
        """``<slug>/results`` -> the trial folder ``<slug>``."""
        return cls(Path(results_dir).parent)

    @property
    def run_folder(self) -> RunFolder:
        return RunFolder(self.path.parent)

    @property
    def results_dir(self) -> Path:
        return self.path / RESULTS_DIR

    @property
    def reports_dir(self) -> Path:
        return self.path / REPORTS_DIR

    @property
    def report_html(self) -> Path:
        return self.reports_dir / REPORT_HTML

    @property
    def manifest(self) -> Path:
        return self.results_dir / TRIAL_MANIFEST_JSON

    def artifact(self, name: str) -> Path:
        return self.results_dir / name


@dataclass(frozen=True)
class RunFolder:
    """A run folder's files from its path alone (``archive``, ``summary``: a folder named on the command line)."""

    path: Path

    @property
    def run_state(self) -> Path:
        return self.path / RUN_STATE_JSON

    @property
    def effective_config(self) -> Path:
        return self.path / EFFECTIVE_CONFIG_YAML

    @property
    def prepared_dir(self) -> Path:
        """The run's frozen copy of its items (written at enqueue, read by the report's items page)."""
        return self.path / PREPARED_DIR

    def batch_dir(self, provider: str) -> Path:
        """A batch provider's folder in the run (``fireworks/``, ``openai/``: the provider's registry name)."""
        return self.path / provider

    def batch_jobs(self, provider: str) -> Path:
        """The job table of a batch run (ids and states, for the record and the archive)."""
        return self.batch_dir(provider) / "jobs.jsonl"

    def batch_part(self, provider: str, part: int) -> Path:
        """The batch input file of one part."""
        return self.batch_dir(provider) / "parts" / f"part-{part:04d}.jsonl"

    def batch_download(self, provider: str, part: int) -> Path:
        """The folder one part's output is downloaded into."""
        return self.batch_dir(provider) / "downloads" / f"part-{part:04d}"

    @property
    def summary_html(self) -> Path:
        return self.path / SUMMARY_HTML

    @property
    def summary_md(self) -> Path:
        return self.path / SUMMARY_MD

    @property
    def summary_figures(self) -> Path:
        return self.path / SUMMARY_FIGURES_DIR

    def trial(self, trial_slug: str) -> TrialFolder:
        return TrialFolder(self.path / trial_slug)

    def trials_with(self, artifact: str) -> list[TrialFolder]:
        """The trial folders whose results hold ``artifact`` (e.g. significance.json), in name order."""
        return sorted((TrialFolder(p.parent.parent) for p in self.path.glob(f"*/{RESULTS_DIR}/{artifact}")),
                      key=lambda t: t.path)


@dataclass(frozen=True)
class ComparisonFolder:
    """``<experiments>/compare_<A>__<B>/``: a comparison of two answer sets (``producer compare``). Each
    compared condition pair is a trial-shaped folder (``results/``, ``reports/``) so that the trial's own
    pipeline and report run on it; ``prepared/`` holds the items of both sides."""

    path: Path

    @classmethod
    def of(cls, experiments_dir: Path, label_a: str, label_b: str) -> ComparisonFolder:
        return cls(Path(experiments_dir) / f"compare_{safe_slug(label_a)}__{safe_slug(label_b)}")

    def pair(self, name: str) -> TrialFolder:
        """The folder of one compared pair (``control``, ``treatment`` or ``a_vs_b``)."""
        return TrialFolder(self.path / safe_slug(name))

    @property
    def prepared_dir(self) -> Path:
        return self.path / PREPARED_DIR


@dataclass(frozen=True)
class RunLayout:
    experiments_dir: Path
    run_id: str

    def __post_init__(self) -> None:
        validate_run_id(self.run_id)

    @staticmethod
    def find_folder(experiments_dir: Path, run_id: str) -> RunFolder:
        """The folder of ``run_id`` in ``experiments_dir``, also when the id is given as its folder name
        ``run_<id>`` (``archive --run-id run_x``)."""
        return RunFolder(Path(experiments_dir) / (run_id if run_id.startswith("run_") else f"run_{run_id}"))

    @property
    def run_dir(self) -> Path:
        return Path(self.experiments_dir) / f"run_{self.run_id}"

    @property
    def folder(self) -> RunFolder:
        return RunFolder(self.run_dir)

    @property
    def run_state(self) -> Path:
        return self.folder.run_state

    @property
    def effective_config(self) -> Path:
        return self.folder.effective_config

    @property
    def prepared_dir(self) -> Path:
        return self.folder.prepared_dir

    def trial_dir(self, trial_slug: str) -> Path:
        """A trial's folder; the slug must already be one safe path component (``safe_slug``)."""
        if not str(trial_slug).strip(".") or _ESCAPES.search(str(trial_slug)):  # last guard against a climb
            raise ValueError(f"trial slug {trial_slug!r} is not a safe folder name")
        return self.run_dir / trial_slug

    def trial(self, trial_slug: str) -> TrialFolder:
        return TrialFolder(self.trial_dir(trial_slug))

    def results_dir(self, trial_slug: str) -> Path:
        return self.trial(trial_slug).results_dir

    def reports_dir(self, trial_slug: str) -> Path:
        return self.trial(trial_slug).reports_dir

    def artifact(self, trial_slug: str, name: str) -> Path:
        """e.g. artifact(slug, "predictions.csv") -> .../<slug>/results/predictions.csv"""
        return self.results_dir(trial_slug) / name

    def trial_manifest(self, trial_slug: str) -> Path:
        return self.trial(trial_slug).manifest
