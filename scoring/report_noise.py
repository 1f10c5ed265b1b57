"""The report's "Noise floor (A/A)" section, from ``noise_floor.json`` (scoring.noise_floor).

Why beside the effect: a delta means something only when it is larger than what control against
itself gives; the section shows both, and warns when the effect lies within the noise (the rule is in
docs/statistics.md, "Noise floor (A/A)"). Without ``aa: true`` there is no file and no section.
"""

from __future__ import annotations

from config.contract import NOISE_FLOOR_JSON
from scoring.report_data import ReportData, read_result_json
from scoring.report_text import METRIC_LABELS, NA, Block, Heading, Para, Table, fmt_pct, fmt_pts

RULE = ("An effect is within the noise when |delta| is no larger than the far end of the A/A delta's 95% "
        "interval, or when the treatment changes no more answers than the A/A upper bound.")


def _interval(low: float | None, high: float | None, points: bool) -> str:
    if low is None or high is None:
        return NA
    show = fmt_pts if points else fmt_pct
    return f"[{show(low)}, {show(high)}]"


def _verdict(within: bool | None) -> str:
    return NA if within is None else ("within the noise" if within else "above the noise")


def noise_floor_section(data: ReportData) -> list[Block]:
    """Heading, flip rates, per-metric A/A deltas beside the effect, and the warnings; [] without the file."""
    nf = read_result_json(data.results_dir / NOISE_FLOOR_JSON, data.problems)
    if not nf:
        return []
    out: list[Block] = [Heading("Noise floor (A/A)")]
    slug = data.results_dir.parent.name
    if slug == nf.get("aa_trial"):
        out.append(Para(f"This trial is the A/A run of {nf.get('trial')}: its \"treatment\" is the control prompt asked "
                        "again with the same settings, so every difference here is noise.", "warning"))
    out.append(Para(f"Control was run against itself (trial {nf.get('aa_trial')}) with the run's own engine "
                    "settings. A flip is a pair whose two answers differ. " + RULE, "note"))
    flips: list[list[str]] = []
    metrics: list[list[str]] = []
    warnings: list[str] = []
    for row in nf.get("rows") or []:
        where = f"T {row.get('temp')}, {row.get('type')}-book"
        aa, eff = row.get("aa_flips") or {}, row.get("effect_flips") or {}
        flips.append([where, fmt_pct(aa.get("rate")), _interval(aa.get("ci_low"), aa.get("ci_high"), False),
                      fmt_pct(eff.get("rate")), _interval(eff.get("ci_low"), eff.get("ci_high"), False),
                      _verdict(row.get("flips_within_noise"))])
        if row.get("flips_within_noise"):
            warnings.append(f"{where}: the treatment changed {fmt_pct(eff.get('rate'))} of answers, no more than "
                            f"the A/A upper bound of {fmt_pct(aa.get('ci_high'))}: its changes look like noise.")
        for metric, m in (row.get("metrics") or {}).items():
            a, e = m.get("aa") or {}, m.get("effect") or {}
            metrics.append([where, METRIC_LABELS.get(metric, metric), fmt_pts(e.get("delta")), fmt_pts(a.get("delta")),
                            _interval(a.get("ci_low"), a.get("ci_high"), True), _verdict(m.get("within_noise"))])
            if m.get("within_noise") and e.get("delta") not in (None, 0):
                warnings.append(f"{where}: the {METRIC_LABELS.get(metric, metric)} effect ({fmt_pts(e.get('delta'))} "
                                f"points) is within the A/A noise (up to {fmt_pts(m.get('noise_band'), False)} points).")
    out += [Para(w, "warning") for w in warnings[:12]]
    if len(warnings) > 12:
        out.append(Para(f"... and {len(warnings) - 12} more effects within the noise (table below).", "warning"))
    out.append(Table(["where", "A/A flip rate", "95% CI", "treatment flip rate", "95% CI", "verdict"], flips,
                     "Answers that differ: control against itself (A/A) and control against treatment"))
    out.append(Table(["where", "metric", "effect delta (pts)", "A/A delta (pts)", "A/A 95% CI", "verdict"], metrics,
                     "Per-metric delta of the treatment beside the A/A delta (nothing changed)"))
    return out

