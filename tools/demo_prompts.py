"""The table of docs/demo-prompts.md: each candidate treatment's effect on SmolLM2, from one sweep run.

    python -m producer run --config config/eval_config.demo_prompts.yaml
    python tools/demo_prompts.py experiments/run_<RUN_ID>

Why: the demo's prompt pair was chosen by measurement, and anyone can repeat it. Each row is a trial of
the sweep; each cell is control -> treatment on the paired items, with the q-value (Benjamini-Hochberg
within the trial) and * when q < 0.05.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from config.contract import SIGNIFICANCE_JSON  # noqa: E402
from producer.runs.layout import RunFolder  # noqa: E402

COLUMNS = [("closed", "abstain_rate", "abstention, closed-book"), ("open", "abstain_rate", "abstention, open-book"),
           ("open", "false_answer_rate", "false answers, open-book"), ("open", "em", "EM, open-book"),
           ("open", "f1", "F1, open-book"), ("closed", "em", "EM, closed-book")]


def cell(metrics: dict, metric: str) -> str:
    m = metrics.get(metric)
    if not isinstance(m, dict) or m.get("control_mean") is None:
        return "-"
    q = (m.get("wilcoxon") or {}).get("q_value")
    star = " *" if q is not None and q < 0.05 else ""
    qtext = "" if q is None else f" (q {q:.2g})"
    return f"{100 * m['control_mean']:.0f} -> {100 * m['treatment_mean']:.0f}%{qtext}{star}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--temp", default="0.0")
    args = ap.parse_args()
    trials = RunFolder(args.run_dir).trials_with(SIGNIFICANCE_JSON)
    if not trials:
        print(f"error: no trial with a {SIGNIFICANCE_JSON} under {args.run_dir}", file=sys.stderr)
        return 2
    print("| treatment (prompt set) | " + " | ".join(c[2] for c in COLUMNS) + " |")
    print("|---|" + "---|" * len(COLUMNS))
    for trial in trials:
        sig = json.loads((trial.results_dir / SIGNIFICANCE_JSON).read_text(encoding="utf-8"))
        block = (sig.get("results") or {}).get(args.temp) or {}
        row = [cell((block.get(type_) or {}).get("metrics") or {}, metric) for type_, metric, _ in COLUMNS]
        print(f"| {trial.path.name} | " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
