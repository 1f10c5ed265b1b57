"""Local engines by name: the one list that the config schema, the engine registry, ``plan`` and
``doctor`` read.

Why here and not in ``workers/``: the schema (bottom layer) must know the valid names, and the
workers' registry must know where each class lives; a table of plain strings serves both without
the config importing any engine code. ``workers.engines.registry`` imports the class lazily.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

OLLAMA_DEFAULT_ENDPOINT = "http://127.0.0.1:11434"


@dataclass(frozen=True)
class EngineSpec:
    """What the layers below ``workers`` (config, telemetry, the planner, the manifests) need to know
    about an engine, as data: they read these facts instead of branching on the engine's name.
    Behaviour that needs engine code (preflight probes, the response cache's model identity, the
    doctor report's section) is a classmethod of the engine class (``workers.engines.registry``)."""

    target: str  # "module:Class", imported only when the engine is created
    http: bool  # talks to a server at ``local_endpoint`` (which holds the model)
    # "module:obj" with the engine's optional hooks (``preflight``, ``cache_identity``, ``doctor_section``;
    # workers.engines.registry); None: the engine class itself holds them
    hooks: str | None = None
    has_model: bool = True  # False: no model at all (dry run): no model file, VRAM, preflight or cost
    in_process: bool = False  # holds the model in this process: n_parallel batching, n_gpu_layers, GGUF tokenizer
    honours_seed: bool = False  # a fixed per-request seed makes temperature > 0 repeatable (response cache)
    vram_shape: str | None = None  # where the VRAM budget reads the model's shape: "gguf_file" | "ollama_api" | None
    default_endpoint: str | None = None  # where the engine's server listens unless local_endpoint says otherwise
    server_slots_env: str | None = None  # the server's parallel slots as an environment variable (Ollama)
    server_slots_unset: str = "not set"  # the manifest's words when that variable is not set
    uncached_reason: str | None = None  # why ``cache: true`` has no effect on this engine (None: it caches)
    parallel_note: str | None = None  # budget note when P > 1 slots; {p} and {total_ctx} are filled in
    no_gguf_hint: str = "set local_model to the server's .gguf path to get one"  # VRAM budget without a file
    key_env: str | None = None  # the server's optional API key variable (never logged: config/secrets.py)


# Order is the order error messages list the names in.
ENGINES: dict[str, EngineSpec] = {
    "llama_cpp": EngineSpec(
        "workers.engines.llama_cpp_engine:LlamaCppEngine", http=False,
        hooks="workers.engines.llama_cpp_hooks:LlamaCppHooks", in_process=True, honours_seed=True,
        vram_shape="gguf_file", no_gguf_hint="the model file was not found"),
    "ollama": EngineSpec(
        "workers.engines.ollama:OllamaEngine", http=True, honours_seed=True, vram_shape="ollama_api",
        default_endpoint=OLLAMA_DEFAULT_ENDPOINT, server_slots_env="OLLAMA_NUM_PARALLEL",
        server_slots_unset="not set (Ollama chooses)",
        parallel_note="  note: Ollama needs OLLAMA_NUM_PARALLEL >= max_concurrent_requests (default auto = 1: Ollama's API does not report its slots)"),
    "openai_compat": EngineSpec(
        "workers.engines.openai_compat:OpenAICompatEngine", http=True, vram_shape="gguf_file",
        key_env="OPENAI_COMPAT_API_KEY",
        uncached_reason="an OpenAI-compatible server names its model but offers no digest of the weights",
        parallel_note="  note: start llama-server with -np {p} -c {total_ctx} (its -c is shared by all slots)"),
    "dry_run": EngineSpec(
        "workers.engines.dry_run:DryRunEngine", http=False, has_model=False,
        uncached_reason="dry-run answers cost nothing to make"),
}
ENGINE_NAMES = tuple(ENGINES)
HTTP_ENGINES = tuple(name for name, spec in ENGINES.items() if spec.http)
LOCAL_DRY_RUN_ENGINE = next(name for name, spec in ENGINES.items() if not spec.has_model)  # --dry-run on a local backend
LOCAL_BACKEND = "local"


@dataclass(frozen=True)
class BatchBackendSpec:
    """A batch provider (a backend other than ``local``): the service runs the requests, we upload,
    poll and download. ``target`` is its ``BatchProvider`` class (``workers/batch_provider.py``)."""

    target: str  # "module:Class" with a ``for_run(cfg, engine)`` classmethod, imported only when used
    label: str  # how plan and the manifests name it
    batching: str  # the trial manifest's batching description
    key_env: str = ""  # the API key's variable (environment or .env); never logged
    base_env: str = ""  # the API base's variable: https only, http:// to a loopback host alone
    default_base: str = ""  # the public API base; plan and doctor print any other
    max_part_bytes: int = 100_000_000  # the service's limit on one input file
    max_part_rows: int | None = None  # ... and on its requests (None: no limit)
    output_states: tuple[str, ...] = ()  # job states that leave output (``--retry-failed`` downloads it again)
    temps_range: tuple[float, float] = (0.0, 2.0)  # the temperatures the service accepts
    has_top_k: bool = True  # the service takes ``top_k``
    takes_seed: bool = True  # the service takes a per-request ``seed`` (the trial manifest says when not)
    account_env: str = ""  # an account id the API paths need besides the key (Fireworks)
    sdk: str = ""  # the optional package the provider needs ("" none), checked before a paid run is written
    sdk_hint: str = ""  # the one line that says how to install it
    console: str = "the provider's web console"  # where a user sees (and can cancel) a job by hand


BATCH_BACKENDS: dict[str, BatchBackendSpec] = {
    "fireworks": BatchBackendSpec(
        "workers.fireworks.provider:FireworksProvider", label="fireworks batch API",
        batching="Fireworks batch API: batching is done by the service and not visible to the client",
        key_env="FIREWORKS_API_KEY", base_env="FIREWORKS_API_BASE", default_base="https://api.fireworks.ai",
        account_env="FIREWORKS_ACCOUNT_ID", console="the Fireworks console (app.fireworks.ai, Batch Inference)",
        max_part_bytes=150_000_000,  # :upload accepts files up to 150 MB (docs: upload-dataset-files)
        output_states=("JOB_STATE_COMPLETED", "JOB_STATE_EXPIRED", "JOB_STATE_EARLY_STOPPED")),
    "openai": BatchBackendSpec(
        "workers.openai_batch.provider:OpenAIProvider", label="OpenAI batch API",
        batching="OpenAI Batch API: batching is done by the service and not visible to the client",
        key_env="OPENAI_API_KEY", base_env="OPENAI_BASE_URL", default_base="https://api.openai.com/v1",
        max_part_bytes=200_000_000, max_part_rows=50_000,  # per input file (Batch API reference)
        output_states=("completed", "expired"), has_top_k=False, sdk="openai",
        console="the OpenAI dashboard (platform.openai.com/batches)",
        sdk_hint="the openai backend needs the official SDK: pip install .[openai] (or pip install 'openai>=1.40')"),
    "anthropic": BatchBackendSpec(
        "workers.anthropic_batch.provider:AnthropicProvider", label="Anthropic batch API",
        batching="Anthropic Message Batches API: batching is done by the service and not visible to the client",
        key_env="ANTHROPIC_API_KEY", base_env="ANTHROPIC_BASE_URL", default_base="https://api.anthropic.com",
        max_part_bytes=256_000_000, max_part_rows=100_000,  # per batch (Message Batches API reference)
        # no output_states: a part fails with its batch ended only when the results are gone (archived), so
        # --retry-failed sends its failed rows again instead of downloading nothing
        temps_range=(0.0, 1.0), takes_seed=False, sdk="anthropic",
        console="the Claude Console (console.anthropic.com, Batches)",
        sdk_hint="the anthropic backend needs the official SDK: pip install .[anthropic] (or pip install 'anthropic>=0.40')"),
}
BACKEND_NAMES = (LOCAL_BACKEND, *BATCH_BACKENDS)


def secret_env_names() -> tuple[str, ...]:
    """Every variable that holds a key: each engine's and each batch provider's (config/secrets.py)."""
    names = [spec.key_env for spec in ENGINES.values() if spec.key_env]
    return tuple(dict.fromkeys([*names, *(spec.key_env for spec in BATCH_BACKENDS.values() if spec.key_env)]))


def engine_spec(name: str) -> EngineSpec:
    """The spec of a local engine (KeyError for an unknown name: the schema has already refused it)."""
    return ENGINES[name]


def is_batch(backend: str) -> bool:
    """True for a batch provider's backend (Fireworks, OpenAI, Anthropic), False for ``local``."""
    return backend in BATCH_BACKENDS


def batch_dry_run_engine(backend: str) -> str:
    """The engine name recorded for a batch backend's ``--dry-run`` (the flow, offline)."""
    return f"{backend}_dry_run"


def batch_backend_of(engine: str) -> str | None:
    """The batch backend a run's recorded engine belongs to (``fireworks``, ``fireworks_dry_run``), or None."""
    return next((b for b in BATCH_BACKENDS if engine in (b, batch_dry_run_engine(b))), None)


def is_dry_run_engine(engine: object) -> bool:
    """A recorded engine name that made its answers without any model (local or batch dry run)."""
    if not isinstance(engine, str):
        return False
    spec = ENGINES.get(engine)
    return (spec is not None and not spec.has_model) or any(engine == batch_dry_run_engine(b) for b in BATCH_BACKENDS)


def run_engine(cfg: Any, dry_run: bool = False) -> str:
    """The engine a run of ``cfg`` uses: the batch backend's name (or its dry run), else the local
    engine (or the dry-run engine). ``cfg`` is an ``EvalConfig`` (not imported: the schema imports this)."""
    if is_batch(cfg.backend):
        return batch_dry_run_engine(cfg.backend) if dry_run else cfg.backend
    return LOCAL_DRY_RUN_ENGINE if dry_run else cfg.local_engine


def local_spec(cfg: Any) -> EngineSpec | None:
    """The configured local engine's spec, or None for a batch backend."""
    return None if is_batch(cfg.backend) else ENGINES[cfg.local_engine]


def uses_model(cfg: Any) -> bool:
    """A local run with a real model (not a batch backend, not the dry-run engine)."""
    spec = local_spec(cfg)
    return spec is not None and spec.has_model


def in_process(cfg: Any) -> bool:
    """A local run whose engine holds the model in this process (llama.cpp)."""
    spec = local_spec(cfg)
    return spec is not None and spec.in_process


class EngineError(Exception):
    """Base class; the message must be one line, safe to show (no secrets: a server's own words enter it
    through ``workers.engines.http_common.server_message``, which redacts every known key).

    Why here: ``config.llama_cpp_import`` (below workers, used by the trial manifest's token counts)
    raises ``PermanentEngineError``; ``workers.engines.base`` re-exports these classes."""


class TransientEngineError(EngineError):
    """Retry with backoff (connection refused/reset, timeout, HTTP 408/429/5xx); ``retry_after``: the
    server's own Retry-After in seconds, the least the queue waits before the next attempt."""

    retry_after: float | None = None


class PermanentEngineError(EngineError):
    """Do not retry (HTTP 4xx other than 408/429, model missing, prompt too long)."""
