"""One owner per fact: the conditions, the temperature label, the engine names, the GGUF reader and the
llama-cpp-python import each live in one place, at a layer every user may import."""

from __future__ import annotations

import ast
import re
import typing

import pytest

from config.engines import ENGINE_NAMES, ENGINES, HTTP_ENGINES
from config.schema import EvalConfig
from tests.support.paths import ROOT
from workers.engines.registry import engine_class

pytestmark = pytest.mark.unit

PACKAGES = ("config", "producer", "workers", "scoring", "telemetry")
NEVER_IMPORT_WORKERS = ("config", "scoring", "telemetry")


def product_sources() -> dict[str, str]:
    return {p.relative_to(ROOT).as_posix(): p.read_text(encoding="utf-8")
            for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


@pytest.mark.parametrize("pattern,owner", [
    (r"""\(\s*["']control["'],\s*["']treatment["']\s*\)""", "config/contract.py"),  # CONDITIONS
    (r"repr\(float\((?!T\))", "config/contract.py"),  # temp_label (docstrings may say repr(float(T)))
    (r"""b["']GGUF["']""", "telemetry/gguf.py"),  # the GGUF header reader
    (r"^\s*def import_llama_cpp\(", "config/llama_cpp_import.py"),
    (r"""Literal\[\s*["']llama_cpp["']""", None),  # engine names: config/engines.py only
    (r"""\(\s*["']ollama["'],\s*["']openai_compat["']\s*\)""", None),  # HTTP engines: config/engines.py
    (r"DATASET_TYPE\[", "config/schema.py"),  # a dataset's type: EvalConfig.dataset_type (custom datasets too)
])
def test_each_fact_is_written_once(pattern: str, owner: str | None) -> None:
    where = sorted(name for name, text in product_sources().items() if re.search(pattern, text, re.MULTILINE))
    assert where == ([owner] if owner else []), where


def test_engine_names_come_from_the_one_table() -> None:
    assert typing.get_args(EvalConfig.model_fields["local_engine"].annotation) == ENGINE_NAMES
    assert set(HTTP_ENGINES) == {"ollama", "openai_compat"}
    for name in ENGINES:  # every registered target exists and names itself as registered
        assert engine_class(name).name == name


@pytest.mark.parametrize("package", NEVER_IMPORT_WORKERS)
def test_lower_layers_never_import_workers(package: str) -> None:
    bad = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            bad += [f"{path.relative_to(ROOT).as_posix()}: {n}" for n in names if n.split(".")[0] == "workers"]
    assert not bad, bad
