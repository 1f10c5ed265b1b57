"""Crash drill: kill -9 the pool, a worker or ``producer run`` at random moments, N cycles, against a
fault-injecting OpenAI-compatible server on 127.0.0.1; then finish the run and count what went wrong.
POSIX also draws ``group`` (kill -9 of the whole process group: a power loss, ``timeout -s KILL``) and
``hup`` (SIGHUP to the group: a closed terminal); every system draws ``outage`` (the server goes away for
3-12 s mid-run and comes back on its port: a crashed or restarted engine).

Why: the queue promises that no result is lost or recorded twice whatever kills it, and that no worker
outlives its pool. This drill tries it the way a long night on a laptop does: kills while workers start,
mid-chunk and mid-request, while the server cuts answers off, resets connections, answers 500, sends
broken JSON and hangs. It prints:

- lost: requests that ended with neither a result nor a recorded failure;
- duplicated: requests with more than one result row or predictions.csv line;
- re-sent: requests the server answered completely more than once (in flight at a kill: sent again,
  recorded once; see docs/architecture.md);
- orphans: workers still alive 10 s after their parent was killed;
- failed: requests failed for good (the injected faults may fail a few; a kill, a group kill, a hang-up
  or an outage shorter than ``outage_wait_s`` must not);
- databases: SQLite's integrity_check of ledger.sqlite3 and huey.sqlite3 after the drill.

Exit status 0 when lost, duplicated and orphans are all 0 and both databases are intact. Bounded: every wait has a deadline, and the
drill stops by itself. Usage (about 5 minutes on 2 cores):

    python tools/crash_drill.py --cycles 20
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import psutil
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.offline_config import offline_config_dict  # noqa: E402
from tests.support.queue_runs import short_prompt_set  # noqa: E402
from tests.support.servers.faulty_openai import FaultPlan, FaultState, FaultyOpenAIServer, parse_shares  # noqa: E402

DEFAULT_FAULTS = "truncate=0.06,reset=0.04,e500=0.05,malformed=0.03,hang=0.02"
ORPHAN_WAIT_S = 10.0
POSIX = sys.platform != "win32"
TARGETS = ("pool", "worker", "run", *(("group", "hup") if POSIX else ()), "outage")


def _env(queue: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["EXCELLENCE_QUEUE_DIR"] = str(queue)
    env.pop("EXCELLENCE_FAULTS", None)
    return env


def _ledger(queue: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(str(queue / "ledger.sqlite3"), timeout=60)
    conn.row_factory = sqlite3.Row
    return conn


def _integrity(queue: Path) -> dict[str, str]:
    """SQLite's own check of each queue database ("ok", or its first complaint)."""
    out = {}
    for name in ("ledger.sqlite3", "huey.sqlite3"):
        conn = sqlite3.connect(str(queue / name), timeout=60)
        try:
            out[name] = str(conn.execute("pragma integrity_check").fetchone()[0])
        except sqlite3.Error as exc:
            out[name] = str(exc)
        finally:
            conn.close()
    return out


def _state(queue: Path, run_id: str) -> str:
    with _ledger(queue) as conn:
        return conn.execute("select state from runs where run_id = ?", (run_id,)).fetchone()[0]


def _write_config(tmp: Path, url: str, temps: int) -> Path:
    cfg = offline_config_dict(
        tmp, local_engine="openai_compat", local_model="smollm2", local_endpoint=f"{url}/v1",
        sizes={"squad_v2": None, "triviaqa": None, "nq_open": None}, temps=[0.0, 0.5, 1.0][:temps],
        samples_per_item={t: 1 for t in ("0.0", "0.5", "1.0")[:temps]},
        request_timeout_s=2.0, max_retries=5, retry_backoff_s=0.05, max_concurrent_requests=2,
    )
    cfg["prompt_sets"] = {"default": short_prompt_set(tmp)}
    path = tmp / "drill.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    return path


