"""How every command finds its config: a path, or a bare name looked up in ``config/``; and ``--data``.

Why here, at the bottom: the producer's commands and ``python -m workers --config`` resolve names the
same way, so the rule lives below both. A bare name that is not a file is looked up in ``config/`` (the
working directory's, then the installed package's), with or without the ``eval_config.`` prefix and the
``.yaml`` suffix, so ``--config local.yaml`` finds ``config/eval_config.local.yaml``. Without a name the
embedded demo config is used.
"""

from __future__ import annotations

from pathlib import Path

from config.errors import ConfigError
from config.schema import EvalConfig, load_config

DEFAULT_CONFIG = "demo"
PACKAGE_CONFIG_DIR = Path(__file__).resolve().parent


def config_search_dirs() -> list[Path]:
    dirs = [Path("config")]
    if PACKAGE_CONFIG_DIR.resolve() != Path("config").resolve():
        dirs.append(PACKAGE_CONFIG_DIR)
    return dirs


def _candidate_names(name: str) -> list[str]:
    names = [name]
    if not name.lower().endswith((".yaml", ".yml")):
        names.append(name + ".yaml")
    for n in list(names):
        if not n.startswith("eval_config."):
            names.append("eval_config." + n)
    return names


def resolve_config_path(ref: str | Path | None) -> Path:
    """A path that exists, else a bare name looked up in ``config/``; ConfigError names what was tried."""
    ref = str(ref) if ref is not None else DEFAULT_CONFIG
    direct = Path(ref)
    if direct.is_file():
        return direct
    is_bare = direct.name == ref and ref not in (".", "..")
    if is_bare:
        for folder in config_search_dirs():
            for name in _candidate_names(ref):
                candidate = folder / name
                if candidate.is_file():
                    return candidate
        looked = ", ".join(str(d) for d in config_search_dirs())
        raise ConfigError(f"config error: {ref}: <file>: not found (also looked for eval_config.{ref} in {looked})")
    raise ConfigError(f"config error: {ref}: <file>: not found")


def load_config_ref(ref: str | Path | None, check_files: bool = True) -> tuple[EvalConfig, Path]:
    """The config a ``--config`` value names (the demo when None), validated, and the file it came from."""
    path = resolve_config_path(ref)
    return load_config(path, check_files=check_files), path


def apply_data_overrides(cfg: EvalConfig, overrides: dict[str, str] | None) -> EvalConfig:
    """The config as it effectively ran: ``--data`` overrides written into ``cfg.data``."""
    if not overrides:
        return cfg
    return cfg.model_copy(update={"data": cfg.data.model_copy(update=overrides)})
