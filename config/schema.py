"""The evaluation configuration: one typed model, validated once, used everywhere.

Why: a control-vs-treatment comparison is only honest when every stage reads the same settings.
Invalid configs fail fast with one line (``ConfigError``), never a traceback.

Path rule (documented in docs/configuration.md): every relative path in a config resolves against
the *working directory* the command runs in (the project root in all documented commands).
Absolute paths, POSIX or Windows drive-letter style, are kept as written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from config.contract import CONDITIONS, DATASET_TYPE, temp_label
from config.engines import (
    BATCH_BACKENDS,
    ENGINES,
    HTTP_ENGINES,
    LOCAL_BACKEND,
    is_batch,
)
from config.errors import ConfigError, format_validation_error
from config.schema_sections import (  # noqa: F401 - re-exported: ``from config.schema import Pricing`` etc.
    CUSTOM_NAME,
    DATASETS,
    DAY_S,
    MAX_ITEMS_PER_DATASET,
    MAX_SAMPLES_PER_ITEM,
    MAX_TOP_K,
    AnthropicSettings,
    Backend,
    CustomDataset,
    DataSources,
    FireworksSettings,
    LocalEngine,
    MaxNewTokens,
    ModelPrice,
    OpenAISettings,
    Paths,
    Pricing,
    PromptSet,
    Sizes,
    StatsConfig,
    Sweep,
    TaskInstructions,
    TrialSpec,
    Unsupported,
    _check_temps,
    _Strict,
)
from config.textfile import TextFileError, read_user_text

MAX_IN_FLIGHT = 64  # max_concurrent_requests' ceiling (and auto's cap)



class EvalConfig(_Strict):
    backend: Backend = "local"
    local_engine: LocalEngine = "llama_cpp"
    local_endpoint: str | None = None
    local_model: str | None = None
    model_id: str = "accounts/fireworks/models/gpt-oss-120b"
    n_ctx: int = Field(4096, ge=256, le=1_048_576)
    n_gpu_layers: int = Field(-1, ge=-1, le=100_000)
    n_threads: int | None = Field(None, ge=1, le=4096)
    kv_cache_type: Literal["f16", "q8_0", "q4_0"] = "f16"
    # HTTP engines' requests in flight; None = auto: llama-server's /props total_slots, else 1
    max_concurrent_requests: int | None = Field(None, ge=1, le=MAX_IN_FLIGHT)
    n_parallel: int = Field(1, ge=1, le=64)  # in-process llama.cpp: sequences decoded together (batched)
    keep_alive: str = "30m"
    request_timeout_s: float = Field(600.0, gt=0, le=DAY_S)
    max_retries: int = Field(3, ge=0, le=20)
    # nothing listens at the engine's endpoint: wait this long for it to come back (no attempt spent),
    # then stop the run (engine down) so that `run --resume` continues it
    outage_wait_s: float = Field(120.0, ge=0, le=DAY_S)
    retry_backoff_s: float = Field(2.0, ge=0, le=3600)
    temps: list[float] = Field(default_factory=lambda: [0.0], min_length=1)
    samples_per_item: dict[str, int] = Field(default_factory=lambda: {"0.0": 1})
    max_new_tokens: MaxNewTokens = Field(default_factory=MaxNewTokens)
    top_p: float | None = Field(None, gt=0, le=1)
    top_k: int | None = Field(None, ge=0, le=MAX_TOP_K)
    stop: list[str] = Field(default_factory=list)
    seed: int | None = 42
    data_seed: int = 42
    sizes: Sizes = Field(default_factory=Sizes)
    data: DataSources = Field(default_factory=DataSources)
    custom_datasets: dict[str, CustomDataset] = Field(default_factory=dict)
    paths: Paths = Field(default_factory=Paths)
    pricing: Pricing = Field(default_factory=Pricing)
    unsupported: Unsupported = Field(default_factory=Unsupported)
    task_instructions: TaskInstructions = Field(default_factory=TaskInstructions)
    prompt_sets: dict[str, PromptSet] = Field(
        default_factory=lambda: {
            "default": PromptSet(
                control=Path("config/prompts/control_system.txt"),
                treatment=Path("config/prompts/treatment_system.txt"),
            )
        },
        min_length=1,
    )
    default_prompt_set: str = "default"
    stats: StatsConfig = Field(default_factory=StatsConfig)
    sweep: Sweep | None = None
    trials: list[TrialSpec] = Field(default_factory=list)
    cache: bool = False  # answer repeated deterministic requests from the local response cache
    aa: bool = False  # also run control against itself: the noise floor (docs/statistics.md, "Noise floor (A/A)")
    enable_local_telemetry: bool = True
    prevent_sleep: bool = True
    tokenizer: str | None = None
    fireworks: FireworksSettings = Field(default_factory=FireworksSettings)
    openai: OpenAISettings = Field(default_factory=OpenAISettings)
    anthropic: AnthropicSettings = Field(default_factory=AnthropicSettings)

    @field_validator("temps")
    @classmethod
    def _temps_valid(cls, temps: list[float]) -> list[float]:
        return _check_temps(temps)

    @field_validator("samples_per_item", mode="before")
    @classmethod
    def _samples_keys(cls, value: Any) -> Any:
        if isinstance(value, dict):
            out = {}
            for key, n in value.items():
                try:
                    label = temp_label(key)
                except (TypeError, ValueError):
                    raise ValueError(f"key {key!r} is not a temperature") from None
                out[label] = n
            return out
        return value

    @field_validator("custom_datasets")
    @classmethod
    def _custom_names(cls, value: dict[str, CustomDataset]) -> dict[str, CustomDataset]:
        taken = {ds.lower(): ds for ds in DATASETS}
        for name in value:
            if not CUSTOM_NAME.fullmatch(name):
                raise ValueError(f"name {name!r} must start with a letter and hold only letters, digits, _ "
                                 "and - (at most 48): it becomes part of every custom_id")
            other = taken.get(name.lower())  # case-blind: Windows file names, and readers, would confuse them
            taken[name.lower()] = name
            if other is not None:
                kind = "the built-in dataset" if other in DATASETS else "the custom dataset"
                raise ValueError(f"name {name!r} collides with {kind} {other!r}: choose another name")
        return value

    @model_validator(mode="after")
    def _cross_checks(self) -> EvalConfig:
        if all(self.dataset_size(ds) == 0 for ds in self.dataset_names()):
            where = " (and every custom_datasets size)" if self.custom_datasets else ""
            raise ValueError(f"sizes: every dataset has size 0{where}, so there is nothing to evaluate "
                             "(give one a size above 0, or null for all its items)")
        for label, n in self.samples_per_item.items():
            if n < 1:
                raise ValueError(f"samples_per_item.{label}: must be >= 1")
            if n > MAX_SAMPLES_PER_ITEM:
                raise ValueError(f"samples_per_item.{label}: {n:,} samples per item is more than one machine "
                                 f"can hold (at most {MAX_SAMPLES_PER_ITEM:,})")
        temps_everywhere = set(self.temps)
        for trial in self.trials:
            temps_everywhere.update(trial.temps or [])
        for t in sorted(temps_everywhere):
            if temp_label(t) not in self.samples_per_item:
                raise ValueError(f"samples_per_item: temperature {t} has no entry (add \"{t}\": 1)")
        if self.default_prompt_set not in self.prompt_sets:
            raise ValueError(
                f"default_prompt_set: {self.default_prompt_set!r} is not one of {sorted(self.prompt_sets)}"
            )
        named = [t.prompt_set for t in self.trials if t.prompt_set]
        if self.sweep:
            named += self.sweep.prompt_sets
        for name in named:
            if name not in self.prompt_sets:
                raise ValueError(f"prompt_sets: prompt set {name!r} is used but not defined")
        if self.trials and self.sweep:
            raise ValueError("trials: use either 'trials' or 'sweep', not both")
        if self.backend == "local" and self.local_engine in HTTP_ENGINES:
            if not self.local_endpoint:
                raise ValueError(f"local_endpoint: local_engine {self.local_engine} needs local_endpoint")
        if self.backend == LOCAL_BACKEND and ENGINES[self.local_engine].has_model and not self.local_model:
            raise ValueError(f"local_model: local_engine {self.local_engine} needs local_model")
        if is_batch(self.backend):
            self._check_batch_sampling()
        return self

    def _sampling_combinations(self) -> list[tuple[str, list[float], float | None, int | None]]:
        """(model, temps, top_p, top_k) of every trial this config makes, without importing the planner."""
        if self.trials:
            return [(t.model or self.model_id, t.temps or self.temps, t.top_p if t.top_p is not None else self.top_p,
                     t.top_k if t.top_k is not None else self.top_k) for t in self.trials]
        sweep = self.sweep or Sweep()
        return [(m, self.temps, p, k) for m in (sweep.models or [self.model_id])
                for p in (sweep.top_p or [self.top_p]) for k in (sweep.top_k or [self.top_k])]

    def _check_batch_sampling(self) -> None:
        """What the provider cannot take is refused here, in one line, before ``plan`` prints a price."""
        spec = BATCH_BACKENDS[self.backend]
        lo, hi = spec.temps_range
        for model, temps, top_p, top_k in self._sampling_combinations():
            outside = [temp_label(t) for t in temps if not lo <= t <= hi]
            if outside:
                raise ValueError(f"temps: the {self.backend} backend takes temperatures {lo}..{hi} (model {model}), "
                                 f"not {', '.join(outside)}; remove them")
            if top_k is not None and not spec.has_top_k:
                raise ValueError(f"top_k: the {self.backend} backend takes no top_k (model {model}); remove it")
            if model in getattr(self.batch_settings(), "reasoning_models", ()):
                if [float(t) for t in temps] != [1.0]:
                    shown = ", ".join(temp_label(t) for t in temps)
                    raise ValueError(f"temps: {model} is a reasoning model ({self.backend}.reasoning_models): it takes no "
                                     f"temperature and always samples at 1.0, so temps must be [1.0], not [{shown}]")
                if top_p is not None:
                    raise ValueError(f"top_p: {model} is a reasoning model ({self.backend}.reasoning_models): it takes no "
                                     "top_p; remove it")

    def batch_settings(self) -> Any:
        """The batch provider's settings (the config field named like the backend; Fireworks' otherwise)."""
        return getattr(self, self.backend) if is_batch(self.backend) else self.fireworks

    def dataset_names(self) -> tuple[str, ...]:
        """Every dataset this config knows: the built-in ones, then ``custom_datasets`` in config order."""
        return (*DATASETS, *self.custom_datasets)

    def dataset_type(self, name: str) -> str:
        """``open``, ``closed`` or (a custom dataset whose rows say their own) ``mixed`` for a dataset: the
        one lookup (built-in table plus custom_datasets). Per item, ask ``item_type``."""
        custom = self.custom_datasets.get(name)
        if custom is not None:
            return {"open_book": "open", "closed_book": "closed"}.get(custom.type, "mixed")
        if name in DATASET_TYPE:
            return DATASET_TYPE[name]
        raise ConfigError(f"config error: dataset {name!r} is neither built in ({', '.join(DATASETS)}) nor "
                          "declared under custom_datasets: use the config these items were prepared with")

    def dataset_types(self, name: str) -> tuple[str, ...]:
        """The types a dataset's items can have: both for a ``mixed`` one."""
        kind = self.dataset_type(name)
        return ("open", "closed") if kind == "mixed" else (kind,)

    def item_type(self, item: dict[str, Any]) -> str:
        """``open`` or ``closed`` for one prepared item: its own ``type`` (a mixed dataset's rows), else its
        dataset's."""
        return item.get("type") or self.dataset_type(item["dataset"])

    def dataset_size(self, name: str) -> int | None:
        """Items kept after the seeded shuffle (None = all): ``sizes`` or the custom dataset's ``size``."""
        custom = self.custom_datasets.get(name)
        return custom.size if custom is not None else getattr(self.sizes, name)

    def static_in_flight(self) -> int:
        """Requests in flight known without asking the server: the explicit value, else 1 (auto's floor)."""
        return self.max_concurrent_requests or 1

    def in_flight_for(self, server_slots: int | None) -> int:
        """Requests in flight given the server's reported slots (llama-server ``/props`` ``total_slots``):
        an explicit value is always obeyed; auto takes the slots (capped at MAX_IN_FLIGHT), else 1."""
        if self.max_concurrent_requests is not None:
            return self.max_concurrent_requests
        return min(server_slots, MAX_IN_FLIGHT) if server_slots and server_slots > 0 else 1

    def samples_for(self, temp: float) -> int:
        """K samples per item at this temperature (keys are repr(float(T)))."""
        return self.samples_per_item[temp_label(temp)]

    def model_name(self) -> str:
        """The model a trial uses when it does not name one."""
        if is_batch(self.backend):
            return self.model_id
        return self.local_model or "dry-run"


