"""What the in-process llama.cpp engine knows about itself outside generation: its preflight probe,
its model identity for the response cache and its section of the doctor report.

Why a module beside ``llama_cpp_engine``: the registry row (``config/engines.py``, ``hooks``) points
here, so preflight, doctor and the cache ask the engine instead of branching on its name, and
loading these never loads the model. Every import of the native library is lazy.
"""

from __future__ import annotations

from typing import Any

from config.checks import FAIL, OK, WARN, Check, EngineFacts
from config.llama_cpp_import import import_llama_cpp
from config.model_files import ModelFileError, resolve_model_path
from config.schema import EvalConfig
from config.token_count import gguf_counter, gguf_vocab
from telemetry.gguf import MAGIC, read_gguf_metadata
from workers.engines.base import PermanentEngineError
from workers.engines.llama_cpp_engine import PROMPT_READING
from workers.engines.llama_cpp_probe import probe_check


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def engine_check() -> tuple[Check, Any]:
    """(check, the llama_cpp module or None). Any failure to import or load the library is FAIL: the
    worker would stop the run with the same reason (``import_llama_cpp`` is the one place that says it)."""
    from workers.engines.llama_cpp_engine import gpu_offload_supported  # lazy: the native library

    try:
        llama_cpp = import_llama_cpp()
    except PermanentEngineError as exc:
        return Check("engine", FAIL, str(exc)), None
    build = "GPU offload" if gpu_offload_supported(llama_cpp) else "CPU-only build"
    return Check("engine", OK, f"llama-cpp-python {getattr(llama_cpp, '__version__', '?')} ({build})"), llama_cpp


class LlamaCppHooks:
    """The llama_cpp engine's preflight, cache identity and doctor section (see the module docstring)."""

    @staticmethod
    def preflight(cfg: EvalConfig, model: str) -> tuple[list[Check], EngineFacts]:
        """The library loads, the model is a readable GGUF, n_ctx fits its trained context; the GGUF's
        tokenizer counts the prompts for the context check."""
        from workers.engines.llama_cpp_engine import gpu_offload_supported  # lazy: the native library

        facts = EngineFacts(context_limit=cfg.n_ctx, context_source=f"n_ctx {cfg.n_ctx}")
        engine, llama_cpp = engine_check()
        checks = [engine]
        try:
            path = resolve_model_path(model)
        except ModelFileError as exc:
            return checks + [Check("model", FAIL, str(exc))], facts
        try:
            with open(path, "rb") as fh:
                magic = fh.read(4)
        except OSError as exc:
            return checks + [Check("model", FAIL, f"{path} is not readable: {exc.strerror or exc}")], facts
        if magic != MAGIC:
            return checks + [Check("model", FAIL, f"{path} is not a GGUF file")], facts
        checks.append(Check("model", OK, f"{path} ({path.stat().st_size / 1024 / 1024:.0f} MiB)"))
        if llama_cpp is None:
            return checks, facts
        gpu_build = gpu_offload_supported(llama_cpp)
        if cfg.n_gpu_layers != 0 and not gpu_build:
            return checks + [Check("offload", FAIL, "this llama-cpp-python build is CPU-only but n_gpu_layers is "
                                                    f"{cfg.n_gpu_layers}: set n_gpu_layers: 0, or install a CUDA build "
                                                    "(docs/windows.md)")], facts
        checks.append(probe_check(cfg, path, gpu_build))  # a real token, in a child: an abort is a FAIL here
        if checks[-1].failed:
            return checks, facts
        try:
            meta = read_gguf_metadata(path)
            arch = meta.get("general.architecture")
            trained = int(meta[f"{arch}.context_length"]) if arch and meta.get(f"{arch}.context_length") else None
            if trained and cfg.n_ctx > trained:
                checks.append(Check("n_ctx", WARN, f"n_ctx {cfg.n_ctx} exceeds the model's trained context {trained}"))
                facts.context_limit = trained
                facts.context_source += f", model trained for {trained}"
            gguf_vocab(path)  # load the tokenizer now: one that cannot load is a warning here, not an estimate later
            facts.counter = gguf_counter(path)
            facts.counter_name = "the GGUF's tokenizer and chat template"
        except Exception as exc:  # noqa: BLE001 - metadata is advisory
            checks.append(Check("context", WARN, f"cannot read GGUF metadata: {' '.join(str(exc).split())}"))
        return checks, facts

    @staticmethod
    def cache_identity(cfg: EvalConfig, model: str) -> tuple[str, dict[str, Any]] | None:
        """(model id, settings) for the response cache: the GGUF file's sha256 and every setting that can
        change an answer. None is repeatable with ``n_parallel`` > 1: there an answer depends on the
        requests decoded beside it (measured: 3 of 16 seeded T = 1 answers and 14 of 16 at T = 0 the same
        when the same requests arrive in another order), so the cache is refused with the reason."""
        from workers.response_cache import file_sha256  # lazy: memoised in the cache's own database

        if getattr(cfg, "n_parallel", 1) > 1:
            raise ValueError("with n_parallel > 1 an answer depends on the requests batched beside it, so no "
                             "answer is repeatable (docs/statistics.md, 'What a seed fixes'): set n_parallel: 1 "
                             "to use the cache")

        path = resolve_model_path(model)
        settings = {"n_ctx": cfg.n_ctx, "n_gpu_layers": cfg.n_gpu_layers, "kv_cache_type": cfg.kv_cache_type,
                    "n_parallel": getattr(cfg, "n_parallel", 1), "prompt_reading": PROMPT_READING,
                    "llama_cpp_python": str(getattr(import_llama_cpp(), "__version__", "?"))}
        return f"sha256:{file_sha256(path)}", settings

    @staticmethod
    def measure_step_costs(cfg: EvalConfig, model: str | None, say: Any = None) -> Any:
        """``plan --measure``: this machine's step costs for the batched engine (telemetry.step_costs.StepCosts)."""
        from workers.engines.llama_cpp_step_costs import measure_step_costs  # lazy: loads the model

        return measure_step_costs(cfg, model, say or (lambda _: None))

    @staticmethod
    def doctor_section(cfg: EvalConfig, redact: Any = None) -> dict[str, Any]:
        """The doctor report's ``llama_cpp`` object (docs/doctor-report.schema.json)."""
        from workers.engines.llama_cpp_engine import gpu_offload_supported  # lazy: the native library

        out: dict[str, Any] = {"importable": False, "version": None, "gpu_offload": None, "system_info": None,
                               "error": None}
        try:
            llama_cpp = import_llama_cpp()
        except PermanentEngineError as exc:
            out["error"] = str(exc)
            return out
        out.update(importable=True, version=getattr(llama_cpp, "__version__", None),
                   gpu_offload=gpu_offload_supported(llama_cpp))
        try:  # the build flags: "CPU : SSE3 = 1 | AVX2 = 1 | ... | CUDA : ARCHS = 890 | ..."
            info = llama_cpp.llama_print_system_info()
            out["system_info"] = " ".join((info.decode("utf-8", "replace") if isinstance(info, bytes) else str(info)).split())
        except Exception as exc:  # noqa: BLE001
            out["error"] = f"system info unavailable: {_one_line(exc)}"
        return out
