"""Inspect AI eval logs (UKGovernmentBEIS/inspect_ai, ``src/inspect_ai/log/_log.py``): ``.json`` is one
EvalLog object (``eval``, ``plan``, ``results``, ``samples``); ``.eval`` is a zip archive
(``_recorders/eval.py``) with ``header.json`` (the EvalLog without samples; older archives:
``_journal/start.json`` or ``start.json`` with ``eval``) and one ``samples/<id>_epoch_<n>.json`` per sample.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

from producer.imports.foreign import (
    ForeignLog,
    ForeignSample,
    ImportFormatError,
    answer_list,
    as_text,
    int_or_none,
    need,
    score_value,
)

TOOL = "inspect_ai"
HEADERS = ("header.json", "_journal/start.json", "start.json")


def _user_text(value: Any) -> str | None:
    """The sample's input: a string, or the last user message of a list of chat messages."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        users = [m for m in value if isinstance(m, dict) and m.get("role") == "user"]
        return as_text(users[-1].get("content")) if users else None
    return None


def _sample(raw: Any, where: str) -> tuple[ForeignSample, str | None]:
    """One EvalSample -> (ForeignSample, the name of its first score)."""
    if not isinstance(raw, dict):
        raise ImportFormatError(f"{where}: a sample is not a JSON object")
    sample_id = need(raw, "id", where)
    ref = f"{where} sample {sample_id}"
    output = need(raw, "output", ref)
    choices = (output or {}).get("choices") or []
    message = choices[0].get("message") if choices and isinstance(choices[0], dict) else None
    response = as_text((message or {}).get("content")) if message else as_text(output.get("completion"))
    metadata = raw.get("metadata") if isinstance(raw.get("metadata"), dict) else {}
    scores = raw.get("scores") if isinstance(raw.get("scores"), dict) else {}
    name = next(iter(scores), None)
    value = scores[name].get("value") if name and isinstance(scores[name], dict) else None
    usage = output.get("usage") if isinstance(output.get("usage"), dict) else {}
    input_text = _user_text(need(raw, "input", ref))
    stop = choices[0].get("stop_reason") if choices and isinstance(choices[0], dict) else None
    target = raw.get("target")
    return ForeignSample(
        ref=ref, item_id=str(metadata.get("item_id", sample_id)),
        question=str(metadata["question"]) if metadata.get("question") else input_text,
        response=response.strip(), sample_index=max(int(raw.get("epoch") or 1) - 1, 0),
        context=metadata.get("context") if isinstance(metadata.get("context"), str) else None,
        answers=answer_list(metadata.get("answers", target)), score=score_value(value), input_text=input_text,
        finish_reason="length" if stop == "max_tokens" else "stop",
        prompt_tokens=int_or_none(usage.get("input_tokens")), completion_tokens=int_or_none(usage.get("output_tokens")),
        dataset=metadata.get("dataset") if isinstance(metadata.get("dataset"), str) else None), name


def _log(header: Any, samples: list[Any], log_format: str, where: str) -> ForeignLog:
    spec = need(header, "eval", where)
    if not isinstance(spec, dict):
        raise ImportFormatError(f"{where}: 'eval' is not an object")
    config = spec.get("model_generate_config") or {}
    temp = config.get("temperature") if isinstance(config, dict) else None
    read = [_sample(s, where) for s in samples]
    if not read:
        raise ImportFormatError(f"{where}: the log holds no samples (was it written with --no-log-samples?)")
    scorer = next((name for _, name in read if name), None)
    return ForeignLog(tool=TOOL, log_format=log_format, task=spec.get("task"), model=spec.get("model"),
                      temperature=float(temp) if isinstance(temp, int | float) else None, scorer=scorer,
                      samples=[s for s, _ in read])


def read_json_log(data: Any, where: str) -> ForeignLog:
    """An EvalLog as JSON (``inspect eval --log-format json``)."""
    samples = need(data, "samples", where)
    if not isinstance(samples, list):
        raise ImportFormatError(f"{where}: 'samples' is not a list (was it written with --no-log-samples?)")
    return _log(data, samples, "inspect_ai .json", where)


def _zip_json(archive: zipfile.ZipFile, name: str, where: str) -> Any:
    try:
        return json.loads(archive.read(name).decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ImportFormatError(f"{where}: {name} is not valid JSON ({exc.__class__.__name__})") from None


def read_eval_archive(path: Path) -> ForeignLog:
    """An ``.eval`` archive: the header, then every ``samples/*.json`` in name order."""
    where = path.name
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            header_name = next((h for h in HEADERS if h in names), None)
            if header_name is None:
                raise ImportFormatError(f"{where}: not an Inspect AI .eval archive (no header.json)")
            header = _zip_json(archive, header_name, where)
            samples = [_zip_json(archive, n, where) for n in sorted(names)
                       if n.startswith("samples/") and n.endswith(".json")]
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as exc:
        raise ImportFormatError(f"{where}: not a readable zip archive ({exc})") from None
    return _log(header, samples, "inspect_ai .eval", where)
