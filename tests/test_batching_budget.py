"""The budget for ``n_parallel`` P (issue 17): what llama.cpp allocates for P sequences in one context,
checked against llama.cpp's own log; the context need (shared prefix + P x (suffix + max_new_tokens))
and the recommended P that ``plan`` and ``doctor`` print.

llama.cpp logs to the C-level stderr, so the model is loaded in a child process (as in
tests/test_vram_llama_log.py) by the engine's own code: P = 1 the sequential engine's ``Llama``, P > 1
the batched engine's ``BatchedRuntime`` (a context with ``n_seq_max`` = P and a unified KV cache,
beside the ``Llama`` object's minimal one). The engines load quietly, so the child turns
llama-cpp-python's verbosity on before it loads anything.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from config.schema import validate_config_dict
from telemetry.batching import BATCH_RATIO_MAX, RECOMMENDED_P, Workload, batching_lines, recommend_parallel
from telemetry.budget import budget_settings, config_budget
from telemetry.vram import estimate, shape_from_gguf
from tests.support.cli import cli_env, run_cli
from tests.support.smollm2 import smollm2_gguf
from tests.support.workdirs import make_workdir

MODEL_BUF = re.compile(r"CPU(?:_Mapped)? model buffer size\s*=\s*([\d.]+) MiB")
KV_LINE = re.compile(r"llama_kv_cache: size\s*=\s*([\d.]+) MiB \(\s*(\d+) cells,\s*\d+ layers,\s*(\d+)/(\d+) seqs\)")
COMPUTE = re.compile(r"CPU compute buffer size\s*=\s*([\d.]+) MiB")
OUTPUT = re.compile(r"CPU\s+output buffer size\s*=\s*([\d.]+) MiB")
RAM_LINE = re.compile(r"RAM: weights (\d+) MiB \+ KV cache (\d+) MiB \+ compute (\d+) MiB; (.*)\)")

LOADER = """
import sys
import llama_cpp.llama as high
import llama_cpp._internals as internals
import llama_cpp._logger as logger

high.set_verbose = lambda verbose: logger.set_verbose(True)  # the engines pass verbose=False


class Loud(high.suppress_stdout_stderr):
    def __init__(self, disable=True):
        super().__init__(disable=True)


high.suppress_stdout_stderr = internals.suppress_stdout_stderr = Loud

from config.llama_cpp_import import import_llama_cpp
from config.model_files import resolve_model_path
from config.schema import validate_config_dict
from workers.engines.cpu_quirks import apply_from_env
from workers.engines.llama_cpp_engine import llama_kwargs, model_settings, new_llama

apply_from_env()
n_ctx, p, cache = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
cfg = validate_config_dict({"backend": "local", "local_engine": "llama_cpp", "local_model": "smollm2", "n_ctx": n_ctx,
                            "n_parallel": p, "n_gpu_layers": 0, "n_threads": 1, "kv_cache_type": cache})
path = resolve_model_path("smollm2")
settings = {**model_settings(cfg), "n_parallel": p}
if p > 1:
    from workers.engines.llama_cpp_batched import BatchedRuntime

    runtime = BatchedRuntime(path, settings)
    print("n_seq_max", runtime.scheduler.n_parallel)
else:
    runtime = new_llama(path, llama_kwargs(import_llama_cpp(), path, settings))
    print("n_seq_max", 1)