def _start(kind: str, queue: Path, run_id: str, log: Path) -> subprocess.Popen:
    if kind == "run":
        args = ["-m", "producer", "run", "--resume", run_id, "--workers", "2", "--no-preflight"]
    else:
        args = ["-m", "workers", "-w", "2"]
    with open(log, "a", encoding="utf-8") as fh:  # its own process group (POSIX): a group kill spares the drill
        return subprocess.Popen([sys.executable, *args], cwd=ROOT, env=_env(queue), stdout=fh,
                                stderr=subprocess.STDOUT, start_new_session=POSIX)


def _stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGINT)  # a normal stop ends the cycle
    try:
        proc.wait(90)
    except subprocess.TimeoutExpired:
        proc.kill()


def _kill_cycle(rng: random.Random, queue: Path, run_id: str, log: Path, kills: Counter, orphans: list[int],
                targets: tuple[str, ...] = TARGETS, outage: Any = None) -> None:
    """One cycle: start a pool or ``producer run``, wait a random moment, kill -9 the parent, a worker or the
    whole group, hang the group up, or take the server away for a few seconds (``outage(seconds)``)."""
    target = rng.choice(targets)
    proc = _start("run" if target in ("run", "group", "hup", "outage") else "pool", queue, run_id, log)
    time.sleep(rng.uniform(0.5, 4.0))
    if target == "outage":
        outage(rng.uniform(3.0, 12.0))
        kills["outage"] += 1
        time.sleep(rng.uniform(1.0, 3.0))
        _stop(proc)
        return
    parent = psutil.Process(proc.pid)
    try:
        kids = parent.children(recursive=True)
    except psutil.NoSuchProcess:
        kids = []
    workers = [k for k in kids if "resource_tracker" not in " ".join(k.cmdline() or [])] if kids else []
    if target == "worker" and workers:
        os.kill(rng.choice(workers).pid, signal.SIGKILL)
        kills["worker"] += 1
        time.sleep(rng.uniform(0.5, 2.0))  # the pool restarts it and reconciles
        kids = parent.children(recursive=True)
        _stop(proc)
    elif target in ("group", "hup"):
        os.killpg(proc.pid, signal.SIGKILL if target == "group" else signal.SIGHUP)  # type: ignore[attr-defined]
        kills[target] += 1
        try:
            proc.wait(90)  # a hang-up stops gracefully: the current requests finish
        except subprocess.TimeoutExpired:
            proc.kill()
    else:
        os.kill(proc.pid, signal.SIGKILL)
        kills["pool" if target != "run" else "run"] += 1
        proc.wait(10)
    _, alive = psutil.wait_procs(kids, timeout=ORPHAN_WAIT_S)
    for p in alive:  # a worker that outlived its parent: counted, then ended so the drill goes on
        try:
            what = " ".join(p.cmdline())[-80:]
        except psutil.Error:
            what = "?"
        print(f"  orphan: pid {p.pid} ({target} killed): {what}", flush=True)
        orphans.append(p.pid)
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass


def _finish(queue: Path, run_id: str, log: Path, tries: int = 6) -> bool:
    """Resume without kills until the run is done (an engine-down stop is resumed again), bounded."""
    for _ in range(tries):
        proc = _start("run", queue, run_id, log)
        try:
            proc.wait(600)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        if _state(queue, run_id) == "done":
            return True
    return False


