"""Render report blocks as one self-contained HTML page: inline CSS, figures as base64 PNG.

Why: the page must open anywhere (mail attachment, offline laptop) and must never run or fetch
anything, so there are no scripts and no external resources (the one link goes to the sibling
items.html), and every text (model output above all) is HTML-escaped.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

from scoring.report_text import Block, Figure, Heading, Link, Para, Table

CSS = """
body{font-family:-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:0;color:#1d1d1f;background:#fafafa}
main{max-width:1100px;margin:0 auto;padding:24px 32px 48px;background:#fff}
h1{font-size:1.6em;margin:0 0 12px}h2{font-size:1.25em;margin:32px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
h3{font-size:1.05em;margin:20px 0 6px}
p{line-height:1.45;margin:6px 0}
p.banner{font-size:1.2em;font-weight:700;color:#fff;background:#b30000;padding:10px 14px;margin:8px 0}
p.headline{font-size:1.12em;background:#eef5fb;border-left:5px solid #2c7fb8;padding:10px 14px;margin:8px 0}
p.subhead{background:#f6f9fc;border-left:5px solid #9ecae1;padding:6px 14px;margin:6px 0}
p.note{color:#555;font-size:.92em}
p.listhead{font-weight:600;margin:14px 0 2px}
p.warning{background:#fff4e5;border-left:5px solid #e67e22;padding:6px 12px}
table{border-collapse:collapse;margin:8px 0 4px;font-size:.9em;max-width:100%}
th,td{border:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f2f2f2}td{overflow-wrap:anywhere}
tr:nth-child(even) td{background:#fbfbfb}
td.nowrap{white-space:nowrap;overflow-wrap:normal}
td.code{font-family:Consolas,"DejaVu Sans Mono",monospace;font-size:.85em;white-space:pre-wrap;max-width:520px}
caption{caption-side:bottom;text-align:left;color:#666;font-size:.85em;padding-top:3px}
details{margin:6px 0}summary{cursor:pointer;color:#2c7fb8;font-size:.92em}
figure{margin:14px 0}figure img{max-width:100%;height:auto;border:1px solid #eee}
figure.half{display:inline-block;width:48%;margin-right:1%;vertical-align:top}
figcaption{color:#555;font-size:.88em}
"""


def _esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def _img_src(path: Path) -> str | None:
    try:
        data = Path(path).read_bytes()
    except OSError:
        return None
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _table(block: Table) -> str:
    if not block.rows:
        return ""
    head = "".join(f"<th>{_esc(h)}</th>" for h in block.headers)
    body = []
    for row in block.rows:
        cells = "".join(f'<td class="code">{_esc(c)}</td>' if i in block.code_columns else
                        f'<td class="nowrap">{_esc(c)}</td>' if i in block.nowrap_columns else f"<td>{_esc(c)}</td>"
                        for i, c in enumerate(row))
        body.append(f"<tr>{cells}</tr>")
    if block.collapsed:
        table = f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
        return f"<details><summary>{_esc(block.caption or 'more')}</summary>{table}</details>"
    caption = f"<caption>{_esc(block.caption)}</caption>" if block.caption else ""
    return f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def to_html(doc: list[Block], title: str) -> str:
    """The whole page as one string (UTF-8, no external references)."""
    parts: list[str] = []
    for block in doc:
        if isinstance(block, Heading):
            level = min(max(block.level, 1), 4)
            parts.append(f"<h{level}>{_esc(block.text)}</h{level}>")
        elif isinstance(block, Para):
            parts.append(f'<p class="{_esc(block.kind)}">{_esc(block.text)}</p>')
        elif isinstance(block, Table):
            parts.append(_table(block))
        elif isinstance(block, Link):
            parts.append(f'<p class="link"><a href="{_esc(block.href)}">{_esc(block.text)}</a></p>')
        elif isinstance(block, Figure):
            src = _img_src(block.path)
            if src:
                cls = ' class="half"' if block.half else ""
                parts.append(f'<figure{cls}><img alt="{_esc(block.caption)}" src="{src}">'
                             f"<figcaption>{_esc(block.caption)}</figcaption></figure>")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{_esc(title)}</title><style>{CSS}</style></head><body><main>\n"
            + "\n".join(parts) + "\n</main></body></html>\n")
