"""``show`` prints model answers: no escape sequence in them reaches the terminal (issue 30, item 7).

Why: click strips CSI colour codes from non-terminal output but passes OSC through: a model answer with
``ESC ] 8 ;; url BEL`` made a hyperlink, ``ESC ] 52`` can write the clipboard, ``ESC ] 0`` the window title.
"""

from __future__ import annotations

import pytest

from producer.cli.cmd_show import _cell, format_item
from producer.host.console import terminal_safe

pytestmark = pytest.mark.unit

HOSTILE = ("Paris\x1b]8;;http://evil.example/\x07click me\x1b]8;;\x07 \x1b]52;c;ZXZpbA==\x07"
           "\x1b]0;owned\x1b\\ \x1b[31mred\x1b[0m \x9b31m bell\x07 back\x08space")


def test_every_control_sequence_is_removed_and_the_words_stay():
    clean = terminal_safe(HOSTILE)
    assert not any(ch in clean for ch in "\x1b\x07\x08\x9b")
    assert "Paris" in clean and "click me" in clean and "red" in clean and "evil.example" not in clean
    assert terminal_safe("line one\n\tline two") == "line one\n\tline two"


def test_show_prints_a_hostile_answer_harmlessly():
    side = {"response": HOSTILE, "finish_reason": "stop", "completion_tokens": 5, "latency_s": 0.1, "em": 0.0}
    lines = [{"item_key": "squad_v2|q1", "type": "open", "question": "Capital?\x1b]0;x\x07", "answers": ["Paris"],
              "temp": "0.0", "sample_index": 0, "control": side, "treatment": side}]
    text = format_item(lines, "ctx\x1b[2J", "run r1, trial t", 100)
    assert "\x1b" not in text and "\x07" not in text and "Paris" in text
    assert "\x1b" not in _cell(HOSTILE, 200)
