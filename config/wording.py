"""Counts in words: "1 item", "7 items", "6.5 items" (issue 29: "fixed 1 items", "7 changed item(s)").

Why in config: the lowest layer, so the command line, the workers, telemetry and the reports all say a
count the same way without importing one another.
"""

from __future__ import annotations


def count(n: float) -> str:
    """"7", "1,234", "6.5": a count that may be a mean over samples."""
    return f"{n:,.1f}" if not float(n).is_integer() else f"{int(n):,}"


def plural(n: float, word: str, many: str | None = None) -> str:
    """The count and the word in the right number: plural(1, "item") is "1 item", plural(3, "item") "3
    items", plural(2, "query", "queries") "2 queries"."""
    return f"{count(n)} {word if n == 1 else (many or word + 's')}"
