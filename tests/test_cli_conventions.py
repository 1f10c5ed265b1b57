"""One command line: every command answers ``-h``, shows only kebab-case options, accepts the snake_case
spelling of each multi-word option as a hidden alias, and looks ``--config NAME`` up in config/.

The scoring stages are subcommands of ``python -m producer`` and ``python -m scoring.<stage>`` runs the
same click command (an alias scripts and the docs use)."""

from __future__ import annotations

import re
import sys

import click
import pytest
from click.testing import CliRunner

from producer.cli import COMMANDS, load_command, main
from tests.support.cli import PY_FLAGS, cli_env
from tests.support.paths import ROOT

ALIASES = {"scoring.score_predictions": "score", "scoring.stats": "stats", "scoring.costs": "costs",
           "scoring.report": "report", "scoring.summary": "summary"}
SNAKE_IN_HELP = re.compile(r"(?<![\w-])--\w*_\w*")


def _options(command: click.Command) -> list[click.Option]:
    return [p for p in command.params if isinstance(p, click.Option)]


def _long(option: click.Option) -> list[str]:
    return [o for o in (*option.opts, *option.secondary_opts) if o.startswith("--")]


def _args_for(option: click.Option, spelling: str) -> list[str]:
    return [spelling] if option.is_flag or option.count else [spelling, "1"]


@pytest.mark.unit
def test_every_command_is_registered_and_the_scoring_stages_are_subcommands() -> None:
    assert set(ALIASES.values()) | {"analyse", "run", "plan", "doctor"} <= set(COMMANDS)
    assert not any(target.startswith(("producer.cmd_", "scoring.")) for target in COMMANDS.values())


@pytest.mark.unit
@pytest.mark.parametrize("name", [None, *sorted(COMMANDS)])
def test_h_works_in_the_group_and_alone(name: str | None) -> None:
    argv = ["-h"] if name is None else [name, "-h"]
    res = CliRunner().invoke(main, argv, prog_name="python -m producer")
    assert res.exit_code == 0, res.output
    assert "Usage: python -m producer" in res.output
    if name is not None:  # the command on its own too (python -m scoring.<stage> runs it that way)
        alone = CliRunner().invoke(load_command(name), ["-h"])
        assert alone.exit_code == 0 and "Usage:" in alone.output, alone.output


@pytest.mark.unit
@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_visible_options_are_kebab_case(name: str) -> None:
    command = load_command(name)
    declared = [o for opt in _options(command) for o in _long(opt) if "_" in o]
    assert not declared, f"{name}: snake_case options declared: {declared}"
    shown = SNAKE_IN_HELP.findall(CliRunner().invoke(main, [name, "--help"]).output)
    assert not shown, f"{name} --help shows {shown}"


MULTI_WORD = [(name, opt.name) for name in sorted(COMMANDS) for opt in _options(load_command(name))
              if any("-" in o[2:] for o in _long(opt))]


@pytest.mark.unit
def test_most_commands_have_multi_word_options() -> None:
    assert len({name for name, _ in MULTI_WORD}) >= 12


@pytest.mark.unit
@pytest.mark.parametrize(("name", "param"), MULTI_WORD, ids=[f"{n}:{p}" for n, p in MULTI_WORD])
def test_snake_case_alias_is_accepted(name: str, param: str) -> None:
    command = load_command(name)
    option = next(o for o in _options(command) if o.name == param)
    kebab = next(o for o in _long(option) if "-" in o[2:])
    snake = "--" + kebab[2:].replace("-", "_")
    as_kebab = command.make_context(name, _args_for(option, kebab), resilient_parsing=True).params[param]
    as_snake = command.make_context(name, _args_for(option, snake), resilient_parsing=True).params[param]
    assert as_snake == as_kebab and as_kebab not in (None, False, ())
    if not option.is_flag:  # --snake_case=value too
        eq = command.make_context(name, [f"{snake}=1"], resilient_parsing=True).params[param]
        assert eq == as_kebab


@pytest.mark.unit
def test_alias_rewriting_leaves_unknown_options_and_arguments_alone() -> None:
    res = CliRunner().invoke(main, ["stats", "--no_such_option", "x"])
    assert res.exit_code == 2 and "--no_such_option" in res.output
    res = CliRunner().invoke(main, ["analyse", "--results_di", "x"])  # suggestions show the visible spelling
    assert res.exit_code == 2 and "'--results-dir'" in res.output and "--results_dir" not in res.output
    res = CliRunner().invoke(main, ["parse", "--results-jsonl", "--out_csv", "--out-csv", "o.csv"])
    assert "results file not found: --out_csv" in res.output  # a value is never rewritten


CONFIG_COMMANDS = sorted(n for n in COMMANDS if "--config" in {o for p in _options(load_command(n)) for o in p.opts})


@pytest.mark.unit
def test_config_commands_include_the_scoring_stages() -> None:
    assert {"analyse", "score", "stats", "costs", "report", "plan", "run", "doctor"} <= set(CONFIG_COMMANDS)


@pytest.mark.unit
@pytest.mark.parametrize("name", CONFIG_COMMANDS)
def test_config_name_is_looked_up_in_config_folder(name: str) -> None:
    command = load_command(name)
    required = [a for o in _options(command) if o.required for a in (_long(o)[0], "x")]
    res = CliRunner().invoke(main, [name, *required, "--config", "no_such_config_name"])
    assert res.exit_code == 2, res.output
    assert "config error: no_such_config_name: <file>: not found (also looked for " \
           "eval_config.no_such_config_name in config" in res.output


@pytest.mark.unit
def test_scoring_stage_finds_a_config_by_name(tmp_path) -> None:
    res = CliRunner().invoke(main, ["stats", "--per-item-csv", str(tmp_path / "missing.csv"), "--config", "demo",
                                    "--out-path", str(tmp_path / "s.json")])
    assert res.exit_code == 2 and "per-item scores not found" in res.output, res.output


@pytest.mark.parametrize("module", sorted(ALIASES))
def test_scoring_module_is_an_alias_of_its_subcommand(module: str) -> None:
    import subprocess

    proc = subprocess.run([sys.executable, *PY_FLAGS, "-m", module, "-h"], cwd=ROOT, env=cli_env(),
                          capture_output=True, text=True, encoding="utf-8", timeout=120)
    assert proc.returncode == 0, proc.stderr[-800:]
    assert f"Usage: python -m {module}" in proc.stdout
    ours = CliRunner().invoke(load_command(ALIASES[module]), ["-h"], prog_name=f"python -m {module}").output
    assert proc.stdout.split() == ours.split()  # the same command (line wrapping depends on the terminal)
