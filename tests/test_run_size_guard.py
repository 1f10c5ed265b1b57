"""Config bounds and absurd runs: a typo of a billion or an infinite timeout is one line at load; a run
whose request count or generation time is absurd is refused by plan / enqueue / run unless ``--yes``;
and enqueue streams its requests into the ledger instead of holding them all in memory."""

from __future__ import annotations

import subprocess
import tracemalloc
from pathlib import Path

import pytest
import yaml

from tests.support.cli import run_cli
from tests.support.offline_config import offline_config_dict


def _cli(args: list[str], queue: Path) -> subprocess.CompletedProcess:
    return run_cli(args, queue=queue, timeout=120)


def _write(tmp: Path, **overrides) -> str:
    path = tmp / "cfg.yaml"
    path.write_text(yaml.safe_dump(offline_config_dict(tmp, **overrides), sort_keys=False), encoding="utf-8")
    return str(path)


def _one_line(out: subprocess.CompletedProcess, *needles: str) -> str:
    line = out.stderr.strip()
    assert out.returncode == 2, out.stdout + out.stderr
    assert "Traceback" not in out.stderr and line and "\n" not in line, out.stderr
    for needle in needles:
        assert needle in line, line
    return line


@pytest.mark.parametrize("overrides, needles", [
    ({"retry_backoff_s": float("inf")}, ["retry_backoff_s:", "finite number"]),
    ({"request_timeout_s": float("inf")}, ["request_timeout_s:", "finite number"]),
    ({"request_timeout_s": 1e9}, ["request_timeout_s:", "less than or equal to 86400"]),
    ({"samples_per_item": {"0.0": 1_000_000_000}}, ["samples_per_item.0.0:", "1,000,000,000", "at most 10,000"]),
    ({"sizes": {"squad_v2": 10**12, "triviaqa": 1, "nq_open": 1}}, ["sizes.squad_v2:", "1000000"]),
    ({"stats": {"bootstrap_samples": 200, "permutation_samples": 200, "tost_margins": {"em": float("nan")}}},
     ["stats.tost_margins.em:", "finite number"]),
])
def test_infinite_and_absurd_numbers_are_config_errors(tmp_path, overrides, needles):
    _one_line(_cli(["plan", "--config", _write(tmp_path, **overrides)], tmp_path / "queue"), "config error:", *needles)


def test_absurd_request_count_is_refused_unless_yes(tmp_path):
    queue = tmp_path / "queue"
    cfg = _write(tmp_path, temps=[0.0, 0.5, 1.0], samples_per_item={"0.0": 10000, "0.5": 10000, "1.0": 10000},
                 sizes={"squad_v2": None, "triviaqa": None, "nq_open": None})
    for command in ("plan", "enqueue", "run"):
        _one_line(_cli([command, "--config", cfg], queue), "5,040,000 requests", "--yes")
    assert not (tmp_path / "experiments").exists() and not (tmp_path / "data").exists()
    assert not (queue / "ledger.sqlite3").exists()
    out = _cli(["plan", "--config", cfg, "--yes"], queue)
    assert out.returncode == 0 and "total requests: 5,040,000" in out.stdout, out.stdout + out.stderr


def test_absurd_generation_time_is_refused_unless_yes(tmp_path):
    queue = tmp_path / "queue"  # 1,680 requests of up to 100,000 new tokens each: weeks on one machine
    cfg = _write(tmp_path, local_engine="openai_compat", local_model="m", local_endpoint="http://127.0.0.1:9/v1",
                 samples_per_item={"0.0": 10}, sizes={"squad_v2": None, "triviaqa": None, "nq_open": None},
                 n_ctx=131072, max_new_tokens={"closed_book": 100000, "open_book": 100000})
    _one_line(_cli(["plan", "--config", cfg], queue), "1,680 requests", "days of generation", "--yes")
    _one_line(_cli(["enqueue", "--config", cfg], queue), "1,680 requests", "--yes")
    assert _cli(["plan", "--config", cfg, "--yes"], queue).returncode == 0


@pytest.mark.unit
def test_enqueue_streams_requests_instead_of_holding_them(tmp_path):
    from config.schema import validate_config_dict
    from producer.inputs.prepare import ensure_prepared
    from producer.planning.enqueue import enqueue_run
    from workers.reconcile import reconcile_run

    def peak_kib(samples: int) -> int:
        cfg = validate_config_dict(offline_config_dict(tmp_path / str(samples), samples_per_item={"0.0": samples},
                                                       sizes={"squad_v2": 10, "triviaqa": 10, "nq_open": 10}))
        ensure_prepared(cfg)
        tracemalloc.start()
        try:
            summary = enqueue_run(cfg, reconcile=reconcile_run)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert summary.total == 60 * samples and summary.registered == 60 * samples
        return peak // 1024

    peak_kib(1)  # imports and caches out of the way
    small, large = peak_kib(10), peak_kib(100)  # 600 and 6,000 requests
    assert large < 2 * small, (small, large)  # ten times the requests, not ten times the memory
