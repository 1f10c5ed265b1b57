"""VRAM budget: weights + KV cache + compute buffer + CUDA reserve, against free VRAM.

Why: on a 16 GB card the run that fails is the one whose KV cache (context x parallel slots) does not
fit. The budget is computed before the run from the model's own metadata (GGUF header or Ollama's
``/api/show`` ``model_info``) and a warning names a concrete fix.

Arithmetic (checked against llama.cpp's own log for SmolLM2; see tests/test_vram_llama_log.py):
- KV cache bytes = sum over layers of KV heads x (key length + value length) x bytes per element
  x cells, with cells = n_ctx (padded to 256, as llama.cpp does) x parallel slots. With equal key and
  value lengths this is the textbook 2 x layers x KV heads x head size x bytes x n_ctx x slots.
  Bytes per element: f16 2, q8_0 34/32, q4_0 18/32 (ggml block sizes).
- One context with P sequences (the in-process engine's ``n_parallel``: llama.cpp ``n_seq_max`` = P,
  ``kv_unified``): llama.cpp allocates n_ctx cells in total, whatever P is (unified: one stream of
  n_ctx cells; not unified: P streams of n_ctx / P). ``Settings.shared_cache`` says so: the KV cache
  and compute buffer do not grow with P; the P sequences share the n_ctx cells (the shared prefix
  once, plus P x (suffix + max_new_tokens), see telemetry/batching.py). What grows is the output
  buffer: P x n_vocab x 4 bytes (logits of each sequence's last token). With P > 1 the engine also
  keeps a 256-cell context for llama-cpp-python's Llama object (``PLACEHOLDER_CTX``): its KV cache,
  compute buffer (n_ubatch 256) and output buffer are added.
- Compute buffer (measured on llama.cpp b-0.3.36, CPU backend, SmolLM2, n_ubatch 512): with flash
  attention it is the logits buffer, n_ubatch x n_vocab x 4 bytes, + ~2.3 MiB (98.25 MiB reported at
  n_ctx 1024-8192); without flash attention it is the larger of that and n_ubatch x cells x
  (n_head + 1) x 4 bytes, + ~6.4 MiB (166.38 MiB at 8192, 326.38 MiB at 16384). The extras scale with
  n_ubatch (49.13 MiB at n_ubatch 256), which is min(n_ctx, 512).
- CUDA reserve: CUDA context, cuBLAS workspace and driver reservations, a fixed 512 MiB. Not measured
  here (the build VM has no GPU); ``tools/gpu_check.py`` prints the card's used memory for checking.
- Weights: the GGUF file size (or Ollama's reported size), scaled by the share of layers offloaded.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from telemetry.gguf import GGUFArray, read_gguf_metadata

MIB = 1024 * 1024
KV_BYTES_PER_ELEMENT = {"f32": 4.0, "f16": 2.0, "bf16": 2.0, "q8_0": 34 / 32, "q5_1": 24 / 32,
                        "q5_0": 22 / 32, "q4_1": 20 / 32, "q4_0": 18 / 32, "iq4_nl": 18 / 32}
KV_PAD = 256
CUDA_RESERVE_MIB = 512.0
COMPUTE_FA_EXTRA_MIB = 2.25  # measured, see module docstring (at n_ubatch 512; scaled with n_ubatch)
COMPUTE_NOFA_EXTRA_MIB = 6.38
DEFAULT_UBATCH = 512
# The batched engine (n_parallel > 1) keeps llama-cpp-python's Llama object for the tokenizer and chat
# template with a minimal context of its own (llama.cpp's minimum, 256 cells, n_ubatch 256) beside the
# batched one; tests/test_batching_budget.py checks this against the engine's real allocation.
PLACEHOLDER_CTX = 256


class VramError(ValueError):
    """Model facts missing or unreadable (one line)."""


@dataclass(frozen=True)
class ModelShape:
    """The model facts the budget needs."""

    arch: str
    n_layer: int
    n_head: int
    kv_heads: tuple[int, ...]  # per layer (GGUF may give one number or a per-layer array)
    head_dim_k: int
    head_dim_v: int
    n_embd: int
    n_vocab: int | None = None
    n_ctx_train: int | None = None
    weights_bytes: int | None = None
    name: str | None = None

    @property
    def kv_bytes_per_token_f16(self) -> int:
        """K+V bytes for one token across all layers at f16."""
        return int(sum(h * (self.head_dim_k + self.head_dim_v) for h in self.kv_heads) * 2)


def _first_int(value: Any) -> int | None:
    if value is None or isinstance(value, GGUFArray):
        return None
    if isinstance(value, list):
        return max(int(v) for v in value) if value else None
    return int(value)


def shape_from_metadata(meta: dict[str, Any], weights_bytes: int | None = None, name: str | None = None) -> ModelShape:
    """From GGUF metadata or Ollama ``model_info`` (same ``<arch>.*`` keys)."""
    arch = meta.get("general.architecture")
    if not arch:
        raise VramError("model metadata has no general.architecture")

    def key(k: str) -> Any:
        return meta.get(f"{arch}.{k}")

    n_layer = _first_int(key("block_count"))
    n_embd = _first_int(key("embedding_length"))
    raw_head = key("attention.head_count")
    n_head = _first_int(raw_head)
    if not n_layer or not n_embd or not n_head:
        raise VramError(f"model metadata lacks {arch}.block_count/embedding_length/attention.head_count")
    raw_kv = key("attention.head_count_kv")
    if isinstance(raw_kv, list) and raw_kv:
        kv_heads = tuple(int(v) for v in raw_kv[:n_layer])
    else:
        kv_heads = (int(raw_kv) if raw_kv is not None else n_head,) * n_layer
    head_k = _first_int(key("attention.key_length")) or n_embd // n_head
    head_v = _first_int(key("attention.value_length")) or n_embd // n_head
    n_vocab = _first_int(key("vocab_size"))
    if n_vocab is None:
        tokens = meta.get("tokenizer.ggml.tokens")
        n_vocab = len(tokens) if tokens is not None and not isinstance(tokens, str) else None
    return ModelShape(
        arch=str(arch),
        n_layer=n_layer,
        n_head=n_head,
        kv_heads=kv_heads,
        head_dim_k=int(head_k),
        head_dim_v=int(head_v),
        n_embd=n_embd,
        n_vocab=n_vocab,
        n_ctx_train=_first_int(key("context_length")),
        weights_bytes=weights_bytes,
        name=name or meta.get("general.name"),
    )


def shape_from_gguf(path: str | Path) -> ModelShape:
    p = Path(path)
    return shape_from_metadata(read_gguf_metadata(p), weights_bytes=p.stat().st_size, name=p.name)


def shape_from_ollama_show(show: dict[str, Any], size_bytes: int | None = None, name: str | None = None) -> ModelShape:
    """From a ``POST /api/show`` response (``model_info``); ``size_bytes`` from ``/api/tags`` ``size``."""
    info = show.get("model_info")
    if not isinstance(info, dict) or not info:
        raise VramError("Ollama /api/show returned no model_info (update Ollama)")
    meta = dict(info)
    if "tokenizer.ggml.tokens" in meta and meta["tokenizer.ggml.tokens"] is None:
        meta.pop("tokenizer.ggml.tokens")  # Ollama omits long arrays unless verbose
    return shape_from_metadata(meta, weights_bytes=size_bytes, name=name)


def kv_cells(n_ctx: int, slots: int = 1) -> int:
    """Cells llama.cpp allocates: n_ctx padded to 256, times parallel slots."""
    return int(math.ceil(n_ctx / KV_PAD) * KV_PAD) * max(1, slots)


def kv_cache_bytes(shape: ModelShape, n_ctx: int, slots: int = 1, cache_type: str = "f16",
                   layers: int | None = None) -> float:
    """KV cache size in bytes (``layers``: only the first N layers, for partial offload)."""
    if cache_type not in KV_BYTES_PER_ELEMENT:
        raise VramError(f"unknown KV cache type {cache_type!r} (use one of {sorted(KV_BYTES_PER_ELEMENT)})")
    heads = shape.kv_heads[: layers if layers is not None else shape.n_layer]
    per_cell = sum(h * (shape.head_dim_k + shape.head_dim_v) for h in heads)
    return per_cell * KV_BYTES_PER_ELEMENT[cache_type] * kv_cells(n_ctx, slots)


def output_buffer_bytes(shape: ModelShape, n_seq: int = 1) -> float:
    """llama.cpp's output buffer: one row of logits (n_vocab floats) per sequence (``n_seq_max``)."""
    return max(1, n_seq) * (shape.n_vocab or 32000) * 4


