"""The shared ``--config`` option (and ``--data`` / ``--limit-items``) for every CLI command.

Why: every command finds configs the same way. ``--config`` takes a path; a bare name that is not a
file is looked up in ``config/`` (the working directory's, then the installed package's), with or
without the ``eval_config.`` prefix and the ``.yaml`` suffix, so ``--config local.yaml`` finds
``config/eval_config.local.yaml``. Without ``--config`` the embedded demo config is used.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from config.errors import ConfigError
from config.schema import EvalConfig, load_config

DEFAULT_CONFIG = "demo"
PACKAGE_CONFIG_DIR = Path(__file__).resolve().parent.parent / "config"


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
    path = resolve_config_path(ref)
    return load_config(path, check_files=check_files), path


def config_option(func: Callable[..., Any] | None = None, *, unless: str | None = None) -> Any:
    """Adds ``--config``; the command receives ``cfg: EvalConfig`` and ``config_path: Path``.

    Put it below ``@one_line_errors`` (or anywhere: config errors become one line either way).
    ``unless="resume"``: when the command's ``resume`` parameter is set, no config is read at all
    (``cfg`` and ``config_path`` are None): a resumed run uses the settings recorded with it, so a
    resume typed in another folder does not trip over the default config's relative paths.
    """
    if func is None:
        return functools.partial(config_option, unless=unless)

    @click.option(
        "--config",
        "config_ref",
        default=None,
        metavar="PATH|NAME",
        help="Config file, or a name looked up in config/ (e.g. local.yaml -> config/eval_config.local.yaml). "
        "Default: the demo config.",
    )
    @functools.wraps(func)
    def wrapper(*args: Any, config_ref: str | None = None, **kwargs: Any) -> Any:
        from producer.console import fail

        if unless is not None and kwargs.get(unless):
            return func(*args, cfg=None, config_path=None, **kwargs)
        try:
            cfg, path = load_config_ref(config_ref)
        except ConfigError as exc:
            fail(str(exc), ConfigError.exit_code)
        return func(*args, cfg=cfg, config_path=path, **kwargs)

    return wrapper


def data_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """Adds repeatable ``--data NAME=SOURCE``; the command receives ``data_overrides: dict[str, str]``."""

    @click.option(
        "--data",
        "data_values",
        multiple=True,
        metavar="NAME=SOURCE",
        help="Override a dataset source: sample, hub, a URL or a file path (e.g. nq_open=NQ-open.dev.jsonl).",
    )
    @functools.wraps(func)
    def wrapper(*args: Any, data_values: tuple[str, ...] = (), **kwargs: Any) -> Any:
        from producer.console import fail
        from producer.datasets.errors import DataError
        from producer.datasets.sources import parse_data_overrides

        try:
            overrides = parse_data_overrides(data_values)
        except DataError as exc:
            fail(f"error: {exc}", 2)
        return func(*args, data_overrides=overrides, **kwargs)

    return wrapper


def limit_items_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """Adds ``--limit-items N`` (items per dataset, not lines); the command receives ``limit_items``."""
    return click.option(
        "--limit-items",
        "limit_items",
        type=click.IntRange(min=0),
        default=None,
        help="Keep at most N items per dataset (after the seeded shuffle).",
    )(func)


def apply_data_overrides(cfg: EvalConfig, overrides: dict[str, str] | None) -> EvalConfig:
    """The config as it effectively ran: ``--data`` overrides written into ``cfg.data``."""
    if not overrides:
        return cfg
    return cfg.model_copy(update={"data": cfg.data.model_copy(update=overrides)})
