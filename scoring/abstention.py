"""Abstention detection: does the response say "I don't know" (CONTRACT section 6)?

Why whole phrases: a substring test would call "Tomb of the Unknown Soldier" an abstention. A response
abstains when, after normalisation (see below), it *is* one of the phrases, or *starts* with one of the
sentence-opening phrases followed by a sentence boundary (e.g. "I don't know. The passage does not say.").

Why Unicode normalisation first: a model (or a chat template) may write the apostrophe as any of a dozen
look-alikes, in fullwidth forms, or with zero-width characters inside; "I don＇t know." must count
exactly as "I don't know." does. Before matching, the text is prepared in this order:
1. every apostrophe-like code point (APOSTROPHE_LIKE: U+0027 and every character that Unicode's UTS #39
   confusables.txt maps to APOSTROPHE, e.g. ’ ‘ ‛ ʼ ʻ ʽ ʹ ` ´ ′ ＇ ｀ ՚ ׳ ꞌ ᾽ ᾿) becomes "'";
2. NFKC (fullwidth letters, ligatures, no-break spaces become their plain forms);
3. step 1 again (NFKC turns some characters into apostrophe-like ones), and every invisible format
   character (Unicode category Cf: zero-width space/joiners U+200B-U+200D, word joiner U+2060, BOM
   U+FEFF, soft hyphen, bidi marks) is removed.
Then, for whole-phrase matching: lower-case; every other punctuation character (Unicode category P*)
becomes a space; whitespace collapsed. So "I don’t know.", "I don't know!!", "**I don't know**" and
"I DON'T KNOW" all match.

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
A response may also *begin* with one of LEADING_PHRASES (listed in docs/statistics.md; a test keeps the
two lists equal) when the rest is a separate sentence (the prepared text has ".", "!", "?", ";", "…" or
a newline right after the phrase); an apostrophe in a phrase may be left out ("i dont know"). A comma
does not end the phrase: "I don't know, but probably Paris" gives an answer and is scored as one.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from itertools import chain

from scoring.normalize import PUNCTUATION_CODEPOINTS

# U+0027 and every code point that UTS #39 confusables.txt maps to APOSTROPHE (U+0027).
APOSTROPHE_LIKE: tuple[str, ...] = (
    "\u0027", "\u0060", "\u00b4",  # apostrophe, grave accent, acute accent
    "\u02b9", "\u02bb", "\u02bc", "\u02bd", "\u02be",  # modifier letter prime, turned comma, apostrophe, ...
    "\u02c8", "\u02ca", "\u02cb", "\u02f4",  # modifier letter vertical line, acute, grave, middle grave
    "\u0374", "\u0384",  # Greek numeral sign, tonos
    "\u055a", "\u055d",  # Armenian apostrophe, comma
    "\u05d9", "\u05f3",  # Hebrew yod, geresh
    "\u07f4", "\u07f5",  # NKo high and low tone apostrophes
    "\u144a", "\u16cc",  # Canadian syllabics West-Cree P, runic short-twig-sol S
    "\u1fbd", "\u1fbf", "\u1fef", "\u1ffd", "\u1ffe",  # Greek koronis, psili, varia, oxia, dasia
    "\u2018", "\u2019", "\u201b", "\u2032", "\u2035",  # single quotation marks, prime, reversed prime
    "\ua78c",  # Latin small letter saltillo
    "\uff07", "\uff40",  # fullwidth apostrophe, fullwidth grave accent
    "\U00016f51", "\U00016f52",  # Miao sign aspiration, reformed voicing
)
_APOSTROPHES: dict[int, str] = {ord(c): "'" for c in APOSTROPHE_LIKE}
# invisible format characters (category Cf: zero-width space/joiners, word joiner, BOM, soft hyphen, ...);
# every Cf code point lies in plane 0, 1 or 14 (the tags block)
FORMAT_CODEPOINTS: tuple[int, ...] = tuple(cp for cp in chain(range(0x20000), range(0xE0000, 0xE1000))
                                           if unicodedata.category(chr(cp)) == "Cf")
_PREPARE_TABLE: dict[int, str | None] = {**dict.fromkeys(FORMAT_CODEPOINTS), **_APOSTROPHES}


def prepare(text: str) -> str:
    """Apostrophe look-alikes -> "'", NFKC, invisible format characters removed (see the module doc)."""
    text = text or ""
    if text.isascii():  # the common case: NFKC changes nothing, no format character, one look-alike
        return text.replace("`", "'")
    text = unicodedata.normalize("NFKC", text.translate(_APOSTROPHES))
    return text.translate(_PREPARE_TABLE)

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

# Sentence-opening phrases (docs/statistics.md lists the same seven; a test keeps them equal).
LEADING_PHRASES: tuple[str, ...] = ("i don't know", "i do not know", "i'm not sure", "i am not sure",
                                    "cannot be determined", "it cannot be determined", "unanswerable")
_LEADING_RE = re.compile(
    r"^\W*(?:" + "|".join(re.escape(p).replace("'", "'?") for p in LEADING_PHRASES)
    + r")[ \t]*(?:[.!?;\n]|\u2026)", flags=re.IGNORECASE)


# every punctuation character (category P*) -> space, except the apostrophe (prepare() made them all "'")
_MATCH_TABLE: dict[int, str] = dict.fromkeys(PUNCTUATION_CODEPOINTS, " ")
_MATCH_TABLE[ord("'")] = "'"


def _match_form(prepared: str) -> str:
    return " ".join(prepared.lower().translate(_MATCH_TABLE).split()).strip("' ")


@lru_cache(maxsize=262_144)
def is_abstention(text: str) -> bool:
    """True when the response as a whole says it does not know (whole-phrase matching)."""
    prepared = prepare(text)
    form = _match_form(prepared)
    if not form:
        return False
    if form in ABSTENTION_PHRASES:
        return True
    return bool(_LEADING_RE.match(prepared.strip()))