def compute_buffer_bytes(shape: ModelShape, n_ctx: int, slots: int = 1, flash_attn: bool = False,
                         n_ubatch: int | None = None) -> float:
    """n_ubatch: min(n_ctx, 512) unless given, as ``Llama(n_ctx=...)`` and the batched engine set it; the
    measured extras scale with it (the logits and score rows are per token of the micro-batch)."""
    ub = n_ubatch if n_ubatch is not None else min(n_ctx, DEFAULT_UBATCH)
    scale = ub / DEFAULT_UBATCH
    logits = ub * (shape.n_vocab or 32000) * 4 + COMPUTE_FA_EXTRA_MIB * MIB * scale
    if flash_attn:
        return logits
    kq = ub * kv_cells(n_ctx, slots) * (shape.n_head + 1) * 4 + COMPUTE_NOFA_EXTRA_MIB * MIB * scale
    return max(logits, kq)


@dataclass(frozen=True)
class Settings:
    n_ctx: int
    slots: int = 1
    cache_type: str = "f16"
    n_gpu_layers: int = -1
    flash_attn: bool | None = None  # None: on when the cache is quantised (llama.cpp requires it)
    shared_cache: bool = False  # one context, n_ctx cells shared by ``slots`` sequences (in-process n_parallel)

    @property
    def fa(self) -> bool:
        return self.flash_attn if self.flash_attn is not None else self.cache_type not in ("f16", "f32", "bf16")

    @property
    def cache_slots(self) -> int:
        """How many times n_ctx cells are allocated: 1 for a shared (unified) cache."""
        return 1 if self.shared_cache else self.slots

    def label(self) -> str:
        if self.shared_cache and self.slots > 1:
            return f"n_ctx {self.n_ctx} shared by {self.slots} sequences, {self.cache_type} cache"
        slot = "slot" if self.slots == 1 else "slots"
        return f"n_ctx {self.n_ctx} x {self.slots} {slot}, {self.cache_type} cache"


