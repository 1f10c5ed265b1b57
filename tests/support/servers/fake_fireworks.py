"""The fake Fireworks batch API for tests (implementation shared with ``--dry-run``).

See ``workers.fireworks.fake_server`` for the endpoints and quirks it reproduces.
Run alone: ``python -m tests.support.servers.fake_fireworks --port 8765``.
"""

from __future__ import annotations

from workers.fireworks.fake_server import FakeFireworksServer, FakeState, Fault

__all__ = ["Fault", "FakeFireworksServer", "FakeState"]

if __name__ == "__main__":
    import runpy

    runpy.run_module("workers.fireworks.fake_server", run_name="__main__")
