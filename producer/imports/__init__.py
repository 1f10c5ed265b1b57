"""``producer import``: per-sample logs of other evaluation tools become read-only runs in our layout.

Why a package of its own: each foreign format has its reader (``inspect_ai``, ``lm_eval``, ``promptfoo``),
all of them yield the same ``ForeignLog``; ``items`` maps its samples onto our items and ``write`` builds
the run folder that ``show``, ``compare`` and the reports read (docs/contract.md section 9, "Imported runs").
"""
