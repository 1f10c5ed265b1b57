"""Example configs load; the ``--config`` name lookup; YAML duplicate keys; one-line error format."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.errors import ConfigError
from config.lookup import resolve_config_path
from config.schema import load_config, validate_config_dict
from tests.support.paths import ROOT
from tests.support.workdirs import make_workdir

pytestmark = pytest.mark.unit

EXAMPLES = [
    "eval_config.yaml",
    "eval_config.local.yaml",
    "eval_config.local.llamacpp.yaml",
    "eval_config.demo.yaml",
    "eval_config.demo_prompts.yaml",
    "eval_config.custom.yaml",
    "eval_config.openai.yaml",
    "eval_config.anthropic.yaml",
]


@pytest.mark.parametrize("name", EXAMPLES)
def test_each_example_config_loads(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    cfg = load_config(Path("config") / name)
    for pset in cfg.prompt_sets.values():
        assert pset.control.is_file() and pset.treatment.is_file()


def test_example_configs_have_the_documented_presets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    fw = load_config("config/eval_config.yaml")
    assert fw.backend == "fireworks"
    ollama = load_config("config/eval_config.local.yaml")
    assert (ollama.local_engine, ollama.local_model) == ("ollama", "llama3.1:8b-instruct-q4_K_M")
    assert ollama.local_endpoint == "http://127.0.0.1:11434"
    assert (ollama.n_ctx, ollama.max_concurrent_requests) == (4096, 1)
    llama = load_config("config/eval_config.local.llamacpp.yaml")
    assert llama.local_model == "C:\\models\\llama3.1-8b-instruct-q4_k_m.gguf"
    assert (llama.local_engine, llama.n_gpu_layers, llama.n_ctx) == ("llama_cpp", -1, 4096)
    demo = load_config("config/eval_config.demo.yaml")
    assert demo.local_model == "smollm2" and set(demo.data.model_dump().values()) == {"sample"}


def test_prompts_agree_with_task_instructions_on_abstaining() -> None:
    """Control, treatment and both instructions all name the same abstention: I don't know."""
    texts = [p.read_text(encoding="utf-8") for p in (ROOT / "config" / "prompts").glob("*.txt")]
    texts += [p.read_text(encoding="utf-8") for p in (ROOT / "config" / "task_instructions").glob("*.txt")]
    assert len(texts) >= 5
    for text in texts:
        assert "I don't know." in text


def test_treatment_prompt_is_long_and_control_short() -> None:
    treatment = (ROOT / "config/prompts/treatment_system.txt").read_text(encoding="utf-8")
    control = (ROOT / "config/prompts/control_system.txt").read_text(encoding="utf-8")
    assert 1200 <= len(treatment.split()) <= 1800  # ~1,700 tokens
    assert len(control.split()) < 60


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("local.yaml", "eval_config.local.yaml"),
        ("local", "eval_config.local.yaml"),
        ("eval_config.local.yaml", "eval_config.local.yaml"),
        ("local.llamacpp", "eval_config.local.llamacpp.yaml"),
        ("demo", "eval_config.demo.yaml"),
        (None, "eval_config.demo.yaml"),
    ],
)
def test_config_name_lookup(ref, expected, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    work = make_workdir(tmp_path)
    monkeypatch.chdir(work)
    found = resolve_config_path(ref)
    assert found == Path("config") / expected  # cwd's config/ comes first


def test_config_lookup_falls_back_to_package_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert resolve_config_path("local.yaml").resolve() == (ROOT / "config" / "eval_config.local.yaml").resolve()
    with pytest.raises(ConfigError, match="not found"):
        resolve_config_path("nonexistent.yaml")
    with pytest.raises(ConfigError, match="not found"):
        resolve_config_path("some/dir/missing.yaml")


def test_duplicate_yaml_keys_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    path = tmp_path / "dup.yaml"
    path.write_text("temps: [0.0]\nseed: 1\nseed: 2\n", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert "seed: duplicate key on line 3 (first on line 2)" in str(err.value)


def test_model_level_errors_name_their_field_and_do_not_echo_the_config() -> None:
    raw = {"backend": "local", "local_engine": "ollama", "local_model": "m"}
    with pytest.raises(ConfigError) as err:
        validate_config_dict(raw, "c.yaml", check_files=False)
    assert str(err.value) == "config error: c.yaml: local_endpoint: local_engine ollama needs local_endpoint"
    raw = {"prompt_sets": {"a": {"control": "x", "treatment": "y"}}}
    with pytest.raises(ConfigError) as err:
        validate_config_dict(raw, "c.yaml", check_files=False)
    assert str(err.value) == "config error: c.yaml: default_prompt_set: 'default' is not one of ['a']"


def test_effective_config_dump_loads_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """model_dump(mode='json') of every example is a valid config (effective_config.yaml relies on it)."""
    monkeypatch.chdir(ROOT)
    for name in EXAMPLES:
        cfg = load_config(Path("config") / name)
        again = validate_config_dict(cfg.model_dump(mode="json"), "dump")
        assert again == cfg


def test_every_config_field_is_documented() -> None:
    """docs/configuration.md names every field of every config section."""
    from pydantic import BaseModel

    from config.schema import EvalConfig

    doc = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    missing = []

    def walk(model: type[BaseModel]) -> None:
        for name, field in model.model_fields.items():
            if f"`{name}" not in doc and f".{name}`" not in doc and f"`{name}`" not in doc:
                missing.append(f"{model.__name__}.{name}")
            for arg in [field.annotation, *getattr(field.annotation, "__args__", ())]:
                if isinstance(arg, type) and issubclass(arg, BaseModel):
                    walk(arg)

    walk(EvalConfig)
    assert not missing, missing


def test_data_folders_follow_data_dir_unless_given() -> None:
    from pathlib import PureWindowsPath

    from config.schema import validate_config_dict

    paths = validate_config_dict({"local_engine": "dry_run", "paths": {"data_dir": "D:/eval data", "prepared_dir": "P"}},
                                 check_files=False).paths
    assert PureWindowsPath(str(paths.raw_dir)) == PureWindowsPath("D:/eval data/raw")
    assert PureWindowsPath(str(paths.batch_inputs_dir)) == PureWindowsPath("D:/eval data/batch_inputs")
    assert str(paths.prepared_dir) == "P"  # given explicitly: kept
