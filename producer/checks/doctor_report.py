"""``doctor --json`` / ``--report FILE``: everything a maintainer needs from a user's machine, in one file.

Why: "it hangs on my laptop" is unanswerable without the OS, the Python, the llama-cpp-python build,
the driver, the GPU, the Ollama server and where the queue lives. Every probe here is best effort: a
missing piece becomes ``null`` with an ``error`` string, never an exception. No secrets: values come
only from the allow-listed facts below (never the whole environment), URLs lose any user:password and
query string, and the final text is scrubbed of every secret-looking environment value as a last guard.
The shape is fixed by docs/doctor-report.schema.json (``schema_version`` 1).
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from config.schema import EvalConfig
from producer.checks.verdicts import URL_CREDENTIALS, Check, existing_parent
from producer.host.queue_paths import queue_dir
from workers.engines.registry import doctor_sections

SCHEMA_VERSION = 1
REPORT_PACKAGES = (
    "excellence-experiment", "llama_cpp_python", "nvidia-ml-py", "huey", "pydantic", "click", "pandas", "numpy",
    "scipy", "pyarrow", "requests", "psutil", "PyYAML", "matplotlib", "python-dotenv",
)
# Environment variables worth a maintainer's eye; values are shown (none of them is a secret).
REPORT_ENV = (
    "EXCELLENCE_QUEUE_DIR", "OLLAMA_NUM_PARALLEL", "OLLAMA_HOST", "OLLAMA_MODELS", "OLLAMA_FLASH_ATTENTION",
    "OLLAMA_KV_CACHE_TYPE", "CUDA_PATH", "CUDA_VISIBLE_DEVICES", "PYTHONUTF8", "PYTHONIOENCODING",
    "VIRTUAL_ENV", "CMAKE_ARGS", "FIREWORKS_API_BASE", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY",
)
SECRET_MARKERS = ("KEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL", "AUTH")


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def safe_url(url: str | None) -> str | None:
    """The URL without user:password@ and without a query string (tokens travel there)."""
    if not url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(unparsable URL)"
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _no_credentials(value: str | None) -> str | None:
    """A value with any URL's user:password@ removed (a proxy URL often carries them)."""

    return URL_CREDENTIALS.sub(r"\1", value) if value else value


