"""Which tool wrote a log, from its name and contents, and its reader.

Why by content too: a log is often renamed (``run1.json``); a JSON file is an Inspect AI EvalLog when
it has ``eval`` and ``samples``, a promptfoo export when ``results.results`` is a list.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

from producer.imports import inspect_ai, lm_eval, promptfoo
from producer.imports.foreign import ForeignLog, ImportFormatError

FORMATS = "an Inspect AI log (.eval or .json), an lm-evaluation-harness samples_*.jsonl or a promptfoo JSON export"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_log(path: Path) -> ForeignLog:
    """The foreign log at ``path``; ImportFormatError (one line) when it is none of ``FORMATS``."""
    if path.suffix.lower() == ".eval" or (path.suffix.lower() != ".json" and zipfile.is_zipfile(path)):
        return inspect_ai.read_eval_archive(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise ImportFormatError(f"{path.name}: not UTF-8 text, and not a zip archive: expected {FORMATS}") from None
    if path.suffix.lower() == ".jsonl":
        return lm_eval.read_samples_jsonl(path, text)
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ImportFormatError(f"{path.name}: not valid JSON (line {getattr(exc, 'lineno', '?')}): expected "
                                f"{FORMATS}") from None
    if isinstance(data, dict) and "eval" in data and ("samples" in data or "version" in data):
        return inspect_ai.read_json_log(data, path.name)
    if isinstance(data, dict) and isinstance(data.get("results"), dict) and "results" in data["results"]:
        return promptfoo.read_export(data, path.name)
    if isinstance(data, dict) and "doc_id" in data:  # one lm-eval sample written as .json
        return lm_eval.read_samples_jsonl(path, text.replace("\n", " "))
    raise ImportFormatError(f"{path.name}: unknown log format: expected {FORMATS}")
