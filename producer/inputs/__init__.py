"""What a run sends, from source to request: datasets and prepared items (``datasets``, ``prepare``),
the rendered chat messages (``messages``), every request of a trial in prefix order (``requests_build``),
requests shared across a sweep's trials (``sweep_share``) and the Fireworks parts, ids and job table
(``fireworks_plan``). Ground floor: planning, the workers and scoring read them; they sit above the
ledger (shared requests and parts are ledger rows).
"""
