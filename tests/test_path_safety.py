"""No name climbs out of experiments/ (issue 12.14): run ids are validated, every name used in a path is
slugged by one rule (producer.runs.layout.safe_slug), archive members are built from slugs.

Real CLI processes on a dry-run config in a temp folder; the escapes are tried as an adversary would.
"""

from __future__ import annotations

import zipfile
from pathlib import Path, PurePosixPath

import pytest
import yaml

from producer.host.console import UserError
from producer.planning.build import base_name
from producer.runs.layout import RunLayout
from tests.support.queue_runs import producer, run_id_of, write_config


def _experiments_entries(tmp: Path) -> list[str]:
    exp = tmp / "experiments"
    return sorted(p.name for p in exp.iterdir()) if exp.is_dir() else []


@pytest.mark.parametrize("cmd", [["run", "--workers", "1"], ["enqueue"]])
def test_run_id_with_dot_dot_is_refused_in_one_line(tmp_path, cmd) -> None:
    cfg = write_config(tmp_path, local_engine="dry_run")
    queue = tmp_path / "queue"
    out = producer([*cmd, "--config", str(cfg), "--dry-run", "--run-id", "a/../../x"], queue)
    assert out.returncode == 2, out.stdout + out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: invalid run id 'a/../../x'"), out.stderr
    assert "Traceback" not in out.stdout + out.stderr
    assert not (tmp_path / "x").exists() and _experiments_entries(tmp_path) == []


def test_archive_run_id_is_validated(tmp_path) -> None:
    out = producer(["archive", "--run-id", "../../etc", "--experiments-dir", str(tmp_path / "experiments")],
                   tmp_path / "queue")
    assert out.returncode == 2 and out.stderr.startswith("error: invalid run id"), out.stderr


@pytest.mark.unit
@pytest.mark.parametrize("bad", ["..", "a/../../x", "a\\b", "../x", "x..y", "", ".hidden", "a b", "C:evil", "x" * 101])
def test_validate_run_id_refuses(bad) -> None:
    from producer.runs.layout import validate_run_id

    with pytest.raises(UserError):
        validate_run_id(bad)
    with pytest.raises(UserError):
        RunLayout(Path("experiments"), bad)


@pytest.mark.unit
@pytest.mark.parametrize("good", ["20260101-120000-abc123", "r1", "my.run_2", "run_20260101T000000Z"])
def test_validate_run_id_accepts(good) -> None:
    from producer.runs.layout import validate_run_id

    assert validate_run_id(good) == good


@pytest.mark.unit
@pytest.mark.parametrize("name", ["..", ".", "../../x", "a/../b", "..\\..\\x", "C:\\x", "CON", "nul.txt", " ", ""])
def test_safe_slug_is_one_safe_path_component(name) -> None:
    from producer.runs.layout import safe_slug

    slug = safe_slug(name)
    assert slug and ".." not in slug and not slug.startswith(".") and "/" not in slug and "\\" not in slug
    assert ":" not in slug and slug.split(".")[0].lower() not in ("con", "nul")
    run_dir = Path("experiments") / "run_r"
    assert (run_dir / slug).resolve().parent == run_dir.resolve()
    assert safe_slug(slug) == slug  # idempotent: one rule, applied twice, changes nothing


@pytest.mark.unit
def test_batch_input_names_are_slugged() -> None:
    name = base_name("../../evil", 0.7, "control")
    assert "/" not in name and ".." not in name and name.endswith("__t0.7__control")


def test_trial_id_dot_dot_stays_inside_its_run_folder(tmp_path) -> None:
    cfg = write_config(tmp_path, local_engine="dry_run", trials=[{"id": ".."}, {"id": "../../up"}])
    queue = tmp_path / "queue"
    out = producer(["enqueue", "--config", str(cfg), "--dry-run"], queue)
    assert out.returncode == 0, out.stdout + out.stderr
    run_id = run_id_of(queue)
    assert _experiments_entries(tmp_path) == [f"run_{run_id}"]  # nothing written into experiments/ itself
    run_dir = tmp_path / "experiments" / f"run_{run_id}"
    manifests = sorted(p.relative_to(run_dir).as_posix() for p in run_dir.glob("*/results/trial_manifest.json"))
    assert len(manifests) == 2, manifests
    assert not (tmp_path / "up").exists()


def test_archive_members_come_from_slugs(tmp_path) -> None:
    """A prompt-set name with ``../`` must not yield archive members that climb out when unpacked."""
    cfg_path = write_config(tmp_path, local_engine="dry_run")
    cfg = yaml.safe_load(cfg_path.read_text(encoding="utf-8"))
    cfg["prompt_sets"] = {"../../evil": cfg["prompt_sets"]["default"]}
    cfg["default_prompt_set"] = "../../evil"
    cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    queue = tmp_path / "queue"
    out = producer(["enqueue", "--config", str(cfg_path), "--dry-run"], queue)
    assert out.returncode == 0, out.stdout + out.stderr
    run_id = run_id_of(queue)
    assert _experiments_entries(tmp_path) == [f"run_{run_id}"]
    zip_path = tmp_path / "out.zip"
    out = producer(["archive", "--run-id", run_id, "--experiments-dir", str(tmp_path / "experiments"),
                    "--out", str(zip_path), "--allow-unfinished"], queue)
    assert out.returncode == 0, out.stdout + out.stderr
    with zipfile.ZipFile(zip_path) as zf:
        names = zf.namelist()
    assert any("/prompts/evil/" in n for n in names), names
    for n in names:
        parts = PurePosixPath(n).parts
        assert parts[0] == f"run_{run_id}" and ".." not in parts and "\\" not in n, n


def test_prompt_sets_whose_names_slug_alike_keep_their_own_files_in_the_archive(tmp_path) -> None:
    """"x/y" and "x-y" both slug to ``x-y`` (issue 30, item 7): one control prompt was silently dropped."""
    cfg_path = write_config(tmp_path, local_engine="dry_run")
    cfg = yaml.safe_load(cfg_path.read_text(encoding="utf-8"))
    other = tmp_path / "other_control.txt"
    other.write_text("Answer briefly. Another control prompt.", encoding="utf-8")
    cfg["prompt_sets"] = {"x/y": cfg["prompt_sets"]["default"],
                          "x-y": {**cfg["prompt_sets"]["default"], "control": str(other)}}
    cfg["default_prompt_set"] = "x/y"
    cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    queue = tmp_path / "queue"
    out = producer(["enqueue", "--config", str(cfg_path), "--dry-run"], queue)
    assert out.returncode == 0, out.stdout + out.stderr
    run_id = run_id_of(queue)
    zip_path = tmp_path / "out.zip"
    out = producer(["archive", "--run-id", run_id, "--experiments-dir", str(tmp_path / "experiments"),
                    "--out", str(zip_path), "--allow-unfinished"], queue)
    assert out.returncode == 0, out.stdout + out.stderr
    with zipfile.ZipFile(zip_path) as zf:
        controls = {n: zf.read(n).decode("utf-8") for n in zf.namelist() if "/prompts/" in n and "/control_" in n}
    assert len(controls) == 2, controls  # one per prompt set, in its own folder
    assert "Another control prompt." in "".join(controls.values())
