"""Write a small offline config (dry-run engine, bundled samples) whose outputs all land in a temp dir.

Used by the Windows safety-net and docs tests so CLI runs never touch the repo's data/ or experiments/.
Prompt and instruction files point at the repo's (absolute paths), so commands can run from any cwd.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.support.paths import ROOT


def offline_config_dict(out_dir: Path, **overrides: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "backend": "local",
        "local_engine": "dry_run",
        "temps": [0.0],
        "samples_per_item": {"0.0": 1},
        "max_new_tokens": {"closed_book": 16, "open_book": 16},
        "sizes": {"squad_v2": 4, "triviaqa": 3, "nq_open": 3},
        "data": {"squad_v2": "sample", "triviaqa": "sample", "nq_open": "sample"},
        "paths": {
            "data_dir": str(out_dir / "data"),
            "raw_dir": str(out_dir / "data" / "raw"),
            "prepared_dir": str(out_dir / "data" / "prepared"),
            "batch_inputs_dir": str(out_dir / "data" / "batch_inputs"),
            "experiments_dir": str(out_dir / "experiments"),
        },
        "prompt_sets": {
            "default": {
                "control": str(ROOT / "config" / "prompts" / "control_system.txt"),
                "treatment": str(ROOT / "config" / "prompts" / "treatment_system.txt"),
            }
        },
        "task_instructions": {
            "open_book": str(ROOT / "config" / "task_instructions" / "open_book.txt"),
            "closed_book": str(ROOT / "config" / "task_instructions" / "closed_book.txt"),
        },
        "stats": {"bootstrap_samples": 200, "permutation_samples": 200, "seed": 1},
        "enable_local_telemetry": False,
        "prevent_sleep": False,
    }
    cfg.update(overrides)
    return cfg


def write_offline_config(out_dir: Path, name: str = "offline.yaml", **overrides: Any) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / name
    text = yaml.safe_dump(offline_config_dict(out_dir, **overrides), allow_unicode=True, sort_keys=False)
    path.write_text(text, encoding="utf-8")
    return path
