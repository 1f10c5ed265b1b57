"""The durable ledger (SQLite, ``queue/ledger.sqlite3``): what every run expects, holds and has done.

Split by job: ``db`` (schema as ordered migrations, connections), ``migrations`` (the runner that
applies and records them), ``transactions`` (``begin immediate``), ``writes`` (state transitions),
``queries`` (reads for workers and producer), ``status`` (the read-only ``status`` summary), ``sweep``
(a sweep's shared generations), ``fireworks`` (batch parts and their results), ``anthropic_batches``
(the Anthropic provider's custom_id map and batch ids), ``telemetry`` (the samples table), ``locate``
(which queue folder holds a run). Why one package: every table, migration, query and write lives here, behind named functions; no other module holds SQL text
(tests/test_ledger_owns_sql.py).
"""

from producer.ledger.db import connect, transaction

__all__ = ["connect", "transaction"]
