"""The provider-neutral part of a batch run: one part's life (runner), its Huey tasks, its poll deadline."""
