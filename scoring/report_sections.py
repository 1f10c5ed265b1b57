"""The report's sections, in reading order, as renderer-neutral blocks (report_text).

Why: markdown and HTML must say the same thing; building the content once keeps them in step.
Order: answer, settings, results per temperature and type, figures, data quality, costs and speed.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from config.wording import plural
from scoring import figures
from scoring.report_changed import changed_section
from scoring.report_clustered import clustered_sentence
from scoring.report_data import ReportData, is_dry_run
from scoring.report_noise import noise_floor_section
from scoring.report_quality import quality_section
from scoring.report_sig import blocks, effect_rows, num, selective_curves, temps
from scoring.report_text import (
    METRIC_LABELS,
    NA,
    Block,
    Figure,
    Heading,
    Para,
    Table,
    describe,
    dry_run_banner,
    fmt_num,
    fmt_p,
    fmt_pts,
    headline,
    mcnemar_sentence,
    meta_subgroup_table,
    results_table,
    subgroup_table,
    unanswerable_answered,
)

SECRET_KEY = re.compile(r"api_?key|secret|password|authori[sz]ation|bearer", re.IGNORECASE)
SETTING_KEYS = ("run_id", "trial", "slug", "model", "backend", "engine", "local_engine", "prompt_set", "temps",
                "samples_per_item", "top_p", "top_k", "max_new_tokens", "seed", "n_ctx", "created_at")


KEY_SETTINGS = ("run_id", "trial.model", "model", "backend", "engine.backend", "engine.engine", "local_engine",
                "trial.prompt_set", "prompt_set", "temps", "samples_per_item", "trial.max_new_tokens", "trial.top_p",
                "trial.top_k", "trial.seed", "engine.n_ctx", "engine.n_gpu_layers", "source")


def _setting(value: Any) -> str:
    if value is None:
        return "not set"
    return value if isinstance(value, str) else fmt_num(value)


def _scalar(value: Any) -> str | None:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return _setting(value)
    if isinstance(value, list) and not value:
        return "none"
    if isinstance(value, list) and all(isinstance(v, (str, int, float)) for v in value):
        return ", ".join(str(v) for v in value)
    if isinstance(value, dict) and all(isinstance(v, (str, int, float, bool)) or v is None for v in value.values()):
        return ", ".join(f"{k}: {_setting(v)}" for k, v in value.items()
                         if not SECRET_KEY.search(str(k)))
    return None


def _flatten_settings(manifest: dict[str, Any]) -> list[list[str]]:
    """Top-level scalars plus one level of nested settings (trial, engine, backend), secrets dropped."""
    rows, seen = [], set()
    skip = {"prompts", "counts", "stage_status", "schema_version"}
    ordered = [k for k in SETTING_KEYS if k in manifest] + [k for k in manifest if k not in SETTING_KEYS]
    for key in ordered:
        if key in skip or SECRET_KEY.search(key):
            continue
        value = manifest[key]
        if isinstance(value, dict) and (_scalar(value) is None or len(value) > 3):
            for sub, subval in value.items():
                text = _scalar(subval)
                if text is not None and not SECRET_KEY.search(str(sub)) and f"{key}.{sub}" not in seen:
                    seen.add(f"{key}.{sub}")
                    rows.append([f"{key}.{sub}", text])
            continue
        text = _scalar(value)
        if text is not None:
            rows.append([key, text])
    return rows


PROMPT_ROWS = (("control", "control system prompt"), ("treatment", "treatment system prompt"),
               ("open_book_instruction", "open-book instruction"), ("closed_book_instruction", "closed-book instruction"))


def _prompt_rows(manifest: dict[str, Any]) -> list[list[str]]:
    prompts = manifest.get("prompts")
    rows: list[list[str]] = []
    if not isinstance(prompts, dict):
        return rows
    for key, label in PROMPT_ROWS:
        p = prompts.get(key)
        if not isinstance(p, dict):
            continue
        tokens = next((p[k] for k in ("tokens", "token_count", "n_tokens", "prompt_tokens") if k in p), None)
        est = p.get("tokens_estimated") or prompts.get("token_counts") == "estimated"
        token_text = fmt_num(tokens) + (" (estimated)" if est and tokens is not None else "")
        rows.append([label, str(p.get("path") or p.get("file") or NA), str(p.get("sha256") or NA), token_text])
    return rows


def batching_sentence(manifest: dict[str, Any]) -> str | None:
    """How the engine batched requests (trial_manifest.json ``batching``); None for older manifests."""
    b = manifest.get("batching")
    if not isinstance(b, dict) or not b.get("description"):
        return None
    p = b.get("n_parallel")
    same = f" (n_parallel {p})" if isinstance(p, int) else ""
    return (f"Batching: {str(b['description']).rstrip('.')}. Control and treatment ran with the same batching{same}, "
            "each condition as its own block in the same order of items; see docs/statistics.md on why batching "
            "cannot favour either arm.")


def settings_section(data: ReportData) -> list[Block]:
    out: list[Block] = [Heading("Run settings")]
    if data.manifest is None:
        out.append(Para(f"trial_manifest.json: {NA}.", "note"))
        if data.significance:
            out.append(Table(["setting", "value"], [["temps", ", ".join(temps(data.significance))]]))
        return out
    rows = _flatten_settings(data.manifest)
    key_rows = [r for r in rows if r[0] in KEY_SETTINGS]
    key_rows.sort(key=lambda r: KEY_SETTINGS.index(r[0]))
    other = [r for r in rows if r[0] not in KEY_SETTINGS]
    out.append(Table(["setting", "value"], key_rows or rows))
    if key_rows and other:
        out.append(Table(["setting", "value"], other, caption=f"All other settings ({len(other)})", collapsed=True))
    batching = batching_sentence(data.manifest)
    if batching:
        out.append(Para(batching, "note"))
    prompt_rows = _prompt_rows(data.manifest)
    if prompt_rows:
        out.append(Table(["prompt", "file", "sha256", "tokens"], prompt_rows,
                         caption="Only the system prompt differs between conditions; the user message is identical.",
                         code_columns={2}))
    else:
        out.append(Para(f"Prompt hashes and token counts: {NA}.", "note"))
    return out


def _effect_ci(obj: Any) -> str:
    if not isinstance(obj, dict) or obj.get("estimate") is None:
        return NA
    ci = obj.get("ci_95") or [None, None]
    text = fmt_pts(num(obj.get("estimate")))
    if isinstance(ci, list) and len(ci) == 2 and None not in ci:
        text += f" ({fmt_pts(num(ci[0]))} to {fmt_pts(num(ci[1]))})"
    return text


def further_stats(block: dict[str, Any]) -> list[Block]:
    """TOST non-inferiority and the across-dataset meta-analysis, as small tables when present."""
    out: list[Block] = []
    tost = block.get("tost")
    if isinstance(tost, dict) and tost:
        rows = [[METRIC_LABELS.get(m, m), fmt_pts(num(t.get("margin")), signed=False),
                 fmt_pts(num(t.get("delta_mean"))), fmt_pts(num(t.get("ci_lower_one_sided"))),
                 fmt_p(num(t.get("p_lower", t.get("p_value")))), fmt_num(t.get("non_inferior")),
                 fmt_num(t.get("equivalent"))]
                for m, t in tost.items() if isinstance(t, dict)]
        out.append(Table(["metric", "margin (pts)", "delta (pts)", "one-sided lower bound (pts)", "p (non-inferiority)",
                          "non-inferior", "equivalent"], rows,
                         caption="TOST: treatment is non-inferior when its lower bound stays above -margin."))
    meta = block.get("meta")
    if meta is None and isinstance(block.get("subgroups"), dict):
        meta = block["subgroups"].get("meta")
    if isinstance(meta, dict):
        rows = [[METRIC_LABELS.get(m, m), fmt_num(v.get("k")), _effect_ci(v.get("fixed")), _effect_ci(v.get("random")),
                 fmt_num(num(v.get("I2")), 3), fmt_num(num(v.get("tau2")), 4), fmt_p(num(v.get("Q_p_value")))]
                for m, v in meta.items() if isinstance(v, dict) and v.get("fixed") is not None]
        if rows:
            out.append(Table(["metric", "datasets", "fixed effect (pts, 95% CI)", "random effects (pts, 95% CI)",
                              "I2", "tau2", "Q p"], rows, caption="Meta-analysis of the dataset subgroups."))
    return out


def results_section(data: ReportData, fig_dir: Path | None) -> list[Block]:
    out: list[Block] = [Heading("Results: control vs treatment")]
    sig = data.significance
    if not sig:
        return out + [Para(f"significance.json: {NA}.", "note")]
    rows = effect_rows(sig)
    for temp, type_, block in blocks(sig):
        out.append(Heading(f"Temperature {temp}, {type_}-book ({_paired(block.get('n_items'))})", 3))
        out.append(results_table(rows, data.means, temp, type_))
        for sub in (subgroup_table(rows, temp, type_), meta_subgroup_table(block, temp, type_)):
            if sub is not None:
                out.append(sub)
        text = mcnemar_sentence(block)
        if text:
            out.append(Para(text))
        text = clustered_sentence(block)
        if text:
            out.append(Para(text))
        out += further_stats(block)
    if fig_dir is None:
        return out
    out.append(Heading("Figures"))
    any_fig = False
    for temp in temps(sig):
        path = figures.forest_plot(rows, temp, fig_dir / f"forest_t{temp}.png")
        if path:
            any_fig = True
            out.append(Figure(path, f"Paired deltas with 95% intervals, temperature {temp}."))
    for temp, type_, block in blocks(sig):
        curves = selective_curves(block)
        path = figures.risk_coverage_plot(curves, f"Risk vs coverage, temperature {temp}, {type_}-book",
                                          fig_dir / f"risk_coverage_t{temp}_{type_}.png")
        if path:
            any_fig = True
            out.append(Figure(path, f"Risk-coverage, temperature {temp}, {type_}-book.", half=True))
    if not any_fig:
        out.append(Para(f"Figures: {NA} (no deltas or selective-risk data).", "note"))
    return out


def _is_local(data: ReportData) -> bool:
    backend = str((data.manifest or {}).get("backend", "")).lower()
    return data.local_costs is not None or backend == "local"


def costs_section(data: ReportData, fig_dir: Path | None) -> list[Block]:
    out: list[Block] = [Heading("Costs and speed")]
    c = data.costs
    if c is None:
        out.append(Para(f"costs.json: {NA}.", "note"))
    else:
        usd = c.get("usd")
        kind = c.get("usd_kind")
        local = kind == "equivalent_cloud_cost" if kind else _is_local(data)
        label = "equivalent cloud cost (local run: nothing was paid)" if local else "cost (batch API estimate)"
        usd_text = NA if usd is None else f"${usd:,.4f}" if isinstance(usd, (int, float)) else str(usd)
        rows = [[label, f"{usd_text} USD"]]
        if isinstance(c.get("usd_if_batch"), (int, float)) and not c.get("batch_discount_applied"):
            rows.append(["same tokens on the batch API", f"${c['usd_if_batch']:,.4f} USD"])
        for key in ("prompt_tokens", "completion_tokens", "total_tokens", "usage_records", "rows_without_usage",
                    "usage_estimated", "batch_discount_applied"):
            if key in c:
                rows.append([key.replace("_", " "), fmt_num(c[key])])
        if isinstance(c.get("pricing"), dict):
            rows.append(["pricing", describe(c["pricing"])])
        out.append(Table(["item", "value"], rows))
    lc = data.local_costs
    if lc is not None:
        keys = (("requests", "requests"), ("requests_per_minute", "requests per minute"),
                ("items_per_minute", "items per minute"), ("completion_tokens_per_s", "completion tokens/s"),
                ("prompt_tokens_per_s", "prompt tokens/s"), ("latency_p50_s", "latency p50 (s)"),
                ("latency_p95_s", "latency p95 (s)"), ("latency_p99_s", "latency p99 (s)"),
                ("latency_mean_s", "latency mean (s)"), ("wall_time_s", "wall time (s)"),
                ("gpu_name", "GPU"), ("gpu_mem_max_mib", "GPU memory max (MiB)"),
                ("gpu_mem_mean_mib", "GPU memory mean (MiB)"), ("gpu_util_mean_pct", "GPU utilisation mean (%)"),
                ("power_mean_w", "power mean (W)"), ("cpu_mean_pct", "worker CPU mean (%)"),
                ("rss_max_mib", "worker RAM max (MiB)"))
        rows = [[label, fmt_num(lc[k])] for k, label in keys if k in lc]
        if lc.get("cache_hits"):  # speeds and latencies above describe the engine alone (issue 29)
            rows.insert(1, ["answered from the response cache", f"{fmt_num(lc['cache_hits'])} (left out of the "
                                                                "speeds and latencies)"])
        if lc.get("nvml_available") is False:
            rows.append(["GPU telemetry", f"{NA} ({lc.get('nvml_reason') or 'NVML unavailable'})"])
        out.append(Table(["local speed", "value"], rows))
    elif _is_local(data):
        out.append(Para(f"local_costs.json: {NA}.", "note"))
    if data.telemetry is not None and fig_dir is not None:
        path = figures.telemetry_plot(data.telemetry, fig_dir / "telemetry.png")
        if path:
            out.append(Figure(path, "Tokens per second and GPU memory over the run (telemetry.csv)."))
    return out


def _paired(n: Any) -> str:
    return plural(n, "paired item") if isinstance(n, int) else f"{fmt_num(n)} paired items"


def build_document(data: ReportData, fig_dir: Path | None, title: str) -> list[Block]:
    """All blocks in reading order; the first screen holds the answer. ``fig_dir`` None: no figures."""
    rows = effect_rows(data.significance) if data.significance else []
    doc: list[Block] = [Heading(title, 1)]
    if is_dry_run(data.manifest, data.local_costs):
        doc.append(dry_run_banner("This trial ran the dry-run engine: no model answered, every response is a "
                                  "canned string. The numbers test the pipeline, not the prompts."))
    scorers = ((data.manifest or {}).get("comparison") or {}).get("scorers") or {}
    doc += [Para(f"The {role} answers were scored by {who}: the comparison assumes both sides' scorers "
                 "measure the same thing (docs/statistics.md, Comparing two runs).", "warning")
            for role, who in scorers.items() if "scoring/rules.py" not in who]
    sentences = headline(rows, data.significance, data.means, data.pairing, data.manifest,
                         unanswerable=unanswerable_answered(data.paired_items))
    doc += [Para(s, "headline" if i == 0 else "subhead") for i, s in enumerate(sentences)]
    doc.append(Para("Delta = treatment - control on the same items (paired), in percentage points. "
                    "q = Benjamini-Hochberg adjusted p across every test of this trial; significant means q < 0.05.",
                    "note"))
    doc += settings_section(data)
    doc += results_section(data, fig_dir)
    doc += noise_floor_section(data)  # aa: true only (scoring/report_noise.py)
    doc += changed_section(data.paired_items, data.paired_problem)
    doc += quality_section(data)
    doc += costs_section(data, fig_dir)
    return doc
