"""Huey's main module (huey docs, imports.rst): the instance and every task, what ``huey_consumer``
loads as ``producer.huey`` (``producer/__init__.py`` resolves that name to this module's ``huey``).

Why a module of its own: the instance lives in ``producer.huey_app``, which imports no task, and the
task modules import it; only this module imports both, so none of them imports back (no cycle).
Our own pool's children register the same tasks in ``workers.loop``; tests/test_task_names.py checks
that both load every task under its old name.
"""

from __future__ import annotations

import workers.batch.tasks  # noqa: F401 - registers the batch providers' tasks
import workers.reconcile  # noqa: F401 - registers the periodic reconcile
import workers.tasks  # noqa: F401 - registers the local tasks and the parent-watch hooks
from producer.huey_app import huey

__all__ = ["huey"]
