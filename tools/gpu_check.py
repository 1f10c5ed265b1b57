"""Run once on a machine with an NVIDIA GPU: what does the telemetry read, and what would fit?

    python tools/gpu_check.py            # ~3 s of sampling, then the VRAM budget table
    python tools/gpu_check.py --seconds 5 --interval 0.25

Prints the device name, memory used/total/free, utilisation, power and temperature as the sampler
read them, then the VRAM budget of Llama-3.1-8B at Q4_K_M / Q6_K and a 13B Q4_K_M at 4096 and 8192
tokens with 1 and 2 slots against this card's free memory. Needs only the project's dependencies (no
model file, no llama.cpp). Always exits 0: "NVML unavailable: <reason>" is a valid answer.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from telemetry.sampler import TelemetrySampler  # noqa: E402
from telemetry.vram import Settings, estimate, shape_from_metadata  # noqa: E402

LLAMA_8B = {
    "general.architecture": "llama", "llama.block_count": 32, "llama.embedding_length": 4096,
    "llama.attention.head_count": 32, "llama.attention.head_count_kv": 8, "llama.vocab_size": 128256,
    "llama.context_length": 131072,
}
LLAMA2_13B = {
    "general.architecture": "llama", "llama.block_count": 40, "llama.embedding_length": 5120,
    "llama.attention.head_count": 40, "llama.attention.head_count_kv": 40, "llama.vocab_size": 32000,
    "llama.context_length": 4096,
}
MODELS = [  # (label, metadata, GGUF file size in bytes: bartowski/TheBloke quantisations)
    ("Llama-3.1-8B Q4_K_M", LLAMA_8B, 4_920_734_016),
    ("Llama-3.1-8B Q6_K", LLAMA_8B, 6_596_006_688),
    ("Llama-2-13B Q4_K_M", LLAMA2_13B, 7_865_956_224),
]


def _fmt(value: float | None, unit: str, digits: int = 0) -> str:
    return "n/a" if value is None else f"{value:.{digits}f} {unit}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--interval", type=float, default=0.25)
    args = ap.parse_args(argv)

    sampler = TelemetrySampler(interval_s=args.interval)
    with sampler:
        time.sleep(args.seconds)
    samples = sampler.samples()
    print(f"samples: {len(samples)} in {args.seconds:.1f} s (interval {args.interval} s)")
    free = None
    if not sampler.nvml_available:
        print(sampler.nvml_reason)
    else:
        last = samples[-1]
        free = (last.gpu_mem_total_mib or 0) - (last.gpu_mem_used_mib or 0)
        print(f"device: {sampler.device_name}")
        print(f"memory: used {_fmt(last.gpu_mem_used_mib, 'MiB')} of {_fmt(last.gpu_mem_total_mib, 'MiB')}"
              f" (free {free:.0f} MiB)")
        utils = [s.gpu_util_pct for s in samples if s.gpu_util_pct is not None]
        powers = [s.power_w for s in samples if s.power_w is not None]
        print(f"utilisation: last {_fmt(last.gpu_util_pct, '%')}, max {_fmt(max(utils) if utils else None, '%')}")
        print(f"power: last {_fmt(last.power_w, 'W', 1)}, mean "
              f"{_fmt(sum(powers) / len(powers) if powers else None, 'W', 1)}")
        print(f"temperature: {_fmt(last.temp_c, 'C')}")
    last = samples[-1] if samples else None
    if last is not None:
        print(f"this process: cpu {_fmt(last.cpu_pct, '%')}, rss {_fmt(last.rss_mib, 'MiB')}")

    print()
    print("VRAM budget (weights + KV cache + compute + CUDA reserve), f16 KV cache unless noted:")
    for label, meta, size in MODELS:
        shape = shape_from_metadata(meta, weights_bytes=size, name=label)
        for n_ctx, slots, cache in ((4096, 1, "f16"), (4096, 2, "f16"), (8192, 1, "f16"), (8192, 2, "f16"),
                                    (8192, 2, "q8_0")):
            b = estimate(shape, Settings(n_ctx=n_ctx, slots=slots, cache_type=cache), free_mib=free)
            verdict = "" if b.fits is None else ("fits" if b.fits else "DOES NOT FIT")
            print(f"  {label:<20} n_ctx {n_ctx:>5} x {slots} slot(s) {cache:<5}: weights {b.weights_mib:6.0f}"
                  f" + KV {b.kv_mib:5.0f} + compute {b.compute_mib:4.0f} + reserve {b.reserve_mib:3.0f}"
                  f" = {b.total_mib:6.0f} MiB {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
