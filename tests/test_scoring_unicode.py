"""Abstention does not depend on how the apostrophe is typed (issue 12.8), and the sentence-opening
phrases in docs/statistics.md are the code's (issue 12.10)."""

from __future__ import annotations

import re
import unicodedata

import pytest

from scoring import abstention
from scoring.abstention import is_abstention
from scoring.rules import score_response
from tests.support.paths import ROOT

pytestmark = pytest.mark.unit

# U+0027 and every code point that Unicode's UTS #39 confusables.txt maps to APOSTROPHE (U+0027),
# written out here independently of scoring/abstention.py.
APOSTROPHE_LIKE = (
    0x0027, 0x0060, 0x00B4, 0x02B9, 0x02BB, 0x02BC, 0x02BD, 0x02BE, 0x02C8, 0x02CA, 0x02CB, 0x02F4,
    0x0374, 0x0384, 0x055A, 0x055D, 0x05D9, 0x05F3, 0x07F4, 0x07F5, 0x144A, 0x16CC, 0x1FBD, 0x1FBF,
    0x1FEF, 0x1FFD, 0x1FFE, 0x2018, 0x2019, 0x201B, 0x2032, 0x2035, 0xA78C, 0xFF07, 0xFF40,
    0x16F51, 0x16F52,
)
ZERO_WIDTH = (0x200B, 0x200C, 0x200D, 0x2060, 0xFEFF)
UNANSWERABLE = {"dataset": "squad_v2", "id": "u1", "context": "The castle stands on a hill.",
                "question": "Who burnt it?", "answers": [], "is_unanswerable": True}


@pytest.mark.parametrize("cp", APOSTROPHE_LIKE, ids=lambda cp: f"U+{cp:04X}")
def test_every_apostrophe_like_code_point_abstains(cp: int) -> None:
    a = chr(cp)
    for text in (f"I don{a}t know.", f"I don{a}t know", f"I{a}m not sure.", f"i don{a}t know!!",
                 f"I don{a}t know. The passage does not say.", f"The passage doesn{a}t say."):
        assert is_abstention(text), (unicodedata.name(a, hex(cp)), text)
    # an abstention is not a false answer, whatever the apostrophe
    scored = score_response(UNANSWERABLE, f"I don{a}t know.", "open")
    assert scored["abstained"] == 1 and scored["false_answer"] == 0 and scored["em"] == 1.0
    # and the apostrophe does not turn an answer into an abstention
    assert not is_abstention(f"I don{a}t know, but probably Paris")


@pytest.mark.parametrize("cp", ZERO_WIDTH, ids=lambda cp: f"U+{cp:04X}")
def test_zero_width_characters_are_ignored(cp: int) -> None:
    z = chr(cp)
    for text in (f"I don’t know{z}.", f"{z}I don't know.", f"I do{z}n't kn{z}ow", f"I don't know{z}",
                 f"Unknown{z}", f"N{z}/A"):
        assert is_abstention(text), (f"U+{cp:04X}", text)
    assert not is_abstention(f"Tomb of the Unknown{z} Soldier")


def test_issue_examples_and_nfkc_forms() -> None:
    for text in ("I don\uff07t know.", "I don\u201bt know.", "I don’t know\u200b.",
                 "Ｉ ｄｏｎ＇ｔ ｋｎｏｗ．",  # fullwidth letters and punctuation (NFKC)
                 "I\u00a0don't\u00a0know.",  # no-break spaces
                 "I don\u00b4t know."):  # acute accent: NFKC alone would make it a combining mark
        assert is_abstention(text), text
    for text in ("Tomb of the Unknown Soldier", "I don\uff07t know why, but it is 1200", "Ｐａｒｉｓ"):
        assert not is_abstention(text), text


def _documented_leading_phrases() -> list[str]:
    doc = (ROOT / "docs" / "statistics.md").read_text(encoding="utf-8")
    start = doc.index("<!-- leading phrases:")
    block = doc[start:].split("\n\n", 1)[0]
    return re.findall(r'^- "([^"]+)"$', block, flags=re.MULTILINE)


def test_documented_leading_phrases_are_the_codes() -> None:
    documented = _documented_leading_phrases()
    assert documented == list(abstention.LEADING_PHRASES)


def test_each_leading_phrase_opens_an_abstention() -> None:
    for phrase in abstention.LEADING_PHRASES:
        assert is_abstention(f"{phrase.capitalize()}. The passage is silent on this."), phrase
        assert is_abstention(f"{phrase.upper().replace(chr(39), chr(0x2019))}!\nNothing more."), phrase
        assert not is_abstention(f"{phrase.capitalize()}, but probably Paris"), phrase
