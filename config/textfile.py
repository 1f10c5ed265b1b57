"""Reading a user's text file (prompts, task instructions, configs): one function, BOM-proof.

Why: Notepad's "UTF-8 with BOM" and Windows PowerShell 5.1 ``Set-Content -Encoding UTF8`` put U+FEFF
in front of the text. Kept, it would become part of one condition's system prompt and change its
hash; so every user text file is decoded with ``utf-8-sig``, and a file that is not UTF-8 at all is
one line naming the file and the fix, raised before anything is written.
"""

from __future__ import annotations

import codecs
from pathlib import Path


class TextFileError(ValueError):
    """A user text file cannot be read as UTF-8 text; the message is one line naming the file."""


def read_user_bytes(path: str | Path) -> bytes:
    """The file's bytes without a leading UTF-8 BOM (for fingerprints that must not see the BOM)."""
    data = Path(path).read_bytes()
    return data[len(codecs.BOM_UTF8):] if data.startswith(codecs.BOM_UTF8) else data


def read_user_text(path: str | Path) -> str:
    """The file's text (UTF-8, a leading BOM dropped, newlines as ``\\n``). ``TextFileError`` when it is not UTF-8;
    ``OSError`` (not found, a folder, no permission) passes through for the caller to word."""
    data = Path(path).read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise TextFileError(
            f"{Path(path)}: not UTF-8 text (byte {exc.start}): save it as UTF-8 "
            "(Notepad: Save as, Encoding: UTF-8)"
        ) from None
    return text.replace("\r\n", "\n").replace("\r", "\n")  # as text mode reads it: CRLF files (Windows) too
