"""Read one NVIDIA GPU through NVML (the ``pynvml`` module of ``nvidia-ml-py``).

Why: the GPU worker wants VRAM, utilisation, power and temperature every 250 ms without ever
failing the run. Every NVML problem (package missing, no driver, no device, a query the card does not
support) becomes ``available = False`` with a one-line ``reason``, or a ``None`` field.

The NVML library object is injectable (``GpuReader(library=...)``): anything with pynvml's function
names (``nvmlInit``, ``nvmlDeviceGetHandleByIndex``, ``nvmlDeviceGetMemoryInfo`` ...) works, so tests can
hand in a fake library at exactly the pynvml boundary.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any

from config.wording import plural

MIB = 1024 * 1024
NVML_TEMPERATURE_GPU = 0  # pynvml.NVML_TEMPERATURE_GPU


@dataclass(frozen=True)
class GpuReading:
    """One NVML reading; a field is None when the card does not report it."""

    mem_used_mib: float | None
    mem_total_mib: float | None
    mem_free_mib: float | None
    util_pct: float | None
    power_w: float | None
    temp_c: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def device_index_from_env(env: dict[str, str] | None = None) -> int:
    """The NVML index of the device this process uses: the first entry of CUDA_VISIBLE_DEVICES
    when it is a plain index, else 0. (NVML ignores CUDA_VISIBLE_DEVICES, CUDA does not.)"""
    env = os.environ if env is None else env
    raw = (env.get("CUDA_VISIBLE_DEVICES") or "").strip()
    first = raw.split(",")[0].strip() if raw else ""
    return int(first) if first.isdigit() else 0


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    msg = text[0] if text else ""
    return f"{exc.__class__.__name__}: {msg}" if msg else exc.__class__.__name__


class GpuReader:
    """Opens NVML once, reads one device, never raises after construction.

    ``library``: a pynvml-like module/object; None imports ``pynvml``. ``device_index``: None reads
    CUDA_VISIBLE_DEVICES (first index) or 0.
    """

    def __init__(self, library: Any = None, device_index: int | None = None) -> None:
        self.available = False
        self.reason: str | None = None
        self.device_name: str | None = None
        self.device_index = device_index_from_env() if device_index is None else device_index
        self._lib = library
        self._handle: Any = None
        self._open()

    def _open(self) -> None:
        if self._lib is None:
            try:
                import pynvml  # nvidia-ml-py

                self._lib = pynvml
            except Exception as exc:  # ImportError, or a broken install
                self.reason = f"NVML unavailable: pynvml import failed ({_one_line(exc)})"
                return
        try:
            self._lib.nvmlInit()
        except Exception as exc:  # pynvml.NVMLError (driver/library not found, ...)
            self.reason = f"NVML unavailable: nvmlInit failed ({_one_line(exc)})"
            self._lib = None
            return
        try:
            count = int(self._lib.nvmlDeviceGetCount())
            if count <= 0:
                raise LookupError("no NVIDIA device found")
            if self.device_index >= count:
                raise LookupError(f"device index {self.device_index} but only {plural(count, 'device')}")
            self._handle = self._lib.nvmlDeviceGetHandleByIndex(self.device_index)
            name = self._lib.nvmlDeviceGetName(self._handle)
            self.device_name = name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name)
        except Exception as exc:
            self.reason = f"NVML unavailable: {_one_line(exc)}"
            self._shutdown()
            return
        self.available = True

    def _query(self, fn: str, *args: Any) -> Any:
        try:
            return getattr(self._lib, fn)(self._handle, *args)
        except Exception:  # NVML_ERROR_NOT_SUPPORTED on some laptops (power), or a transient error
            return None

    def read(self) -> GpuReading | None:
        """One reading, or None when NVML is unavailable."""
        if not self.available:
            return None
        mem = self._query("nvmlDeviceGetMemoryInfo")
        util = self._query("nvmlDeviceGetUtilizationRates")
        power_mw = self._query("nvmlDeviceGetPowerUsage")
        temp = self._query("nvmlDeviceGetTemperature", NVML_TEMPERATURE_GPU)
        return GpuReading(
            mem_used_mib=mem.used / MIB if mem is not None else None,
            mem_total_mib=mem.total / MIB if mem is not None else None,
            mem_free_mib=mem.free / MIB if mem is not None else None,
            util_pct=float(util.gpu) if util is not None else None,
            power_w=power_mw / 1000.0 if power_mw is not None else None,
            temp_c=float(temp) if temp is not None else None,
        )

    def _shutdown(self) -> None:
        if self._lib is not None:
            try:
                self._lib.nvmlShutdown()
            except Exception:
                pass
        self._lib = None
        self._handle = None

    def close(self) -> None:
        """Release NVML (idempotent)."""
        self._shutdown()
        self.available = False

    def __enter__(self) -> GpuReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def free_vram_mib(library: Any = None, device_index: int | None = None) -> tuple[float | None, str | None]:
    """(free MiB, None) of the device in use, or (None, reason) when NVML cannot tell."""
    with GpuReader(library, device_index) as reader:
        reading = reader.read()
        if reading is None:
            return None, reader.reason
        return reading.mem_free_mib, None


def driver_cuda_version(library: Any = None) -> str | None:
    """The newest CUDA version the installed driver supports ("12.4"), from
    ``nvmlSystemGetCudaDriverVersion``; None without NVML. A CUDA wheel newer than this cannot run, and on
    a card newer than the wheel's code (sm_120) the driver must JIT its PTX, which needs it too."""
    with GpuReader(library) as reader:
        if reader._lib is None:
            return None
        try:
            version = int(reader._lib.nvmlSystemGetCudaDriverVersion())
        except Exception:  # noqa: BLE001 - old drivers lack the call
            return None
        return f"{version // 1000}.{version % 1000 // 10}"