runtime.close()
"""


def engine_log(n_ctx: int, p: int, cache: str) -> str:
    proc = subprocess.run([sys.executable, "-c", LOADER, str(n_ctx), str(p), cache], capture_output=True, text=True,
                          encoding="utf-8", errors="replace", timeout=120, env=cli_env(EXCELLENCE_NO_CPU_REPACK="1"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"n_seq_max {p}" in proc.stdout
    return proc.stderr


def _mib(pattern: re.Pattern, log: str) -> float:
    """The sum over every context llama.cpp created (the batched engine creates two)."""
    found = [float(m.group(1)) for m in pattern.finditer(log)]
    assert found, f"no {pattern.pattern!r} in llama.cpp's log"
    return sum(found)


def cfg_for(p: int, n_ctx: int, cache: str = "f16"):
    return validate_config_dict({"backend": "local", "local_engine": "llama_cpp", "local_model": str(smollm2_gguf()),
                                 "n_ctx": n_ctx, "n_gpu_layers": 0, "kv_cache_type": cache, "n_parallel": p})


@pytest.mark.realmodel
@pytest.mark.parametrize("p, n_ctx, cache", [(1, 2048, "f16"), (4, 2048, "f16"), (4, 1000, "q8_0")])
def test_budget_for_p_matches_llama_cpp_report(p: int, n_ctx: int, cache: str) -> None:
    log = engine_log(n_ctx, p, cache)
    batched = [m for m in KV_LINE.finditer(log) if int(m.group(3)) == p]
    assert len(batched) == 1, "no KV cache for P sequences in llama.cpp's log"
    assert int(batched[0].group(2)) == -(-n_ctx // 256) * 256  # n_ctx cells in all (unified), not P x n_ctx
    logged = {"weights": _mib(MODEL_BUF, log), "kv": _mib(KV_LINE, log), "compute": _mib(COMPUTE, log),
              "output": _mib(OUTPUT, log)}

    cfg = cfg_for(p, n_ctx, cache)
    ours = estimate(shape_from_gguf(smollm2_gguf()), budget_settings(cfg, n_gpu_layers=-1))
    assert ours.kv_mib == pytest.approx(logged["kv"], abs=0.02)
    assert ours.output_mib == pytest.approx(logged["output"], rel=0.05)
    assert ours.compute_mib == pytest.approx(logged["compute"], rel=0.05)
    assert ours.weights_mib == pytest.approx(logged["weights"], rel=0.05)
    total = ours.weights_mib + ours.kv_mib + ours.compute_mib + ours.output_mib
    assert total == pytest.approx(sum(logged.values()), rel=0.05)

    # the line plan/doctor print for this config (n_gpu_layers 0: RAM) says the same
    line = config_budget(cfg).lines[0]
    m = RAM_LINE.search(line)
    assert m, line
    assert int(m.group(2)) == round(logged["kv"])
    assert int(m.group(3)) == pytest.approx(logged["compute"] + logged["output"], rel=0.05)
    assert m.group(4).startswith(f"n_ctx {n_ctx} shared by 4 sequences" if p > 1 else f"n_ctx {n_ctx} x 1 slot")


@pytest.mark.unit
def test_kv_cache_does_not_grow_with_p_but_http_slots_do() -> None:
    shape = shape_from_gguf(smollm2_gguf())
    one, four = (estimate(shape, budget_settings(cfg_for(p, 4096), n_gpu_layers=-1)) for p in (1, 4))
    assert one.kv_mib == pytest.approx(90.0)
    # 4096 cells shared by the P sequences, + the Llama object's 256-cell context (PLACEHOLDER_CTX)
    assert four.kv_mib == pytest.approx(90.0 + 90.0 * 256 / 4096)
    assert four.output_mib == pytest.approx(5 * one.output_mib)  # one row of logits per sequence, + the Llama's
    server = validate_config_dict({"backend": "local", "local_engine": "openai_compat", "local_model": str(smollm2_gguf()),
                                   "local_endpoint": "http://127.0.0.1:1/v1", "n_ctx": 4096,
                                   "max_concurrent_requests": 4})
    assert estimate(shape, budget_settings(server)).kv_mib == pytest.approx(4 * 90.0)  # n_ctx per slot


@pytest.mark.unit
def test_context_need_and_largest_p() -> None:
    w = Workload(requests=10, prefix_tokens=2000, longest_tail=200, fresh_tokens=40, new_tokens=32, where="x")
    assert w.context_need(1) == 2200
    assert w.context_need(4) == 2800
    assert w.max_parallel(4096) == 10
    assert w.max_parallel(2100) == 0


@pytest.mark.unit
@pytest.mark.parametrize("fresh, new, expected", [
    (13, 64, RECOMMENDED_P),  # closed-book, 64 new tokens: decode-heavy
    (39, 32, RECOMMENDED_P),  # mixed SQuAD (paragraph-grouped) + closed-book, 32 new tokens
    (65, 16, 1),  # SQuAD with 16 new tokens: prefill-heavy, batching loses
    (BATCH_RATIO_MAX * 10, 10, RECOMMENDED_P),
    (BATCH_RATIO_MAX * 10 + 1, 10, 1),
    (50, 0, 1),
])
def test_recommend_parallel(fresh: float, new: float, expected: int) -> None:
    assert recommend_parallel(fresh, new) == expected


def _demo_items() -> list[dict]:
    from producer.planning.plan import make_plan

    cfg = validate_config_dict({"backend": "local", "local_engine": "llama_cpp", "local_model": "smollm2",
                                "data": {"squad_v2": "sample", "triviaqa": "sample", "nq_open": "sample"},
                                "sizes": {"squad_v2": 12, "triviaqa": 6, "nq_open": 6}})
    return make_plan(cfg, Path("."), None, None).items


@pytest.mark.unit
def test_batching_lines_recommend_and_warn() -> None:
    items = _demo_items()
    base = {"backend": "local", "local_engine": "llama_cpp", "local_model": "smollm2",
            "max_new_tokens": {"closed_book": 24, "open_book": 32}}
    fits = batching_lines(validate_config_dict({**base, "n_ctx": 4096, "n_parallel": 4}), items)
    assert fits[0].startswith(f"batching: n_parallel 4; recommended {RECOMMENDED_P} for this workload")
    assert "shared prefix ~" in fits[1] and "of n_ctx 4096" in fits[1]
    assert not any("WARNING" in line for line in fits)

    tight = batching_lines(validate_config_dict({**base, "n_ctx": 2560, "n_parallel": 8}), items)
    warning = next(line for line in tight if "WARNING" in line)
    assert "n_ctx 2560 is too small for 8 sequences" in warning and "raise n_ctx to" in warning
    assert re.search(r"or use n_parallel [1-3]\b", warning)  # the largest P that fits
    # prefill-heavy (open-book only, 8 new tokens): sequential is recommended
    prefill = batching_lines(validate_config_dict({**base, "max_new_tokens": {"closed_book": 8, "open_book": 8},
                                                   "n_parallel": 4}), [i for i in items if i["dataset"] == "squad_v2"])
    assert prefill[0].startswith("batching: n_parallel 4; recommended 1 for this workload")
    # HTTP engines: the server batches, nothing to say here
    assert batching_lines(validate_config_dict({**base, "local_engine": "ollama", "local_model": "m",
                                                "local_endpoint": "http://127.0.0.1:1"}), items) == []


def test_plan_prints_the_recommendation_and_the_warning(tmp_path: Path) -> None:
    work = make_workdir(tmp_path)
    cfg = (work / "config" / "eval_config.demo.yaml").read_text(encoding="utf-8")
    cfg = cfg.replace("n_ctx: 4096", "n_ctx: 2560\nn_parallel: 8")
    cfg = cfg.replace("default_prompt_set: cautious", "default_prompt_set: default")  # the long prompt
    (work / "tight.yaml").write_text(cfg, encoding="utf-8")
    proc = run_cli(["plan", "--config", "tight.yaml"], cwd=work)
    assert proc.returncode == 0, proc.stderr
    assert "batching: n_parallel 8; recommended" in proc.stdout
    assert "WARNING: n_ctx 2560 is too small for 8 sequences" in proc.stdout
    assert "n_ctx 2560 shared by 8 sequences" in proc.stdout  # the RAM budget line follows P


def test_doctor_warns_when_p_sequences_do_not_fit(tmp_path: Path) -> None:
    from tests.support.offline_config import write_offline_config

    def doctor(**overrides) -> list[str]:
        config = write_offline_config(tmp_path, local_engine="llama_cpp", local_model="smollm2", n_gpu_layers=0,
                                      max_new_tokens={"closed_book": 24, "open_book": 32}, **overrides)
        proc = run_cli(["doctor", "--config", str(config)], cwd=tmp_path, queue=tmp_path / "queue")
        assert "Traceback" not in proc.stderr
        return [line for line in proc.stdout.splitlines() if "] batching:" in line or "] vram:" in line]

    tight = doctor(n_ctx=2560, n_parallel=8)
    warn = next(line for line in tight if "] batching:" in line)
    assert warn.startswith("[WARN] batching: context too small for 8 sequences: n_parallel 8: shared prefix")
    assert "raise n_ctx to" in warn and re.search(r"or set n_parallel [1-3]$", warn)
    assert any("n_ctx 2560 shared by 8 sequences" in line for line in tight)  # the RAM budget follows P
    fits = doctor(n_ctx=4096, n_parallel=4)
    assert any(line.startswith("[ OK ] batching: n_parallel 4: shared prefix") and
               line.endswith("; step costs not measured on this machine: `python -m producer plan --measure` "
                             "recommends n_parallel") for line in fits)
    sequential = [line for line in doctor(n_ctx=4096, n_parallel=1) if "] batching:" in line]
    assert sequential == ["[ OK ] batching: n_parallel 1; step costs not measured on this machine: "
                          "`python -m producer plan --measure` recommends n_parallel"]