def _packages() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in REPORT_PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def _decode(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _nvml() -> dict[str, Any]:
    out: dict[str, Any] = {"available": False, "driver_version": None, "cuda_driver_version": None, "gpus": [],
                           "error": None}
    try:
        import pynvml
    except Exception as exc:  # noqa: BLE001
        out["error"] = f"pynvml import failed ({_one_line(exc)})"
        return out
    try:
        pynvml.nvmlInit()
    except Exception as exc:  # noqa: BLE001
        out["error"] = f"nvmlInit failed ({_one_line(exc)})"
        return out
    try:
        out["available"] = True
        out["driver_version"] = _decode(pynvml.nvmlSystemGetDriverVersion())
        cuda = int(pynvml.nvmlSystemGetCudaDriverVersion())  # e.g. 12080 -> "12.8"
        out["cuda_driver_version"] = f"{cuda // 1000}.{cuda % 1000 // 10}"
        for index in range(int(pynvml.nvmlDeviceGetCount())):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            mem = pynvml.nvmlDeviceGetMemoryInfo(handle)
            gpu: dict[str, Any] = {"index": index, "name": _decode(pynvml.nvmlDeviceGetName(handle)),
                                   "memory_total_mib": round(mem.total / 1048576), "memory_free_mib": round(mem.free / 1048576),
                                   "compute_capability": None}
            try:
                major, minor = pynvml.nvmlDeviceGetCudaComputeCapability(handle)
                gpu["compute_capability"] = f"{major}.{minor}"
            except Exception:  # noqa: BLE001 - old drivers
                pass
            out["gpus"].append(gpu)
    except Exception as exc:  # noqa: BLE001
        out["error"] = _one_line(exc)
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:  # noqa: BLE001
            pass
    return out


def _onedrive_roots() -> list[Path]:
    roots = [os.environ.get(n) for n in ("OneDrive", "OneDriveConsumer", "OneDriveCommercial")]
    return [Path(r).resolve() for r in roots if r]


def _is_under(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
        return True
    except ValueError:
        return False


def _windows_drive_type(path: Path) -> str | None:
    if sys.platform != "win32":
        return None
    import ctypes

    names = {0: "unknown", 1: "no root", 2: "removable", 3: "fixed", 4: "network", 5: "cdrom", 6: "ramdisk"}
    anchor = path.anchor or str(path)
    return names.get(int(ctypes.windll.kernel32.GetDriveTypeW(anchor)), "unknown")


NETWORK_FSTYPES = {"nfs", "nfs4", "cifs", "smbfs", "smb3", "afpfs", "sshfs", "fuse.sshfs", "9p", "webdav", "davfs"}


def folder_facts(path: Path) -> dict[str, Any]:
    """Filesystem, network drive, OneDrive and free space of a folder (its nearest existing parent)."""
    import psutil


    where = existing_parent(path)
    out: dict[str, Any] = {"path": str(path), "filesystem": None, "mountpoint": None, "drive_type": None,
                           "network": False, "onedrive": False, "free_mib": None}
    try:
        out["free_mib"] = round(shutil.disk_usage(where).free / 1048576)
    except OSError:
        pass
    try:
        best = None
        for part in psutil.disk_partitions(all=True):
            mount = Path(part.mountpoint)
            if _is_under(where, mount) and (best is None or len(str(mount)) > len(str(best.mountpoint))):
                best = part
        if best is not None:
            out["filesystem"], out["mountpoint"] = best.fstype or None, best.mountpoint
    except Exception:  # noqa: BLE001 - containers without /proc/mounts
        pass
    out["drive_type"] = _windows_drive_type(where)
    unc = str(path).startswith(("\\\\", "//"))
    out["network"] = bool(unc or out["drive_type"] == "network"
                          or (out["filesystem"] or "").lower() in NETWORK_FSTYPES)
    out["onedrive"] = any(_is_under(where, root) for root in _onedrive_roots()) or \
        any(p.lower().startswith("onedrive") for p in where.parts)
    return out


def _secret_values() -> list[str]:
    """Values of secret-looking variables in the environment and in ./.env (never printed; used to scrub)."""
    values = [v for k, v in os.environ.items() if any(m in k.upper() for m in SECRET_MARKERS) and len(v) >= 6]
    env_file = Path(".env")
    if env_file.is_file():
        try:
            from dotenv import dotenv_values

            values += [v for k, v in dotenv_values(env_file, encoding="utf-8-sig").items()
                       if v and any(m in k.upper() for m in SECRET_MARKERS) and len(v) >= 6]
        except Exception:  # noqa: BLE001 - a broken .env is doctor's problem, not the report's
            pass
    return sorted(set(values), key=len, reverse=True)


def scrub(text: str) -> str:
    """Replace any secret value that slipped into ``text`` (an error message quoting a header...)."""
    for value in _secret_values():
        text = text.replace(value, "[redacted]")
    return text


def build_report(cfg: EvalConfig, config_path: Path, checks: list[Check], ready: bool) -> dict[str, Any]:
    """The report (docs/doctor-report.schema.json)."""
    queue = queue_dir(create=False)
    secrets_set = sorted(k for k in os.environ if any(m in k.upper() for m in SECRET_MARKERS))
    return {
        "schema_version": SCHEMA_VERSION,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "config": {"path": str(config_path), "backend": cfg.backend, "local_engine": cfg.local_engine,
                   "model": cfg.model_name(), "local_endpoint": safe_url(cfg.local_endpoint),
                   "n_gpu_layers": cfg.n_gpu_layers, "n_ctx": cfg.n_ctx,
                   "max_concurrent_requests": cfg.static_in_flight()},
        "os": {"system": platform.system(), "release": platform.release(), "version": platform.version(),
               "machine": platform.machine(), "platform": platform.platform()},
        "python": {"version": platform.python_version(), "implementation": platform.python_implementation(),
                   "executable": sys.executable, "in_venv": sys.prefix != sys.base_prefix,
                   "stdout_encoding": getattr(sys.stdout, "encoding", None),
                   "filesystem_encoding": sys.getfilesystemencoding(), "utf8_mode": bool(sys.flags.utf8_mode)},
        "packages": _packages(),
        "nvml": _nvml(),
        **doctor_sections(cfg, safe_url),  # each engine's own object ("llama_cpp", "ollama")
        "queue": folder_facts(queue),
        "experiments": folder_facts(Path(cfg.paths.experiments_dir).resolve()),
        "environment": {name: _no_credentials(os.environ.get(name)) for name in REPORT_ENV},
        "secret_variables_set": secrets_set,  # names only, never values
        "checks": [{"name": c.name, "status": c.status, "detail": c.detail} for c in checks],
        "ready": ready,
    }


def report_json(report: dict[str, Any]) -> str:
    import json

    return scrub(json.dumps(report, indent=2, ensure_ascii=False, default=str)) + "\n"
