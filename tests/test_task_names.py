"""Every Huey task is registered under its old name, whichever way a process loads them.

Why: Huey stores a task's name (``<module of its function>.<name>``) in each queued message and runs
it by looking that name up; a renamed or unregistered task would leave the messages already in a
user's ``queue/huey.sqlite3`` unrunnable. Two ways load the tasks: ``huey_consumer producer.huey``
(``producer.huey_main``, Huey's main module) and our pool's children (``workers.loop``). Each is
checked in a fresh interpreter that imports only that entry.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.support.cli import PY_FLAGS, cli_env
from tests.support.paths import ROOT

TASKS = [
    "workers.fireworks.tasks.fw_poll_part",
    "workers.fireworks.tasks.fw_submit_part",
    "workers.tasks.export_trial",
    "workers.tasks.infer_chunk",
    "workers.tasks.reconcile_every_minute",
    "workers.tasks.score_chunk",
]

# huey_consumer resolves its argument with huey.utils.load_class: import "producer", read "huey".
BY_CONSUMER = "from huey.utils import load_class\nh = load_class('producer.huey')\n"
BY_POOL_CHILD = "import workers.loop\nfrom producer.huey_app import huey as h\n"
REPORT = ("import json, sys\n"
          "print(json.dumps({'tasks': sorted(h._registry._registry),"
          " 'periodic': sorted(t.__name__ for t in h._registry._periodic_tasks),"
          " 'startup': sorted(h._startup), 'pre_execute': sorted(h._pre_execute),"
          " 'instance': type(h).__module__ + '.' + type(h).__name__}))\n")


@pytest.mark.parametrize("load", [BY_CONSUMER, BY_POOL_CHILD], ids=["huey_consumer", "pool_child"])
def test_every_task_keeps_its_name(load: str, tmp_path):
    proc = subprocess.run([sys.executable, *PY_FLAGS, "-c", load + REPORT], cwd=ROOT, env=cli_env(tmp_path / "queue"),
                          capture_output=True, text=True, encoding="utf-8", timeout=120)
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    assert found == {
        "tasks": TASKS,
        "periodic": ["reconcile_every_minute"],
        "startup": ["_watch_parent"],  # the worker (and the scheduler) ends with its parent
        "pre_execute": ["_orphans_take_nothing"],
        "instance": "producer.huey_app._WatchedHuey",
    }


def test_the_instance_module_registers_no_task(tmp_path):
    """Huey's layout: the module that holds the instance imports no task (so nothing imports back)."""
    code = "from producer.huey_app import huey as h\nimport sys\n" + REPORT.replace(
        "'instance'", "'task_modules': sorted(m for m in sys.modules if m.startswith('workers')), 'instance'")
    proc = subprocess.run([sys.executable, *PY_FLAGS, "-c", code], cwd=ROOT, env=cli_env(tmp_path / "queue"),
                          capture_output=True, text=True, encoding="utf-8", timeout=120)
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    assert found["tasks"] == [] and found["task_modules"] == []
