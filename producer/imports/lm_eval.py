"""lm-evaluation-harness ``--log_samples`` files (EleutherAI/lm-evaluation-harness,
``lm_eval/loggers/evaluation_tracker.py``): ``samples_<task>_<date>.jsonl``, one object per document with
``doc_id``, ``doc``, ``target``, ``arguments``, ``resps``, ``filtered_resps``, ``filter``, ``metrics`` (the
names of its metric fields) and each metric's value (``exact_match`` ...).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from producer.imports.foreign import (
    ForeignLog,
    ForeignSample,
    ImportFormatError,
    answer_list,
    need,
    score_value,
)

TOOL = "lm-evaluation-harness"
FILE_NAME = re.compile(r"^samples_(?P<task>.+?)_(?P<date>\d{4}-\d{2}-\d{2}T[0-9.\-]+)\.jsonl$")


def task_of(path: Path) -> str | None:
    match = FILE_NAME.match(path.name)
    return match.group("task") if match else None


def _arguments(raw: Any) -> tuple[str | None, dict[str, Any]]:
    """(prompt, gen_kwargs) of the first request: a dict of ``gen_args_N`` (``arg_0``, ``arg_1``) in recent
    versions, a list of ``[prompt, gen_kwargs]`` in older ones."""
    first: Any = None
    if isinstance(raw, dict) and raw:
        first = next(iter(raw.values()))
        if isinstance(first, dict):
            first = [first.get("arg_0"), first.get("arg_1")]
    elif isinstance(raw, list) and raw:
        first = raw[0]
    if not isinstance(first, list | tuple) or not first:
        return None, {}
    prompt = first[0] if isinstance(first[0], str) else None
    kwargs = first[1] if len(first) > 1 and isinstance(first[1], dict) else {}
    return prompt, kwargs


def _gold(doc: dict[str, Any], target: Any) -> list[str] | None:
    """TriviaQA: the answer's aliases and value; NQ-Open: ``answer``; SQuAD v2: ``answers.text`` (empty:
    unanswerable); otherwise the rendered target."""
    answer = doc.get("answer")
    if isinstance(answer, dict) and ("aliases" in answer or "value" in answer):
        return [str(a) for a in [*(answer.get("aliases") or []), answer.get("value")] if a]
    if isinstance(doc.get("answers"), dict) and "text" in doc["answers"]:
        return [str(a) for a in doc["answers"]["text"]]
    if isinstance(answer, list):
        return answer_list(answer)
    return answer_list(target)


def _sample(raw: Any, where: str) -> tuple[ForeignSample, str | None]:
    if not isinstance(raw, dict):
        raise ImportFormatError(f"{where}: not a JSON object")
    doc_id = need(raw, "doc_id", where)
    doc = need(raw, "doc", where)
    if not isinstance(doc, dict):
        raise ImportFormatError(f"{where}: 'doc' is not an object")
    filtered = need(raw, "filtered_resps", where)
    if not isinstance(filtered, list) or not filtered:
        raise ImportFormatError(f"{where}: 'filtered_resps' is empty")
    response = filtered[0][0] if isinstance(filtered[0], list) and filtered[0] else filtered[0]
    if not isinstance(response, str):
        raise ImportFormatError(f"{where}: the response is not text (a loglikelihood task? only generation "
                                "tasks can be imported)")
    prompt, kwargs = _arguments(raw.get("arguments"))
    metrics = raw.get("metrics") if isinstance(raw.get("metrics"), list) else []
    metric = next((m for m in metrics if score_value(raw.get(m)) is not None), None)
    item_id = next((str(doc[k]) for k in ("id", "question_id", "QuestionId") if doc.get(k) not in (None, "")),
                   str(doc_id))
    question = doc.get("question") if isinstance(doc.get("question"), str) else prompt
    sample = ForeignSample(ref=f"{where} doc_id {doc_id}", item_id=item_id, question=question,
                           response=response.strip(), context=doc.get("context") if isinstance(
                               doc.get("context"), str) else None,
                           answers=_gold(doc, raw.get("target")), input_text=prompt,
                           score=score_value(raw.get(metric)) if metric else None,
                           temperature=score_value(kwargs.get("temperature")))
    return sample, metric


def read_samples_jsonl(path: Path, text: str) -> ForeignLog:
    """Every line of a samples file (blank lines skipped)."""
    read, filters = [], set()
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path.name} line {number}"
        try:
            raw = json.loads(line)
        except ValueError:
            raise ImportFormatError(f"{where}: not valid JSON") from None
        read.append(_sample(raw, where))
        filters.add(str(raw.get("filter", "none")))
    if len(filters) > 1:  # one answer set per import: the same documents under several filters would pair twice
        raise ImportFormatError(f"{path.name}: holds the answers of {len(filters)} filters ({', '.join(sorted(filters))}):"
                                " keep one filter's lines in a file of their own")
    if not read:
        raise ImportFormatError(f"{path.name}: no samples in the file")
    temps = {s.temperature for s, _ in read}
    temp = temps.pop() if len(temps) == 1 else None
    return ForeignLog(tool=TOOL, log_format="lm-evaluation-harness samples .jsonl", task=task_of(path), model=None,
                      temperature=temp,
                      scorer=next((m for _, m in read if m), None), samples=[s for s, _ in read])
