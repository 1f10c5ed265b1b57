"""The KV-cache formula against what llama.cpp itself reports when it loads SmolLM2.

llama.cpp logs to the C-level stderr (not Python's sys.stderr), so the model is loaded in a child
process and its stderr captured at the file-descriptor level.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from telemetry.vram import MIB, compute_buffer_bytes, kv_cache_bytes, kv_cells, shape_from_gguf
from tests.support.smollm2 import smollm2_gguf

pytestmark = pytest.mark.realmodel

# New llama.cpp: "llama_kv_cache: size =   22.50 MiB (  1024 cells,  30 layers,  1/1 seqs), K (f16): ..."
# Older builds: "llama_new_context_with_model: KV self size  =   22.50 MiB, K (f16): ..."
KV_LINE = re.compile(r"(?:llama_kv_cache\w*: size|KV self size)\s*=\s*([\d.]+) MiB.*?K \((\w+)\):\s*([\d.]+) MiB")
CELLS = re.compile(r"\(\s*(\d+) cells")
COMPUTE = re.compile(r"CPU compute buffer size\s*=\s*([\d.]+) MiB")

LOADER = """
import sys
from llama_cpp import Llama
n_ctx, type_k, fa = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1"
Llama(model_path=sys.argv[1], n_ctx=n_ctx, n_threads=1, verbose=True, type_k=type_k, type_v=type_k,
      flash_attn=fa)
"""
GGML_TYPE = {"f16": 1, "q8_0": 8, "q4_0": 2}


def load_log(n_ctx: int, cache: str, flash_attn: bool) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", LOADER, str(smollm2_gguf()), str(n_ctx), str(GGML_TYPE[cache]), "1" if flash_attn else "0"],
        capture_output=True, text=True, encoding="utf-8", errors="replace", timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stderr


@pytest.mark.parametrize(
    "n_ctx, cache, flash_attn",
    [(1000, "f16", False), (2048, "q8_0", True), (4096, "q4_0", True)],
)
def test_kv_size_matches_llama_cpp_log(n_ctx, cache, flash_attn):
    log = load_log(n_ctx, cache, flash_attn)
    match = KV_LINE.search(log)
    assert match, "no KV size line in llama.cpp's log"
    total_mib, k_type, k_mib = float(match.group(1)), match.group(2), float(match.group(3))
    assert k_type == cache
    shape = shape_from_gguf(smollm2_gguf())
    ours = kv_cache_bytes(shape, n_ctx, cache_type=cache) / MIB
    assert ours == pytest.approx(total_mib, abs=0.01)  # llama.cpp prints 2 decimals
    assert ours / 2 == pytest.approx(k_mib, abs=0.01)
    cells = CELLS.search(log)
    if cells:
        assert int(cells.group(1)) == kv_cells(n_ctx)
    compute = COMPUTE.search(log)
    if compute:
        predicted = compute_buffer_bytes(shape, n_ctx, flash_attn=flash_attn) / MIB
        assert predicted == pytest.approx(float(compute.group(1)), rel=0.05)
