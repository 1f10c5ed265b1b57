"""The dry plan of a run: read-only, so ``plan`` can be run anywhere, offline, any number of times.

Why: before a long or paid run, the user sees exactly what would be sent (trials, items, requests,
prompt tokens per condition) without a single file being created.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from config.contract import CONDITIONS, temp_label
from config.engines import BATCH_BACKENDS, HTTP_ENGINES, is_batch, is_dry_run_engine, run_engine
from config.schema import EvalConfig
from config.textfile import read_user_text
from producer.host.console import UserError
from producer.host.env import api_base_notice
from producer.inputs.datasets.sources import load_items, resolve_source
from producer.inputs.messages import load_prompt_texts, render_messages
from producer.inputs.prepare import check_something_selected, select_items, target_size
from producer.inputs.sweep_share import generated_count
from producer.runs.manifests import PHASES, estimate_tokens
from producer.runs.trials import Trial, expand_trials

# A run above either bound is refused unless the user says --yes (a typo of a billion, a sweep too wide).
MAX_REQUESTS = 1_000_000
MAX_GENERATION_DAYS = 7.0
ASSUMED_TOKENS_PER_S = 100.0  # optimistic generation speed per concurrent request, for the bound only

PHASE_NOTES_LOCAL = {"submit": "enqueue on the local queue", "poll": "workers generate"}
PHASE_NOTES_FIREWORKS = {"submit": "upload + create batch jobs", "poll": "wait for jobs, download"}


@dataclass
class DatasetPlan:
    name: str
    source: dict[str, Any]
    available: int | None  # None: unknown until downloaded
    selected: int | None
    cap: int | None = None  # configured size (None = all): bounds an unknown dataset
    items: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Plan:
    cfg: EvalConfig
    config_path: Path
    datasets: list[DatasetPlan]
    trials: list[Trial]
    limit_items: int | None

    @property
    def items(self) -> list[dict[str, Any]]:
        return [item for d in self.datasets for item in d.items]

    @property
    def complete(self) -> bool:
        return all(d.selected is not None for d in self.datasets)

    def unknown_note(self, per_item: int) -> str:
        """What datasets not yet downloaded add: an upper bound when their sizes are capped."""
        unknown = [d for d in self.datasets if d.selected is None]
        if not unknown:
            return ""
        if any(d.cap is None for d in unknown):
            return " (+ all items of datasets not yet downloaded)"
        return f" (+ up to {sum(d.cap for d in unknown) * per_item:,} for datasets not yet downloaded)"


def make_plan(
    cfg: EvalConfig, config_path: Path, data_overrides: dict[str, str] | None = None, limit_items: int | None = None
) -> Plan:
    """Count items in memory (sample and local files are read; hub files are never downloaded)."""
    check_something_selected(cfg, limit_items)
    datasets = []
    for ds in cfg.dataset_names():
        size = target_size(cfg, ds, limit_items)
        src = resolve_source(cfg, ds, data_overrides)
        if size == 0:
            datasets.append(DatasetPlan(ds, src.describe(), None, 0))
            continue
        loaded = load_items(src, download=False)
        if loaded is None:
            datasets.append(DatasetPlan(ds, src.describe(), None, None, cap=size))
            continue
        chosen = select_items(loaded, ds, cfg.data_seed, size)
        datasets.append(DatasetPlan(ds, src.describe(), len(loaded), len(chosen), cap=size, items=chosen))
    return Plan(cfg, config_path, datasets, expand_trials(cfg), limit_items)


def _fmt(n: int | None) -> str:
    return "?" if n is None else f"{n:,}"


def trial_counts(plan: Plan, trial: Trial) -> dict[str, dict[str, dict[str, int]]]:
    """{temp label: {condition: {requests, prompt_tokens, max_completion_tokens}}} over the known items;
    prompt tokens are estimates (~4 characters per token), completion tokens the max_new_tokens bound."""
    cfg = plan.cfg
    texts = load_prompt_texts(cfg, trial.prompt_set)
    texts = texts.control_twice() if trial.aa_of else texts
    per_condition: dict[str, int] = {}  # prompt tokens of one pass over the items
    for condition in CONDITIONS:
        total = 0
        for item in plan.items:
            msgs = render_messages(texts, item, condition, cfg.item_type(item))
            total += sum(estimate_tokens(m["content"]) for m in msgs)
        per_condition[condition] = total
    completion = sum(trial.max_tokens_for(cfg.item_type(item)) for item in plan.items)
    out: dict[str, dict[str, dict[str, int]]] = {}
    for temp in trial.temps:
        k = cfg.samples_for(temp)
        out[temp_label(temp)] = {c: {"requests": len(plan.items) * k, "prompt_tokens": per_condition[c] * k,
                                     "max_completion_tokens": completion * k} for c in CONDITIONS}
    return out


def _trial_lines(plan: Plan, trial: Trial, counts: dict[str, dict[str, dict[str, int]]]) -> list[str]:
    cfg = plan.cfg
    mx = trial.max_new_tokens
    lines = [
        f"  trial {trial.slug}: model {trial.model}, prompt set {trial.prompt_set}, "
        f"temps {', '.join(temp_label(t) for t in trial.temps)}, top_p {trial.top_p if trial.top_p is not None else '-'}, "
        f"top_k {trial.top_k if trial.top_k is not None else '-'}, max_new_tokens closed {mx.closed_book} / open {mx.open_book}"
    ]
    for temp in trial.temps:
        k = cfg.samples_for(temp)
        suffix = plan.unknown_note(k) if not plan.complete else ""
        by_cond = counts[temp_label(temp)]
        parts = [f"{c} {by_cond[c]['requests']:,} requests, ~{by_cond[c]['prompt_tokens']:,} prompt tokens"
                 for c in CONDITIONS]
        lines.append(f"    temp {temp_label(temp)} (samples_per_item {k}): {'; '.join(parts)}{suffix}")
    return lines


def usd_estimate(plan: Plan, counts: list[dict[str, dict[str, dict[str, int]]]]) -> dict[str, Any] | None:
    """The batch bill of the run at each trial's model's prices and batch discount: prompt tokens are
    estimated, completions counted at their max_new_tokens bound, so ``usd`` is an upper estimate;
    None for local backends (nothing is billed)."""
    if not is_batch(plan.cfg.backend):
        return None
    from scoring.costs import usd_of  # lazy: pandas, only for a Fireworks plan's price

    prompt = sum(c["prompt_tokens"] for trial in counts for temp in trial.values() for c in temp.values())
    completion = sum(c["max_completion_tokens"] for trial in counts for temp in trial.values() for c in temp.values())
    usd = 0.0
    for trial, tc in zip(plan.trials, counts, strict=True):  # each trial at its model's prices
        own = plan.cfg.pricing.for_model(trial.model)
        p = sum(c["prompt_tokens"] for temp in tc.values() for c in temp.values())
        m = sum(c["max_completion_tokens"] for temp in tc.values() for c in temp.values())
        usd += usd_of(p, m, 0, own, own.batch_discount)
    pricing = plan.cfg.pricing.for_model(plan.cfg.model_id)
    return {"prompt_tokens": prompt, "max_completion_tokens": completion, "usd": round(usd, 4),
            "batch_discount": pricing.batch_discount, "input_per_mtok": pricing.input_per_mtok,
            "output_per_mtok": pricing.output_per_mtok, "complete": plan.complete}


def render_plan(plan: Plan, extra_lines: list[str] | None = None, wrote: str | None = None) -> str:
    """The plan as text; ``extra_lines`` (e.g. the VRAM budget) go before the closing line, which says
    that nothing was written, or only ``wrote`` (``plan --measure``: the step costs file)."""
    cfg = plan.cfg
    out = [f"config: {plan.config_path}"]
    if is_batch(cfg.backend):
        out.append(f"backend: {BATCH_BACKENDS[cfg.backend].label}, model {cfg.model_id}")
        notes = PHASE_NOTES_FIREWORKS
    else:
        engine = f"backend: local, engine {cfg.local_engine}, model {cfg.local_model or '-'}"
        if cfg.local_engine in HTTP_ENGINES:
            engine += f" at {cfg.local_endpoint}"
        engine += (
            f" (n_ctx {cfg.n_ctx}, n_gpu_layers {cfg.n_gpu_layers}, n_threads {cfg.n_threads or 'auto'}, "
            f"max_concurrent_requests {cfg.max_concurrent_requests or 'auto'})"
        )
        out.append(engine)
        notes = PHASE_NOTES_LOCAL

    for backend in BATCH_BACKENDS:  # whenever a provider's API base is not the default (a stray .env)
        base = api_base_notice(backend=backend)
        if base is not None:
            out.append(base[0] + (f": REFUSED: {base[1]}" if base[1] else ""))
    out.append("prompt sets:")
    for name, pset in cfg.prompt_sets.items():
        used = " (default)" if name == cfg.default_prompt_set else ""
        tok = {c: estimate_tokens(read_user_text(getattr(pset, c)).strip()) for c in CONDITIONS}
        out.append(
            f"  {name}{used}: control {pset.control} (~{tok['control']:,} tokens), "
            f"treatment {pset.treatment} (~{tok['treatment']:,} tokens)"
        )
    out.append(
        f"temperatures: {', '.join(temp_label(t) for t in cfg.temps)}; samples_per_item: "
        + ", ".join(f"{k}={v}" for k, v in cfg.samples_per_item.items())
    )
    limit = f", --limit-items {plan.limit_items}" if plan.limit_items is not None else ""
    out.append(f"datasets (data_seed {cfg.data_seed}{limit}):")
    for d in plan.datasets:
        where = d.source["kind"] if d.source["kind"] == "sample" else f"{d.source['kind']} {d.source.get('url') or d.source['path']}"
        kind = cfg.dataset_type(d.name)
        if d.selected == 0:
            out.append(f"  {d.name:<9} {kind:<6} 0 items (size 0)")
        elif d.selected is None:
            cap = "all items" if d.cap is None else f"up to {d.cap:,} items"
            out.append(f"  {d.name:<9} {kind:<6} size unknown until downloaded, {cap} ({where})")
        else:
            out.append(f"  {d.name:<9} {kind:<6} {d.selected:,} of {_fmt(d.available)} items ({where})")
    out.append(f"trials: {len(plan.trials)}")
    counts = [trial_counts(plan, trial) for trial in plan.trials]
    for trial, trial_count in zip(plan.trials, counts, strict=True):
        out.extend(_trial_lines(plan, trial, trial_count))
    per_item = requests_per_item(cfg, plan.trials)
    total = len(plan.items) * per_item
    unknown = plan.unknown_note(per_item)
    generated = generated_count(cfg, plan.trials, plan.items)
    if generated < total:
        unknown = (f", of which {generated:,} are generated ({total - generated:,} reuse another trial's answer)"
                   + unknown)
    out.append(f"total requests: {total:,}{unknown} (prompt tokens are estimates, ~4 characters per token)")
    aa = aa_requests(cfg, plan.trials, len(plan.items))
    if cfg.aa:
        out.append(f"A/A (noise floor): {aa:,}{plan.unknown_note(aa_requests(cfg, plan.trials, 1))} of these ask the "
                   "control again, generated anew (response cache bypassed); as many A/A control requests reuse "
                   "their trial's control answers")
    usd = usd_estimate(plan, counts)
    if usd is not None and not plan.items:
        out.append("estimated cost: unknown until the datasets are downloaded (python -m producer prepare)")
    elif usd is not None:
        known = "" if usd["complete"] else " for the datasets already known"
        service = BATCH_BACKENDS[cfg.backend].label.removesuffix(" API")
        out.append(f"estimated cost: up to ${usd['usd']:,.2f}{known} ({service[:1].upper()}{service[1:]}, "
                   f"~{usd['prompt_tokens']:,} "
                   f"prompt tokens at ${usd['input_per_mtok']}/M, at most {usd['max_completion_tokens']:,} "
                   f"completion tokens at ${usd['output_per_mtok']}/M, batch_discount {usd['batch_discount']})")
    phase_names = [f"{p} ({notes[p]})" if p in notes else p for p in PHASES]
    out.append("phases: " + " -> ".join(phase_names))
    out.extend(extra_lines or [])
    out.append(f"plan only: nothing was written but {wrote}" if wrote else "plan only: nothing was written")
    return "\n".join(out)


def plan_json(plan: Plan, extra_lines: list[str] | None = None) -> dict[str, Any]:
    """The plan for scripts (``plan --json``): the same facts as ``render_plan``, as data."""
    cfg = plan.cfg
    counts = [trial_counts(plan, trial) for trial in plan.trials]
    per_item = requests_per_item(cfg, plan.trials)
    batch = is_batch(cfg.backend)
    engine = cfg.model_id if batch else cfg.local_engine
    return {
        "schema_version": 1,
        "config": str(plan.config_path),
        "backend": cfg.backend,
        "engine": engine,
        "model": cfg.model_id if batch else cfg.local_model,
        "temps": [temp_label(t) for t in cfg.temps],
        "samples_per_item": dict(cfg.samples_per_item),
        "datasets": [{"name": d.name, "type": cfg.dataset_type(d.name), "selected": d.selected,
                      "available": d.available, "cap": d.cap, "source": d.source} for d in plan.datasets],
        "trials": [{"slug": t.slug, "model": t.model, "prompt_set": t.prompt_set,
                    "temps": [temp_label(x) for x in t.temps], "counts": c}
                   for t, c in zip(plan.trials, counts, strict=True)],
        "total_requests": len(plan.items) * per_item,
        "generated_requests": generated_count(cfg, plan.trials, plan.items),
        "aa_requests": aa_requests(cfg, plan.trials, len(plan.items)),
        "complete": plan.complete,
        "estimated_cost": usd_estimate(plan, counts),
        "notes": list(extra_lines or []),
        "written": False,
    }


def requests_per_item(cfg: EvalConfig, trials: list[Trial]) -> int:
    """Requests one item adds over every trial, temperature, condition and sample."""
    return sum(cfg.samples_for(t) * len(CONDITIONS) for trial in trials for t in trial.temps)


def aa_requests(cfg: EvalConfig, trials: list[Trial], n_items: int) -> int:
    """Requests generated again for the A/A trials (their "treatment" arm, the control prompt): the extra
    work ``aa: true`` costs; their control arm is shared with the trial they measure (sweep_share)."""
    return sum(n_items * cfg.samples_for(t) for trial in trials if trial.aa_of for t in trial.temps)


def run_size(plan: Plan) -> tuple[int, float]:
    """(requests, upper bound of generated tokens) of the run; datasets not yet downloaded count at
    their configured size, or as nothing when they have none."""
    cfg = plan.cfg
    by_type = {"open": 0, "closed": 0}
    for d in plan.datasets:
        if d.items:  # each item its own type (a mixed dataset holds both)
            for item in d.items:
                by_type[cfg.item_type(item)] += 1
            continue
        n = d.selected if d.selected is not None else (d.cap or 0)
        by_type[cfg.dataset_types(d.name)[0]] += n
    requests, tokens = 0, 0.0
    for trial in plan.trials:
        for temp in trial.temps:
            k = cfg.samples_for(temp) * len(CONDITIONS)
            for type_, n in by_type.items():
                requests += n * k
                tokens += n * k * trial.max_tokens_for(type_)
    return requests, tokens


def size_refusal(cfg: EvalConfig, requests: int, tokens: float, engine: str | None = None) -> str | None:
    """Why a run of this size needs ``--yes`` (one line), or None when it is a plausible size."""
    engine = engine or run_engine(cfg)
    days = 0.0
    if not is_batch(cfg.backend) and not is_dry_run_engine(engine):  # a batch service or a dry run: no local generation
        days = tokens / (ASSUMED_TOKENS_PER_S * cfg.static_in_flight()) / 86_400
    if requests <= MAX_REQUESTS and days <= MAX_GENERATION_DAYS:
        return None
    when = f", up to ~{days:,.0f} days of generation at {ASSUMED_TOKENS_PER_S:.0f} tokens/s" if days >= 1 else ""
    return (f"refusing a run of {requests:,} requests{when} (more than {MAX_REQUESTS:,} requests or "
            f"{MAX_GENERATION_DAYS:.0f} days): check sizes, samples_per_item, temps and the sweep, "
            "or pass --yes to run it anyway")


def check_run_size(cfg: EvalConfig, data_overrides: dict[str, str] | None, limit_items: int | None,
                   yes: bool, engine: str | None = None) -> None:
    """Refuse an absurd run before anything is written (``--yes`` overrides); reads, never downloads."""
    if yes:
        return
    plan = make_plan(cfg, Path("."), data_overrides, limit_items)
    why = size_refusal(cfg, *run_size(plan), engine=engine)
    if why:
        raise UserError(why)
