"""``plan`` prints what a run would do for every example config, offline, and writes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.cli import run_cli
from tests.support.paths import FIXTURES
from tests.support.workdirs import make_workdir, snapshot

PHASES = "prepare -> build -> submit"


@pytest.mark.parametrize(
    "ref",
    ["config/eval_config.demo.yaml", "eval_config.yaml", "local.yaml", "local.llamacpp.yaml"],
)
def test_plan_runs_offline_and_writes_nothing(ref: str, tmp_path: Path) -> None:
    work = make_workdir(tmp_path)
    before = snapshot(work)
    proc = run_cli(["plan", "--config", ref], cwd=work)
    missing_model = "check failed: model file not found:" in proc.stdout  # the example names a GGUF not here
    assert proc.returncode == (1 if missing_model else 0), proc.stderr
    assert missing_model == (ref == "local.llamacpp.yaml"), proc.stdout
    assert snapshot(work) == before  # no file or folder appeared or changed
    out = proc.stdout
    for heading in ("backend:", "prompt sets:", "temperatures:", "datasets", "trials:", "total requests:"):
        assert heading in out
    assert out.rstrip().endswith("nothing was written")
    phases = next(line for line in out.splitlines() if line.startswith("phases: "))
    names = [p.split(" (")[0] for p in phases[len("phases: "):].split(" -> ")]
    assert names == ["prepare", "build", "submit", "poll", "parse", "score", "stats", "costs", "report"]


def test_plan_counts_for_demo(tmp_path: Path) -> None:
    proc = run_cli(["plan", "--config", "demo"], cwd=make_workdir(tmp_path))
    out = proc.stdout
    assert "squad_v2  open   34 of 34 items (sample)" in out
    assert "triviaqa  closed 25 of 25 items (sample)" in out
    assert "control 84 requests" in out and "treatment 84 requests" in out
    assert "total requests: 168" in out
    assert "engine llama_cpp, model smollm2" in out


def test_plan_limit_items_and_file_override(tmp_path: Path) -> None:
    work = make_workdir(tmp_path)
    before = snapshot(work)
    nq = FIXTURES / "NQ-open.dev.mini.jsonl"
    proc = run_cli(["plan", "--config", "demo", "--limit-items", "3", "--data", f"nq_open={nq}"], cwd=work)
    assert proc.returncode == 0, proc.stderr
    assert "nq_open   closed 3 of 4 items (file" in proc.stdout
    assert "total requests: 18" in proc.stdout
    assert snapshot(work) == before


def test_plan_hub_without_files_says_size_unknown(tmp_path: Path) -> None:
    proc = run_cli(["plan", "--config", "local.yaml"], cwd=make_workdir(tmp_path))
    assert proc.returncode == 0
    assert "squad_v2  open   size unknown until downloaded, up to 200 items" in proc.stdout
    assert "engine ollama, model llama3.1:8b-instruct-q4_K_M at http://127.0.0.1:11434" in proc.stdout


def test_plan_fireworks_sweep_lists_both_prompt_sets(tmp_path: Path) -> None:
    proc = run_cli(["plan", "--config", "eval_config.yaml", "--data", "squad_v2=sample",
                    "--data", "triviaqa=sample", "--data", "nq_open=sample"], cwd=make_workdir(tmp_path))
    out = proc.stdout
    assert "trials: 2" in out and "prompt set operational_only" in out
    assert "submit (upload + create batch jobs)" in out
    # 84 items; temps 0.0 (K=1) and 0.7 (K=5): (1 + 5) * 2 conditions * 2 trials = 24 requests per item
    assert "total requests: 2,016" in out


def test_plan_json_has_the_same_counts(tmp_path: Path) -> None:
    import json

    work = make_workdir(tmp_path)
    before = snapshot(work)
    proc = run_cli(["plan", "--config", "demo", "--json"], cwd=work)
    assert proc.returncode == 0, proc.stderr
    assert snapshot(work) == before
    data = json.loads(proc.stdout)
    assert data["backend"] == "local" and data["engine"] == "llama_cpp" and data["written"] is False
    assert data["total_requests"] == 168
    assert {d["name"]: d["selected"] for d in data["datasets"]}["squad_v2"] == 34
    counts = data["trials"][0]["counts"]["0.0"]
    assert counts["control"]["requests"] == counts["treatment"]["requests"] == 84
    assert counts["treatment"]["prompt_tokens"] > counts["control"]["prompt_tokens"]
    assert data["estimated_cost"] is None  # a local run is not billed
    text = run_cli(["plan", "--config", "demo"], cwd=work).stdout
    assert f"~{counts['treatment']['prompt_tokens']:,} prompt tokens" in text


def test_plan_shows_fireworks_cost(tmp_path: Path) -> None:
    import json

    from scoring.costs import usd_of

    work = make_workdir(tmp_path)
    args = ["plan", "--config", "eval_config.yaml", "--data", "squad_v2=sample", "--data", "triviaqa=sample",
            "--data", "nq_open=sample"]
    data = json.loads(run_cli([*args, "--json"], cwd=work).stdout)
    cost = data["estimated_cost"]
    trials = data["trials"]
    prompt = sum(c["prompt_tokens"] for t in trials for temp in t["counts"].values() for c in temp.values())
    completion = sum(c["max_completion_tokens"] for t in trials for temp in t["counts"].values()
                     for c in temp.values())
    assert (cost["prompt_tokens"], cost["max_completion_tokens"]) == (prompt, completion)
    assert prompt > 0 and completion > 0
    from config.schema import Pricing

    pricing = Pricing(input_per_mtok=cost["input_per_mtok"], output_per_mtok=cost["output_per_mtok"],
                      batch_discount=cost["batch_discount"])
    assert cost["usd"] == pytest.approx(usd_of(prompt, completion, 0, pricing, pricing.batch_discount), abs=1e-4)
    assert 0 < cost["usd"] < usd_of(prompt, completion, 0, pricing, 1.0)  # the batch discount applies
    text = run_cli(args, cwd=work).stdout
    assert f"estimated cost: up to ${cost['usd']:,.2f} (Fireworks batch" in text
    unknown = run_cli(["plan", "--config", "eval_config.yaml"], cwd=work).stdout
    assert "estimated cost: unknown until the datasets are downloaded" in unknown


def test_plan_says_what_each_metric_can_detect_and_what_an_effect_needs(tmp_path: Path) -> None:
    """Issue 27, item 3: the minimum detectable effect per primary metric at the configured sizes, and
    with --effect the items needed, from the exact McNemar power (scoring/power.py)."""
    from scoring.power import items_needed

    work = make_workdir(tmp_path)
    args = ["plan", "--config", "eval_config.yaml", "--data", "squad_v2=sample", "--data", "triviaqa=sample",
            "--data", "nq_open=sample", "--discordance", "0.2", "--effect", "10"]
    out = run_cli(args, cwd=work)
    assert out.returncode == 0, out.stdout + out.stderr
    head = next(ln for ln in out.stdout.splitlines() if ln.startswith("power (exact McNemar, 80%"))
    assert "discordance 0.2 assumed" in head and "the FDR family of" in head
    m = int(head.split("the FDR family of ")[1].split()[0])
    assert "EM on 50 closed-book items: detects" in out.stdout  # TriviaQA 25 + NQ-Open 25 samples
    need = items_needed(0.10, 0.2, 0.05 / m)
    assert f"a change of 10 points needs {need:,} paired items" in out.stdout


def test_plan_exits_non_zero_when_the_run_could_not_start(tmp_path: Path) -> None:
    """Issue 29, item 3: a missing model file exited 0; the plan is still shown."""
    import yaml

    from tests.support.offline_config import offline_config_dict

    raw = offline_config_dict(tmp_path, local_engine="llama_cpp", local_model=str(tmp_path / "missing.gguf"))
    cfg = tmp_path / "missing.yaml"
    cfg.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    out = run_cli(["plan", "--config", str(cfg)], cwd=tmp_path)
    assert out.returncode == 1, out.stdout + out.stderr
    assert f"check failed: model file not found: {tmp_path / 'missing.gguf'}" in out.stdout
    assert "total requests:" in out.stdout and "Traceback" not in out.stderr


def test_prompt_set_and_model_are_picked_on_the_command_line(tmp_path: Path) -> None:
    """Issue 29, item 3: one YAML, several prompt pairs and models (`--prompt-set`, `--model`)."""
    from tests.support.paths import ROOT

    demo = str(ROOT / "config" / "eval_config.demo.yaml")
    out = run_cli(["plan", "--config", demo, "--prompt-set", "operational_only", "--model", "smollm2"], cwd=ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "trial smollm2-operational_only: model smollm2, prompt set operational_only" in out.stdout
    bad = run_cli(["plan", "--config", demo, "--prompt-set", "nope"], cwd=ROOT)
    assert bad.returncode == 2 and bad.stderr.strip() == ("error: no prompt set 'nope' in the config (it has: "
                                                          "cautious, default, operational_only)")
