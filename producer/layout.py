"""Where a run's files live (CONTRACT section 9): one source of truth for every artifact path."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RunLayout:
    experiments_dir: Path
    run_id: str

    @property
    def run_dir(self) -> Path:
        return Path(self.experiments_dir) / f"run_{self.run_id}"

    @property
    def run_state(self) -> Path:
        return self.run_dir / "run_state.json"

    @property
    def effective_config(self) -> Path:
        return self.run_dir / "effective_config.yaml"

    def results_dir(self, trial_slug: str) -> Path:
        return self.run_dir / trial_slug / "results"

    def reports_dir(self, trial_slug: str) -> Path:
        return self.run_dir / trial_slug / "reports"

    def artifact(self, trial_slug: str, name: str) -> Path:
        """e.g. artifact(slug, "predictions.csv") -> .../<slug>/results/predictions.csv"""
        return self.results_dir(trial_slug) / name
