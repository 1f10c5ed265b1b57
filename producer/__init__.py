"""The command line (``producer.cli``: the group, one module per command) and everything before
execution: config snapshot, data preparation, request building and planning, the ledger
(``producer.ledger``), enqueue and reconcile. Workers execute.

``producer.huey`` (the SqliteHuey instance, for ``huey_consumer producer.huey``) is loaded lazily so
that ``python -m producer --help`` and stages that need no queue never open or create ``queue/``.
"""

from typing import Any


def __getattr__(name: str) -> Any:
    if name == "huey":
        from producer.huey_app import huey  # lazy: the task registration cycle

        return huey
    raise AttributeError(f"module 'producer' has no attribute {name!r}")
