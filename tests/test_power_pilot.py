"""``plan --pilot RUN_ID`` (issue 27, item 3): the detectable change and the items an effect needs come
from the pilot run's observed discordance and design effect (clustering by paragraph), not the assumed
--discordance; a bad pilot id is one line and exit 2. In process (click's runner), on real files."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from click.testing import CliRunner

from config.atomic import write_json_atomic
from config.schema import StatsConfig
from producer.cli import main as producer_main
from producer.planning.power_plan import read_pilot
from scoring.power import items_needed, min_detectable_effect
from scoring.stats import build_significance
from tests.support.stats_frames import synthetic
from tests.support.workdirs import make_workdir, snapshot

pytestmark = pytest.mark.unit

DATA = ["--data", "squad_v2=sample", "--data", "triviaqa=sample", "--data", "nq_open=sample"]


def _pilot(work: Path, run_id: str = "pilot1") -> dict:
    """A pilot run folder with one analysed trial whose open-book items sit 5 to a paragraph."""
    per_item = synthetic(150, seed=9)
    keys = sorted(per_item["item_key"].unique())
    paragraphs = {k: f"p{i // 5}" for i, k in enumerate(keys) if k.startswith("squad_v2")}
    sig = build_significance(per_item, StatsConfig(bootstrap_samples=200, permutation_samples=200), paragraphs)
    write_json_atomic(work / "experiments" / f"run_{run_id}" / "trial-a" / "results" / "significance.json", sig)
    return sig


def _plan(work: Path, monkeypatch: pytest.MonkeyPatch, *extra: str):
    monkeypatch.chdir(work)
    return CliRunner().invoke(producer_main, ["plan", "--config", "eval_config.yaml", *DATA, *extra])


def test_plan_uses_the_pilots_discordance_and_design_effect(tmp_path, monkeypatch):
    work = make_workdir(tmp_path)
    sig = _pilot(work)
    pooled = {}
    for per_type in sig["results"].values():
        for type_, block in per_type.items():
            n, disc = block["n_items"], block["mcnemar"]["b"] + block["mcnemar"]["c"]
            sq = disc * (block["clustered"]["mcnemar"]["design_effect"] or 1.0)
            acc = pooled.setdefault(type_, [0, 0, 0.0])
            acc[0], acc[1], acc[2] = acc[0] + n, acc[1] + disc, acc[2] + sq
    psi = {t: d / n for t, (n, d, _) in pooled.items()}
    deff = {t: max(1.0, sq / d) for t, (_, d, sq) in pooled.items()}
    assert deff["closed"] == 1.0  # closed-book items are their own clusters

    pilot = read_pilot(work / "experiments", "pilot1")
    assert {t: p.discordance for t, p in pilot.types.items()} == pytest.approx(psi)
    assert {t: p.design_effect for t, p in pilot.types.items()} == pytest.approx(deff)

    before = snapshot(work)
    out = _plan(work, monkeypatch, "--pilot", "pilot1", "--effect", "10")
    assert out.exit_code == 0, out.output
    assert snapshot(work) == before  # plan writes nothing
    head = next(ln for ln in out.output.splitlines() if ln.startswith("power (exact McNemar, 80%"))
    assert "from pilot run pilot1 (1 trial:" in head and "assumed" not in head
    assert f"open-book discordance {psi['open']:.3g} and design effect {deff['open']:.2f}" in head
    assert f"  pilot: {Path('experiments') / 'run_pilot1'}" in out.output
    m = int(head.split("the FDR family of ")[1].split()[0])
    alpha = 0.05 / m
    mde = min_detectable_effect(int(50 / deff["closed"]), psi["closed"], alpha)
    said = f"a change of {100 * mde:.1f} points" if mde is not None else "no change at all (too few items)"
    assert f"EM on 50 closed-book items: detects {said}" in out.output
    for type_ in ("open", "closed"):
        if 0.10 <= psi[type_]:
            need = math.ceil(items_needed(0.10, psi[type_], alpha) * deff[type_])
            assert f"a change of 10 points needs {need:,} paired items per metric and block ({type_}-book)" in out.output


@pytest.mark.parametrize("run_id", ["nope", "../etc"])
def test_a_bad_pilot_id_is_one_line_and_exit_2(run_id, tmp_path, monkeypatch):
    work = make_workdir(tmp_path)
    _pilot(work)
    out = _plan(work, monkeypatch, "--pilot", run_id)
    assert out.exit_code == 2
    lines = [ln for ln in out.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in out.output, out.output
    assert "pilot run 'nope' not found" in lines[0] if run_id == "nope" else "invalid run id" in lines[0]


def test_a_pilot_without_statistics_is_refused(tmp_path, monkeypatch):
    work = make_workdir(tmp_path)
    (work / "experiments" / "run_empty" / "trial-a" / "results").mkdir(parents=True)
    out = _plan(work, monkeypatch, "--pilot", "empty")
    assert out.exit_code == 2 and "has no significance.json yet" in out.output
