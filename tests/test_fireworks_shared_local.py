"""Shared controls on the local backend: a sweep over two treatment prompts generates each control
request once (real queue, real worker pool, dry-run engine); the reusing trial says so."""

from __future__ import annotations

import json
import sqlite3

from tests.support.fireworks_runs import SIZES, fw_env, read_predictions_csv, run_dir_of, run_producer
from tests.support.offline_config import offline_config_dict


def test_local_sweep_generates_shared_controls_once(tmp_path):
    import yaml

    alt = tmp_path / "alt_treatment.txt"
    alt.write_text("Say you do not know unless you are sure.", encoding="utf-8")
    raw = offline_config_dict(tmp_path, sizes=SIZES)
    raw["prompt_sets"]["alt"] = {"control": raw["prompt_sets"]["default"]["control"], "treatment": str(alt)}
    raw["sweep"] = {"prompt_sets": ["default", "alt"]}
    cfg = tmp_path / "local.yaml"
    cfg.write_text(yaml.safe_dump(raw), encoding="utf-8")
    proc = run_producer(tmp_path, fw_env(tmp_path, None), "run", "--config", str(cfg), "-w", "1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run = run_dir_of(tmp_path)
    n = sum(SIZES.values())
    db = sqlite3.connect(tmp_path / "queue" / "ledger.sqlite3")
    shared = db.execute("select trial, custom_id, owner_trial from shared_requests").fetchall()
    assert len(shared) == n and all("|control|" in cid for _, cid, _ in shared)
    for trial, cid, owner in shared:
        mine = db.execute("select created_at, worker, text, engine from results where trial = ? and custom_id = ?",
                          (trial, cid)).fetchone()
        theirs = db.execute("select created_at, worker, text from results where trial = ? and custom_id = ?",
                            (owner, cid)).fetchone()
        assert mine[:3] == theirs  # a copy of the one generation, not a second one
        assert json.loads(mine[3])["shared_control_from"] == owner
    db.close()
    (reuser,) = {t for t, _, _ in shared}
    manifest = json.loads((run / reuser / "results" / "trial_manifest.json").read_text(encoding="utf-8"))
    assert manifest["shared_control_from"] == [shared[0][2]]
    for t in (reuser, shared[0][2]):
        assert len(read_predictions_csv(run / t / "results" / "predictions.csv")[1]) == 2 * n
    owner = shared[0][2]
    costs = {t: json.loads((run / t / "results" / "costs.json").read_text(encoding="utf-8")) for t in (reuser, owner)}
    assert costs[reuser]["shared_rows"] == n and costs[owner]["shared_rows"] == 0  # the copies are not billed twice
    paid = [r for r in read_predictions_csv(run / reuser / "results" / "predictions.csv")[1] if "|treatment|" in r["custom_id"]]
    price = costs[reuser]["pricing"]
    expected = sum(int(r["prompt_tokens"]) * price["input_per_mtok"] + int(r["completion_tokens"]) * price["output_per_mtok"]
                   for r in paid) / 1e6
    assert paid and abs(costs[reuser]["usd"] - expected) < 1e-12
    summary = run / "summary.html"  # a run of several trials ends with their comparison
    assert summary.is_file() and reuser in summary.read_text(encoding="utf-8")
    assert f"summary of all trials: {summary}" in proc.stdout
