"""Expand ``sweep`` / ``trials`` into concrete trials, each with its own model and parameters.

Why: the reference project used the base model for every trial of a sweep. Here a trial carries
every setting that reaches its requests, and its slug (CONTRACT section 9) is unique and safe on Windows.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass, field
from pathlib import Path

from config.schema import EvalConfig, MaxNewTokens
from producer.runs.layout import safe_slug


@dataclass(frozen=True)
class Trial:
    slug: str
    model: str
    prompt_set: str
    temps: tuple[float, ...]
    top_p: float | None
    top_k: int | None
    max_new_tokens: MaxNewTokens
    overrides: dict = field(default_factory=dict, compare=False, hash=False)
    # A/A (config ``aa``): the trial whose control this one asks again; its "treatment" arm sends the
    # control prompt (docs/statistics.md, "Noise floor (A/A)")
    aa_of: str | None = None

    def max_tokens_for(self, type_: str) -> int:
        return self.max_new_tokens.open_book if type_ == "open" else self.max_new_tokens.closed_book

    def prompt_file(self, cfg: EvalConfig, condition: str) -> Path:
        """The system prompt file this trial sends under ``condition``: an A/A trial's two arms both send
        the control's."""
        pset = cfg.prompt_sets[self.prompt_set]
        return pset.control if condition == "control" or self.aa_of else pset.treatment


def model_short(model: str) -> str:
    """Short, filesystem-safe model name: last path component, no .gguf, no unsafe characters."""
    name = model.replace("\\", "/").rstrip("/").split("/")[-1]
    if name.lower().endswith(".gguf"):
        name = name[: -len(".gguf")]
    return safe_slug(safe_slug(name, "model")[:60], "model")


def trial_slug(model: str, prompt_set: str, top_p=None, top_k=None, mx: MaxNewTokens | None = None) -> str:
    """``<model-short>-<prompt_set>[-tp<p>][-tk<k>][-mx<closed>-<open>]``, Windows-safe."""
    slug = f"{model_short(model)}-{safe_slug(prompt_set)}"
    if top_p is not None:
        slug += f"-tp{top_p:g}"
    if top_k is not None:
        slug += f"-tk{top_k}"
    if mx is not None:
        slug += f"-mx{mx.closed_book}-{mx.open_book}"
    return slug


def expand_trials(cfg: EvalConfig) -> list[Trial]:
    """Trials from ``trials`` or ``sweep``; one default trial when neither is given."""
    base_model = cfg.model_name()
    specs: list[dict] = []
    if cfg.trials:
        for t in cfg.trials:
            specs.append(
                {
                    "id": t.id,
                    "model": t.model,
                    "prompt_set": t.prompt_set,
                    "temps": t.temps,
                    "top_p": t.top_p,
                    "top_k": t.top_k,
                    "max_new_tokens": t.max_new_tokens,
                }
            )
    elif cfg.sweep:
        sw = cfg.sweep
        for model, pset, tp, tk, mx in itertools.product(
            sw.models or [None],
            sw.prompt_sets or [None],
            sw.top_p or [None],
            sw.top_k or [None],
            sw.max_new_tokens or [None],
        ):
            specs.append(
                {"model": model, "prompt_set": pset, "top_p": tp, "top_k": tk, "max_new_tokens": mx}
            )
    else:
        specs.append({})

    trials: list[Trial] = []
    seen: set[str] = set()
    for spec in specs:
        model = spec.get("model") or base_model
        pset = spec.get("prompt_set") or cfg.default_prompt_set
        top_p = spec.get("top_p")
        top_k = spec.get("top_k")
        mx = spec.get("max_new_tokens")
        slug = spec.get("id") or trial_slug(model, pset, top_p, top_k, mx)
        slug = safe_slug(slug, "trial")  # one slug rule for every name in a path (no "..")
        base, n = slug, 2
        while slug.lower() in seen:  # case-insensitive: Windows folders
            slug = f"{base}-{n}"
            n += 1
        seen.add(slug.lower())
        trials.append(
            Trial(
                slug=slug,
                model=model,
                prompt_set=pset,
                temps=tuple(spec.get("temps") or cfg.temps),
                top_p=top_p if top_p is not None else cfg.top_p,
                top_k=top_k if top_k is not None else cfg.top_k,
                max_new_tokens=mx or cfg.max_new_tokens,
                overrides={k: v for k, v in spec.items() if v is not None},
            )
        )
    if cfg.aa:
        trials += [aa_trial(t, seen) for t in list(trials)]
    return trials


AA_SUFFIX = "-aa"


def aa_trial(trial: Trial, taken: set[str]) -> Trial:
    """The A/A twin of ``trial``: same model and settings, control against itself, its own slug (so its
    custom_ids live in their own trial and its answers are generated, not shared or read from a cache)."""
    slug = base = safe_slug(f"{trial.slug}{AA_SUFFIX}", "trial")
    n = 2
    while slug.lower() in taken:
        slug = f"{base}-{n}"
        n += 1
    taken.add(slug.lower())
    return dataclasses.replace(trial, slug=slug, aa_of=trial.slug)


def aa_pairs(cfg: EvalConfig) -> dict[str, str]:
    """{A/A trial slug: the trial it measures} of this config (empty unless ``aa: true``)."""
    return {t.slug: t.aa_of for t in expand_trials(cfg) if t.aa_of}
