"""One sampler on every engine (issue 23, item 1): the same neutral settings are sent explicitly to
llama.cpp (in process and llama-server), Ollama and OpenAI-compatible servers, and the trial manifest
records them.

Why: Ollama's default repeat_penalty is 1.1 over the last 64 tokens, llama.cpp's 1.0, so a "greedy"
answer depended on the engine; and an empty ``stop`` list replaced the Ollama Modelfile's own stop words.
"""

from __future__ import annotations

import pytest

from config.sampler import NEUTRAL_SAMPLER, effective_sampler
from config.schema import EvalConfig
from producer.runs.manifests import engine_settings
from tests.support.offline_config import offline_config_dict
from workers.engines.base import GenerationParams
from workers.engines.ollama import ollama_options
from workers.engines.openai_compat import chat_payload

pytestmark = pytest.mark.unit

MESSAGES = [{"role": "user", "content": "Hi"}]


def test_the_neutral_sampler_is_the_table_in_docs():
    assert NEUTRAL_SAMPLER == {"min_p": 0.0, "repeat_penalty": 1.0, "presence_penalty": 0.0, "frequency_penalty": 0.0}


def test_openai_compatible_servers_get_the_neutral_penalties_and_no_empty_stop():
    body = chat_payload("m", MESSAGES, GenerationParams(max_tokens=8, temperature=0.0))
    assert {k: body[k] for k in NEUTRAL_SAMPLER} == NEUTRAL_SAMPLER
    assert "stop" not in body and "seed" not in body
    assert chat_payload("m", MESSAGES, GenerationParams(max_tokens=8, temperature=0.0, stop=("\n",)))["stop"] == ["\n"]


def test_ollama_gets_the_same_sampler_under_its_option_names(tmp_path):
    cfg = EvalConfig(**offline_config_dict(tmp_path, local_engine="ollama", local_model="m:1b",
                                           local_endpoint="http://127.0.0.1:9"))
    options = ollama_options(cfg, GenerationParams(max_tokens=8, temperature=0.0))
    assert {k: options[k] for k in NEUTRAL_SAMPLER} == NEUTRAL_SAMPLER
    assert "stop" not in options
    in_process = GenerationParams(max_tokens=8, temperature=0.0).sampling()
    shared = {k: v for k, v in in_process.items() if k in options}
    assert shared == {k: options[k] for k in shared}  # the same values wherever the names agree


@pytest.mark.parametrize("engine", ["llama_cpp", "ollama", "openai_compat"])
def test_the_trial_manifest_records_the_effective_sampler(tmp_path, engine):
    cfg = EvalConfig(**offline_config_dict(tmp_path, local_engine=engine, local_model="m",
                                           local_endpoint="http://127.0.0.1:9"))
    settings = engine_settings(cfg, "m")
    assert settings["sampler"] == effective_sampler(cfg)
    assert settings["sampler"]["repeat_penalty"] == 1.0 and settings["sampler"]["stop"] is None