def _check_text_file(field: str, path: Path) -> None:
    """Exists, is a file, reads as UTF-8: checked at load, so no command writes anything first."""
    if not path.is_file():
        raise ConfigError(f"{field}: file not found: {path}")
    try:
        read_user_text(path)
    except TextFileError as exc:
        raise ConfigError(f"{field}: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{field}: cannot read {path}: {exc.strerror or exc}") from None


def _check_files(cfg: EvalConfig) -> None:
    """Prompt and instruction files must exist and be UTF-8 before anything runs (error names the field)."""
    for name, pset in cfg.prompt_sets.items():
        for cond in CONDITIONS:
            _check_text_file(f"prompt_sets.{name}.{cond}", getattr(pset, cond))
    for kind in ("open_book", "closed_book"):
        _check_text_file(f"task_instructions.{kind}", getattr(cfg.task_instructions, kind))


def validate_config_dict(raw: Any, source: str = "<dict>", check_files: bool = True) -> EvalConfig:
    """Validate an already-parsed mapping; raises ConfigError with a one-line message."""
    from pydantic import ValidationError

    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"config error: {source}: <root>: expected a mapping, got {type(raw).__name__}")
    try:
        cfg = EvalConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source, EvalConfig)) from None
    if check_files:
        try:
            _check_files(cfg)
        except ConfigError as exc:
            raise ConfigError(f"config error: {source}: {exc}") from None
    return cfg


