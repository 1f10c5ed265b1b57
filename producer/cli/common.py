"""Options and checks shared by several commands: ``--config``, ``--data``, ``--limit-items``, the run flags.

Why: every command finds configs the same way (config/lookup.py: a path, or a name looked up in
``config/``), so ``--config local.yaml`` means ``config/eval_config.local.yaml`` whichever command it
is given to; ``enqueue`` and ``run`` share their flags and their pre-flight check.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import click

from config.engines import is_batch, uses_model
from config.errors import ConfigError
from config.lookup import load_config_ref, resolve_config_path
from config.schema import EvalConfig
from producer.host.console import fail

CONFIG_HELP = "Config file, or a name looked up in config/ (e.g. local.yaml -> config/eval_config.local.yaml)."


def config_option(func: Callable[..., Any] | None = None, *, unless: str | None = None) -> Any:
    """Adds ``--config``; the command receives ``cfg: EvalConfig`` and ``config_path: Path``.

    Put it below ``@one_line_errors`` (or anywhere: config errors become one line either way).
    ``unless="resume"``: when the command's ``resume`` parameter is set, no config is read at all
    (``cfg`` and ``config_path`` are None): a resumed run uses the settings recorded with it, so a
    resume typed in another folder does not trip over the default config's relative paths.
    """
    if func is None:
        return functools.partial(config_option, unless=unless)

    @click.option("--config", "config_ref", default=None, metavar="PATH|NAME",
                  help=CONFIG_HELP + " Default: the demo config.")
    @functools.wraps(func)
    def wrapper(*args: Any, config_ref: str | None = None, **kwargs: Any) -> Any:
        if unless is not None and kwargs.get(unless):
            return func(*args, cfg=None, config_path=None, **kwargs)
        try:
            cfg, path = load_config_ref(config_ref)
        except ConfigError as exc:
            fail(str(exc), ConfigError.exit_code)
        return func(*args, cfg=cfg, config_path=path, **kwargs)

    return wrapper


def config_path_option(default_help: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Adds an optional ``--config``; the command receives ``config_path: Path | None`` (the file a path
    or name resolves to; None when not given, the command then says what it uses: ``default_help``)."""

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        @click.option("--config", "config_ref", default=None, metavar="PATH|NAME",
                      help=f"{CONFIG_HELP} Default: {default_help}.")
        @functools.wraps(func)
        def wrapper(*args: Any, config_ref: str | None = None, **kwargs: Any) -> Any:
            path = None
            if config_ref is not None:
                try:
                    path = resolve_config_path(config_ref)
                except ConfigError as exc:
                    fail(str(exc), ConfigError.exit_code)
            return func(*args, config_path=path, **kwargs)

        return wrapper

    return decorate


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
        from producer.inputs.datasets.data_errors import DataError  # lazy: --help stays fast
        from producer.inputs.datasets.sources import parse_data_overrides

        try:
            overrides = parse_data_overrides(data_values)
        except DataError as exc:
            fail(f"error: {exc}", 2)
        return func(*args, data_overrides=overrides, **kwargs)

    return wrapper


def pick_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Adds ``--prompt-set NAME`` and ``--model NAME`` (below ``config_option``): one prompt pair or model of
    the config for this command, instead of a YAML per pair (issue 29). The command's ``cfg`` is changed;
    a config with ``trials`` or a ``sweep`` names its own, so the options are refused there."""

    @click.option("--prompt-set", "prompt_set", default=None, metavar="NAME",
                  help="Use this prompt set of the config (its default_prompt_set otherwise).")
    @click.option("--model", "model", default=None, metavar="NAME",
                  help="Use this model (local_model, or model_id for a batch backend) instead of the config's.")
    @functools.wraps(func)
    def wrapper(*args: Any, prompt_set: str | None = None, model: str | None = None, **kwargs: Any) -> Any:
        cfg = kwargs.get("cfg")
        if cfg is not None and (prompt_set or model):
            kwargs["cfg"] = with_picks(cfg, prompt_set, model)
        return func(*args, **kwargs)

    return wrapper


def aa_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """Adds ``--aa`` (below ``config_option``): the config's ``aa: true`` for this command, i.e. control also
    against itself, to measure the noise floor (docs/statistics.md, "Noise floor (A/A)")."""

    @click.option("--aa", "aa", is_flag=True, default=False,
                  help="Also run control against itself (an A/A trial per trial): the noise floor.")
    @functools.wraps(func)
    def wrapper(*args: Any, aa: bool = False, **kwargs: Any) -> Any:
        cfg = kwargs.get("cfg")
        if aa and cfg is None:
            fail("error: --aa applies to a new run (a resumed run keeps the settings it was created with)", 2)
        if aa and not cfg.aa:
            kwargs["cfg"] = cfg.model_copy(update={"aa": True})
        return func(*args, **kwargs)

    return wrapper


def with_picks(cfg: EvalConfig, prompt_set: str | None, model: str | None) -> EvalConfig:
    """``cfg`` with ``--prompt-set`` / ``--model`` applied, validated like the config file; one line if not."""
    if cfg.trials or cfg.sweep:
        fail("error: --prompt-set and --model pick from a config without trials or sweep (those name their own)", 2)
    data = cfg.model_dump(mode="json", exclude_unset=True)
    if prompt_set is not None:
        if prompt_set not in cfg.prompt_sets:
            fail(f"error: no prompt set {prompt_set!r} in the config (it has: {', '.join(cfg.prompt_sets)})", 2)
        data["default_prompt_set"] = prompt_set
    if model is not None:
        data["model_id" if is_batch(cfg.backend) else "local_model"] = model
    try:
        return EvalConfig(**data)
    except (ValueError, ConfigError) as exc:
        fail(f"config error: {' '.join(str(exc).split())[:300]}", 2)
        raise  # for the type checker: fail() exits


def limit_items_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """Adds ``--limit-items N`` (items per dataset, not lines); the command receives ``limit_items``."""
    return click.option(
        "--limit-items",
        "limit_items",
        type=click.IntRange(min=0),
        default=None,
        help="Keep at most N items per dataset (after the seeded shuffle).",
    )(func)


dry_run_option = click.option("--dry-run", is_flag=True, help="Use the dry_run engine (no model): the whole flow offline.")
retry_failed_option = click.option("--retry-failed", is_flag=True, help="Send failed requests of the run again.")
force_option = click.option("--force", is_flag=True,
                            help="Continue --run-id even though the config changed (the run keeps its own settings).")
yes_option = click.option("--yes", is_flag=True,
                          help="Run even when the request count or estimated time looks absurd (see `plan`).")
no_preflight_option = click.option("--no-preflight", is_flag=True,
                                   help="Skip the engine, model, context and disk checks (see `doctor`).")


def preflight(cfg: EvalConfig, skip: bool, check_data: bool = True) -> None:
    """Refuse to start a run that `doctor` would fail (one line, exit 1); show its warnings. ``cfg`` with
    any ``--data`` overrides applied; ``check_data=False`` for a resume (its items are in the ledger)."""
    if skip or not uses_model(cfg):
        return
    from producer.checks.preflight import WARN, ensure_ready  # lazy: --help stays fast

    for check in ensure_ready(cfg, check_data):
        if check.status == WARN:
            click.echo(f"warning: {check.line()}", err=True)

