"""Shared test helpers: paths, the CLI runner, configs, queue runs, test servers.

Why a package: test modules import helpers from here, never from ``conftest`` (pytest loads it as a
plugin, not as a module to import from) nor from another ``test_*`` module (importing one would collect
its tests twice and tie two test files together). tests/test_support_imports.py enforces both.
"""