def load_config(path: str | Path, check_files: bool = True) -> EvalConfig:
    """Read a YAML config file and validate it. Raises ConfigError (one line) on any problem."""
    import yaml

    p = Path(path)
    try:
        text = read_user_text(p)  # a BOM (Notepad, PowerShell 5.1) is dropped
    except FileNotFoundError:
        raise ConfigError(f"config error: {p}: <file>: not found") from None
    except TextFileError as exc:
        raise ConfigError(f"config error: {p}: <file>: {str(exc).removeprefix(f'{p}: ')}") from None
    except OSError as exc:
        raise ConfigError(f"config error: {p}: <file>: cannot read ({exc.__class__.__name__})") from None
    try:
        _reject_duplicate_keys(yaml.compose(text, Loader=yaml.SafeLoader), p)
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "<yaml>"
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"config error: {p}: {where}: {problem}") from None
    return validate_config_dict(raw, str(p), check_files=check_files)


def _reject_duplicate_keys(node: Any, source: Path, path: str = "") -> None:
    """YAML silently keeps the last of two equal keys; a duplicated prompt set would vanish. Refuse it."""
    import yaml

    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = str(getattr(key_node, "value", ""))
            here = f"{path}.{key}" if path else key
            line = key_node.start_mark.line + 1
            if key != "<<" and key in seen:
                raise ConfigError(
                    f"config error: {source}: {here}: duplicate key on line {line} (first on line {seen[key]})"
                )
            seen[key] = line
            _reject_duplicate_keys(value_node, source, here)
    elif isinstance(node, yaml.SequenceNode):
        for i, child in enumerate(node.value):
            _reject_duplicate_keys(child, source, f"{path}[{i}]")
