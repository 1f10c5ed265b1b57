"""Fireworks batch inference backend: client, part planning, queue tasks, ingest (CONTRACT sections 2, 3)."""
