"""promptfoo's JSON export (``promptfoo eval -o out.json``; promptfoo/promptfoo ``src/types``,
docs "Output formats"): ``{"evalId", "results": {"version", "timestamp", "prompts", "results": [...],
"stats"}, "config", ...}``. Each result has ``prompt`` (``raw``, ``label``), ``provider`` (``id``), ``vars``,
``response`` (``output``, ``tokenUsage``), ``success``, ``score`` and ``gradingResult``.

promptfoo has no gold answers of its own: its assertions grade. A test's ``vars`` may still carry them
(``answers`` or ``answer``) and its item id (``id``, ``item_id``, ``question_id``); its question is
``vars.question`` (else the rendered prompt).
"""

from __future__ import annotations

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

TOOL = "promptfoo"
ID_VARS = ("item_id", "id", "question_id")


def _sample(raw: Any, where: str) -> ForeignSample:
    if not isinstance(raw, dict):
        raise ImportFormatError(f"{where}: a result is not a JSON object")
    vars_ = need(raw, "vars", where)
    response = raw.get("response") if isinstance(raw.get("response"), dict) else {}
    if not isinstance(vars_, dict) or ("output" not in response and not raw.get("error")):
        raise ImportFormatError(f"{where}: no 'vars' object or no 'response.output'")
    meta = (raw.get("testCase") or {}).get("metadata") or {}
    item_id = next((str(vars_[k]) for k in ID_VARS if vars_.get(k) not in (None, "")),
                   str(meta.get("id") or raw.get("testIdx", "")) or None)
    prompt = raw.get("prompt") if isinstance(raw.get("prompt"), dict) else {}
    grading = raw.get("gradingResult") if isinstance(raw.get("gradingResult"), dict) else {}
    score = score_value(raw.get("score", grading.get("score")))
    if score is None:
        score = score_value(raw.get("success", grading.get("pass")))
    usage = response.get("tokenUsage") if isinstance(response.get("tokenUsage"), dict) else {}
    question = vars_.get("question") if isinstance(vars_.get("question"), str) else prompt.get("raw")
    return ForeignSample(
        ref=f"{where} (test {raw.get('testIdx')})", item_id=item_id, question=question,
        response=as_text(response.get("output")).strip(),
        context=vars_.get("context") if isinstance(vars_.get("context"), str) else None,
        answers=answer_list(vars_.get("answers", vars_.get("answer"))), score=score,
        input_text=prompt.get("raw") if isinstance(prompt.get("raw"), str) else None,
        finish_reason="length" if response.get("finishReason") == "length" else "stop",
        prompt_tokens=int_or_none(usage.get("prompt")), completion_tokens=int_or_none(usage.get("completion")),
        dataset=vars_.get("dataset") if isinstance(vars_.get("dataset"), str) else None)


def read_export(data: Any, where: str) -> ForeignLog:
    """One prompt x provider of an export (several would be several runs: refused, naming them)."""
    block = need(data, "results", where)
    results = need(block, "results", f"{where} 'results'")
    if not isinstance(results, list) or not results:
        raise ImportFormatError(f"{where}: 'results.results' holds no results")
    pairs = sorted({(str((r.get("provider") or {}).get("id")), str((r.get("prompt") or {}).get("label")))
                    for r in results if isinstance(r, dict)})
    if len(pairs) > 1:
        raise ImportFormatError(f"{where}: holds {len(pairs)} provider x prompt pairs ("
                                f"{'; '.join(' / '.join(p) for p in pairs[:3])}): export one per file")
    samples = [_sample(r, f"{where} result {i}") for i, r in enumerate(results)]
    provider = pairs[0][0] if pairs else None
    return ForeignLog(tool=TOOL, log_format="promptfoo JSON export", task=(data.get("config") or {}).get(
        "description") if isinstance(data.get("config"), dict) else None, model=provider, temperature=None,
        scorer="promptfoo assertions (score)", samples=samples)
