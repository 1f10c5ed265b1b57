"""The enqueue side and the CLI."""
