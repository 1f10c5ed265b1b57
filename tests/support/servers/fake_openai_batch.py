"""The fake OpenAI Files and Batch API for tests (implementation shared with ``--dry-run``).

See ``workers.openai_batch.fake_server`` for the endpoints and failure modes it reproduces.
Run alone: ``python -m tests.support.servers.fake_openai_batch --port 8766``.
"""

from __future__ import annotations

from workers.openai_batch.fake_server import FakeOpenAIServer, FakeState, Fault

__all__ = ["Fault", "FakeOpenAIServer", "FakeState"]

if __name__ == "__main__":
    import runpy

    runpy.run_module("workers.openai_batch.fake_server", run_name="__main__")
