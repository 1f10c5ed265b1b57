"""Every configured data source is checked before a run (issue 14.1): through the real CLI, real files,
a real parquet file read by the real pyarrow, a real HTTP server on 127.0.0.1 and a closed port.

The documented Ollama config reads TriviaQA from the hub as parquet: with the file cached, `prepare`
must work on a plain install (pyarrow is a base dependency), and `doctor` must say which source cannot
be read and why before any GPU work starts.
"""

from __future__ import annotations

import configparser
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from producer.inputs.datasets.hub import HUB_URLS, file_name_for
from tests.support.offline_config import write_offline_config
from tests.support.paths import FIXTURES, ROOT
from tests.support.servers.llama_server import free_port

NQ_MINI = FIXTURES / "NQ-open.dev.mini.jsonl"


def run_cli(tmp_path: Path, *args: str, extra_path: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "EXCELLENCE_QUEUE_DIR": str(tmp_path / "queue"), "PYTHONIOENCODING": "cp1252"}
    env["PYTHONPATH"] = os.pathsep.join([str(p) for p in (extra_path, ROOT) if p])
    return subprocess.run([sys.executable, "-m", "producer", *args], cwd=tmp_path, capture_output=True, text=True,
                          encoding="cp1252", errors="replace", env=env, timeout=120)


def data_lines(proc: subprocess.CompletedProcess) -> list[str]:
    return [line for line in proc.stdout.splitlines() if "] data: " in line]


def write_triviaqa_parquet(path: Path, n: int = 5) -> Path:
    """The Hugging Face rc.nocontext export's shape (question, question_id, answer.value/aliases)."""
    import pandas as pd

    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [{"question": f"Which number follows {i}?", "question_id": f"tq_{i}",
             "answer": {"value": str(i + 1), "aliases": [str(i + 1), f"number {i + 1}"]}} for i in range(n)]
    pd.DataFrame(rows).to_parquet(path)
    return path


def hub_config(tmp_path: Path, **data: str) -> Path:
    sources = {"squad_v2": "sample", "triviaqa": "hub", "nq_open": "sample", **data}
    return write_offline_config(tmp_path, data=sources)


@pytest.mark.unit
def test_pyarrow_is_a_base_dependency() -> None:
    """`pip install .` (the plain bootstrap) must bring the parquet reader the hub TriviaQA needs."""
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg", encoding="utf-8")
    base = [line.split(">")[0].split("=")[0].strip().lower() for line in cfg["options"]["install_requires"].split("\n")]
    assert "pyarrow" in base


def test_cached_hub_parquet_prepares_and_doctor_reads_it(tmp_path: Path) -> None:
    cached = write_triviaqa_parquet(tmp_path / "data" / "raw" / "triviaqa" / file_name_for(HUB_URLS["triviaqa"]))
    config = hub_config(tmp_path)
    plan = run_cli(tmp_path, "plan", "--config", str(config))
    assert plan.returncode == 0, plan.stdout + plan.stderr
    prep = run_cli(tmp_path, "prepare", "--config", str(config))
    assert prep.returncode == 0, prep.stdout + prep.stderr
    assert "pyarrow" not in prep.stdout + prep.stderr
    doctor = run_cli(tmp_path, "doctor", "--config", str(config))
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    lines = data_lines(doctor)
    assert f"[ OK ] data: triviaqa: hub file (cached) {cached} (5 items)" in lines
    assert any(line.startswith("[ OK ] data: squad_v2: bundled sample ") for line in lines)


