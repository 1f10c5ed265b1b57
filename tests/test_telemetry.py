"""Telemetry: NVML fallback, a fake NVML library at the pynvml boundary, the ledger store, and the
values flowing into local_costs.json / telemetry.csv."""

from __future__ import annotations

import csv
import json
import os
import sqlite3
import sys
import time
from types import SimpleNamespace

import pytest

from producer.runs.results_io import raw_result_row, read_raw_results
from telemetry.local_costs import TELEMETRY_CSV_COLUMNS, write_local_costs
from telemetry.nvml import GpuReader, device_index_from_env
from telemetry.sampler import Sample, TelemetrySampler
from telemetry.store import TABLE, TelemetryStore, current_rates

MIB = 1024 * 1024


class FakeNvmlError(Exception):
    """Stands in for pynvml.NVMLError."""


class FakeNvml:
    """A pynvml-shaped library object: the functions the reader calls, with fixed readings."""

    NVML_TEMPERATURE_GPU = 0

    def __init__(self, devices: int = 1, used_mib: float = 6000, total_mib: float = 16303, util: int = 87,
                 power_mw: int = 215_000, temp: int = 64, power_supported: bool = True) -> None:
        self.devices = devices
        self.used, self.total = used_mib * MIB, total_mib * MIB
        self.util, self.power_mw, self.temp = util, power_mw, temp
        self.power_supported = power_supported
        self.init_calls = self.shutdown_calls = 0
        self.handles_asked: list[int] = []

    def nvmlInit(self):
        self.init_calls += 1

    def nvmlShutdown(self):
        self.shutdown_calls += 1

    def nvmlDeviceGetCount(self):
        return self.devices

    def nvmlDeviceGetHandleByIndex(self, index):
        self.handles_asked.append(index)
        return ("handle", index)

    def nvmlDeviceGetName(self, handle):
        return b"NVIDIA GeForce RTX 5080 Laptop GPU"

    def nvmlDeviceGetMemoryInfo(self, handle):
        return SimpleNamespace(total=self.total, used=self.used, free=self.total - self.used)

    def nvmlDeviceGetUtilizationRates(self, handle):
        return SimpleNamespace(gpu=self.util, memory=40)

    def nvmlDeviceGetPowerUsage(self, handle):
        if not self.power_supported:
            raise FakeNvmlError("Not Supported")
        return self.power_mw

    def nvmlDeviceGetTemperature(self, handle, sensor):
        assert sensor == self.NVML_TEMPERATURE_GPU
        return self.temp


class FailingInit(FakeNvml):
    def nvmlInit(self):
        raise FakeNvmlError("NVML Shared Library Not Found")


# -- NVML reader --------------------------------------------------------------------------------
@pytest.mark.unit
def test_real_pynvml_without_driver_falls_back_with_reason():
    """This machine has pynvml installed but no NVIDIA driver: the real library must fail soft."""
    reader = GpuReader()
    if reader.available:  # pragma: no cover - only on a GPU machine
        pytest.skip("an NVIDIA GPU is present")
    assert reader.reason.startswith("NVML unavailable: ")
    assert reader.read() is None
    reader.close()


