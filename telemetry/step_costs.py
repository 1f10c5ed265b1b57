"""What one decode step costs on this machine, for the batched llama.cpp engine: measured once per model
file and machine (``plan --measure``), kept in the queue folder, read back by ``plan`` and ``doctor``.

Why measured and not a fixed rule: whether batching pays, and at which P, is a property of the hardware.
On this project's 2-core CPU a token costs about the same wherever it sits in a batch, so 8 sequences
decode in 4.4 times the time of one; on a GPU a step is bound by reading the weights and 8 sequences
cost little more than one. The measurement takes seconds (a decode step of 1, 2, 4, 8 and 16 sequences
and a prefill chunk, at the end of a cached prefix the size of a system prompt), and
``telemetry.batching`` turns it and a run's token shape into the P to use.

The key: the GGUF file (path, size, modification time), the machine (CPU model and core count, and
the GPU when layers are offloaded) and the settings that change a step's cost (threads, offloaded
layers, KV cache type, llama-cpp-python's version). A new model file, driver-level hardware or build
is a new measurement; an old one is kept beside it.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from config.atomic import write_json_atomic
from config.model_files import ModelFileError, resolve_model_path
from config.schema import EvalConfig
from producer.host.queue_paths import STEP_COSTS_FILE, queue_dir

MEASURE_PARALLEL = (1, 2, 4, 8, 16)  # the sequences per step measured (P = 1 is the sequential engine's step)
MEASURE_POSITION = 1024  # cached prefix the steps run behind: a typical system prompt


class StepCosts(BaseModel):
    """One measurement: written by the engine room (``workers.engines.llama_cpp_step_costs``), read here."""

    model_config = ConfigDict(extra="ignore")

    key: str
    model_file: str
    machine: str
    settings: dict[str, Any]
    position: int  # cached tokens each measured step attends to
    decode_step_ms: dict[int, float]  # sequences per step -> median ms of one decode step
    prefill_ms_per_token: float  # a 16-token prompt chunk, per token
    measured_at: str  # UTC, ISO 8601
    seconds: float  # how long measuring took

    def describe(self) -> str:
        """How ``plan`` and ``doctor`` name the measurement."""
        when = self.measured_at[:16].replace("T", " ")
        return f"step costs measured {when} UTC on {self.machine} for {Path(self.model_file).name}"

    def decode_gain(self, p: int) -> float:
        """Pure decode: P single-sequence steps against one step of P sequences."""
        return p * self.decode_step_ms[1] / self.decode_step_ms[p]


def _cpu_model() -> str:
    if platform.system() == "Linux":
        try:
            for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
                if line.startswith("model name"):
                    return " ".join(line.split(":", 1)[1].split())
        except OSError:
            pass
    return platform.processor() or platform.machine() or "unknown CPU"


def _gpu_name() -> str | None:
    from telemetry.nvml import GpuReader  # lazy: NVML is only asked when layers are offloaded

    with GpuReader() as reader:
        return reader.device_name


def machine_description(cfg: EvalConfig) -> str:
    """The hardware a step runs on: the CPU (model, logical cores), plus the GPU when layers are offloaded."""
    cpu = f"{_cpu_model()} ({os.cpu_count() or '?'} logical cores)"
    if cfg.n_gpu_layers == 0:
        return f"{cpu}, CPU only"
    gpu = _gpu_name()
    return f"{cpu}, GPU {gpu}" if gpu else f"{cpu}, GPU not readable through NVML"


def _llama_cpp_version() -> str:
    try:
        return metadata.version("llama_cpp_python")
    except metadata.PackageNotFoundError:
        return "not installed"


def cost_settings(cfg: EvalConfig) -> dict[str, Any]:
    """The settings that change what a step costs."""
    return {"n_threads": cfg.n_threads, "n_gpu_layers": cfg.n_gpu_layers, "kv_cache_type": cfg.kv_cache_type,
            "llama_cpp_python": _llama_cpp_version()}


def model_file(cfg: EvalConfig, model: str | None = None) -> Path | None:
    """The GGUF the in-process engine would load, or None when it cannot be found."""
    try:
        return resolve_model_path(model or cfg.local_model or "")
    except (ModelFileError, OSError):
        return None


def cost_key(path: Path, machine: str, settings: dict[str, Any]) -> str:
    stat = path.stat()
    ident = [str(path.resolve()), stat.st_size, stat.st_mtime_ns, machine, settings]
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode("utf-8")).hexdigest()[:16]


def key_for(cfg: EvalConfig, model: str | None = None) -> tuple[str, Path, str, dict[str, Any]] | None:
    """(key, model file, machine, settings) of this config's measurement; None without a model file."""
    path = model_file(cfg, model)
    if path is None:
        return None
    machine, settings = machine_description(cfg), cost_settings(cfg)
    return cost_key(path, machine, settings), path, machine, settings


def _file(create: bool) -> Path:
    return queue_dir(create=create) / STEP_COSTS_FILE


def _read_all() -> dict[str, Any]:
    path = _file(create=False)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # none yet, or damaged: measure again
        return {}
    return data if isinstance(data, dict) else {}


def read_costs(cfg: EvalConfig, model: str | None = None) -> StepCosts | None:
    """This model file's measurement on this machine with these settings, or None."""
    found = key_for(cfg, model)
    if found is None:
        return None
    raw = _read_all().get(found[0])
    try:
        return StepCosts.model_validate(raw) if raw else None
    except ValidationError:
        return None


def new_costs(cfg: EvalConfig, model: str | None, position: int, decode_step_ms: dict[int, float],
              prefill_ms_per_token: float, seconds: float) -> StepCosts:
    """A measurement record for this config's model, machine and settings."""
    found = key_for(cfg, model)
    if found is None:
        raise ModelFileError(f"model file for {model or cfg.local_model!r} not found")
    key, path, machine, settings = found
    return StepCosts(key=key, model_file=str(path.resolve()), machine=machine, settings=settings,
                     position=position, decode_step_ms=decode_step_ms, prefill_ms_per_token=prefill_ms_per_token,
                     measured_at=datetime.now(UTC).isoformat(timespec="seconds"), seconds=round(seconds, 1))


def store_costs(costs: StepCosts) -> Path:
    """Keep ``costs`` beside the other models' and machines' (written whole, atomically)."""
    data = _read_all()
    data[costs.key] = costs.model_dump(mode="json")
    return write_json_atomic(_file(create=True), data)