def test_unreachable_download_names_the_source_and_the_fix(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/NQ-open.dev.jsonl"
    write_triviaqa_parquet(tmp_path / "data" / "raw" / "triviaqa" / file_name_for(HUB_URLS["triviaqa"]))
    proc = run_cli(tmp_path, "doctor", "--config", str(hub_config(tmp_path, nq_open=url)))
    assert proc.returncode == 1
    nq = [line for line in data_lines(proc) if "nq_open" in line]
    dest = tmp_path / "data" / "raw" / "nq_open" / "NQ-open.dev.jsonl"
    assert nq == [f"[FAIL] data: nq_open: not downloaded yet ({dest} is missing) and the download cannot connect "
                  f"({url}): connect to the internet and run `python -m producer prepare`, or use the bundled "
                  "sample (data.nq_open: sample) or a local file (--data nq_open=PATH)"]
    assert proc.stdout.rstrip().endswith("NOT ready: 1 check failed")
    assert "Traceback" not in proc.stderr


class _Files(BaseHTTPRequestHandler):
    def do_HEAD(self) -> None:  # noqa: N802 - http.server API
        if self.path.endswith(".jsonl"):
            self.send_response(200)
            self.send_header("Content-Length", str(NQ_MINI.stat().st_size))
        else:
            self.send_response(404)
            self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def file_server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Files)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def test_download_reachable_is_ok_and_http_errors_fail(tmp_path: Path, file_server: str) -> None:
    write_triviaqa_parquet(tmp_path / "data" / "raw" / "triviaqa" / file_name_for(HUB_URLS["triviaqa"]))
    ok = run_cli(tmp_path, "doctor", "--config", str(hub_config(tmp_path, nq_open=f"{file_server}/nq.jsonl")))
    nq = [line for line in data_lines(ok) if "nq_open" in line]
    assert ok.returncode == 0, ok.stdout
    assert nq[0].startswith("[ OK ] data: nq_open: will be downloaded to ") and f"({file_server}/nq.jsonl answers" in nq[0]
    bad = run_cli(tmp_path, "doctor", "--config", str(hub_config(tmp_path, nq_open=f"{file_server}/gone.parquet")))
    nq = [line for line in data_lines(bad) if "nq_open" in line]
    assert bad.returncode == 1
    assert nq[0].startswith("[FAIL] data: nq_open: not downloaded yet (") and "answers HTTP 404" in nq[0]


def test_local_file_problems_are_named(tmp_path: Path) -> None:
    write_triviaqa_parquet(tmp_path / "data" / "raw" / "triviaqa" / file_name_for(HUB_URLS["triviaqa"]))
    csv = tmp_path / "nq.csv"
    csv.write_text("question,answer\n", encoding="utf-8")
    broken = tmp_path / "nq.jsonl"
    broken.write_text('{"question": "q", "answer": ["a"]}\nnot json\n', encoding="utf-8")
    cases = {
        str(tmp_path / "missing.jsonl"): f"[FAIL] data: nq_open: data file not found: {tmp_path / 'missing.jsonl'} "
                                         "(or use the bundled sample (data.nq_open: sample) or a local file "
                                         "(--data nq_open=PATH))",
        str(csv): f"[FAIL] data: nq_open: unrecognised format '.csv' for {csv} (expected .jsonl, .parquet)",
        str(broken): f"[FAIL] data: nq_open: {broken}: line 2: malformed JSON (Expecting value)",
    }
    for source, expected in cases.items():
        proc = run_cli(tmp_path, "doctor", "--config", str(hub_config(tmp_path)), "--data", f"nq_open={source}")
        assert proc.returncode == 1
        assert [line for line in data_lines(proc) if "nq_open" in line] == [expected]


def test_parquet_without_a_working_pyarrow_fails_in_doctor(tmp_path: Path) -> None:
    """A broken or missing reader is found by doctor, not half-way through prepare."""
    stub = tmp_path / "stub"
    (stub / "pyarrow").mkdir(parents=True)
    (stub / "pyarrow" / "__init__.py").write_text(
        'raise ImportError("DLL load failed while importing lib: The specified module could not be found.")\n',
        encoding="utf-8")
    write_triviaqa_parquet(tmp_path / "data" / "raw" / "triviaqa" / file_name_for(HUB_URLS["triviaqa"]))
    proc = run_cli(tmp_path, "doctor", "--config", str(hub_config(tmp_path)), extra_path=stub)
    assert proc.returncode == 1
    tq = [line for line in data_lines(proc) if "triviaqa" in line]
    assert tq == ["[FAIL] data: triviaqa: pyarrow cannot be imported (DLL load failed while importing lib: The "
                  "specified module could not be found.): pip install \"pyarrow>=14\""]
