"""The execute side: Huey task bodies, inference engines and the spawn-safe worker pool."""
