"""A UTF-8 BOM (Notepad's "UTF-8 with BOM", Windows PowerShell 5.1 ``Set-Content -Encoding UTF8``)
changes nothing: prompts, task instructions, configs and data files written with one give the very
same requests, prompt hashes and items as the same files without."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from config.schema import load_config, validate_config_dict
from tests.support.offline_config import offline_config_dict
from tests.support.paths import ROOT

pytestmark = pytest.mark.unit

BOM = "\ufeff"


def _with_bom(src: Path, dest: Path, crlf: bool = False) -> Path:
    text = src.read_text(encoding="utf-8")
    if crlf:  # what Set-Content writes on Windows
        text = text.replace("\n", "\r\n")
    dest.write_bytes((BOM + text).encode("utf-8"))
    return dest


def _requests(cfg) -> list[bytes]:
    from producer.inputs.messages import load_prompt_texts
    from producer.inputs.prepare import ensure_prepared
    from producer.inputs.requests_build import iter_trial_requests
    from producer.runs.trials import expand_trials

    items = ensure_prepared(cfg).items
    trial = expand_trials(cfg)[0]
    texts = load_prompt_texts(cfg, trial.prompt_set)
    return [json.dumps(r.body, ensure_ascii=False).encode("utf-8") for r in iter_trial_requests(cfg, trial, items, texts)]


def test_bom_prompt_and_instruction_files_give_identical_messages_and_hashes(tmp_path):
    from producer.runs.manifests import build_trial_manifest, config_fingerprint
    from producer.runs.trials import expand_trials

    prompts, instr = ROOT / "config" / "prompts", ROOT / "config" / "task_instructions"
    plain_dir, bom_dir = tmp_path / "plain", tmp_path / "bom"
    plain_dir.mkdir()
    bom_dir.mkdir()
    files = {"control": prompts / "control_system.txt", "treatment": prompts / "treatment_system.txt",
             "open_book": instr / "open_book.txt", "closed_book": instr / "closed_book.txt"}
    plain = {k: shutil.copyfile(v, plain_dir / v.name) for k, v in files.items()}
    boms = {k: _with_bom(v, bom_dir / v.name, crlf=k == "treatment") for k, v in files.items()}

    def cfg_for(paths: dict[str, Path]):
        return validate_config_dict(offline_config_dict(
            tmp_path, prompt_sets={"default": {"control": str(paths["control"]), "treatment": str(paths["treatment"])}},
            task_instructions={"open_book": str(paths["open_book"]), "closed_book": str(paths["closed_book"])}))

    a, b = cfg_for(plain), cfg_for(boms)
    assert _requests(a) == _requests(b)  # byte-identical messages, control and treatment
    trial = expand_trials(a)[0]
    ma, mb = build_trial_manifest(a, trial, "r1", []), build_trial_manifest(b, trial, "r1", [])
    for key in ("control", "treatment", "open_book_instruction", "closed_book_instruction"):
        assert getattr(ma.prompts, key).sha256 == getattr(mb.prompts, key).sha256, key
        assert getattr(ma.prompts, key).chars == getattr(mb.prompts, key).chars, key
    # the run fingerprint does not see a BOM: saving the same prompt with one does not make it another run
    before = config_fingerprint(a)
    _with_bom(files["control"], plain["control"])
    assert config_fingerprint(a) == before


def test_bom_config_and_data_files_read_like_plain_ones(tmp_path):
    from producer.inputs.datasets.formats import load_nq_open, load_squad_v2, load_triviaqa
    from producer.inputs.datasets.sources import SAMPLE_FILES, SAMPLES_DIR

    cfg = offline_config_dict(tmp_path)
    plain_cfg, bom_cfg = tmp_path / "plain.yaml", tmp_path / "bom.yaml"
    plain_cfg.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    bom_cfg.write_bytes((BOM + yaml.safe_dump(cfg)).encode("utf-8"))
    assert load_config(plain_cfg) == load_config(bom_cfg)
    for dataset, loader in (("squad_v2", load_squad_v2), ("triviaqa", load_triviaqa), ("nq_open", load_nq_open)):
        src = SAMPLES_DIR / SAMPLE_FILES[dataset]
        assert loader(_with_bom(src, tmp_path / src.name, crlf=True)) == loader(src), dataset
