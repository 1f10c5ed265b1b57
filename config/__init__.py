"""Configuration: the typed schema, example configs, prompts and task instructions."""
