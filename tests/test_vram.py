"""VRAM budget arithmetic, the GGUF header reader and the config-level budget (no model load)."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from config.schema import validate_config_dict
from telemetry.budget import config_budget
from telemetry.gguf import GGUFArray, GGUFError, read_gguf_metadata
from telemetry.vram import (
    MIB,
    Settings,
    estimate,
    kv_cache_bytes,
    kv_cells,
    shape_from_gguf,
    shape_from_metadata,
    shape_from_ollama_show,
)
from tests.support.smollm2 import smollm2_gguf

LLAMA31_8B = {
    "general.architecture": "llama",
    "general.name": "Meta Llama 3.1 8B Instruct",
    "llama.block_count": 32,
    "llama.context_length": 131072,
    "llama.embedding_length": 4096,
    "llama.attention.head_count": 32,
    "llama.attention.head_count_kv": 8,
    "llama.vocab_size": 128256,
}
Q4_K_M_8B_BYTES = 4_920_734_016  # Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf


# -- a tiny GGUF writer, to test the reader on every value type -----------------------------------
def _s(text: str) -> bytes:
    raw = text.encode("utf-8")
    return struct.pack("<Q", len(raw)) + raw


def _kv(key: str, vtype: int, payload: bytes) -> bytes:
    return _s(key) + struct.pack("<I", vtype) + payload


def write_gguf(path: Path, meta: dict, vocab: int = 1000) -> Path:
    kvs = []
    for key, value in meta.items():
        if isinstance(value, str):
            kvs.append(_kv(key, 8, _s(value)))
        elif isinstance(value, float):
            kvs.append(_kv(key, 6, struct.pack("<f", value)))
        elif isinstance(value, list):
            kvs.append(_kv(key, 9, struct.pack("<IQ", 5, len(value)) + b"".join(struct.pack("<i", v) for v in value)))
        else:
            kvs.append(_kv(key, 4, struct.pack("<I", value)))
    kvs.append(_kv("tokenizer.ggml.tokens", 9, struct.pack("<IQ", 8, vocab) + b"".join(_s(f"t{i}") for i in range(vocab))))
    kvs.append(_kv("tokenizer.ggml.scores", 9, struct.pack("<IQ", 6, vocab) + b"\0" * 4 * vocab))
    kvs.append(_kv("general.flag", 7, b"\x01"))
    kvs.append(_kv("general.big", 10, struct.pack("<Q", 2**40)))
    header = b"GGUF" + struct.pack("<IQQ", 3, 0, len(kvs))
    path.write_bytes(header + b"".join(kvs) + b"\0" * 64)
    return path


@pytest.mark.unit
def test_llama31_8b_kv_arithmetic():
    shape = shape_from_metadata(LLAMA31_8B)
    assert shape.kv_bytes_per_token_f16 == 128 * 1024  # 128 KiB per token
    assert kv_cache_bytes(shape, 4096) == 512 * MIB
    assert kv_cache_bytes(shape, 8192, slots=2) == 2048 * MIB
    assert kv_cache_bytes(shape, 4096, cache_type="q8_0") == 512 * MIB * 34 / 64
    assert kv_cache_bytes(shape, 4096, cache_type="q4_0") == 512 * MIB * 18 / 64
    assert kv_cells(1000) == 1024 and kv_cells(4096, 2) == 8192


@pytest.mark.unit
def test_gguf_reader_round_trip(tmp_path):
    p = write_gguf(tmp_path / "m.gguf", {**LLAMA31_8B, "llama.rope.freq_base": 500000.0}, vocab=3000)
    meta = read_gguf_metadata(p)
    assert meta["general.architecture"] == "llama" and meta["llama.block_count"] == 32
    assert meta["llama.rope.freq_base"] == 500000.0 and meta["general.flag"] is True
    assert meta["general.big"] == 2**40
    assert meta["tokenizer.ggml.tokens"] == GGUFArray(8, 3000) and len(meta["tokenizer.ggml.scores"]) == 3000
    shape = shape_from_metadata({k: v for k, v in meta.items() if k != "llama.vocab_size"})
    assert shape.n_vocab == 3000  # from the token array length


@pytest.mark.unit
def test_gguf_reader_errors_are_one_line(tmp_path):
    with pytest.raises(GGUFError, match="file not found"):
        read_gguf_metadata(tmp_path / "nope.gguf")
    (tmp_path / "x.gguf").write_bytes(b"PK\x03\x04zip")
    with pytest.raises(GGUFError, match="not a GGUF file"):
        read_gguf_metadata(tmp_path / "x.gguf")
    good = write_gguf(tmp_path / "m.gguf", LLAMA31_8B).read_bytes()
    (tmp_path / "cut.gguf").write_bytes(good[:200])
    with pytest.raises(GGUFError, match="cannot read GGUF header") as info:
        read_gguf_metadata(tmp_path / "cut.gguf")
    assert "\n" not in str(info.value)


@pytest.mark.unit
def test_smollm2_gguf_shape():
    shape = shape_from_gguf(smollm2_gguf())
    assert (shape.arch, shape.n_layer, shape.n_head, shape.kv_heads[0]) == ("llama", 30, 9, 3)
    assert (shape.head_dim_k, shape.n_embd, shape.n_vocab, shape.n_ctx_train) == (64, 576, 49152, 8192)
    assert kv_cache_bytes(shape, 1024) == 22.5 * MIB  # what llama.cpp logs (see test_vram_llama_log)


@pytest.mark.unit
def test_rtx5080_presets_and_fix_message():
    shape = shape_from_metadata(LLAMA31_8B, weights_bytes=Q4_K_M_8B_BYTES)
    free = 15_000.0  # MiB free on a 16 GB card with a desktop running
    fit = estimate(shape, Settings(n_ctx=8192, slots=2), free_mib=free)
    assert fit.fits and fit.kv_mib == 2048
    assert 4600 < fit.weights_mib < 4700
    tight = estimate(shape, Settings(n_ctx=16384, slots=4), free_mib=free)
    assert tight.fits is False
    warning = tight.warning()
    assert warning.startswith("n_ctx 16384 x 4 slots needs ")
    assert "n_ctx 8192" in warning and "q8_0 cache" in warning and "slots" in warning
    unknown = estimate(shape, Settings(n_ctx=4096), free_mib=None, free_reason="NVML unavailable: x")
    assert unknown.fits is None and unknown.warning() is None
    assert any("free VRAM unknown (NVML unavailable: x)" in line for line in unknown.lines())


@pytest.mark.unit
def test_partial_offload_and_cpu_only():
    shape = shape_from_metadata(LLAMA31_8B, weights_bytes=Q4_K_M_8B_BYTES)
    full = estimate(shape, Settings(n_ctx=4096))
    half = estimate(shape, Settings(n_ctx=4096, n_gpu_layers=16))
    cpu = estimate(shape, Settings(n_ctx=4096, n_gpu_layers=0))
    assert half.kv_mib == full.kv_mib / 2 and half.weights_mib < full.weights_mib / 2 + 1
    assert cpu.total_mib == 0


@pytest.mark.unit
def test_ollama_show_model_info():
    show = {"model_info": {**LLAMA31_8B, "tokenizer.ggml.tokens": None}, "details": {"quantization_level": "Q4_K_M"}}
    shape = shape_from_ollama_show(show, size_bytes=Q4_K_M_8B_BYTES, name="llama3.1:8b")
    assert shape.kv_bytes_per_token_f16 == 128 * 1024 and shape.name == "llama3.1:8b"


@pytest.mark.unit
def test_config_budget_for_smollm2_and_skips(tmp_path):
    model = str(smollm2_gguf())
    cfg = validate_config_dict({"local_engine": "llama_cpp", "local_model": model, "n_ctx": 2048}, check_files=False)
    report = config_budget(cfg, free_mib=1000.0)
    assert report.status == "ok" and report.budget.kv_mib == 45.0
    assert "VRAM budget for" in report.lines[0]
    small = config_budget(cfg, free_mib=200.0)
    assert small.status == "warn" and "needs" in small.warning
    missing = validate_config_dict({"local_engine": "llama_cpp", "local_model": str(tmp_path / "x.gguf")},
                                   check_files=False)
    assert config_budget(missing).budget is None
    dry = validate_config_dict({"local_engine": "dry_run"}, check_files=False)
    assert "not applicable" in config_budget(dry).lines[0]
    no_gpu = config_budget(cfg)  # real NVML on this machine: no driver -> budget without a verdict
    assert no_gpu.budget is not None


def test_config_budget_from_ollama_api_show():
    """A real HTTP server on 127.0.0.1 answering /api/show and /api/tags as Ollama documents them."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    seen: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _json(self, code, data):
            raw = json.dumps(data).encode("utf-8")
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def do_GET(self):
            if self.path == "/api/tags":
                self._json(200, {"models": [{"name": "llama3.1:8b", "model": "llama3.1:8b", "size": Q4_K_M_8B_BYTES}]})
            else:
                self._json(404, {"error": "not found"})

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append(body)
            if self.path == "/api/show" and body.get("model") == "llama3.1:8b":
                info = {**LLAMA31_8B, "general.parameter_count": 8030261248, "tokenizer.ggml.tokens": None}
                self._json(200, {"details": {"quantization_level": "Q4_K_M"}, "model_info": info})
            else:
                self._json(404, {"error": f"model '{body.get('model')}' not found"})

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        endpoint = f"http://127.0.0.1:{server.server_address[1]}"
        raw = {"local_engine": "ollama", "local_endpoint": endpoint, "local_model": "llama3.1:8b",
               "n_ctx": 8192, "max_concurrent_requests": 2}
        cfg = validate_config_dict(raw, check_files=False)
        report = config_budget(cfg, free_mib=15_000.0)
        assert seen[0] == {"model": "llama3.1:8b"}
        assert report.status == "ok" and report.budget.kv_mib == 2048  # 8192 x 2 slots at f16
        assert 4600 < report.budget.weights_mib < 4700
        assert any("OLLAMA_NUM_PARALLEL" in line for line in report.lines)
        tight = config_budget(cfg, free_mib=7000.0)
        assert tight.status == "warn" and "q8_0 cache" in tight.warning
        missing = validate_config_dict({**raw, "local_model": "nope"}, check_files=False)
        assert "HTTP 404" in config_budget(missing, free_mib=1.0).lines[0]
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.unit
def test_vram_check_for_doctor():
    from telemetry.budget import vram_check

    cfg = validate_config_dict({"local_engine": "llama_cpp", "local_model": str(smollm2_gguf()), "n_ctx": 2048},
                               check_files=False)
    status, line = vram_check(cfg)  # no NVIDIA driver here: the budget is known, the verdict is not
    assert status == "skip" and "free VRAM unknown (NVML unavailable" in line
    assert vram_check(validate_config_dict({"local_engine": "dry_run"}, check_files=False))[0] == "skip"
