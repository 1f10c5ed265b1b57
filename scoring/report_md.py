"""Render report blocks as GitHub-flavoured markdown (figures linked relatively, under figures/)."""

from __future__ import annotations

import re
from pathlib import Path

from scoring.report_text import Block, Figure, Heading, Link, Para, Table

_PREFIX = {"warning": "**Warning:** ", "note": "_", "headline": "**"}
_SUFFIX = {"note": "_", "headline": "**"}


_TAG_START = re.compile(r"<(?=[A-Za-z/!?])")
# A backslash first (so text cannot un-escape what follows), then the brackets that open link and image
# syntax: "[click](javascript:...)" and "![x](http://...)" stay text, whatever a renderer allows.
_LINK_SYNTAX = str.maketrans({"\\": "\\\\", "[": "\\[", "]": "\\]"})


def md_text(text: str) -> str:
    """One line with raw HTML neutralised (a '<' that could open a tag becomes '&lt;') and link and image
    syntax escaped: headings, notes and captions may quote data (names, paths, error messages)."""
    return _TAG_START.sub("&lt;", " ".join(str(text).split()).translate(_LINK_SYNTAX))


def md_cell(text: str) -> str:
    """One table cell: no line breaks, pipes escaped, raw HTML, links and images neutralised (model text
    may hold any)."""
    return md_text(text).replace("|", "\\|").replace("`", "'")


def to_markdown(doc: list[Block], base_dir: Path) -> str:
    """The whole report; figure links are relative to ``base_dir`` (the reports folder)."""
    lines: list[str] = []
    for block in doc:
        if getattr(block, "html_only", False):
            continue
        if isinstance(block, Link):  # plain text: report.md holds no link at all (its text names the file)
            lines += [md_text(block.text), ""]
        elif isinstance(block, Heading):
            lines += ["#" * block.level + " " + md_text(block.text), ""]
        elif isinstance(block, Para):
            text = md_text(block.text)
            if block.kind in ("note", "headline") and text:
                text = f"{_PREFIX[block.kind]}{text}{_SUFFIX[block.kind]}"
            elif block.kind == "warning":
                text = _PREFIX["warning"] + text
            elif block.kind == "subhead":
                text = "- " + text
            elif block.kind == "banner":
                text = f"> **{text}**"
            lines += [text, ""]
        elif isinstance(block, Table):
            if not block.rows:
                continue
            lines.append("| " + " | ".join(md_cell(h) for h in block.headers) + " |")
            lines.append("|" + "|".join("---" for _ in block.headers) + "|")
            for row in block.rows:
                lines.append("| " + " | ".join(md_cell(c) for c in row) + " |")
            lines.append("")
            if block.caption:
                lines += [f"_{md_text(block.caption)}_", ""]
        elif isinstance(block, Figure):
            try:
                rel = Path(block.path).relative_to(base_dir).as_posix()
            except ValueError:
                rel = Path(block.path).name
            lines += [f"![{md_text(block.caption)}]({rel})", ""]
    return "\n".join(lines).rstrip() + "\n"
