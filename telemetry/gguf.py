"""Read the metadata (key/value header) of a GGUF model file, in pure Python.

Why pure Python rather than ``Llama(path, vocab_only=True).metadata`` or the ``gguf`` package: the VRAM
budget runs in ``plan`` and ``doctor``, before anything is loaded and on machines that use Ollama and
may not have llama-cpp-python. This reader touches only the header (milliseconds, no model load, no
llama.cpp log spam on stderr, no dependency), and a truncated or foreign file gives a one-line
``GGUFError`` instead of a crash inside a C library.

Format (GGUF v2/v3, little-endian): magic ``GGUF``, uint32 version, uint64 tensor count, uint64 KV
count, then KV pairs: string key (uint64 length + UTF-8), uint32 value type, value. Arrays: uint32
element type, uint64 count, elements. Long arrays (the tokenizer's 49k-150k tokens) are skipped and
kept as ``GGUFArray(type, count)`` so ``len(tokens)`` (the vocabulary size) is still known.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

MAGIC = b"GGUF"
_SCALARS = {
    0: "B",  # uint8
    1: "b",  # int8
    2: "H",  # uint16
    3: "h",  # int16
    4: "I",  # uint32
    5: "i",  # int32
    6: "f",  # float32
    7: "?",  # bool
    10: "Q",  # uint64
    11: "q",  # int64
    12: "d",  # float64
}
_STRING, _ARRAY = 8, 9
KEEP_ARRAY_MAX = 256  # arrays longer than this are skipped (tokens, merges, scores)


class GGUFError(ValueError):
    """Not a readable GGUF file; the message is one line and names the file."""


@dataclass(frozen=True)
class GGUFArray:
    """A long array that was skipped: its element type and length."""

    type: int
    count: int

    def __len__(self) -> int:
        return self.count


class _Reader:
    def __init__(self, fh: BinaryIO, endian: str) -> None:
        self.fh = fh
        self.e = endian

    def exact(self, n: int) -> bytes:
        data = self.fh.read(n)
        if len(data) != n:
            raise EOFError("file ends inside the header")
        return data

    def scalar(self, code: str) -> Any:
        size = struct.calcsize(code)
        return struct.unpack(self.e + code, self.exact(size))[0]

    def string(self) -> str:
        n = self.scalar("Q")
        if n > 1 << 30:
            raise GGUFError(f"string length {n} is implausible")
        return self.exact(n).decode("utf-8", "replace")

    def skip_string(self) -> None:
        n = self.scalar("Q")
        self.fh.seek(n, 1)

    def value(self, vtype: int) -> Any:
        if vtype in _SCALARS:
            return self.scalar(_SCALARS[vtype])
        if vtype == _STRING:
            return self.string()
        if vtype == _ARRAY:
            etype = self.scalar("I")
            count = self.scalar("Q")
            if count <= KEEP_ARRAY_MAX:
                return [self.value(etype) for _ in range(count)]
            if etype in _SCALARS:
                self.fh.seek(struct.calcsize(_SCALARS[etype]) * count, 1)
            elif etype == _STRING:
                for _ in range(count):
                    self.skip_string()
            else:  # arrays of arrays: walk them
                for _ in range(count):
                    self.value(etype)
            return GGUFArray(etype, count)
        raise GGUFError(f"unknown GGUF value type {vtype}")


def read_gguf_metadata(path: str | Path) -> dict[str, Any]:
    """All header key/values of ``path`` (long arrays as ``GGUFArray``), plus ``gguf.version`` and
    ``gguf.tensor_count``. Raises ``GGUFError`` (one line) for a missing, foreign or truncated file."""
    p = Path(path)
    try:
        with p.open("rb") as fh:
            if fh.read(4) != MAGIC:
                raise GGUFError(f"{p}: not a GGUF file (bad magic)")
            raw_version = fh.read(4)
            if len(raw_version) != 4:
                raise GGUFError(f"{p}: truncated GGUF header")
            version = struct.unpack("<I", raw_version)[0]
            endian = "<"
            if version > 0xFFFF:  # a big-endian file reads as a huge number
                endian, version = ">", struct.unpack(">I", raw_version)[0]
            if version < 2:
                raise GGUFError(f"{p}: GGUF version {version} is too old (v2 or newer needed)")
            r = _Reader(fh, endian)
            tensor_count = r.scalar("Q")
            kv_count = r.scalar("Q")
            meta: dict[str, Any] = {"gguf.version": version, "gguf.tensor_count": tensor_count}
            for _ in range(kv_count):
                key = r.string()
                meta[key] = r.value(r.scalar("I"))
            return meta
    except GGUFError:
        raise
    except FileNotFoundError:
        raise GGUFError(f"{p}: file not found") from None
    except (OSError, EOFError, struct.error, MemoryError) as exc:
        raise GGUFError(f"{p}: cannot read GGUF header ({exc})") from None
