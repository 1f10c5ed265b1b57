"""Planning and enqueue: the dry ``plan``, the batch input files (``build``) and ``enqueue`` (register a
run in the ledger and queue its work). Never imports the workers (.importlinter: the command line passes
reconcile in), and the workers never import it.
"""