@dataclass
class VramBudget:
    model: str
    settings: Settings
    weights_mib: float
    kv_mib: float
    compute_mib: float
    reserve_mib: float
    free_mib: float | None = None
    free_reason: str | None = None
    fixes: list[str] = field(default_factory=list)
    output_mib: float = 0.0  # logits of each sequence (shown within "compute")

    @property
    def total_mib(self) -> float:
        return self.weights_mib + self.kv_mib + self.compute_mib + self.output_mib + self.reserve_mib

    @property
    def fits(self) -> bool | None:
        return None if self.free_mib is None else self.total_mib <= self.free_mib

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(total_mib=self.total_mib, fits=self.fits)
        return d

    def lines(self) -> list[str]:
        s = self.settings
        out = [
            f"VRAM budget for {self.model} ({s.label()}, flash_attn {'on' if s.fa else 'off'}):",
            f"  weights {_gib(self.weights_mib)} + KV cache {_gib(self.kv_mib)} + compute {_gib(self.compute_mib + self.output_mib)}"
            f" + CUDA reserve {_gib(self.reserve_mib)} = {_gib(self.total_mib)}",
        ]
        if self.free_mib is None:
            out.append(f"  free VRAM unknown ({self.free_reason or 'NVML unavailable'})")
        elif self.fits:
            out.append(f"  fits: {_gib(self.free_mib)} free, {_gib(self.free_mib - self.total_mib)} to spare")
        else:
            out.append(f"  WARNING: {self.warning()}")
        return out

    def warning(self) -> str | None:
        if self.fits is not False:
            return None
        s = self.settings
        fix = " or ".join(self.fixes) if self.fixes else "use a smaller model or quantisation"
        return (f"{s.label().rsplit(',', 1)[0]} needs {_gib(self.total_mib)}"
                f" but {_gib(self.free_mib or 0)} is free; use {fix}")


