"""The durable ledger (SQLite, ``queue/ledger.sqlite3``): what every run expects, holds and has done.

Split by job: ``db`` (schema, connections, transactions), ``writes`` (state transitions),
``queries`` (reads for workers and producer), ``status`` (the read-only ``status`` summary).
"""

from producer.ledger.db import connect, transaction

__all__ = ["connect", "transaction"]
