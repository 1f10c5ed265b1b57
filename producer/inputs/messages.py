"""The one function that renders chat messages for an item (CONTRACT section 2).

Why: the comparison is valid only if, for one item, the user message is byte-identical in both
conditions and only the system prompt differs. Every backend sends what this module renders.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from config.schema import EvalConfig
from config.textfile import read_user_text


@dataclass(frozen=True)
class PromptTexts:
    """System prompts of one prompt set and the task instructions, stripped."""

    control: str
    treatment: str
    open_book: str
    closed_book: str

    def system(self, condition: str) -> str:
        return self.control if condition == "control" else self.treatment

    def instruction(self, type_: str) -> str:
        return self.open_book if type_ == "open" else self.closed_book

    def control_twice(self) -> PromptTexts:
        """An A/A trial's prompts: the control prompt in both arms (docs/statistics.md, "Noise floor (A/A)")."""
        return dataclasses.replace(self, treatment=self.control)


def _read(path: Path) -> str:
    """A prompt or instruction file, stripped; a BOM is dropped (``config.textfile``)."""
    return read_user_text(path).strip()


def load_prompt_texts(cfg: EvalConfig, prompt_set: str) -> PromptTexts:
    pset = cfg.prompt_sets[prompt_set]
    return PromptTexts(
        control=_read(pset.control),
        treatment=_read(pset.treatment),
        open_book=_read(cfg.task_instructions.open_book),
        closed_book=_read(cfg.task_instructions.closed_book),
    )


def render_user_message(instruction: str, item: dict[str, Any], type_: str) -> str:
    """Closed: instruction, blank line, QUESTION:, question. Open: adds CONTEXT: before QUESTION:."""
    if type_ == "open":
        return f"{instruction}\n\nCONTEXT:\n{item['context']}\n\nQUESTION:\n{item['question']}"
    return f"{instruction}\n\nQUESTION:\n{item['question']}"


def render_messages(texts: PromptTexts, item: dict[str, Any], condition: str, type_: str) -> list[dict[str, str]]:
    """``[system, user]`` for one item and condition; the user part never depends on the condition."""
    return [
        {"role": "system", "content": texts.system(condition)},
        {"role": "user", "content": render_user_message(texts.instruction(type_), item, type_)},
    ]


