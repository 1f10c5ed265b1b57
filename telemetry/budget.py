"""The VRAM budget for a config: what ``producer plan`` and ``producer doctor`` print.

Why: one function turns an ``EvalConfig`` (engine, model, n_ctx, kv_cache_type, parallelism) into the
budget lines and, when it does not fit, a warning with a fix. The model facts come from the GGUF file
(llama_cpp engine, or a local_model that is a .gguf path) or from Ollama's ``/api/show``; free VRAM
from NVML. Every failure is a line of text, never an exception: a budget is advice, not a gate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from config.engines import in_process, local_spec, uses_model
from config.model_files import resolve_model_path
from config.schema import EvalConfig
from producer.runs.trials import expand_trials
from telemetry.gguf import GGUFError
from telemetry.nvml import free_vram_mib
from telemetry.vram import Settings, VramBudget, VramError, estimate, shape_from_gguf, shape_from_ollama_show


@dataclass
class BudgetReport:
    """``budget`` is None when it could not be computed (``lines`` says why)."""

    budget: VramBudget | None
    lines: list[str] = field(default_factory=list)
    status: str = "skip"  # ok | warn | skip

    @property
    def warning(self) -> str | None:
        return self.budget.warning() if self.budget is not None else None


def resolve_gguf(model: str) -> Path | None:
    """A GGUF path for a local model name or path (the project's locator first, then the path itself)."""
    try:
        p = Path(resolve_model_path(model))
        if p.is_file():
            return p
    except Exception:
        pass
    p = Path(model).expanduser()
    return p if p.is_file() and p.suffix.lower() == ".gguf" else None


def ollama_shape(endpoint: str, model: str, timeout_s: float = 10.0):
    """Model facts from a running Ollama: ``POST /api/show`` (model_info) + ``GET /api/tags`` (size)."""
    import requests

    base = endpoint.rstrip("/")
    if base.endswith("/v1"):
        base = base[:-3]
    try:
        resp = requests.post(f"{base}/api/show", json={"model": model}, timeout=timeout_s)
    except requests.RequestException as exc:
        raise VramError(f"Ollama not reachable at {base}: {exc.__class__.__name__}") from None
    if resp.status_code != 200:
        raise VramError(f"Ollama /api/show {model!r}: HTTP {resp.status_code}")
    size = None
    try:
        tags = requests.get(f"{base}/api/tags", timeout=timeout_s).json()
        for m in tags.get("models", []):
            if model in (m.get("name"), m.get("model")):
                size = int(m["size"]) if m.get("size") is not None else None
    except Exception:
        pass
    return shape_from_ollama_show(resp.json(), size_bytes=size, name=model)


def parallel_slots(cfg: EvalConfig) -> int:
    """In-process llama.cpp decodes ``n_parallel`` sequences in one context (1: the sequential engine);
    HTTP servers hold max_concurrent_requests slots."""
    return cfg.n_parallel if in_process(cfg) else cfg.static_in_flight()


def budget_settings(cfg: EvalConfig, n_gpu_layers: int | None = None) -> Settings:
    """The budget's view of the config. In process, the P sequences share one context of n_ctx cells
    (llama.cpp ``n_seq_max`` = P, unified KV cache): n_ctx is the total, not per sequence."""
    return Settings(n_ctx=cfg.n_ctx, slots=parallel_slots(cfg), cache_type=cfg.kv_cache_type,
                    n_gpu_layers=cfg.n_gpu_layers if n_gpu_layers is None else n_gpu_layers,
                    shared_cache=in_process(cfg))


def config_budget(cfg: EvalConfig, model: str | None = None, free_mib: float | None = None,
                  nvml_library: Any = None, query_nvml: bool = True, free_reason: str | None = None) -> BudgetReport:
    """The budget for the config's (or ``model``'s) local run; never raises."""
    spec = local_spec(cfg)
    if spec is None or spec.vram_shape is None:
        return BudgetReport(None, ["VRAM budget: not applicable (no local GPU model)"])
    model = model or cfg.local_model or ""
    try:
        if spec.vram_shape == "ollama_api":
            shape = ollama_shape(cfg.local_endpoint or spec.default_endpoint or "", model)
        else:
            path = resolve_gguf(model)
            if path is None:
                return BudgetReport(None, [f"VRAM budget: skipped for {model!r} ({spec.no_gguf_hint})"])
            shape = shape_from_gguf(path)
    except (GGUFError, VramError) as exc:
        return BudgetReport(None, [f"VRAM budget: skipped ({exc})"])
    except Exception as exc:  # connection refused, bad JSON...
        return BudgetReport(None, [f"VRAM budget: skipped ({exc.__class__.__name__}: {str(exc)[:120]})"])
    if cfg.n_gpu_layers == 0:
        ram = estimate(shape, budget_settings(cfg, n_gpu_layers=-1))  # every layer, in RAM
        return BudgetReport(None, [
            f"VRAM budget: n_gpu_layers 0, {shape.name or model} runs on the CPU (RAM: weights "
            f"{ram.weights_mib:.0f} MiB + KV cache {ram.kv_mib:.0f} MiB + compute "
            f"{ram.compute_mib + ram.output_mib:.0f} MiB; {ram.settings.label()})"
        ])
    reason = free_reason
    if free_mib is None and query_nvml:
        free_mib, reason = free_vram_mib(nvml_library)
    settings = budget_settings(cfg)
    budget = estimate(shape, settings, free_mib=free_mib, free_reason=reason)
    lines = budget.lines()
    if shape.n_ctx_train and cfg.n_ctx > shape.n_ctx_train:
        lines.append(f"  note: n_ctx {cfg.n_ctx} exceeds the model's trained context {shape.n_ctx_train}")
    if spec.parallel_note and parallel_slots(cfg) > 1:
        lines.append(spec.parallel_note.format(p=parallel_slots(cfg), total_ctx=cfg.n_ctx * parallel_slots(cfg)))
    status = "warn" if budget.fits is False else ("ok" if budget.fits else "skip")
    return BudgetReport(budget, lines, status)


def vram_lines(cfg: EvalConfig, nvml_library: Any = None) -> list[str]:
    """Budget lines for every distinct local model of the config's trials (``plan`` and ``doctor``)."""
    if not uses_model(cfg):
        return []
    free_mib, reason = free_vram_mib(nvml_library)
    models = list(dict.fromkeys(t.model for t in expand_trials(cfg)))
    lines: list[str] = []
    for model in models:
        lines += config_budget(cfg, model, free_mib=free_mib, query_nvml=False, free_reason=reason).lines
    return lines


def vram_check(cfg: EvalConfig, nvml_library: Any = None) -> tuple[str, str]:
    """One ``doctor`` line: (status, message), status ok | warn | skip. Warns with the fix."""
    if not uses_model(cfg):
        return "skip", "VRAM budget: not applicable (no local GPU model)"

    free_mib, reason = free_vram_mib(nvml_library)
    worst: tuple[str, str] | None = None
    for model in dict.fromkeys(t.model for t in expand_trials(cfg)):
        report = config_budget(cfg, model, free_mib=free_mib, query_nvml=False, free_reason=reason)
        b = report.budget
        if b is None:
            line = (report.status, report.lines[0])
        elif report.status == "warn":
            line = ("warn", f"VRAM budget: {b.model}: {b.warning()}")
        elif report.status == "ok":
            line = ("ok", f"VRAM budget: {b.model} needs {b.total_mib / 1024:.1f} GiB of "
                          f"{(b.free_mib or 0) / 1024:.1f} GiB free ({b.settings.label()})")
        else:
            line = ("skip", f"VRAM budget: {b.model} needs {b.total_mib / 1024:.1f} GiB; free VRAM unknown ({reason})")
        if worst is None or (line[0] == "warn" and worst[0] != "warn"):
            worst = line
    return worst or ("skip", "VRAM budget: no local model")
