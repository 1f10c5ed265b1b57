"""The report's "Items that changed" section: per temperature and type, the items the treatment fixed or
broke (and, on unanswerable questions, where it now abstains or now answers), with both answers.

Why: after "did the rate change?" comes "on which questions, and what did the model say?". The lists
come from scoring.changed_items, whose fixed/broke counts are significance.json's McNemar b and c. The
report shows the first LIST_LIMIT of each list; items.html holds every paired item. report.md keeps a
one-line count per block and the link (long model text belongs in the HTML pages).
"""

from __future__ import annotations

from config.wording import plural
from scoring.changed_items import CHANGE_LABELS, CHANGES, PairedItem
from scoring.items_html import ITEMS_HTML
from scoring.report_text import NA, Block, Heading, Link, Para, Table, fmt_num

LIST_LIMIT = 25
GOLD_SHOWN = 5
TEXT_SHOWN = 500


def _clip(text: str | None, limit: int = TEXT_SHOWN) -> str:
    if text is None:
        return "(no response)"
    return text if len(text) <= limit else text[:limit] + " [...]"


def _gold(pair: PairedItem) -> str:
    if pair.question is None:
        return NA
    if pair.unanswerable:
        return "(unanswerable)"
    more = len(pair.answers) - GOLD_SHOWN
    return "; ".join(pair.answers[:GOLD_SHOWN]) + (f" (+{more} more)" if more > 0 else "")


def _row(pair: PairedItem) -> list[str]:
    return [pair.dataset, pair.item_id, NA if pair.question is None else pair.question, _gold(pair),
            _clip(pair.control_response), _clip(pair.treatment_response)]


def _count_line(pairs: list[PairedItem], temp: str, type_: str) -> str:
    counts = {c: sum(c in p.changes for p in pairs) for c in CHANGES}
    parts = [f"fixed {fmt_num(counts['fixed'])}", f"broke {fmt_num(counts['broke'])}"]
    if type_ == "open" and any(p.unanswerable for p in pairs):
        parts += [f"now abstains {fmt_num(counts['now_abstains'])}", f"now answers {fmt_num(counts['now_answers'])}"]
    return (f"Items that changed at temperature {temp}, {type_}-book: treatment " + ", ".join(parts)
            + f" (of {plural(len(pairs), 'paired item')}).")


def changed_section(pairs: list[PairedItem] | None, problem: str | None = None) -> list[Block]:
    """The section's blocks; ``pairs`` None when the per-item scores could not be read (``problem`` says why)."""
    out: list[Block] = [Heading("Items that changed")]
    if pairs is None:
        return out + [Para(f"Changed items: {NA} ({problem or 'per_item_scores.csv missing'}).", "note")]
    out.append(Para("Items whose verdict differs between the conditions (an item is right when its mean EM is at "
                    "least 0.5, as in McNemar). On unanswerable questions abstaining is right, so an item that now "
                    "abstains is also listed as fixed. Each list is sorted by dataset and item id; with several "
                    "samples per item the answer shown is the first sample that agrees with the condition's "
                    f"verdict. Every paired item, with filters and sorting: {ITEMS_HTML}.", "note"))
    out.append(Link(f"All paired items ({plural(len(pairs), 'row')}): {ITEMS_HTML}", ITEMS_HTML))
    if pairs and all(p.question is None for p in pairs):
        out.append(Para(f"Questions and gold answers: {NA} (the run's prepared items were not found).", "note"))
    blocks: dict[tuple[str, str], list[PairedItem]] = {}
    for pair in pairs:
        blocks.setdefault((pair.temp, pair.type), []).append(pair)
    for (temp, type_), group in blocks.items():
        out.append(Heading(f"Temperature {temp}, {type_}-book", 3, html_only=True))
        out.append(Para(_count_line(group, temp, type_)))
        for change in CHANGES:
            if change.startswith("now_") and not any(p.unanswerable for p in group):
                continue
            listed = [p for p in group if change in p.changes]
            title = f"{CHANGE_LABELS[change].capitalize()} ({plural(len(listed), 'item')})"
            out.append(Para(title, "listhead", html_only=True))
            if not listed:
                out.append(Para("None.", "note", html_only=True))
                continue
            shown = f"the first {LIST_LIMIT} of {fmt_num(len(listed))}" if len(listed) > LIST_LIMIT else "all"
            out.append(Table(["dataset", "item", "question", "gold answers", "control answer", "treatment answer"],
                             [_row(p) for p in listed[:LIST_LIMIT]], caption=f"{CHANGE_LABELS[change]}: {shown}.",
                             code_columns={4, 5}, nowrap_columns={0, 1}, html_only=True))
            if len(listed) > LIST_LIMIT:
                out.append(Link(f"All {fmt_num(len(listed))} in {ITEMS_HTML}",
                                f"{ITEMS_HTML}#temp={temp}&type={type_}&change={change}", html_only=True))
    return out
