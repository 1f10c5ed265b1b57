"""Checks before a run (second floor, under the command line): ``preflight`` (what will work and what
will not, before a long run), its data checks (``preflight_data``), the ``doctor`` report
(``doctor_report``) and the verdict type they share (``verdicts``). They drive the engines' hooks and
the planner, so they sit above planning and the workers (.importlinter).
"""
