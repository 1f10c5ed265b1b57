"""The Anthropic Message Batches API as a batch provider (docs/batch-providers.md)."""
