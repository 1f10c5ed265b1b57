"""Which queue folder holds a run: the question a printed ``run --resume RUN_ID`` asks first.

Why in the ledger: the answer is "the folder whose ledger knows the run", a query; the folder rules
themselves (``EXCELLENCE_QUEUE_DIR``, ``./queue``, the project's own ``queue/``) stay in
``producer.host.queue_paths``, which the ledger builds on.
"""

from __future__ import annotations

import os
from pathlib import Path

from producer.host import queue_paths
from producer.ledger.db import holds_run


def find_run_queue(run_id: str) -> Path | None:
    """The queue folder that holds ``run_id``: ``EXCELLENCE_QUEUE_DIR`` when set, else ``./queue``, else
    the project's own ``queue/`` (a printed resume command typed in another folder). Pins the folder
    it finds, so the worker processes use it too; None when no folder holds the run."""
    if os.environ.get(queue_paths.ENV_QUEUE_DIR):
        return queue_paths.queue_dir(create=False)
    for folder in dict.fromkeys((queue_paths.queue_dir(create=False), queue_paths.PROJECT_QUEUE_DIR.resolve())):
        if holds_run(folder / queue_paths.LEDGER_DB, run_id):
            os.environ[queue_paths.ENV_QUEUE_DIR] = str(folder)
            return folder
    return None