@pytest.mark.unit
def test_pynvml_import_error_falls_back(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # makes `import pynvml` raise ImportError
    reader = GpuReader()
    assert not reader.available
    assert "pynvml import failed" in reader.reason


@pytest.mark.unit
def test_init_error_and_no_device_fall_back():
    r = GpuReader(FailingInit())
    assert not r.available and "nvmlInit failed" in r.reason and "Not Found" in r.reason
    lib = FakeNvml(devices=0)
    r = GpuReader(lib)
    assert not r.available and "no NVIDIA device" in r.reason
    assert lib.shutdown_calls == 1  # initialised, so shut down again


@pytest.mark.unit
def test_fake_library_values_and_device_index(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1,0")
    assert device_index_from_env() == 1
    assert device_index_from_env({"CUDA_VISIBLE_DEVICES": "GPU-1234abcd"}) == 0
    lib = FakeNvml(devices=2, power_supported=False)
    with GpuReader(lib) as reader:
        assert reader.available and reader.device_name.startswith("NVIDIA GeForce RTX 5080")
        reading = reader.read()
    assert lib.handles_asked == [1]
    assert reading.mem_used_mib == pytest.approx(6000) and reading.mem_total_mib == pytest.approx(16303)
    assert reading.util_pct == 87 and reading.temp_c == 64
    assert reading.power_w is None  # unsupported query: None, not a crash
    assert lib.shutdown_calls == 1


# -- sampler --------------------------------------------------------------------------------------
@pytest.mark.unit
def test_sampler_fallback_keeps_cpu_and_ram_and_stops_cleanly():
    batches: list[list[Sample]] = []
    sampler = TelemetrySampler(interval_s=0.02, sink=batches.append, nvml_library=FailingInit(), flush_every=3)
    with sampler:
        x = 0
        for i in range(200_000):  # some CPU work so cpu_pct has something to see
            x += i * i
        sampler.note_request(100, 20)
        time.sleep(0.2)
    assert sampler._thread is None  # joined
    assert not sampler.nvml_available and sampler.nvml_reason.startswith("NVML unavailable")
    flat = [s for b in batches for s in b]
    assert len(flat) >= 5 and flat == sampler.samples()
    assert all(s.gpu_mem_used_mib is None and s.power_w is None for s in flat)
    assert all(s.rss_mib and s.rss_mib > 10 for s in flat)
    assert flat[-1].requests_done == 1 and flat[-1].completion_tokens == 20


def test_sampler_watches_given_pids_and_drops_dead_ones():
    import subprocess

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        sampler = TelemetrySampler(interval_s=1, pids=[os.getpid(), child.pid], enable_gpu=False)
        both = sampler.sample_now().rss_mib
        child.kill()
        child.wait()
        one = sampler.sample_now().rss_mib
        assert both > one > 0
    finally:
        if child.poll() is None:
            child.kill()


@pytest.mark.unit
def test_sink_failure_does_not_stop_sampling():
    def bad_sink(batch):
        raise sqlite3.OperationalError("database is locked")

    with TelemetrySampler(interval_s=0.01, sink=bad_sink, enable_gpu=False, flush_every=1) as s:
        time.sleep(0.1)
    assert len(s.samples()) >= 3


# -- store + local_costs.json ---------------------------------------------------------------------
def _rows(n: int = 20):
    rows = []
    for i in range(n):
        cond = "control" if i % 2 == 0 else "treatment"
        cid = f"squad_v2|q{i // 2}|{cond}|0.0|0|open"
        rows.append(raw_result_row(cid, "Paris", "stop", {"prompt_tokens": 400, "completion_tokens": 10},
                                   f"r{i}", latency_s=0.1 * (i + 1)))
    return rows


@pytest.mark.unit
def test_fake_nvml_values_flow_through_ledger_to_local_costs(tmp_path):
    ledger = tmp_path / "queue" / "ledger.sqlite3"
    store = TelemetryStore(ledger)
    lib = FakeNvml(used_mib=7000, util=90, power_mw=200_000, temp=70)
    sampler = TelemetrySampler(interval_s=0.02, sink=store.sink("run1", "trial-a", os.getpid()),
                               nvml_library=lib, flush_every=4)
    with sampler:
        for _ in range(5):
            sampler.note_request(400, 10)
            time.sleep(0.03)
        lib.used = 8000 * MIB  # VRAM grows mid-run
        time.sleep(0.1)
    assert lib.shutdown_calls == 1
    samples = store.read("run1", "trial-a")
    assert len(samples) == len(sampler.samples()) >= 5
    with sqlite3.connect(ledger) as con:
        assert con.execute(f"SELECT COUNT(*) FROM {TABLE} WHERE pid = ?", (os.getpid(),)).fetchone()[0] == len(samples)
    assert store.read("run1", "other") == []

    results = tmp_path / "results"
    raw = results / "raw_results.jsonl"
    raw.parent.mkdir()
    raw.write_text("".join(json.dumps(r) + "\n" for r in _rows()), encoding="utf-8")
    data = write_local_costs(results, list(read_raw_results(raw)), TelemetryStore(ledger).read("run1", "trial-a"),
                             wall_time_s=60.0, engine={"name": "llama_cpp", "n_ctx": 4096}, model={"name": "smollm2"},
                             gpu_name=sampler.device_name)
    on_disk = json.loads((results / "local_costs.json").read_text(encoding="utf-8"))
    assert on_disk == data
    assert data["requests"] == 20 and data["items"] == 10
    assert data["latency_p50_s"] == pytest.approx(1.05) and data["latency_max_s"] == pytest.approx(2.0)
    assert data["latency_p95_s"] == pytest.approx(1.905) and data["latency_mean_s"] == pytest.approx(1.05)
    assert data["prompt_tokens_per_s"] == pytest.approx(8000 / 60)
    assert data["completion_tokens_per_s"] == pytest.approx(200 / 60)
    assert data["items_per_minute"] == pytest.approx(10.0)
    assert data["nvml_available"] is True and data["nvml_reason"] is None
    assert data["gpu_name"] == "NVIDIA GeForce RTX 5080 Laptop GPU"
    assert data["gpu_mem_max_mib"] == pytest.approx(8000)
    assert 7000 < data["gpu_mem_mean_mib"] < 8000
    assert data["gpu_mem_total_mib"] == pytest.approx(16303)
    assert data["gpu_util_mean_pct"] == pytest.approx(90) and data["power_mean_w"] == pytest.approx(200)
    assert data["temp_max_c"] == pytest.approx(70) and data["rss_max_mib"] > 10
    assert data["engine"] == {"name": "llama_cpp", "n_ctx": 4096}

    with (results / "telemetry.csv").open(encoding="utf-8", newline="") as fh:
        table = list(csv.DictReader(fh))
    assert tuple(table[0].keys()) == TELEMETRY_CSV_COLUMNS
    assert float(table[-1]["gpu_mem_used_mib"]) == pytest.approx(8000)
    assert int(table[-1]["requests_done"]) == 5
    assert any(r["tokens_per_s"] and float(r["tokens_per_s"]) > 0 for r in table)
    assert current_rates(store.latest("run1"))["gpu_mem_used_mib"] == pytest.approx(8000)


@pytest.mark.unit
def test_local_costs_without_nvml_has_null_gpu_fields(tmp_path):
    sampler = TelemetrySampler(interval_s=0.02, nvml_library=FailingInit())
    with sampler:
        time.sleep(0.1)
    data = write_local_costs(tmp_path, _rows(4), sampler.samples(), nvml_reason=sampler.nvml_reason)
    for key in ("gpu_mem_max_mib", "gpu_mem_mean_mib", "gpu_util_mean_pct", "power_mean_w", "temp_max_c"):
        assert data[key] is None
    assert data["nvml_available"] is False and "nvmlInit failed" in data["nvml_reason"]
    assert data["cpu_mean_pct"] is not None and data["rss_max_mib"] > 0
    text = (tmp_path / "local_costs.json").read_text(encoding="utf-8")
    assert '"gpu_mem_max_mib": null' in text


@pytest.mark.unit
def test_local_costs_without_any_samples_uses_latency_sum(tmp_path):
    data = write_local_costs(tmp_path, _rows(4))
    assert data["wall_time_s"] == pytest.approx(1.0) and data["telemetry_samples"] == 0
    assert data["completion_tokens_per_s"] == pytest.approx(40.0)
    lines = (tmp_path / "telemetry.csv").read_text(encoding="utf-8").splitlines()
    assert lines == [",".join(TELEMETRY_CSV_COLUMNS)]


@pytest.mark.unit
def test_current_rates_and_counter_reset():
    def s(t, c):
        return Sample(t, None, None, None, None, None, None, None, 0, 0, c)

    assert current_rates([s(0, 0), s(1, 50), s(2, 100)])["tokens_per_s"] == pytest.approx(50)
    # A restarted worker's counters drop: the window starts at the restart.
    assert current_rates([s(0, 900), s(1, 1000), s(2, 10), s(3, 40)])["tokens_per_s"] == pytest.approx(30)
    assert current_rates([])["tokens_per_s"] is None


@pytest.mark.unit
def test_status_line(tmp_path):
    from telemetry.store import status_line

    ledger = tmp_path / "ledger.sqlite3"
    assert status_line(ledger, "r") is None
    sqlite3.connect(ledger).close()  # a ledger without the samples table: read-only, no error, no table made
    assert status_line(ledger, "r") is None
    with sqlite3.connect(ledger) as con:
        assert con.execute("select count(*) from sqlite_master").fetchone()[0] == 0
    store = TelemetryStore(ledger)
    assert status_line(ledger, "r") is None
    rows = [Sample(100.0 + i, 6144.0, 16303.0, 90.0, 200.0, 60.0, 95.0, 900.0, i, 400 * i, 25 * i) for i in range(5)]
    store.insert_many(rows, "r", "t")
    assert status_line(ledger, "r", now_t=105.0) == \
        "telemetry: 25.0 tokens/s, VRAM 6.0/15.9 GiB, GPU 90%, worker RAM 900 MiB"
    assert status_line(ledger, "r", now_t=404.0).startswith("telemetry (last sample 5 min ago): ")
