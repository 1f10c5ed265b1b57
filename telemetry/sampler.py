"""A background sampler: GPU (NVML) + worker processes (psutil) every ``interval_s``.

Why: a long local run needs VRAM, utilisation and tokens/s over time (for ``status`` and the report)
without slowing inference. One daemon thread reads, buffers samples and hands them to ``sink`` in
batches (the ledger store does one INSERT per batch). Stopping is clean: an Event wakes the thread,
it takes a last sample, flushes, closes NVML and is joined.

The inference loop reports finished requests with ``note_request(prompt_tokens, completion_tokens)``;
each sample carries the cumulative counters, so tokens/s over any window is a difference of two rows.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

import psutil

from telemetry.nvml import MIB, GpuReader

log = logging.getLogger(__name__)

Sink = Callable[[list["Sample"]], None]
_warned: set[str] = set()  # "NVML unavailable" is logged once per process, not once per sampler


@dataclass(frozen=True)
class Sample:
    """One row of ``telemetry_samples``: GPU fields are None when NVML is unavailable."""

    t: float  # time.time() (epoch seconds)
    gpu_mem_used_mib: float | None
    gpu_mem_total_mib: float | None
    gpu_util_pct: float | None
    power_w: float | None
    temp_c: float | None
    cpu_pct: float | None  # sum over the watched processes (100 = one core busy)
    rss_mib: float | None  # sum over the watched processes
    requests_done: int
    prompt_tokens: int
    completion_tokens: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class TelemetrySampler:
    """Samples every ``interval_s`` on a daemon thread until ``stop()`` (or the ``with`` block ends).

    ``pids``: processes to watch (default: this one). ``sink``: called with each batch of samples from
    the sampler thread; an exception in it is logged once and the batch dropped (the run goes on).
    ``nvml``: an already-built ``GpuReader`` (kept open on stop unless ``own_nvml``) or None to build one (``nvml_library`` is passed to it,
    the injection point for tests). ``enable_gpu=False`` skips NVML entirely.
    """

    def __init__(
        self,
        interval_s: float = 0.25,
        pids: Iterable[int] | None = None,
        sink: Sink | None = None,
        nvml: GpuReader | None = None,
        nvml_library: Any = None,
        device_index: int | None = None,
        enable_gpu: bool = True,
        flush_every: int = 8,
        keep_last: int = 10_000,
        own_nvml: bool | None = None,
        idle_stop_s: float | None = None,
    ) -> None:
        if interval_s <= 0:
            raise ValueError("interval_s must be > 0")
        self.interval_s = float(interval_s)
        self._sink = sink
        self._flush_every = max(1, int(flush_every))
        self._keep_last = max(1, int(keep_last))
        self._enable_gpu = enable_gpu
        self._nvml = nvml
        self._own_nvml = nvml is None if own_nvml is None else own_nvml  # close only what we opened
        self._nvml_library = nvml_library
        self._device_index = device_index
        self._procs: dict[int, psutil.Process] = {}
        for pid in pids if pids is not None else [psutil.Process().pid]:
            self.add_pid(pid)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._buffer: list[Sample] = []
        self._samples: list[Sample] = []
        self._requests = 0
        self._prompt_tokens = 0
        self._completion_tokens = 0
        self._sink_failed = False
        self._idle_stop_s = idle_stop_s  # stop by itself when no request was noted for this long
        self._last_note = time.monotonic()
        self.nvml_reason: str | None = None
        self.device_name: str | None = None

    # -- inputs from the inference loop -------------------------------------------------------
    def add_pid(self, pid: int) -> None:
        """Watch one more process (CPU% and RSS); a pid that is gone is ignored."""
        try:
            proc = psutil.Process(pid)
            proc.cpu_percent(None)  # prime: psutil's first call always returns 0.0
            self._procs[pid] = proc
        except (psutil.Error, ValueError):
            pass

    def note_request(self, prompt_tokens: int | None, completion_tokens: int | None) -> None:
        """Count one finished request (thread-safe; unknown counts add 0)."""
        with self._lock:
            self._last_note = time.monotonic()
            self._requests += 1
            self._prompt_tokens += int(prompt_tokens or 0)
            self._completion_tokens += int(completion_tokens or 0)

    # -- lifecycle --------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        """True while the sampling thread is alive (False after stop() or an idle stop)."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def nvml_available(self) -> bool:
        return self._nvml is not None and self._nvml.available

    def start(self) -> TelemetrySampler:
        if self._thread is not None:
            return self
        if self._enable_gpu and self._nvml is None:
            self._nvml = GpuReader(self._nvml_library, self._device_index)
        if self._nvml is not None:
            self.nvml_reason = self._nvml.reason
            self.device_name = self._nvml.device_name
            if not self._nvml.available and self._nvml.reason not in _warned:
                _warned.add(self._nvml.reason or "")
                log.info("%s; telemetry keeps CPU/RAM only", self._nvml.reason)  # doctor shows it too
        else:
            self.nvml_reason = "NVML unavailable: GPU telemetry disabled"
        self._stop.clear()
        self._last_note = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="telemetry-sampler", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Wake the thread, let it take a last sample and flush, then close NVML (idempotent)."""
        thread = self._thread
        if thread is None:
            return
        self._stop.set()
        thread.join(timeout)
        self._thread = None
        self.flush()
        if self._nvml is not None and self._own_nvml:
            self._nvml.close()

    def __enter__(self) -> TelemetrySampler:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- outputs ----------------------------------------------------------------------------
    @property
    def latest(self) -> Sample | None:
        with self._lock:
            return self._samples[-1] if self._samples else None

    def samples(self) -> list[Sample]:
        """The last ``keep_last`` samples, oldest first (a copy)."""
        with self._lock:
            return list(self._samples)

    def sample_now(self) -> Sample:
        """Take one sample immediately (also used by the thread)."""
        reading = self._nvml.read() if self._nvml is not None else None
        cpu = rss = None
        for pid, proc in list(self._procs.items()):
            try:
                with proc.oneshot():
                    c = proc.cpu_percent(None)
                    r = proc.memory_info().rss / MIB
                cpu = (cpu or 0.0) + c
                rss = (rss or 0.0) + r
            except psutil.Error:
                self._procs.pop(pid, None)
        with self._lock:
            sample = Sample(
                t=time.time(),
                gpu_mem_used_mib=reading.mem_used_mib if reading else None,
                gpu_mem_total_mib=reading.mem_total_mib if reading else None,
                gpu_util_pct=reading.util_pct if reading else None,
                power_w=reading.power_w if reading else None,
                temp_c=reading.temp_c if reading else None,
                cpu_pct=cpu,
                rss_mib=rss,
                requests_done=self._requests,
                prompt_tokens=self._prompt_tokens,
                completion_tokens=self._completion_tokens,
            )
            self._samples.append(sample)
            if len(self._samples) > self._keep_last:
                del self._samples[: len(self._samples) - self._keep_last]
            self._buffer.append(sample)
            full = len(self._buffer) >= self._flush_every
        if full:
            self.flush()
        return sample

    def _run(self) -> None:
        next_t = time.monotonic()
        while True:
            try:
                self.sample_now()
            except Exception as exc:  # never let telemetry kill the worker
                log.warning("telemetry sample failed: %s", exc)
            if self._stop.is_set():
                break
            if self._idle_stop_s is not None and time.monotonic() - self._last_note > self._idle_stop_s:
                self.flush()  # idle: the worker waits for work; stop sampling until the next request
                break
            next_t += self.interval_s
            delay = next_t - time.monotonic()
            if delay < 0:  # fell behind (suspended laptop): do not burst to catch up
                next_t = time.monotonic()
                delay = 0
            if self._stop.wait(delay):
                try:
                    self.sample_now()  # the last sample carries the final counters
                except Exception:
                    pass
                break

    def flush(self) -> None:
        """Hand buffered samples to the sink now."""
        with self._lock:
            batch, self._buffer = self._buffer, []
        if not batch or self._sink is None:
            return
        try:
            self._sink(batch)
        except Exception as exc:
            if not self._sink_failed:
                log.warning("telemetry sink failed (samples dropped): %s", exc)
            self._sink_failed = True
