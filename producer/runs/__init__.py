"""A run's shape and files (CONTRACT sections 3, 4, 9): its trials (``trials``), the folder layout
(``layout``), the manifests (``manifests``) and the results files (``results_io``). Ground floor, under
the ledger (which records a run's settings beside its manifests) and above the host basics.
"""
