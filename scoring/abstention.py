"""Abstention detection: does the response say "I don't know" (CONTRACT section 6)?

Why whole phrases: a substring test would call "Tomb of the Unknown Soldier" an abstention. A response
abstains when, after normalisation (see below), it *is* one of the phrases, or *starts* with one of the
sentence-level phrases followed by a sentence boundary (e.g. "I don't know. The passage does not say.").

Normalisation for matching: lower-case; curly apostrophes/quotes (’ ‘ ʼ ′) become "'"; every other
punctuation character (Unicode category P*) becomes a space; whitespace collapsed. So "I don’t know.",
"I don't know!!", "**I don't know**" and "I DON'T KNOW" all match.

Phrase list (the whole normalised answer equals one of these):
- i don't know / i dont know / i do not know / don't know / dunno
- i'm not sure / i am not sure / not sure / i'm unsure / unsure
- unknown / unanswerable / no answer / none of the above is answerable
- cannot be determined (optionally "from the context/passage/text/information given/provided")
- can't be determined / it cannot be determined / cannot answer / i cannot answer / i can't answer
- the answer is not in the context (passage/text) / not in the context (passage/text)
- the context (passage/text) does not say / does not mention / does not contain the answer
- there is no answer / no information / insufficient information / not enough information
- n/a (normalised "n a")
A response may also *begin* with "i don't know", "i do not know", "i'm not sure", "i am not sure",
"cannot be determined" or "it cannot be determined" when the rest is a separate sentence (the raw text
has ".", "!", "?", ";", "…" or a newline right after the phrase). A comma does not end the phrase:
"I don't know, but probably Paris" gives an answer and is scored as one.
"""

from __future__ import annotations

import re
from functools import lru_cache

from scoring.normalize import PUNCTUATION_CODEPOINTS

_APOSTROPHES = {ord(c): "'" for c in "\u2019\u2018\u02bc\u2032\u00b4`"}
_SOURCES = ("context", "passage", "text", "information", "document", "information given",
            "information provided", "given context", "provided context", "given passage",
            "provided passage", "given information", "provided information", "given text")

_CORE = [
    "i don't know", "i dont know", "i do not know", "don't know", "dont know", "dunno",
    "i'm not sure", "im not sure", "i am not sure", "not sure", "i'm unsure", "i am unsure", "unsure",
    "unknown", "unanswerable", "no answer", "no answer available", "answer unknown",
    "cannot be determined", "can't be determined", "cannot be answered", "can't be answered",
    "it cannot be determined", "it can't be determined", "it cannot be answered",
    "cannot answer", "i cannot answer", "i can't answer", "i'm unable to answer", "i am unable to answer",
    "there is no answer", "no information", "insufficient information", "not enough information",
    "n a", "not answerable", "the question is unanswerable", "the question cannot be answered",
]
_PHRASES: set[str] = set(_CORE)
for _src in _SOURCES:
    for _prefix in ("cannot be determined from the", "can't be determined from the",
                    "it cannot be determined from the", "cannot be answered from the",
                    "it cannot be answered from the", "the answer is not in the", "not in the",
                    "the answer is not provided in the", "not provided in the", "not mentioned in the",
                    "not stated in the", "no answer in the"):
        _PHRASES.add(f"{_prefix} {_src}")
    for _verb in ("does not say", "doesn't say", "does not mention", "doesn't mention",
                  "does not contain the answer", "doesn't contain the answer", "does not specify",
                  "doesn't specify", "does not provide the answer", "doesn't provide the answer"):
        _PHRASES.add(f"the {_src} {_verb}")
_PHRASES.update({p.replace("i'm", "im").replace("can't", "cant").replace("doesn't", "doesnt")
                 for p in list(_PHRASES)})
ABSTENTION_PHRASES: frozenset[str] = frozenset(_PHRASES)

_LEADING = ("i don't know", "i dont know", "i do not know", "i'm not sure", "im not sure",
            "i am not sure", "cannot be determined", "it cannot be determined", "unanswerable")
_LEADING_RE = re.compile(
    r"^\W*(?:" + "|".join(re.escape(p).replace("'", "['\u2019\u2018\u02bc]") for p in _LEADING)
    + r")[ \t]*(?:[.!?;\n]|\u2026)", flags=re.IGNORECASE)


# apostrophe variants -> "'", every other punctuation character (category P*) -> space
_MATCH_TABLE: dict[int, str] = dict.fromkeys(PUNCTUATION_CODEPOINTS, " ")
_MATCH_TABLE.update(_APOSTROPHES)
_MATCH_TABLE[ord("'")] = "'"


def _match_form(text: str) -> str:
    return " ".join((text or "").lower().translate(_MATCH_TABLE).split()).strip("' ")


@lru_cache(maxsize=262_144)
def is_abstention(text: str) -> bool:
    """True when the response as a whole says it does not know (whole-phrase matching)."""
    form = _match_form(text)
    if not form:
        return False
    if form in ABSTENTION_PHRASES:
        return True
    return bool(_LEADING_RE.match((text or "").strip().translate(_APOSTROPHES)))
