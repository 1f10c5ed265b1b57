"""The fake Anthropic Message Batches API for tests (implementation shared with ``--dry-run``).

See ``workers.anthropic_batch.fake_server`` for the endpoints and failure modes it reproduces.
Run alone: ``python -m tests.support.servers.fake_anthropic_batch --port 8767``.
"""

from __future__ import annotations

from workers.anthropic_batch.fake_server import FakeAnthropicServer, FakeState, Fault

__all__ = ["Fault", "FakeAnthropicServer", "FakeState"]

if __name__ == "__main__":
    import runpy

    runpy.run_module("workers.anthropic_batch.fake_server", run_name="__main__")
