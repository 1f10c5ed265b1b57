"""The OpenAI Batch API as a batch provider (docs/batch-providers.md)."""
