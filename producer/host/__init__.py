"""What the process meets on its machine: the console (one-line errors, no crash on cp1252), the exit
statuses, settings from the environment or ``.env`` (``env``) and the queue folder (``queue_paths``).
The lowest floor of producer: every other room imports it, it imports only config.
"""
