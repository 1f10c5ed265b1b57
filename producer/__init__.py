"""The command line and everything before execution, one package per floor (docs/architecture.md,
"Walls"): ``producer.cli`` (the group, one module per command), ``producer.checks`` (preflight, doctor),
``producer.planning`` (plan, build, enqueue), ``producer.inputs`` (datasets, prepared items, messages,
requests, Fireworks parts), ``producer.ledger`` (all SQL), ``producer.runs`` (a run's trials, layout,
manifests, results files) and ``producer.host`` (console, exit codes, settings, the queue folder).
Workers execute (and reconcile: ``workers.reconcile``).

``producer.huey`` (the SqliteHuey instance with every task registered, for ``huey_consumer
producer.huey``) is loaded lazily from ``producer.huey_main`` so that ``python -m producer --help``
and stages that need no queue never open or create ``queue/``.
"""

from typing import Any


def __getattr__(name: str) -> Any:
    if name == "huey":
        from producer.huey_main import huey  # lazy: opens the queue and loads every task module

        return huey
    raise AttributeError(f"module 'producer' has no attribute {name!r}")
