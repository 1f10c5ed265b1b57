"""One-line configuration errors: `config error: <file>: <field path>: <what is wrong>`."""

from __future__ import annotations

import difflib
import re
from typing import Any

from pydantic import BaseModel, ValidationError

_FIELD_PATH = re.compile(r"[A-Za-z_][\w]*(\.[\w.\-]+)*")


class ConfigError(Exception):
    """Raised for any invalid configuration; its message is a single line meant for the user."""

    exit_code = 2


def _model_at(model: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """Walk the model fields along ``loc`` to find the pydantic model that owns the last key."""
    current: Any = model
    keyed = False  # the last field was a dict[str, Model]: the next part is a key of the user's choice
    for part in loc:
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        if isinstance(part, int) or keyed:
            keyed = False
            continue
        field = current.model_fields.get(str(part))
        if field is None:
            return None
        keyed = getattr(field.annotation, "__origin__", None) is dict
        current = _unwrap(field.annotation)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _unwrap(annotation: Any) -> Any:
    """Return the first BaseModel class inside Optional[...] / list[...] / dict[..., X]."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _unwrap(arg)
        if found is not None:
            return found
    return None


def format_validation_error(exc: ValidationError, source: str, root: type[BaseModel]) -> str:
    """Turn the first pydantic error into our one-line format, suggesting the closest valid key."""
    err = exc.errors()[0]
    loc = tuple(err.get("loc", ()))
    path = ".".join(str(p) for p in loc) or "<root>"
    if err.get("type") == "extra_forbidden":
        owner = _model_at(root, loc[:-1]) or root
        key = str(loc[-1]) if loc else ""
        close = difflib.get_close_matches(key, list(owner.model_fields), n=1, cutoff=0.5)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        return f"config error: {source}: {path}: unknown key{hint}"
    msg = str(err.get("msg", "invalid value")).replace("\n", " ")
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    if not loc:  # model-level checks name their field as "<field path>: <message>"
        head, sep, rest = msg.partition(": ")
        if sep and _FIELD_PATH.fullmatch(head):
            path, msg = head, rest
    if loc and "input" in err and err.get("type") != "missing":  # root errors would echo the whole config
        shown = repr(err["input"])
        if len(shown) <= 60:
            msg = f"{msg} (got {shown})"
    return f"config error: {source}: {path}: {msg}"
