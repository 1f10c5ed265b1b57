"""Power table for docs/statistics.md section 4: Connor's size and the tool's exact size for a 5-point
change, each checked by simulation (the exact McNemar test on multinomial pairs, seeded).

    python tools/power_sim.py [--trials 8000] [--effect 0.05]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scoring.power import connor_n, items_needed, mcnemar_power, simulated_power  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=8000)
    ap.add_argument("--effect", type=float, default=0.05)
    args = ap.parse_args()
    delta = args.effect
    print("| discordance | Connor n | its power (exact / simulated) | tool's n | its power (exact / simulated) |")
    print("|---|---|---|---|---|")
    for psi in (0.06, 0.10, 0.15, 0.20, 0.30):
        p10, p01 = (psi + delta) / 2, (psi - delta) / 2
        c, n = connor_n(delta, psi), items_needed(delta, psi)
        print(f"| {psi:.2f} | {c} | {mcnemar_power(c, p10, p01):.1%} / {simulated_power(c, p10, p01, trials=args.trials):.1%}"
              f" | {n} | {mcnemar_power(n, p10, p01):.1%} / {simulated_power(n, p10, p01, trials=args.trials):.1%} |")


if __name__ == "__main__":
    main()