def _gib(mib: float) -> str:
    return f"{mib / 1024:.1f} GiB" if abs(mib) >= 1024 else f"{mib:.0f} MiB"


def estimate(shape: ModelShape, settings: Settings, free_mib: float | None = None,
             free_reason: str | None = None, with_fixes: bool = True) -> VramBudget:
    """The budget for ``settings``; when it does not fit, ``fixes`` lists changes that would."""
    n_layer = shape.n_layer
    ngl = settings.n_gpu_layers
    gpu_layers = n_layer if ngl < 0 or ngl > n_layer else ngl
    share = (gpu_layers + (1 if ngl < 0 or ngl > n_layer else 0)) / (n_layer + 1)  # +1: output layer
    weights = (shape.weights_bytes or 0) * share
    kv = kv_cache_bytes(shape, settings.n_ctx, settings.cache_slots, settings.cache_type, layers=gpu_layers)
    compute = compute_buffer_bytes(shape, settings.n_ctx, settings.cache_slots, settings.fa) if gpu_layers else 0.0
    output = output_buffer_bytes(shape, settings.slots) if gpu_layers else 0.0
    if settings.shared_cache and settings.slots > 1:  # the batched engine's placeholder context, see above
        kv += kv_cache_bytes(shape, PLACEHOLDER_CTX, 1, settings.cache_type, layers=gpu_layers)
        if gpu_layers:
            compute += compute_buffer_bytes(shape, PLACEHOLDER_CTX, 1, settings.fa)
            output += output_buffer_bytes(shape, 1)
    reserve = CUDA_RESERVE_MIB if gpu_layers else 0.0
    budget = VramBudget(
        model=shape.name or shape.arch,
        settings=settings,
        weights_mib=weights / MIB,
        kv_mib=kv / MIB,
        compute_mib=compute / MIB,
        reserve_mib=reserve,
        free_mib=free_mib,
        free_reason=free_reason,
        output_mib=output / MIB,
    )
    if with_fixes and budget.fits is False:
        budget.fixes = suggest_fixes(shape, settings, free_mib)
    return budget


def suggest_fixes(shape: ModelShape, settings: Settings, free_mib: float | None) -> list[str]:
    """Single changes that make the budget fit, cheapest loss of capability first."""
    if free_mib is None:
        return []
    fixes: list[str] = []

    def fits(s: Settings) -> bool:
        return bool(estimate(shape, s, free_mib, with_fixes=False).fits)

    for n_ctx in (settings.n_ctx // 2, settings.n_ctx // 4):
        if n_ctx >= 1024 and fits(replace(settings, n_ctx=n_ctx)):
            fixes.append(f"n_ctx {n_ctx}")
            break
    for slots in range(0 if settings.shared_cache else settings.slots - 1, 0, -1):  # shared: P adds no KV
        if fits(replace(settings, slots=slots)):
            fixes.append(f"{slots} slot{'s' if slots != 1 else ''}")
            break
    for cache in ("q8_0", "q4_0"):
        if settings.cache_type != cache and KV_BYTES_PER_ELEMENT[cache] < KV_BYTES_PER_ELEMENT[settings.cache_type]:
            if fits(replace(settings, cache_type=cache, flash_attn=True)):
                fixes.append(f"a {cache} cache (kv_cache_type: {cache})")
                break
    if not fixes:
        n_layer = shape.n_layer
        for ngl in range(n_layer - 1, 0, -1):
            if fits(replace(settings, n_gpu_layers=ngl)):
                fixes.append(f"n_gpu_layers {ngl} (partial offload, slower)")
                break
    return fixes