def _counts(queue: Path, run_id: str, tmp: Path) -> dict[str, int]:
    with _ledger(queue) as conn:
        total = conn.execute("select count(*) from requests where run_id = ?", (run_id,)).fetchone()[0]
        lost = conn.execute(
            "select count(*) from requests q where run_id = ? and state != 'failed' and not exists"
            " (select 1 from results r where r.run_id = q.run_id and r.trial = q.trial and r.custom_id = q.custom_id)",
            (run_id,)).fetchone()[0]
        dup_rows = conn.execute(
            "select count(*) from (select custom_id from results where run_id = ? group by trial, custom_id"
            " having count(*) > 1)", (run_id,)).fetchone()[0]
        failed = conn.execute("select count(*) from requests where run_id = ? and state = 'failed'",
                              (run_id,)).fetchone()[0]
    dup_csv = 0
    for pred in (tmp / "experiments").glob(f"run_{run_id}/*/results/predictions.csv"):
        with pred.open("r", encoding="utf-8", newline="") as fh:
            ids = Counter(row["custom_id"] for row in csv.DictReader(fh))
        dup_csv += sum(1 for n in ids.values() if n > 1)
    return {"total": total, "lost": lost, "duplicated": dup_rows + dup_csv, "failed": failed}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cycles", type=int, default=20)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--faults", default=DEFAULT_FAULTS, help=f"server fault shares (default {DEFAULT_FAULTS})")
    ap.add_argument("--temps", type=int, choices=(1, 2, 3), default=3,
                    help="temperatures (168 requests each)")
    ap.add_argument("--latency-s", type=float, default=0.3, help="server time per answer")
    ap.add_argument("--targets", default=",".join(TARGETS), help="what to kill, drawn at random each cycle")
    ap.add_argument("--keep", action="store_true", help="keep the drill folder (its path is printed)")
    args = ap.parse_args()
    if not 1 <= args.cycles <= 500:
        ap.error("--cycles must be 1..500")
    targets = tuple(t for t in args.targets.split(",") if t in TARGETS)
    if not targets:
        ap.error(f"--targets: choose from {', '.join(TARGETS)}")
    rng = random.Random(args.seed)
    tmp = Path(tempfile.mkdtemp(prefix="crash_drill_"))
    queue = tmp / "queue"
    plan = FaultPlan(shares=parse_shares(args.faults), seed=args.seed, hang_s=5.0, latency_s=args.latency_s)
    started = time.monotonic()
    with FaultyOpenAIServer(FaultState(plan=plan)) as server:
        live = {"server": server}

        def outage(seconds: float) -> None:
            """The engine goes away (port refused, connections cut) and is back after ``seconds``."""
            port = live["server"].httpd.server_address[1]
            live["server"].go_down()
            time.sleep(seconds)
            live["server"] = FaultyOpenAIServer(server.state, port).__enter__()

        cfg = _write_config(tmp, server.url, args.temps)
        log = tmp / "drill.log"
        enq = subprocess.run([sys.executable, "-m", "producer", "enqueue", "--config", str(cfg), "--no-preflight"],
                             cwd=ROOT, env=_env(queue), capture_output=True, text=True, encoding="utf-8")
        if enq.returncode != 0:
            print(f"enqueue failed: {enq.stderr.strip() or enq.stdout.strip()}")
            return 2
        with _ledger(queue) as conn:
            run_id = conn.execute("select run_id from runs order by created_at desc limit 1").fetchone()[0]
        kills: Counter = Counter()
        orphans: list[int] = []
        for cycle in range(1, args.cycles + 1):
            if _state(queue, run_id) == "done":
                print(f"the run finished after {cycle - 1} cycles (raise --temps or --latency-s for more work)")
                break
            t0 = time.monotonic()
            _kill_cycle(rng, queue, run_id, log, kills, orphans, targets, outage)
            print(f"cycle {cycle}/{args.cycles}: kills {dict(kills)} ({time.monotonic() - t0:.1f} s)", flush=True)
        finished = _finish(queue, run_id, log)
        counts = _counts(queue, run_id, tmp)
        intact = _integrity(queue)
        resent = sum(n - 1 for n in server.state.answered.values() if n > 1)
        sends = sum(server.state.sent.values())
        faults = {k: v for k, v in server.state.faults.items() if k != "ok"}
        if live["server"] is not server:  # the one brought back after the last outage
            live["server"].close()
    print(f"crash drill: {sum(kills.values())} kills ({', '.join(f'{k} {v}' for k, v in sorted(kills.items()))}),"
          f" {counts['total']} requests, faults {args.faults}, {time.monotonic() - started:.0f} s")
    print(f"  finished: {'yes' if finished else 'NO'}  failed: {counts['failed']}")
    print(f"  lost: {counts['lost']}  duplicated: {counts['duplicated']}  re-sent: {resent}"
          f"  orphans: {len(orphans)}")
    print(f"  server: {sends} generation requests, injected faults {faults}")
    print("  databases: " + ", ".join(f"{k} {v}" for k, v in intact.items()))
    if args.keep:
        print(f"  drill folder: {tmp}")
    else:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    ok = (finished and counts["lost"] == 0 and counts["duplicated"] == 0 and not orphans
          and all(v == "ok" for v in intact.values()))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
